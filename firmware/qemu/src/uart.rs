//! The CMSDK APB UART0 of mps2-an386 (QEMU emulates it; `-serial` connects it to the host), polled,
//! split into a receiving and a sending half behind the `embedded-io` traits.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const UART0: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;
/// 25 MHz / 115200 baud. QEMU ignores the divider; hardware needs one.
const DIVIDER: u32 = 217;

fn register(offset: usize) -> *mut u32 {
    (UART0 + offset) as *mut u32
}

fn state() -> u32 {
    // SAFETY: a read of UART0's STATE register, which has no side effects.
    unsafe { read_volatile(register(STATE)) }
}

/// The receiving half.
pub struct Rx(());
/// The sending half.
pub struct Tx(());

/// Enables UART0 for both directions and returns its halves. Call once.
pub fn take() -> (Rx, Tx) {
    // SAFETY: UART0's registers exist on mps2-an386; nothing else in the firmware uses them.
    unsafe {
        write_volatile(register(BAUDDIV), DIVIDER);
        write_volatile(register(CTRL), CTRL_TX_ENABLE | CTRL_RX_ENABLE);
    }
    (Rx(()), Tx(()))
}

impl embedded_io::ErrorType for Rx {
    type Error = Infallible;
}

impl embedded_io::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io::Read for Rx {
    /// Waits for a byte, then takes every byte already there (the UART holds one).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        while n < buf.len() {
            if state() & STATE_RX_FULL == 0 {
                if n > 0 {
                    break;
                }
                continue;
            }
            // SAFETY: reading DATA takes the received byte; the register exists.
            buf[n] = unsafe { read_volatile(register(DATA)) } as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for byte in buf {
            while state() & STATE_TX_FULL != 0 {}
            // SAFETY: writing DATA sends the byte; the register exists.
            unsafe { write_volatile(register(DATA), u32::from(*byte)) };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while state() & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
