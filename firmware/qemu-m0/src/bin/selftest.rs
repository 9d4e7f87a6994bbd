//! The self-test firmware (see `dropship_emulated::self_test`).
#![no_std]
#![no_main]

use dropship_qemu_m0 as _;

#[cortex_m_rt::entry]
fn main() -> ! {
    dropship_emulated::self_test()
}
