//! A UART polled one byte at a time, behind the `embedded-io` traits: a board says how to take a
//! received byte and how to send one ([`Polled`]); the halves ([`Rx`], [`Tx`]) are the same for
//! every board.

use core::convert::Infallible;
use core::marker::PhantomData;

/// A UART's byte-level registers.
pub trait Polled {
    /// The byte waiting in the receiver, taking it; `None` when none is.
    fn try_read() -> Option<u8>;
    /// Sends `byte`, waiting until the transmitter takes it.
    fn write(byte: u8);
}

/// The receiving half of the UART `U`.
pub struct Rx<U>(PhantomData<U>);
/// The sending half of the UART `U`.
pub struct Tx<U>(PhantomData<U>);

/// The halves of the UART `U`, which the board has enabled and hands out once.
pub fn halves<U: Polled>() -> (Rx<U>, Tx<U>) {
    (Rx(PhantomData), Tx(PhantomData))
}

impl<U> embedded_io::ErrorType for Rx<U> {
    type Error = Infallible;
}

impl<U> embedded_io::ErrorType for Tx<U> {
    type Error = Infallible;
}

impl<U: Polled> embedded_io::Read for Rx<U> {
    /// Waits for a byte, then takes every byte already there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        while n < buf.len() {
            match U::try_read() {
                Some(byte) => {
                    buf[n] = byte;
                    n += 1;
                }
                None if n > 0 => break,
                None => {}
            }
        }
        Ok(n)
    }
}

impl<U: Polled> embedded_io::Write for Tx<U> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        buf.iter().for_each(|byte| U::write(*byte));
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}
