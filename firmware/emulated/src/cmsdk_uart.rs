//! The CMSDK APB UART of the MPS2 machines (mps2-an386 at `0x4000_4000`, mps2-an505 at
//! `0x5020_0000`; QEMU's `-serial` connects it to the host), polled. `BASE` is its address.

use core::ptr::{read_volatile, write_volatile};

use crate::serial::{self, Polled};

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

/// The CMSDK UART at `BASE`.
pub struct Cmsdk<const BASE: usize>;

fn register<const BASE: usize>(offset: usize) -> *mut u32 {
    (BASE + offset) as *mut u32
}

impl<const BASE: usize> Cmsdk<BASE> {
    fn state() -> u32 {
        // SAFETY: a read of the UART's STATE register, which has no side effects; `take` was
        // promised the register exists (no `Cmsdk` is used before it).
        unsafe { read_volatile(register::<BASE>(STATE)) }
    }
}

impl<const BASE: usize> Polled for Cmsdk<BASE> {
    fn try_read() -> Option<u8> {
        // SAFETY: reading DATA takes the received byte; `take` was promised the register exists.
        (Self::state() & STATE_RX_FULL != 0).then(|| unsafe { read_volatile(register::<BASE>(DATA)) } as u8)
    }

    fn write(byte: u8) {
        while Self::state() & STATE_TX_FULL != 0 {}
        // SAFETY: writing DATA sends the byte; `take` was promised the register exists.
        unsafe { write_volatile(register::<BASE>(DATA), u32::from(byte)) };
    }
}

/// Enables the UART at `BASE` for both directions and returns its halves. Call once.
///
/// # Safety
///
/// A CMSDK APB UART's registers are at `BASE` on this machine, and nothing else in the firmware
/// uses them.
pub unsafe fn take<const BASE: usize>() -> (serial::Rx<Cmsdk<BASE>>, serial::Tx<Cmsdk<BASE>>) {
    // SAFETY: the caller promises the registers are there and ours.
    unsafe {
        write_volatile(register::<BASE>(BAUDDIV), DIVIDER);
        write_volatile(register::<BASE>(CTRL), CTRL_TX_ENABLE | CTRL_RX_ENABLE);
    }
    serial::halves()
}
