//! The f32/int8 boundary: standardized f32 inputs to int8, int8 outputs back to f32.
//!
//! Bit-exactness: the rounding is written out in IEEE f32 operations (no platform rounding mode,
//! no `round()`), so every target gives the same int8 input; dequantization is one f32 multiply.

/// Standardized f32 values to int8: `clamp(round_half_away(z / scale) + zero)`.
///
/// Written without branches: `|t| + 0.5` is the same f32 operation for either sign, and any
/// magnitude from 256 on saturates the same way whatever the zero point. Two forms of it, tested
/// equal: one that compilers vectorize on the host, one in few instructions where a float to
/// integer conversion saturates and turns NaN into 0 by itself, as on a Cortex-M4F.
pub fn quantize_input(z: &[f32], scale: f32, zero: i8, output: &mut [i8]) {
    #[cfg(target_arch = "arm")]
    quantize_input_saturating(z, scale, zero, output);
    #[cfg(not(target_arch = "arm"))]
    quantize_input_vectorizable(z, scale, zero, output);
}

/// [`quantize_input`] with the magnitude bounded in f32 and converted unchecked.
#[cfg_attr(target_arch = "arm", allow(dead_code))]
fn quantize_input_vectorizable(z: &[f32], scale: f32, zero: i8, output: &mut [i8]) {
    for (o, v) in output.iter_mut().zip(z) {
        let t = *v / scale;
        let away = t.abs() + 0.5;
        let bounded = if away < 256.0 {
            away
        } else if away >= 256.0 {
            256.0
        } else {
            0.0 // NaN
        };
        // SAFETY: `bounded` is in 0..=256, where the conversion is defined (it truncates as `as`
        // does); unlike `as`, it needs no saturation and vectorizes
        let magnitude: i32 = unsafe { bounded.to_int_unchecked() };
        let rounded = if t < 0.0 { magnitude.wrapping_neg() } else { magnitude };
        // |rounded| <= 256: wrapping says it cannot overflow (and lets overflow-checked builds vectorize)
        *o = rounded.wrapping_add(zero as i32).clamp(-128, 127) as i8;
    }
}

/// [`quantize_input`] with Rust's saturating `as` (one `VCVT` on a Cortex-M4F) and the sign
/// applied from the float's sign bit.
#[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
fn quantize_input_saturating(z: &[f32], scale: f32, zero: i8, output: &mut [i8]) {
    for (o, v) in output.iter_mut().zip(z) {
        let t = *v / scale;
        let magnitude = ((t.abs() + 0.5) as i32).min(256);
        // all ones for a negative t (-0.0 and NaN included: their magnitude is 0), else zero
        let sign = (t.to_bits() as i32) >> 31;
        let rounded = (magnitude ^ sign) - sign;
        *o = (rounded + zero as i32).clamp(-128, 127) as i8;
    }
}

/// int8 logits back to reals: `(q - zero) * scale`.
pub fn dequantize(q: &[i8], scale: f32, zero: i8, output: &mut [f32]) {
    for (o, v) in output.iter_mut().zip(q) {
        *o = (*v as i32 - zero as i32) as f32 * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::output::argmax_i8;

    use crate::test_rng::Rng;

    #[test]
    fn input_quantization_rounds_half_away_and_saturates() {
        let mut q = [0i8; 8];
        quantize_input(&[0.25, -0.25, 0.75, 1e9, -1e9, f32::NAN, 0.0, 0.49], 0.5, -3, &mut q);
        assert_eq!(q, [-2, -4, -1, 127, -128, -3, -3, -2]);
        let mut r = [0.0f32; 2];
        dequantize(&[5, -128], 0.5, -3, &mut r);
        assert_eq!(r, [4.0, -62.5]);
        assert_eq!(argmax_i8(&[1, 5, 5, -3]), 1);
        assert_eq!(argmax_i8(&[]), 0);
    }

    #[test]
    fn input_quantization_equals_the_branching_definition_on_any_float() {
        let definition = |v: f32, scale: f32, zero: i8| {
            let t = v / scale;
            let rounded = if t >= 0.0 { (t + 0.5) as i32 } else { -((-t + 0.5) as i32) };
            rounded.saturating_add(zero as i32).clamp(-128, 127) as i8
        };
        let mut rng = Rng(5);
        let specials =
            [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 255.5, 256.5, -256.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        let mut values: Vec<f32> = specials.to_vec();
        values.extend((0..200_000).map(|_| f32::from_bits(rng.next() as u32)));
        values.extend((0..200_000).map(|_| (rng.next() % 100_000) as f32 / 64.0 - 800.0));
        for scale in [1.0f32, 0.5, 0.0371, 3.0] {
            for zero in [-128i8, -3, 0, 127] {
                for form in [quantize_input_vectorizable, quantize_input_saturating, quantize_input] {
                    let mut q = vec![0i8; values.len()];
                    form(&values, scale, zero, &mut q);
                    for (v, q) in values.iter().zip(&q) {
                        assert_eq!(*q, definition(*v, scale, zero), "{v} / {scale} + {zero}");
                    }
                }
            }
        }
    }
}
