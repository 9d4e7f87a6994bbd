//! Activations of f32 values, each one specified function computed with IEEE f32 operations only;
//! an int8 layer's activation is fused into its requantization (linear, ReLU) or is a table after
//! it ([`int8`]).
//!
//! Bit-exactness: no platform `expf`/`tanhf` (they differ between libm builds and targets) and no
//! fused multiply-add: [`exp_nonpositive`] is written out below (Cody–Waite reduction by ln 2, a
//! degree-7 polynomial, a power of two from its bits), and sigmoid, tanh and softmax are built on
//! it, so every target that rounds each `+ - * /` as IEEE-754 says (the host, the Cortex-M4F's FPU)
//! gives the same bits. A NaN in gives the canonical NaN (`0x7fc00000`) out, whatever its payload;
//! ReLU maps it to +0.
//!
//! Error against the exact function (computed in f64), measured over two million inputs spread
//! evenly over the f32 bit patterns of each range by
//! `tests::each_formula_is_within_its_stated_error_of_the_exact_function`:
//!
//! | function | error |
//! |---|---|
//! | [`exp_nonpositive`] | 1.08 ulp; 0 below -87 (the exact value is below 1.7e-38 there) |
//! | [`sigmoid`] | 2.21 ulp; 0 below -87 |
//! | [`tanh`] | 2.51 ulp; `x` itself below 2^-12 in magnitude (the exact tanh rounds to it) |
//! | [`hard_sigmoid`] | 1 ulp (two roundings: the add, the divide) |
//! | [`softmax`] | each exponential as above, then the sum's roundings (≤ n/2 ulp for n outputs) |
//!
//! The test holds them to 1.5, 2.5, 3 and 1 ulp.

pub mod int8;

pub use crate::layer::Activation;
use crate::ops::output::CANONICAL_NAN;

impl Activation {
    /// The activation of one value. Softmax spans its layer: here it is the identity, and
    /// [`Activation::apply_layer`] (which [`crate::ops::dense::dense`] calls) normalizes the layer.
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Linear | Activation::Softmax => v,
            Activation::Relu => relu(v),
            curve => curve.apply_curve(v),
        }
    }

    /// Sigmoid, tanh and hard-sigmoid, out of line: the kernels inline `apply` into every block
    /// size, and a firmware whose layers are all ReLU then carries one copy of the curves, not
    /// one per block.
    #[inline(never)]
    fn apply_curve(self, v: f32) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(v),
            Activation::Tanh => tanh(v),
            Activation::HardSigmoid => hard_sigmoid(v),
            Activation::Linear | Activation::Relu | Activation::Softmax => self.apply(v),
        }
    }

    /// The activation of a whole layer's outputs (out of line, as [`Activation::apply_curve`]).
    #[inline(never)]
    pub fn apply_layer(self, values: &mut [f32]) {
        match self {
            Activation::Linear => {}
            Activation::Softmax => softmax(values),
            _ => values.iter_mut().for_each(|v| *v = self.apply(*v)),
        }
    }
}

/// `max(v, 0)`; `-0.0` and NaN become `0.0`.
#[inline(always)]
pub(crate) fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// `log2(e)`, rounded to f32.
const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// `ln 2` split in two (musl's constants): the high part has 15 significant bits, so `k * LN2_HI`
/// is exact for every `|k| <= 256`, and `x - k * LN2_HI` loses nothing.
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
/// Below this, `e^x` is under 1.7e-38 and the result is 0 (above it, the result is a normal f32).
const EXP_FLOOR: f32 = -87.0;

/// `e^x` for `x <= 0` (what sigmoid, tanh and softmax need): 0 below -87 and for NaN; a positive
/// `x` is taken as 0.
///
/// `x = k ln 2 + r` with `k = round(x log2 e)` and `|r| <= 0.35`; `e^r` by its Taylor polynomial
/// of degree 7 (truncation error below 6e-9 relative) in Horner's order; times `2^k` (exact: the
/// result stays normal for `x >= -87`).
#[inline]
pub fn exp_nonpositive(x: f32) -> f32 {
    if x.is_nan() || x < EXP_FLOOR {
        return 0.0;
    }
    let x = if x > 0.0 { 0.0 } else { x };
    // x <= 0: subtracting one half and truncating towards zero rounds to nearest
    let k = (x * LOG2_E - 0.5) as i32;
    let kf = k as f32;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // k in -126..=0: 2^k is a normal f32 made from its exponent bits
    p * f32::from_bits(((k + 127) as u32) << 23)
}

/// `1 / (1 + e^-v)`: `1 / (1 + e)` for `v >= 0`, `e / (1 + e)` below, with `e = e^-|v|`, so no
/// large exponential is ever formed. ±0 give 0.5, ±inf give 1 and 0.
#[inline]
pub fn sigmoid(v: f32) -> f32 {
    if v.is_nan() {
        return CANONICAL_NAN;
    }
    let e = exp_nonpositive(-v.abs());
    if v < 0.0 {
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + e)
    }
}

/// Below this magnitude tanh is its odd Taylor polynomial to `x^9` (truncation below 3e-9
/// relative); above it, `(1 - e) / (1 + e)` with `e = e^-2|x|`.
const TANH_SERIES: f32 = 0.25;

/// Below this magnitude `tanh(x)` rounds to `x` (`x^3 / 3` is under half an ulp of `x`).
const TANH_TINY: f32 = 1.0 / 4096.0;

/// `tanh(v)`, odd: ±0 and subnormals give themselves, ±inf give ±1.
#[inline]
pub fn tanh(v: f32) -> f32 {
    if v.is_nan() {
        return CANONICAL_NAN;
    }
    let a = v.abs();
    if a < TANH_TINY {
        return v;
    }
    if a < TANH_SERIES {
        let s = v * v;
        return v + v * (s * (-1.0 / 3.0 + s * (2.0 / 15.0 + s * (-17.0 / 315.0 + s * (62.0 / 2835.0)))));
    }
    let e = exp_nonpositive(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    if v < 0.0 {
        -t
    } else {
        t
    }
}

/// `min(max(v + 3, 0), 6) / 6`, as PyTorch's `Hardsigmoid` and Keras 3's `hard_sigmoid` compute
/// it. ±0 give 0.5.
#[inline]
pub fn hard_sigmoid(v: f32) -> f32 {
    if v.is_nan() {
        return CANONICAL_NAN;
    }
    let t = v + 3.0;
    let t = if t > 0.0 { t } else { 0.0 };
    let t = if t < 6.0 { t } else { 6.0 };
    t / 6.0
}

/// `e^(v_i - max) / sum_j e^(v_j - max)` in place, the sum taken in index order. A NaN anywhere
/// makes every output the canonical NaN; `+inf` entries share the mass (`inf - inf` is taken as
/// 0), and a layer of `-inf` only is uniform.
pub fn softmax(values: &mut [f32]) {
    if values.iter().any(|v| v.is_nan()) {
        values.iter_mut().for_each(|v| *v = CANONICAL_NAN);
        return;
    }
    let max = values.iter().fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m });
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        let d = *v - max;
        *v = exp_nonpositive(if d.is_nan() { 0.0 } else { d });
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests;
