//! The boards dropship deploys to, as the host sees them: the firmware toolchain ([`toolchain`]),
//! building a board's self-test or serving firmware with a model ([`firmware`]), and QEMU's
//! command line for the embedded default ([`qemu`]). `cargo xtask` and `dropship validate` use it.

pub mod firmware;
pub mod qemu;
pub mod sources;
pub mod toolchain;

use std::path::PathBuf;

pub use sources::{cache_dir, sources};

/// The repository root this crate was built in (it lives in `host/boards`): the checkout, which
/// `cargo xtask` and the tests work in. The firmware builds from [`sources`], which is this root
/// while the checkout is there.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).expect("dropship-boards lives in host/boards").to_path_buf()
}
