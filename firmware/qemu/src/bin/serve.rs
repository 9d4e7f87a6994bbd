//! QEMU mps2-an386 serving firmware: answers `dropship validate` on UART0 (the model compiled in, no
//! test vectors), each inference's cost in instructions; logs go to semihosting as in the self-test.
#![no_std]
#![no_main]

#[cortex_m_rt::entry]
fn main() -> ! {
    let (rx, tx) = dropship_qemu::uart0();
    dropship_emulated::serve("qemu", rx, tx)
}
