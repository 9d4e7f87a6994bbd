//! The self-test firmware (see `dropship_emulated::self_test`).
#![no_std]
#![no_main]

use dropship_qemu_riscv as _;

#[riscv_rt::entry]
fn main() -> ! {
    dropship_emulated::self_test()
}
