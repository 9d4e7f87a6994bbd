//! QEMU's mps2-an386 (Cortex-M4F), the embedded default: its interrupt vectors and its serial port,
//! the CMSDK UART0. Everything else its firmware runs is `dropship-emulated`'s.
#![no_std]

use dropship_emulated::cmsdk_uart::{self, Cmsdk};
use dropship_emulated::serial::{Rx, Tx};

extern "C" {
    fn DefaultHandler();
}

/// The vectors of mps2-an386's 32 external interrupts (the CMSDK peripherals'): none is enabled, so
/// each is cortex-m-rt's default handler. A device crate would list them; this board has none.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 32] = [DefaultHandler; 32];

/// UART0's address.
const UART0: usize = 0x4000_4000;

/// UART0, enabled, as its receiving and sending halves. Call once.
pub fn uart0() -> (Rx<Cmsdk<UART0>>, Tx<Cmsdk<UART0>>) {
    // SAFETY: mps2-an386 has a CMSDK UART at 0x4000_4000, and only this function hands it out.
    unsafe { cmsdk_uart::take() }
}
