//! The application's sensor: a camera of 8-bit pixels read over I2C (embedded-hal 1.0), and a
//! simulated bus that answers like one, since QEMU's mps2-an386 has no camera.

use embedded_hal::i2c::{ErrorType, I2c, Operation};

/// The camera's bus address and its frame register.
const ADDRESS: u8 = 0x3c;
const FRAME: u8 = 0x00;

/// A camera on any I2C bus.
pub struct Camera<B> {
    bus: B,
}

impl<B: I2c> Camera<B> {
    /// The camera on `bus`.
    pub fn new(bus: B) -> Self {
        Self { bus }
    }

    /// One frame of `N` pixels, as the model's features (0 to 255 each).
    pub fn read_frame<const N: usize>(&mut self) -> Result<[f32; N], B::Error> {
        let mut pixels = [0u8; N];
        self.bus.write_read(ADDRESS, &[FRAME], &mut pixels)?;
        Ok(pixels.map(f32::from))
    }
}

/// A bus with a simulated camera on it: its frame is an upright stroke, two pixels wide, in the
/// middle of an 8-pixel-wide image, at the digits' intensity range (0 to 16).
pub struct SimulatedBus;

impl ErrorType for SimulatedBus {
    type Error = core::convert::Infallible;
}

impl I2c for SimulatedBus {
    fn transaction(&mut self, _address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        for op in operations {
            if let Operation::Read(buffer) = op {
                for (i, pixel) in buffer.iter_mut().enumerate() {
                    *pixel = if matches!(i % 8, 3 | 4) { 16 } else { 0 };
                }
            }
        }
        Ok(())
    }
}
