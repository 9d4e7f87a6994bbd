//! The serving firmware: answers `dropship validate` on the board's UART0.
#![no_std]
#![no_main]

#[riscv_rt::entry]
fn main() -> ! {
    let (rx, tx) = dropship_qemu_riscv::uart();
    dropship_emulated::serve("qemu-riscv", rx, tx)
}
