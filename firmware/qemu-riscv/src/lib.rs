//! QEMU's sifive_e: the SiFive FE310 of the HiFive1 (an E31 core, RV32IMAC: no FPU, so f32 is
//! compiler-builtins' soft-float), code in its SPI flash at `0x2040_0000`, 16 KiB of data RAM, and
//! the SiFive UART0, polled.
#![no_std]

use core::ptr::{read_volatile, write_volatile};

use dropship_emulated::serial::{self, Polled, Rx, Tx};

const UART0: usize = 0x1001_3000;
const TXDATA: usize = 0x00;
const RXDATA: usize = 0x04;
const TXCTRL: usize = 0x08;
const RXCTRL: usize = 0x0c;
/// TXDATA's "full" and RXDATA's "empty" flag.
const FLAG: u32 = 1 << 31;

/// Reads a register of UART0.
fn read(offset: usize) -> u32 {
    // SAFETY: `offset` is one of UART0's registers (the constants above), on every FE310.
    unsafe { read_volatile((UART0 + offset) as *const u32) }
}

/// Writes a register of UART0.
fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; only this module drives UART0 (`uart` hands it out once).
    unsafe { write_volatile((UART0 + offset) as *mut u32, value) }
}

/// The SiFive UART: a flag in the data registers themselves.
pub struct SifiveUart;

impl Polled for SifiveUart {
    fn try_read() -> Option<u8> {
        // reading RXDATA takes a byte when its empty flag is clear
        let data = read(RXDATA);
        (data & FLAG == 0).then_some(data as u8)
    }

    fn write(byte: u8) {
        while read(TXDATA) & FLAG != 0 {}
        write(TXDATA, u32::from(byte));
    }
}

/// UART0, enabled in both directions, as its two halves. Call once.
pub fn uart() -> (Rx<SifiveUart>, Tx<SifiveUart>) {
    write(TXCTRL, 1);
    write(RXCTRL, 1);
    serial::halves()
}
