//! The serving firmware: answers `dropship validate` on the board's UART.
#![no_std]
#![no_main]

#[cortex_m_rt::entry]
fn main() -> ! {
    let (rx, tx) = dropship_qemu_m33::uart();
    dropship_emulated::serve("qemu-m33", rx, tx)
}
