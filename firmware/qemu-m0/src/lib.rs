//! QEMU's microbit: the BBC micro:bit's nRF51822, a Cortex-M0 (ARMv6-M: no FPU, so f32 is
//! compiler-builtins' soft-float; no DSP, so int8 takes the portable kernels), 256 KiB of flash,
//! 16 KiB of RAM, and the nRF51 UART, polled, behind the `embedded-io` traits.
#![no_std]

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const UART: usize = 0x4000_2000;
const STARTRX: usize = 0x000;
const STARTTX: usize = 0x008;
const RXDRDY: usize = 0x108;
const TXDRDY: usize = 0x11c;
const ENABLE: usize = 0x500;
const RXD: usize = 0x518;
const TXD: usize = 0x51c;
const ENABLE_UART: u32 = 4;

fn register(offset: usize) -> *mut u32 {
    (UART + offset) as *mut u32
}

/// Reads a register of the UART.
fn read(offset: usize) -> u32 {
    // SAFETY: `offset` is one of the UART's registers (the constants above), on every nRF51.
    unsafe { read_volatile(register(offset)) }
}

/// Writes a register of the UART.
fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; only this module drives the UART (`uart` hands it out once).
    unsafe { write_volatile(register(offset), value) }
}

/// The receiving half.
pub struct Rx(());
/// The sending half.
pub struct Tx(());

/// The UART, enabled, receiving and sending, as its two halves. Call once.
pub fn uart() -> (Rx, Tx) {
    write(ENABLE, ENABLE_UART);
    write(STARTRX, 1);
    write(STARTTX, 1);
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
            if read(RXDRDY) == 0 {
                if n > 0 {
                    break;
                }
                continue;
            }
            write(RXDRDY, 0);
            buf[n] = read(RXD) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for byte in buf {
            write(TXD, u32::from(*byte));
            while read(TXDRDY) == 0 {}
            write(TXDRDY, 0);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
