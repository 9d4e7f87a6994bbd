//! The board's serial port: mps2-an386's CMSDK UART0, polled, as `embedded-io` halves.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0x4000_4000;
const DATA: *mut u32 = BASE as *mut u32;
const STATE: *mut u32 = (BASE + 0x04) as *mut u32;
const CTRL: *mut u32 = (BASE + 0x08) as *mut u32;
const TX_FULL: u32 = 1;
const RX_FULL: u32 = 2;

/// The receiving half.
pub struct Rx;
/// The sending half.
pub struct Tx;

/// Turns UART0 on (both directions). Call once.
pub fn take() -> (Rx, Tx) {
    // SAFETY: CTRL is UART0's control register on mps2-an386; nothing else drives UART0.
    unsafe { write_volatile(CTRL, 0b11) };
    (Rx, Tx)
}

fn wait_while(busy: u32) {
    // SAFETY: reading STATE has no side effects.
    while unsafe { read_volatile(STATE) } & busy == busy {}
}

impl embedded_io::ErrorType for Rx {
    type Error = Infallible;
}

impl embedded_io::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io::Read for Rx {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let Some(first) = buf.first_mut() else { return Ok(0) };
        // SAFETY: reading STATE has no side effects.
        while unsafe { read_volatile(STATE) } & RX_FULL == 0 {}
        // SAFETY: RX_FULL says DATA holds a received byte; reading it takes the byte.
        *first = unsafe { read_volatile(DATA) } as u8;
        Ok(1)
    }
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for byte in buf {
            wait_while(TX_FULL);
            // SAFETY: TX_FULL is clear, so DATA takes one more byte to send.
            unsafe { write_volatile(DATA, u32::from(*byte)) };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
