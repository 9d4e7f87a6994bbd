//! The CMSDK APB UART of the MPS2 machines (mps2-an386 at `0x4000_4000`, mps2-an505 at
//! `0x5020_0000`; QEMU's `-serial` connects it to the host), polled, split into a receiving and a
//! sending half behind the `embedded-io` traits. `BASE` is the UART's address.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

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

fn register<const BASE: usize>(offset: usize) -> *mut u32 {
    (BASE + offset) as *mut u32
}

fn state<const BASE: usize>() -> u32 {
    // SAFETY: a read of the UART's STATE register, which has no side effects.
    unsafe { read_volatile(register::<BASE>(STATE)) }
}

/// The receiving half.
pub struct Rx<const BASE: usize>(());
/// The sending half.
pub struct Tx<const BASE: usize>(());

/// Enables the UART at `BASE` for both directions and returns its halves. Call once.
///
/// # Safety
///
/// A CMSDK APB UART's registers are at `BASE` on this machine, and nothing else in the firmware
/// uses them.
pub unsafe fn take<const BASE: usize>() -> (Rx<BASE>, Tx<BASE>) {
    // SAFETY: the caller promises the registers are there and ours.
    unsafe {
        write_volatile(register::<BASE>(BAUDDIV), DIVIDER);
        write_volatile(register::<BASE>(CTRL), CTRL_TX_ENABLE | CTRL_RX_ENABLE);
    }
    (Rx(()), Tx(()))
}

impl<const BASE: usize> embedded_io::ErrorType for Rx<BASE> {
    type Error = Infallible;
}

impl<const BASE: usize> embedded_io::ErrorType for Tx<BASE> {
    type Error = Infallible;
}

impl<const BASE: usize> embedded_io::Read for Rx<BASE> {
    /// Waits for a byte, then takes every byte already there (the UART holds one).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        while n < buf.len() {
            if state::<BASE>() & STATE_RX_FULL == 0 {
                if n > 0 {
                    break;
                }
                continue;
            }
            // SAFETY: reading DATA takes the received byte; `take` was promised the register exists.
            buf[n] = unsafe { read_volatile(register::<BASE>(DATA)) } as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl<const BASE: usize> embedded_io::Write for Tx<BASE> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for byte in buf {
            while state::<BASE>() & STATE_TX_FULL != 0 {}
            // SAFETY: writing DATA sends the byte; `take` was promised the register exists.
            unsafe { write_volatile(register::<BASE>(DATA), u32::from(*byte)) };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while state::<BASE>() & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
