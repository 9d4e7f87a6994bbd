//! The input standardization, `(x - mean) / scale` in f32: the first operator of every network.
//!
//! Bit-exactness: one subtraction and one division per feature, IEEE-rounded, on every target.

/// `(x - mean) / scale` per feature, written to `output`.
pub fn standardize(input: &[f32], mean: &[f32], scale: &[f32], output: &mut [f32]) {
    for (((o, x), m), s) in output.iter_mut().zip(input).zip(mean).zip(scale) {
        *o = (*x - *m) / *s;
    }
}
