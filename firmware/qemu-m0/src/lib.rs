//! QEMU's microbit: the BBC micro:bit's nRF51822, a Cortex-M0 (ARMv6-M: no FPU, so f32 is
//! compiler-builtins' soft-float; no DSP, so int8 takes the portable kernels), 256 KiB of flash,
//! 16 KiB of RAM, and the nRF51 UART, polled.
#![no_std]

use core::ptr::{read_volatile, write_volatile};

use dropship_emulated::serial::{self, Polled, Rx, Tx};

const UART: usize = 0x4000_2000;
const STARTRX: usize = 0x000;
const STARTTX: usize = 0x008;
const RXDRDY: usize = 0x108;
const TXDRDY: usize = 0x11c;
const ENABLE: usize = 0x500;
const RXD: usize = 0x518;
const TXD: usize = 0x51c;
const ENABLE_UART: u32 = 4;

/// Reads a register of the UART.
fn read(offset: usize) -> u32 {
    // SAFETY: `offset` is one of the UART's registers (the constants above), on every nRF51.
    unsafe { read_volatile((UART + offset) as *const u32) }
}

/// Writes a register of the UART.
fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`; only this module drives the UART (`uart` hands it out once).
    unsafe { write_volatile((UART + offset) as *mut u32, value) }
}

/// The nRF51's UART: an event flag per byte received or sent.
pub struct Nrf51Uart;

impl Polled for Nrf51Uart {
    fn try_read() -> Option<u8> {
        if read(RXDRDY) == 0 {
            return None;
        }
        write(RXDRDY, 0);
        Some(read(RXD) as u8)
    }

    fn write(byte: u8) {
        write(TXD, u32::from(byte));
        while read(TXDRDY) == 0 {}
        write(TXDRDY, 0);
    }
}

/// The UART, enabled, receiving and sending, as its two halves. Call once.
pub fn uart() -> (Rx<Nrf51Uart>, Tx<Nrf51Uart>) {
    write(ENABLE, ENABLE_UART);
    write(STARTRX, 1);
    write(STARTTX, 1);
    serial::halves()
}
