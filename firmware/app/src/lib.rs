//! Board-independent firmware logic, generic over embedded-hal 1.0 traits and tested on the host:
//! the device's side of the vector check and its log lines (defmt, feature `defmt`), LEDs, button.
//!
//! The log lines below are the device protocol the host reads (`xtask/src/device.rs` parses them):
//! `model: ...`, one `vector <i>: class <c> host <h> <true|false> logits [<bits>, ...]` per vector,
//! `<n>/<m> match host`, and the board's `cost: ...` line.
#![cfg_attr(not(test), no_std)]

use embedded_hal::digital::{InputPin, OutputPin};

/// One input with what the host computed for it, as the firmware embeds it.
pub struct TestVector<E, const N: usize> {
    /// The raw input (`u8` when every value was a small integer, else `f32`).
    pub input: [E; N],
    /// The host's class.
    pub class: usize,
    /// FNV-1a digest of the host's logits' bit patterns ([`logits_digest`]).
    pub logits_digest: u32,
}

impl<E: Copy + Into<f32>, const N: usize> TestVector<E, N> {
    /// The input as f32 (exact for u8).
    pub fn input_f32(&self) -> [f32; N] {
        self.input.map(Into::into)
    }
}

pub use dropship_shared::footprint::ModelShape;

/// Logs what the device runs (the first lines of every board's log): a summary, then one line per
/// layer.
pub fn announce(shape: &ModelShape) {
    #[cfg(feature = "defmt")]
    {
        defmt::info!(
            "model: {=usize} dense layers, widths {=[?]}; {=usize} parameters, {=usize} MACs, {=usize} bytes of weights in flash, {=usize} bytes of activations",
            shape.depth(), shape.widths, shape.parameters, shape.macs, shape.weight_bytes, shape.activation_bytes
        );
        for (i, (pair, layer)) in shape.widths.windows(2).zip(shape.layers).enumerate() {
            let (kind, activation) = (layer.kind.name(), layer.activation.name());
            defmt::info!("layer {=usize}: {=str}({=usize} -> {=usize}) {=str}", i, kind, pair[0], pair[1], activation);
        }
        defmt::info!("inference has no dropout and no regularization: the artifact cannot express them");
    }
    #[cfg(not(feature = "defmt"))]
    let _ = shape;
}

/// The line of one vector: `vector <i>: class <c> host <h> <matched> logits [<bits>, ...]`.
#[cfg(feature = "defmt")]
fn log_vector<const N: usize>(index: usize, class: usize, host: usize, matched: bool, logits: &[f32; N]) {
    defmt::info!(
        "vector {=usize}: class {=usize} host {=usize} {=bool} logits {=[?]}",
        index,
        class,
        host,
        matched,
        logits_bits(logits).as_slice()
    );
}

#[cfg(not(feature = "defmt"))]
fn log_vector<const N: usize>(_: usize, _: usize, _: usize, _: bool, _: &[f32; N]) {}

/// What running every vector gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Vectors checked and matched.
    pub tally: Tally,
    /// The board's cost units (instructions, cycles, timer ticks) summed over every inference.
    pub cost: u64,
}

/// Runs `infer` (the class, and the cost of that one inference) on every vector, checks each
/// against the host's class and logit digest, and logs one line per vector and the summary.
pub fn check_vectors<E: Copy + Into<f32>, const IN: usize, const CLASSES: usize>(
    vectors: &[TestVector<E, IN>],
    logits: &mut [f32; CLASSES],
    mut infer: impl FnMut(&[f32; IN], &mut [f32; CLASSES]) -> (usize, u32),
) -> Checked {
    let mut checked = Checked::default();
    for (index, vector) in vectors.iter().enumerate() {
        let (class, cost) = infer(&vector.input_f32(), logits);
        checked.cost += u64::from(cost);
        let ok = checked.tally.record(class, vector.class, &logits[..], vector.logits_digest);
        log_vector(index, class, vector.class, ok, logits);
    }
    #[cfg(feature = "defmt")]
    defmt::info!("{=usize}/{=usize} match host", checked.tally.matched, checked.tally.checked);
    checked
}

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
    fn check_vectors_counts_matches_and_sums_the_cost() {
        let logits_of = |x: &[f32; 2]| [x[0] + x[1], x[0] - x[1]];
        let vector = |input: [u8; 2], class| {
            let l = logits_of(&input.map(f32::from));
            TestVector { input, class, logits_digest: logits_digest(&l) }
        };
        // the third vector's recorded class is wrong: the device must report it
        let vectors = [vector([1, 2], 0), vector([5, 1], 0), TestVector { class: 1, ..vector([3, 0], 0) }];
        let mut logits = [0.0; 2];
        let checked = check_vectors(&vectors, &mut logits, |x, out| {
            *out = logits_of(x);
            (if out[0] >= out[1] { 0 } else { 1 }, 7)
        });
        assert_eq!(checked, Checked { tally: Tally { checked: 3, matched: 2 }, cost: 21 });
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
