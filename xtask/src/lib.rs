//! dropship's chores as a library: the firmware toolchain, firmware builds, QEMU runs and the
//! decoding of their defmt output. The `xtask` binary and the device tests both use it.

pub mod device;
pub mod elf;
pub mod firmware;
pub mod golden;
pub mod toolchain;

use std::path::PathBuf;

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}
