//! QEMU's mps2-an505 (an SSE-200 subsystem with one Cortex-M33, FPU and DSP extension), running in
//! the secure state it starts in: code in SSRAM1's secure alias (`0x1000_0000`), data in SSRAM2's
//! (`0x3800_0000`), the CMSDK UART0 at its secure alias.
#![no_std]

use dropship_emulated::cmsdk_uart::{self, Cmsdk};
use dropship_emulated::serial::{Rx, Tx};

/// UART0's secure alias.
const UART0: usize = 0x5020_0000;

/// UART0, enabled, as its receiving and sending halves. Call once.
pub fn uart() -> (Rx<Cmsdk<UART0>>, Tx<Cmsdk<UART0>>) {
    // SAFETY: mps2-an505 has a CMSDK UART at 0x5020_0000 (secure alias, which the secure state this
    // firmware runs in may use), and only this function hands it out.
    unsafe { cmsdk_uart::take() }
}
