//! QEMU's sifive_e: the SiFive FE310 of the HiFive1 (an E31 core, RV32IMAC: no FPU, so f32 is
//! compiler-builtins' soft-float), code in its SPI flash at `0x2040_0000`, 16 KiB of data RAM, and
//! the SiFive UART0, polled, behind the `embedded-io` traits.
#![no_std]

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const UART0: usize = 0x1001_3000;
const TXDATA: usize = 0x00;
const RXDATA: usize = 0x04;
const TXCTRL: usize = 0x08;
const RXCTRL: usize = 0x0c;
/// TXDATA's "full" and RXDATA's "empty" flag.
const FLAG: u32 = 1 << 31;

fn register(offset: usize) -> *mut u32 {
    (UART0 + offset) as *mut u32
}

/// Reads a register of UART0.
fn read(offset: usize) -> u32 {
    // SAFETY: `offset` is one of UART0's registers (the constants above), on every FE310.
    unsafe { read_volatile(register(offset)) }
}

/// Writes a register of UART0.
fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; only this module drives UART0 (`uart` hands it out once).
    unsafe { write_volatile(register(offset), value) }
}

/// The receiving half.
pub struct Rx(());
/// The sending half.
pub struct Tx(());

/// UART0, enabled in both directions, as its two halves. Call once.
pub fn uart() -> (Rx, Tx) {
    write(TXCTRL, 1);
    write(RXCTRL, 1);
    (Rx(()), Tx(()))
}

impl embedded_io::ErrorType for Rx {
    type Error = Infallible;
}

impl embedded_io::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io::Read for Rx {
    /// Waits for a byte, then takes every byte already there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        while n < buf.len() {
            // reading RXDATA takes a byte when its empty flag is clear
            let data = read(RXDATA);
            if data & FLAG != 0 {
                if n > 0 {
                    break;
                }
                continue;
            }
            buf[n] = data as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for byte in buf {
            while read(TXDATA) & FLAG != 0 {}
            write(TXDATA, u32::from(*byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
