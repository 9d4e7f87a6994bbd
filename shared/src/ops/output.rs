//! What a network's outputs pass through: one NaN for every target, and the class they pick.
//!
//! Bit-exactness: NaN canonicalization compares and writes bit patterns; argmax compares values
//! with `>` and keeps the first of ties, on every target.

/// The one NaN a network gives: a quiet NaN with sign 0 and no payload (`0x7fc0_0000`), the
/// Cortex-M4F's default NaN. A NaN's sign and payload differ between targets (x86's default NaN
/// is `0xffc0_0000`), so every network's outputs pass through [`canonical_nans`] before anyone sees
/// them; inside a network ReLU maps NaN to 0 and a NaN elsewhere flows on to the outputs. An input
/// beyond what f32 can carry through the model (`inf - inf`) then gives the same bits on every
/// target, in one pass over the outputs (not per layer: the hot loops stay as they are).
pub const CANONICAL_NAN: f32 = f32::from_bits(0x7fc0_0000);

/// Replaces every NaN in `values` with [`CANONICAL_NAN`]. Once per inference over a few values,
/// so it is kept a small loop: out of line, and its step hidden from the optimizer, which would
/// otherwise unroll it (for the firmware's ten logits, 200 bytes of flash); integer compares.
#[inline(never)]
pub fn canonical_nans(values: &mut [f32]) {
    let mut i = 0;
    while let Some(v) = values.get_mut(i) {
        // a NaN is an exponent of all ones and a non-zero mantissa, whatever its sign
        if v.to_bits() & 0x7fff_ffff > 0x7f80_0000 {
            *v = CANONICAL_NAN;
        }
        i = core::hint::black_box(i + 1);
    }
}

/// Index of the largest value (the first one on ties); 0 for an empty slice.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, v) in values.iter().enumerate() {
        if *v > best_value {
            best = i;
            best_value = *v;
        }
    }
    best
}

/// Index of the largest value (the first on ties); 0 for an empty slice.
pub fn argmax_i8(values: &[i8]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
