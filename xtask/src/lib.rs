//! dropship's chores as a library: the firmware toolchain, firmware builds, QEMU runs and the
//! decoding of their defmt output. The `xtask` binary and the device tests both use it.

pub mod device;
pub mod elf;
pub mod golden;
pub mod installed;

pub use dropship_boards::{firmware, qemu, root, toolchain};
