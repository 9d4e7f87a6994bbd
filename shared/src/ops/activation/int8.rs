//! int8 activations that are not a clamp: sigmoid, tanh and hard-sigmoid as a 256-entry table over
//! the requantized pre-activation, softmax as a table of exponentials and one integer division per
//! output — integer-only on every target, as TensorFlow Lite's int8 `LOGISTIC`, `TANH` and
//! `SOFTMAX` are (its kernels fill their tables at preparation time; dropship fills them when it
//! quantizes and stores them in the artifact, so host and device read the same bytes).
//!
//! A layer with such an activation requantizes its sums to the pre-activation's calibrated scale
//! and zero point (linear clamp), then maps them to the activation's fixed output quantization
//! ([`Activation::int8_output`]): sigmoid and hard-sigmoid `[0, 1]` and softmax at 1/256 from -128,
//! tanh `[-1, 1]` at 1/128 from 0. Linear and ReLU have no table ([`Lookup::Fused`]).
//!
//! Softmax, exactly: with `m` the largest input and `e[d] = round(2^15 · exp(-d · s_pre))` for
//! `d = m - x` in `0..=255`,
//!
//! ```text
//! y_i = min(floor((256 · e[m - x_i] + S / 2) / S), 255) - 128,    S = sum_j e[m - x_j]   (u32)
//! ```
//!
//! `S <= 4096 · 2^15` and `256 · e <= 2^23` cannot overflow a u32.

#[cfg(any(test, feature = "std"))]
use super::Activation;

/// The integer activation after an int8 layer's requantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Linear and ReLU: nothing more (ReLU is the requantization's clamp).
    Fused,
    /// `y = table[x + 128]`: sigmoid, tanh, hard-sigmoid.
    Table(&'a [i8; 256]),
    /// Softmax over the layer, from `e[d]`, the exponential of `-d` input steps at 2^15.
    Softmax(&'a [u16; 256]),
}

impl Lookup<'_> {
    /// Applies the activation to a layer's requantized outputs in place.
    #[inline]
    pub fn apply(&self, values: &mut [i8]) {
        match self {
            Lookup::Fused => {}
            Lookup::Table(table) => values.iter_mut().for_each(|v| *v = table[(*v as i32 + 128) as usize]),
            Lookup::Softmax(exp) => softmax(exp, values),
        }
    }
}

fn softmax(exp: &[u16; 256], values: &mut [i8]) {
    let max = values.iter().copied().max().unwrap_or(0) as i32;
    let e = |v: i8| exp[(max - v as i32) as usize] as u32;
    let sum = values.iter().fold(0u32, |s, v| s.wrapping_add(e(*v))).max(1);
    for v in values.iter_mut() {
        let y = (256 * e(*v) + sum / 2) / sum;
        *v = (y.min(255) as i32 - 128) as i8;
    }
}

/// The table of an elementwise activation for a pre-activation of `(scale, zero point)`:
/// `table[q + 128] = clamp(round(f(scale · (q - zero)) / s_out) + z_out)`, `f` exact in f64, half
/// away from zero, as TensorFlow Lite's `LUTPopulate` fills its tables. `None` for linear, ReLU and
/// softmax.
#[cfg(any(test, feature = "std"))]
pub fn table(activation: Activation, (scale, zero): (f32, i8)) -> Option<[i8; 256]> {
    let f: fn(f64) -> f64 = match activation {
        Activation::Sigmoid => |x| 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => f64::tanh,
        Activation::HardSigmoid => |x| ((x + 3.0) / 6.0).clamp(0.0, 1.0),
        Activation::Linear | Activation::Relu | Activation::Softmax => return None,
    };
    let (out_scale, out_zero) = activation.int8_output()?;
    let mut table = [0i8; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let x = scale as f64 * (i as f64 - 128.0 - zero as f64);
        *t = ((f(x) / out_scale as f64).round() + out_zero as f64).clamp(-128.0, 127.0) as i8;
    }
    Some(table)
}

/// Softmax's table for a pre-activation of `scale`: `e[d] = round(2^15 · exp(-d · scale))`.
#[cfg(any(test, feature = "std"))]
pub fn softmax_table(scale: f32) -> [u16; 256] {
    let mut exp = [0u16; 256];
    for (d, e) in exp.iter_mut().enumerate() {
        *e = ((-(d as f64) * scale as f64).exp() * 32768.0).round() as u16;
    }
    exp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_the_exact_function_at_the_fixed_output_quantization() {
        let pre = (0.05f32, -3i8);
        let t = table(Activation::Sigmoid, pre).unwrap();
        // q = zero: x = 0, sigmoid 0.5 = 128/256 -> 0
        assert_eq!(t[(-3i32 + 128) as usize], 0);
        // saturates at both ends and never decreases
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((t[0], t[255]), (-128 + (1.0 / (1.0 + (6.25f64 + 0.15).exp()) * 256.0).round() as i8, 127));
        let th = table(Activation::Tanh, (0.1, 0)).unwrap();
        assert_eq!((th[128], th[0], th[255]), (0, -128, 127), "tanh(-12.8) = -1 is -128/128; +1 clamps to 127");
        let hs = table(Activation::HardSigmoid, (0.1, 0)).unwrap();
        assert_eq!((hs[128 - 30], hs[128], hs[128 + 30]), (-128, 0, 127));
        assert_eq!(table(Activation::Relu, pre), None);
    }

    #[test]
    fn lookups_apply_their_tables_and_softmax_gives_shares_of_256() {
        let t = table(Activation::Sigmoid, (0.1, 0)).unwrap();
        let mut v = [-128i8, 0, 127];
        Lookup::Table(&t).apply(&mut v);
        assert_eq!(v, [t[0], t[128], t[255]]);
        let exp = softmax_table(0.1);
        assert_eq!(exp[0], 32768);
        // two equal maxima share the mass (128 of 256 each: 0); 228 steps below, e = 0: -128
        let mut s = [100i8, 100, -128];
        Lookup::Softmax(&exp).apply(&mut s);
        assert_eq!((exp[228], s), (0, [0, 0, -128]));
        // 10 steps below the maximum: e[10] = round(2^15 e^-1) = 12055, S = 44823
        let mut t = [20i8, 10];
        Lookup::Softmax(&exp).apply(&mut t);
        assert_eq!((exp[10], t), (12055, [(187 - 128) as i8, (69 - 128) as i8]));
        // one value alone takes everything (256 -> clamped to 255 -> 127)
        let mut one = [5i8];
        Lookup::Softmax(&exp).apply(&mut one);
        assert_eq!(one, [127]);
        // the widest layer cannot overflow: 4096 equal values, each 1/4096 of 256 rounds to 0
        let mut wide = [7i8; 4096];
        Lookup::Softmax(&exp).apply(&mut wide);
        assert!(wide.iter().all(|v| *v == -128));
        let mut fused = [1i8, -1];
        Lookup::Fused.apply(&mut fused);
        assert_eq!(fused, [1, -1]);
    }
}
