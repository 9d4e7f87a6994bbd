//! Board-independent firmware logic, generic over embedded-hal 1.0 traits and tested on the host.
#![cfg_attr(not(test), no_std)]

use embedded_hal::digital::{InputPin, OutputPin};

/// FNV-1a over the bit patterns of the logits: the device compares its logits with the host's
/// bit for bit without storing every expected logit in flash.
pub fn logits_digest(logits: &[f32]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for v in logits {
        for byte in v.to_bits().to_le_bytes() {
            hash ^= byte as u32;
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// The bit patterns of the logits, for logging.
pub fn logits_bits<const N: usize>(logits: &[f32; N]) -> heapless::Vec<u32, N> {
    logits.iter().map(|v| v.to_bits()).collect()
}

/// Running tally of vectors whose class and logits match the host's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Vectors checked.
    pub checked: usize,
    /// Vectors with the host's class and bit-identical logits.
    pub matched: usize,
}

impl Tally {
    /// Records one vector; returns whether it matched.
    pub fn record(&mut self, class: usize, expected_class: usize, logits: &[f32], expected_digest: u32) -> bool {
        let ok = class == expected_class && logits_digest(logits) == expected_digest;
        self.checked += 1;
        self.matched += usize::from(ok);
        ok
    }

    /// True when every checked vector matched (and there was at least one).
    pub fn all_match(&self) -> bool {
        self.checked > 0 && self.matched == self.checked
    }
}

/// Shows `class` in binary on LEDs (`leds[0]` is bit 0). `active_low` boards light a LED by
/// driving its pin low, as the nRF52840-DK does. Classes above what the LEDs can show light all.
pub fn show_class<P: OutputPin>(leds: &mut [P], class: usize, active_low: bool) -> Result<(), P::Error> {
    let max = (1usize << leds.len()) - 1;
    let value = class.min(max);
    for (bit, led) in leds.iter_mut().enumerate() {
        let on = value & (1 << bit) != 0;
        if on != active_low {
            led.set_high()?;
        } else {
            led.set_low()?;
        }
    }
    Ok(())
}

/// Steps through `count` vectors, one per button press (a press is a released-to-pressed edge).
#[derive(Clone, Debug)]
pub struct Stepper {
    count: usize,
    index: usize,
    was_pressed: bool,
}

impl Stepper {
    /// Starts at vector 0.
    pub fn new(count: usize) -> Self {
        Self { count, index: 0, was_pressed: false }
    }

    /// The current vector.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Polls an active-low button; returns the new index on a press.
    pub fn poll<B: InputPin>(&mut self, button: &mut B) -> Result<Option<usize>, B::Error> {
        let pressed = button.is_low()?;
        let edge = pressed && !self.was_pressed;
        self.was_pressed = pressed;
        if edge && self.count > 0 {
            self.index = (self.index + 1) % self.count;
            return Ok(Some(self.index));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};

    #[test]
    fn class_five_in_binary_on_active_low_leds() {
        // 5 = 0b0101: LEDs 0 and 2 on (pin low), 1 and 3 off (pin high)
        let mut leds = [
            Mock::new(&[T::set(State::Low)]),
            Mock::new(&[T::set(State::High)]),
            Mock::new(&[T::set(State::Low)]),
            Mock::new(&[T::set(State::High)]),
        ];
        show_class(&mut leds, 5, true).unwrap();
        leds.iter_mut().for_each(Mock::done);
    }

    #[test]
    fn class_beyond_the_leds_lights_them_all_active_high() {
        let mut leds = [Mock::new(&[T::set(State::High)]), Mock::new(&[T::set(State::High)])];
        show_class(&mut leds, 9, false).unwrap();
        leds.iter_mut().for_each(Mock::done);
    }

    #[test]
    fn button_steps_once_per_press_and_wraps() {
        // released, pressed, held, released, pressed
        let mut button = Mock::new(&[
            T::get(State::High),
            T::get(State::Low),
            T::get(State::Low),
            T::get(State::High),
            T::get(State::Low),
        ]);
        let mut s = Stepper::new(2);
        let polls: Vec<_> = (0..5).map(|_| s.poll(&mut button).unwrap()).collect();
        assert_eq!(polls, vec![None, Some(1), None, None, Some(0)]);
        button.done();
    }

    #[test]
    fn tally_needs_the_class_and_every_bit() {
        let logits = [1.0f32, -2.5, 0.25];
        let digest = logits_digest(&logits);
        let mut t = Tally::default();
        assert!(t.record(0, 0, &logits, digest));
        let nudged = [1.0f32, f32::from_bits((-2.5f32).to_bits() + 1), 0.25];
        assert!(!t.record(0, 0, &nudged, digest), "one ulp off is a mismatch");
        assert!(!t.record(1, 0, &logits, digest));
        assert_eq!(t, Tally { checked: 3, matched: 1 });
        assert!(!t.all_match());
        assert_eq!(logits_digest(&[]), 0x811c_9dc5);
        assert_eq!(logits_bits(&[1.0f32, -0.0]).as_slice(), &[0x3f80_0000, 0x8000_0000]);
    }
}
