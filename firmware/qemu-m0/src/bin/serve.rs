//! The serving firmware: answers `dropship validate` on the board's UART.
#![no_std]
#![no_main]

#[cortex_m_rt::entry]
fn main() -> ! {
    let (rx, tx) = dropship_qemu_m0::uart();
    dropship_emulated::serve("qemu-m0", rx, tx)
}
