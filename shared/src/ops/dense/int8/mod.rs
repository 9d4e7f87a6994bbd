//! The Dense operator, int8: requantization with one rounding and the kernel — a portable
//! reference, the host's AVX2 and AVX-VNNI paths (`x86`), the Cortex-M4's DSP path
//! (`cortex_m4`) and its paired weight form ([`paired`]). Scratch: none beyond the network's two
//! int8 buffers (the M4's paired form rewrites each layer's input on the stack, at most
//! [`paired::MAX_INPUTS`] values).
//!
//! # The arithmetic, exactly
//!
//! A layer with `IN` inputs `x` (int8) and `OUT` outputs keeps its weights `w` **output-major**
//! (`w[o * IN + i]`, int8, symmetric: zero point 0, range -127..=127) and a folded bias
//! `b[o] = round(bias / (s_in * s_w[o])) - zp_in * sum_i w[o * IN + i]` (int32), so that
//!
//! ```text
//! acc[o] = b[o] + sum_i x[i] * w[o * IN + i]                         (int32, exact)
//! y[o]   = clamp(zp_out + requantize(acc[o], m[o]), lo, 127)         lo = zp_out after ReLU, else -128
//! requantize(a, (M, shift)) = (a * M + 2^(s - 1)) >> s,  s = 31 - shift   (int64, arithmetic shift)
//! ```
//!
//! `requantize` is TensorFlow Lite's single-rounding `MultiplyByQuantizedMultiplier`: the real
//! multiplier `s_in * s_w[o] / s_out` is `M * 2^(shift - 31)` with `M` in `[2^30, 2^31)` and
//! `shift` in `-31..=30`, and the product is rounded once, half up (towards +infinity). Every sum
//! is of integers that cannot overflow (the artifact's limits keep `|acc|` below 2^31), so the
//! order of the additions does not matter: every build — this portable one, the host's, the
//! Cortex-M4's `SMLAD` path — gives the same bits.
//!
//! The input is standardized in f32 as for f32 models (the standardization is kept explicit, not
//! folded into the first layer), then quantized: `x = clamp(round_half_away(z / s_in) + zp_in)`,
//! with the rounding written out in IEEE f32 operations, so host and device agree on it too.

use crate::ops::activation::int8::Lookup;
use crate::ops::activation::Activation;

/// A real multiplier in fixed point: `multiplier * 2^(shift - 31)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    /// In `[2^30, 2^31)`, or 0 for a multiplier of 0.
    pub multiplier: i32,
    /// In `-31..=30`.
    pub shift: i32,
}

impl Requant {
    /// The multiplier 0, with the smallest shift: the form every kernel takes fastest (a shift of
    /// -2 or less keeps a layer in the Cortex-M4's paired form).
    pub const ZERO: Self = Self { multiplier: 0, shift: -31 };

    /// The fixed-point form of `real` (finite, `>= 0`, below 2^30): the nearest multiplier with a
    /// 31-bit mantissa. `None` when `real` cannot be represented.
    pub fn from_real(real: f64) -> Option<Self> {
        if !real.is_finite() || real < 0.0 {
            return None;
        }
        if real == 0.0 {
            return Some(Self::ZERO);
        }
        // real = q * 2^exp with q in [0.5, 1)
        let mut exp = 0i32;
        let mut q = real;
        while q >= 1.0 {
            q /= 2.0;
            exp += 1;
        }
        while q < 0.5 {
            q *= 2.0;
            exp -= 1;
        }
        let mut multiplier = (q * (1u64 << 31) as f64 + 0.5) as i64; // q > 0: rounds half up
        if multiplier == 1 << 31 {
            multiplier /= 2;
            exp += 1;
        }
        if exp < -31 {
            // too small for the shift range: it rounds to 0 for every accumulator we can have
            return Some(Self::ZERO);
        }
        (exp <= 30).then_some(Self { multiplier: multiplier as i32, shift: exp })
    }

    /// The real value this stands for.
    pub fn to_real(self) -> f64 {
        // 2^(shift - 31), exponent in -62..=-1: a normal f64 built from its bits
        self.multiplier as f64 * f64::from_bits(((self.shift - 31 + 1023) as u64) << 52)
    }

    /// True for a multiplier the kernels accept (what the artifact parser checks).
    pub fn is_valid(self) -> bool {
        (self.multiplier == 0 || self.multiplier >= 1 << 30) && (-31..=30).contains(&self.shift)
    }
}

/// `(acc * M + 2^(s - 1)) >> s` with `s = 31 - shift`, saturated to i32: one rounding, half up.
///
/// Computed as `((acc * M >> (s - 1)) + 1) >> 1`, which is the same number (the floor of
/// `(q + 1) / 2` with `q` the floor of `p / 2^(s - 1)` is the floor of `(p + 2^(s - 1)) / 2^s`).
/// For `s >= 33` (multipliers below 1/4, every layer of a calibrated model) the first shift only
/// needs the high word of the 64-bit product: one `SMULL`, one `ASR`, an add and a shift.
#[inline(always)]
pub fn requantize(acc: i32, r: Requant) -> i32 {
    let s = (31 - r.shift).clamp(1, 62) as u32;
    let product = acc as i64 * r.multiplier as i64;
    if s >= 33 {
        let high = (product >> 32) as i32;
        // |high| < 2^30, so neither the add nor the shifts overflow
        return ((high >> (s - 33)) + 1) >> 1;
    }
    (((product >> (s - 1)) + 1) >> 1).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// What one int8 layer needs besides its input and output buffers.
#[derive(Clone, Copy, Debug)]
pub struct QuantLayer<'a> {
    /// The int8 weights, `output.len() * input.len()` of them, in the kernel's blocked order
    /// ([`block_weights`] makes it from the artifact's output-major order; [`weight_index`]
    /// says where each weight is).
    pub weights: &'a [i8],
    /// Folded int32 biases (see the module docs), one per output.
    pub bias: &'a [i32],
    /// Requantization multiplier per output channel ([`Requant::multiplier`]).
    pub multipliers: &'a [i32],
    /// Requantization shift per output channel ([`Requant::shift`]; one byte each in flash), or
    /// in the paired form the right shift `-2 - shift`.
    pub shifts: &'a [i8],
    /// Zero point of the output.
    pub output_zero: i8,
    /// Fused into the requantization: ReLU clamps outputs below `output_zero` to it; linear does
    /// nothing; the others requantize to the pre-activation (`output_zero` is then its zero point)
    /// and run `lookup` after.
    pub activation: Activation,
    /// The activation's table ([`Lookup::Fused`] for linear and ReLU).
    pub lookup: Lookup<'a>,
    /// How `weights` and `bias` are stored.
    pub form: WeightForm,
}

/// The widest layer input the Cortex-M4's blocked path splits into halfword pairs on the stack
/// (two bytes per input); wider ones, and ones not a multiple of 8 wide, split each group in the
/// inner loop.
pub const SPLIT_MAX: usize = 512;

/// Stack scratch of one int8 Dense layer in bytes, as CMSIS-NN's `*_get_buffer_size` states it:
/// the Cortex-M4 paths split the layer's input into halfword pairs in a fixed array (up to
/// [`SPLIT_MAX`] inputs for the blocked form, [`paired::MAX_INPUTS`] for the paired one); the
/// portable and x86 paths take none.
pub const fn scratch_bytes(form: WeightForm) -> usize {
    match form {
        WeightForm::Blocked => 2 * SPLIT_MAX,
        WeightForm::Paired => 2 * paired::MAX_INPUTS,
    }
}

/// How a layer's weights and biases are stored for its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightForm {
    /// The blocked order of [`weight_index`] and the folded biases: every kernel runs it.
    Blocked,
    /// The blocked order with each two neighbouring weights as one halfword, the biases adjusted
    /// to match and the shifts as right shifts ([`paired`]): the Cortex-M4's form for the layers
    /// [`paired::fits`] takes.
    Paired,
}

impl QuantLayer<'static> {
    /// The parameters of a layer that has none (pooling, Flatten): empty slices.
    pub const NONE: Self = Self {
        weights: &[],
        bias: &[],
        multipliers: &[],
        shifts: &[],
        output_zero: 0,
        activation: Activation::Linear,
        lookup: Lookup::Fused,
        form: WeightForm::Blocked,
    };
}

impl QuantLayer<'_> {
    /// Zero point of the layer's output, after its activation: what the next layer's inputs are
    /// centred on.
    pub fn final_zero(&self) -> i8 {
        self.activation.int8_output().map_or(self.output_zero, |(_, zero)| zero)
    }

    /// Whether the slices hold what a layer from `n_in` inputs to `n_out` outputs needs.
    pub fn fits(&self, n_in: usize, n_out: usize) -> bool {
        self.weights.len() == n_in * n_out
            && self.bias.len() == n_out
            && self.multipliers.len() == n_out
            && self.shifts.len() == n_out
    }
}

/// Word-aligned storage for a layer's weights in flash: the Cortex-M4 kernel loads a group's 16
/// weights with one `LDM`, which faults on an unaligned address (unaligned weights take a slower
/// path with the same bits).
#[repr(C, align(4))]
pub struct Aligned<T>(pub T);

/// Where weight `(o, i)` of a layer with `n_in` inputs and `n_out` outputs sits in the blocked
/// order: outputs go in blocks of four; inside a block, each group of four inputs holds the four
/// outputs' four weights in turn (16 bytes), then the block's last `n_in % 4` inputs row by row.
/// Outputs after the last whole block keep the plain output-major order.
pub fn weight_index(n_in: usize, n_out: usize, o: usize, i: usize) -> usize {
    let whole_blocks = n_out / 4 * 4;
    if o >= whole_blocks {
        return whole_blocks * n_in + (o - whole_blocks) * n_in + i;
    }
    let (block, k) = (o / 4, o % 4);
    let grouped = n_in / 4 * 4;
    let base = block * 4 * n_in;
    if i < grouped {
        base + (i / 4) * 16 + k * 4 + i % 4
    } else {
        base + grouped * 4 + k * (n_in - grouped) + (i - grouped)
    }
}

/// Rewrites output-major weights (`plain[o * n_in + i]`, the artifact's order) into the blocked
/// order of [`weight_index`]. `blocked` must have the same length as `plain`.
pub fn block_weights(plain: &[i8], n_in: usize, n_out: usize, blocked: &mut [i8]) {
    for o in 0..n_out {
        for i in 0..n_in {
            if let (Some(w), Some(slot)) = (plain.get(o * n_in + i), blocked.get_mut(weight_index(n_in, n_out, o, i))) {
                *slot = *w;
            }
        }
    }
}

/// The portable reference: `output[o]` per the module docs, one output after the other (the
/// requantized sums, before any activation table).
pub fn dense_i8_reference(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    let (n, n_out) = (input.len(), output.len());
    for (o, out) in output.iter_mut().enumerate() {
        let mut acc = layer.bias[o];
        for (i, x) in input.iter().enumerate() {
            acc += *x as i32 * layer.weights[weight_index(n, n_out, o, i)] as i32;
        }
        *out = finish(acc, layer, o);
    }
}

#[inline(always)]
fn finish(acc: i32, layer: &QuantLayer<'_>, o: usize) -> i8 {
    finish_with(acc, layer.multipliers[o], layer.shifts[o], layer)
}

/// `clamp(zero + requantize(acc), low, 127)` for one output channel (a valid shift, `-31..=30`),
/// in exact arithmetic: the result saturates at -128 / 127 (or `low`) whatever the multiplier, as
/// TensorFlow Lite's int8 kernels clamp.
///
/// [`requantize`]'s `s >= 33` path (`shift <= -2`, every calibrated layer's) is written out here
/// without its range clamps: `s - 33 = -2 - shift` is then in `0..=29` and the result within
/// `±2^30`, which a Cortex-M4 does in seven instructions, and adding the zero point cannot
/// overflow. A larger multiplier (`shift >= -1`: a channel whose inputs barely varied during
/// calibration) can requantize to near `±2^31`: that result is first bounded to `±256`, which
/// changes nothing after the clamp and keeps the zero point's add exact.
#[inline(always)]
pub(crate) fn finish_with(acc: i32, multiplier: i32, shift: i8, layer: &QuantLayer<'_>) -> i8 {
    let low = if layer.activation == Activation::Relu { layer.output_zero as i32 } else { -128 };
    let r = if shift <= -2 {
        let high = ((acc as i64 * multiplier as i64) >> 32) as i32;
        (high.wrapping_shr((-2 - shift as i32) as u32) + 1) >> 1
    } else {
        requantize(acc, Requant { multiplier, shift: shift as i32 }).clamp(-256, 256)
    };
    (layer.output_zero as i32 + r).clamp(-128, 127).max(low) as i8
}

/// The int8 dense layer: on a Cortex-M4 the `SMLAD`/`SXTB16` path, elsewhere [`dense_i8_portable`]
/// (all give the same bits as [`dense_i8_reference`]: integer sums in any order), then the layer's
/// activation table ([`Lookup::apply`]; nothing for linear and ReLU).
pub fn dense_i8(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    match layer.form {
        WeightForm::Blocked => cortex_m4::dense(input, layer, output),
        WeightForm::Paired => cortex_m4::dense_paired(input, layer, output),
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    dense_i8_portable(input, layer, output);
    layer.lookup.apply(output);
}

/// Two inputs through one layer (two output positions of a pointwise convolution): on a
/// Cortex-M4 a layer in the paired form reads its weights once for both (`two_inputs`);
/// elsewhere, and for other forms, [`dense_i8`] on each. The same bits as two [`dense_i8`] calls.
pub fn dense_i8_two(a: &[i8], b: &[i8], layer: &QuantLayer<'_>, out_a: &mut [i8], out_b: &mut [i8]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if layer.form == WeightForm::Paired {
        two_inputs::dense_paired_two(a, b, layer, out_a, out_b);
        layer.lookup.apply(out_a);
        layer.lookup.apply(out_b);
        return;
    }
    dense_i8(a, layer, out_a);
    dense_i8(b, layer, out_b);
}

/// The blocked order walked in plain Rust, four outputs at a time: on a microcontroller without
/// DSP or SIMD (Cortex-M0, RISC-V) with four accumulators ([`dense_i8_scalar`]); elsewhere each group
/// of four inputs against the block's 16 weights in 16 lanes, which compilers vectorize
/// ([`dense_i8_lanes`]); with the `std` feature on x86-64, the AVX-VNNI or AVX2 path when the CPU has
/// it (the host's).
pub fn dense_i8_portable(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    if layer.form == WeightForm::Paired {
        return paired::dense_portable(input, layer, output);
    }
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if dense_i8_x86(input, layer, output) {
        return;
    }
    #[cfg(target_os = "none")]
    dense_i8_scalar(input, layer, output);
    #[cfg(not(target_os = "none"))]
    dense_i8_lanes(input, layer, output);
}

/// The best x86-64 path this CPU has (AVX-VNNI, else AVX2); `false`, with nothing written, when it
/// has neither or the layer's slices do not fit its shape.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
fn dense_i8_x86(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) -> bool {
    let (avx2, vnni) = (std::is_x86_feature_detected!("avx2"), std::is_x86_feature_detected!("avxvnni"));
    if !avx2 || !layer.fits(input.len(), output.len()) {
        return false;
    }
    // SAFETY: the CPU has AVX2 (and AVX-VNNI for that path), and the layer fits: checked above.
    unsafe {
        if vnni {
            x86::dense_vnni(input, layer, output)
        } else {
            x86::dense_avx2(input, layer, output)
        }
    }
    true
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

#[inline(always)]
#[cfg_attr(target_os = "none", allow(dead_code))] // a microcontroller runs the scalar kernel
fn dense_i8_lanes(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    walk_blocks(input, layer, output, |grouped, bias| {
        // The sums cannot overflow (the artifact's limits bound them); wrapping arithmetic says so
        // to the compiler, which then vectorizes even where overflow checks are on.
        let mut lanes = [0i32; 16];
        for (x, w) in input.chunks_exact(4).zip(grouped.chunks_exact(16)) {
            for (j, lane) in lanes.iter_mut().enumerate() {
                *lane = lane.wrapping_add((x[j & 3] as i32).wrapping_mul(w[j] as i32));
            }
        }
        core::array::from_fn(|k| lanes[4 * k..4 * k + 4].iter().fold(bias[k], |a, l| a.wrapping_add(*l)))
    });
}

/// The blocked order walked with one accumulator per output of a block: what a core without SIMD
/// registers runs (on a 32-bit core the 16 lanes of [`dense_i8_lanes`] spill to the stack).
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // the host runs it in its tests only
fn dense_i8_scalar(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    walk_blocks(input, layer, output, |grouped, bias| {
        let [mut a0, mut a1, mut a2, mut a3] = bias;
        for (x, w) in input.chunks_exact(4).zip(grouped.chunks_exact(16)) {
            let Ok::<&[i8; 16], _>(w) = w.try_into() else { continue };
            let (x0, x1, x2, x3) = (x[0] as i32, x[1] as i32, x[2] as i32, x[3] as i32);
            let row = |k: usize| {
                (x0 * w[4 * k] as i32)
                    .wrapping_add(x1 * w[4 * k + 1] as i32)
                    .wrapping_add(x2 * w[4 * k + 2] as i32)
                    .wrapping_add(x3 * w[4 * k + 3] as i32)
            };
            a0 = a0.wrapping_add(row(0));
            a1 = a1.wrapping_add(row(1));
            a2 = a2.wrapping_add(row(2));
            a3 = a3.wrapping_add(row(3));
        }
        [a0, a1, a2, a3]
    });
}

/// Walks the blocked order (see [`weight_index`]): for each block of four outputs, `block_sums`
/// gives the four sums of the grouped inputs (the whole groups of four) from the block's grouped
/// weights and the four biases; the inputs of the last partial group and the outputs beyond the
/// last whole block are added here, then each output is requantized.
#[inline(always)]
fn walk_blocks(
    input: &[i8],
    layer: &QuantLayer<'_>,
    output: &mut [i8],
    mut block_sums: impl FnMut(&[i8], [i32; 4]) -> [i32; 4],
) {
    let n = input.len();
    let whole_blocks = output.len() / 4 * 4;
    let (blocks, rest) = layer.weights.split_at(whole_blocks * n);
    let x_tail = input.chunks_exact(4).remainder();
    for (b, block) in blocks.chunks_exact((4 * n).max(1)).enumerate() {
        let (grouped, tails) = block.split_at(4 * (n - x_tail.len()));
        let bias = [layer.bias[4 * b], layer.bias[4 * b + 1], layer.bias[4 * b + 2], layer.bias[4 * b + 3]];
        let sums = block_sums(grouped, bias);
        for (k, sum) in sums.into_iter().enumerate() {
            let row_tail = tails.get(k * x_tail.len()..(k + 1) * x_tail.len()).unwrap_or(&[]);
            output[4 * b + k] = finish(dot(x_tail, row_tail, sum), layer, 4 * b + k);
        }
    }
    for (k, row) in rest.chunks_exact(n.max(1)).enumerate() {
        let o = whole_blocks + k;
        output[o] = finish(dot(input, row, layer.bias[o]), layer, o);
    }
}

/// `acc + x . w`, wrapping (see [`dense_i8_lanes`]).
#[inline(always)]
fn dot(x: &[i8], w: &[i8], acc: i32) -> i32 {
    x.iter().zip(w).fold(acc, |a, (x, w)| a.wrapping_add((*x as i32).wrapping_mul(*w as i32)))
}

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
mod cortex_m4;
pub mod paired;
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
mod two_inputs;

#[cfg(test)]
mod tests {
    use super::*;

    fn fused(relu: bool) -> Activation {
        if relu {
            Activation::Relu
        } else {
            Activation::Linear
        }
    }

    /// The defining formula in i128, with floor division for the shift.
    fn reference(acc: i32, r: Requant) -> i32 {
        let s = 31 - r.shift;
        let num = acc as i128 * r.multiplier as i128 + (1i128 << (s - 1));
        num.div_euclid(1i128 << s).clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    use crate::test_rng::Rng;

    #[test]
    fn requantize_equals_the_exact_formula_on_random_and_edge_inputs() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let accs = [0, 1, -1, 2, -2, i32::MAX, i32::MIN, i32::MIN + 1, 1 << 30, -(1 << 30), 12345, -12345];
        let multipliers = [0, 1 << 30, (1 << 30) + 1, i32::MAX, i32::MAX - 1, 1_518_500_250];
        for shift in -31..=30 {
            for &m in &multipliers {
                for &a in &accs {
                    let r = Requant { multiplier: m, shift };
                    assert_eq!(requantize(a, r), reference(a, r), "acc {a} M {m} shift {shift}");
                }
            }
        }
        for _ in 0..200_000 {
            let a = rng.next() as i32 >> (rng.next() % 32);
            let r = Requant {
                multiplier: (1 << 30) + (rng.next() % (1 << 30)) as i32,
                shift: (rng.next() % 62) as i32 - 31,
            };
            assert_eq!(requantize(a, r), reference(a, r), "acc {a} {r:?}");
        }
    }

    /// A layer in the blocked form of these parameters.
    fn blocked_layer<'a>(
        weights: &'a [i8],
        bias: &'a [i32],
        multipliers: &'a [i32],
        shifts: &'a [i8],
        output_zero: i8,
        relu: bool,
    ) -> QuantLayer<'a> {
        QuantLayer {
            weights,
            bias,
            multipliers,
            shifts,
            output_zero,
            activation: fused(relu),
            lookup: Lookup::Fused,
            form: WeightForm::Blocked,
        }
    }

    /// The definition of one output in exact arithmetic: `clamp(zero + requantize(acc), low, 127)`.
    fn exact_output(acc: i32, r: Requant, zero: i8, relu: bool) -> i8 {
        let y = zero as i128 + reference(acc, r) as i128;
        y.clamp(if relu { zero as i128 } else { -128 }, 127) as i8
    }

    /// Multipliers up to the largest the quantizer can produce (`from_real` up to 2^30: shift 30)
    /// with zero points of both signs: the output saturates, it never wraps (it used to overflow
    /// where the zero point was added: a panic on the host, -128 for 127 on the device).
    #[test]
    fn large_multipliers_saturate_with_zero_points_of_both_signs() {
        let accs = [i32::MAX, i32::MIN, 1 << 30, -(1 << 30), 65_536, -65_536, 300, -300, 1, -1, 0];
        let multipliers = [1 << 30, i32::MAX];
        for shift in -31..=30 {
            for multiplier in multipliers {
                let r = Requant { multiplier, shift };
                for zero in [-128i8, -100, -1, 0, 1, 100, 127] {
                    for relu in [false, true] {
                        let layer = blocked_layer(&[], &[], &[], &[], zero, relu);
                        for acc in accs {
                            let got = finish_with(acc, multiplier, shift as i8, &layer);
                            assert_eq!(
                                got,
                                exact_output(acc, r, zero, relu),
                                "acc {acc} {r:?} zero {zero} relu {relu}"
                            );
                        }
                    }
                }
            }
        }
        // and through every kernel path, on a layer whose channels all have large multipliers
        let mut rng = Rng(7);
        for (n_in, n_out) in [(8, 16), (64, 32), (13, 7), (344, 20)] {
            let plain: Vec<i8> = (0..n_in * n_out).map(|_| ((rng.next() % 255) as i8).max(-127)).collect();
            let mut blocked = vec![0i8; plain.len()];
            block_weights(&plain, n_in, n_out, &mut blocked);
            let bias: Vec<i32> = (0..n_out).map(|_| (rng.next() % 200_000) as i32 - 100_000).collect();
            let requant: Vec<Requant> =
                (0..n_out).map(|o| Requant::from_real(0.5 * 4f64.powi((o % 16) as i32)).unwrap()).collect();
            let multipliers: Vec<i32> = requant.iter().map(|r| r.multiplier).collect();
            let shifts: Vec<i8> = requant.iter().map(|r| r.shift as i8).collect();
            let input: Vec<i8> = (0..n_in).map(|_| rng.next() as i8).collect();
            for (zero, relu) in [(-128i8, false), (-5, true), (0, false), (90, true), (127, false)] {
                let layer = blocked_layer(&blocked, &bias, &multipliers, &shifts, zero, relu);
                let want: Vec<i8> = (0..n_out)
                    .map(|o| {
                        let acc = (0..n_in).fold(bias[o], |a, i| a + input[i] as i32 * plain[o * n_in + i] as i32);
                        exact_output(acc, requant[o], zero, relu)
                    })
                    .collect();
                let (mut reference, mut portable, mut lanes) = (vec![0; n_out], vec![0; n_out], vec![0; n_out]);
                let mut scalar = vec![0; n_out];
                dense_i8_reference(&input, &layer, &mut reference);
                dense_i8_portable(&input, &layer, &mut portable);
                dense_i8_lanes(&input, &layer, &mut lanes);
                dense_i8_scalar(&input, &layer, &mut scalar);
                assert_eq!((&reference, &portable, &lanes), (&want, &want, &want), "{n_in}x{n_out} zero {zero}");
                assert_eq!(scalar, want, "{n_in}x{n_out} zero {zero}: the scalar kernel");
                #[cfg(all(feature = "std", target_arch = "x86_64"))]
                for (name, path) in x86_paths() {
                    let mut y = vec![0i8; n_out];
                    // SAFETY: `x86_paths` lists only what the CPU has; the layer fits its shape
                    unsafe { path(&input, &layer, &mut y) };
                    assert_eq!(y, want, "{name} {n_in}x{n_out}");
                }
            }
        }
    }

    #[test]
    fn ties_round_half_up_once() {
        // M * 2^(shift - 31) = 0.5: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1 (half up), 5 * 0.5 -> 3
        let half = Requant { multiplier: 1 << 30, shift: 0 };
        assert_eq!([3, -3, 5, -5, 1, -1].map(|a| requantize(a, half)), [2, -1, 3, -2, 1, 0]);
        // 0.75 is exact in fixed point: 2 * 0.75 = 1.5 -> 2, -2 * 0.75 = -1.5 -> -1, 7 * 0.75 = 5.25 -> 5
        let r = Requant::from_real(0.75).unwrap();
        assert_eq!(r, Requant { multiplier: 1_610_612_736, shift: 0 });
        assert_eq!([2, -2, 7, -7].map(|a| requantize(a, r)), [2, -1, 5, -5]);
    }

    #[test]
    fn from_real_covers_the_shift_range_and_refuses_what_it_cannot_represent() {
        for real in [1e-9, 1e-6, 0.001, 0.25, 0.5, 0.999_999_999_9, 1.0, 3.7, 1e6] {
            let r = Requant::from_real(real).unwrap();
            assert!(r.is_valid(), "{real}: {r:?}");
            assert!((r.to_real() - real).abs() <= real * 1e-9, "{real}: {}", r.to_real());
        }
        assert_eq!(Requant::from_real(0.0), Some(Requant { multiplier: 0, shift: -31 }));
        assert_eq!(Requant::from_real(1e-30), Some(Requant { multiplier: 0, shift: -31 }));
        assert_eq!(Requant::from_real(2f64.powi(-33)), Some(Requant::ZERO));
        assert_eq!(Requant::from_real(2f64.powi(31)), None);
        assert_eq!(Requant::from_real(-1.0), None);
        assert_eq!(Requant::from_real(f64::NAN), None);
    }

    /// The x86-64 kernels this CPU can run (the dispatcher picks only one of them).
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    #[allow(clippy::type_complexity)]
    fn x86_paths() -> Vec<(&'static str, unsafe fn(&[i8], &QuantLayer<'_>, &mut [i8]))> {
        let mut paths: Vec<(&'static str, unsafe fn(&[i8], &QuantLayer<'_>, &mut [i8]))> = Vec::new();
        let (avx2, vnni) = (std::is_x86_feature_detected!("avx2"), std::is_x86_feature_detected!("avxvnni"));
        if avx2 {
            paths.push(("avx2", x86::dense_avx2));
        }
        if avx2 && vnni {
            paths.push(("avx-vnni", x86::dense_vnni));
        }
        for (name, has) in [("avx2", avx2), ("avx-vnni", avx2 && vnni)] {
            if !has {
                eprintln!("NOT TESTED on this machine: the {name} int8 path (the CPU lacks it)");
            }
        }
        paths
    }

    #[test]
    fn the_kernel_equals_a_naive_loop_for_every_shape_and_saturates() {
        let mut rng = Rng(99);
        for (n_in, n_out) in
            [(1, 1), (3, 5), (4, 4), (7, 9), (64, 128), (128, 10), (13, 17), (67, 23), (32, 64), (36, 32)]
        {
            let weights: Vec<i8> = (0..n_in * n_out).map(|_| (rng.next() % 255) as i8).map(|w| w.max(-127)).collect();
            let mut blocked = vec![0i8; weights.len()];
            block_weights(&weights, n_in, n_out, &mut blocked);
            let mut seen = vec![false; weights.len()];
            for o in 0..n_out {
                for i in 0..n_in {
                    seen[weight_index(n_in, n_out, o, i)] = true;
                }
            }
            assert!(seen.iter().all(|s| *s), "{n_in}x{n_out}: the blocked order is a permutation");
            let bias: Vec<i32> = (0..n_out).map(|_| (rng.next() % 20000) as i32 - 10000).collect();
            let input: Vec<i8> = (0..n_in).map(|_| rng.next() as i8).collect();
            for relu in [false, true] {
                // real multipliers from 1e-9 to 1 (both requantization paths: `s >= 33` and below), or
                // to 0.1 (only the first, which vectorized kernels take in whole groups)
                let requant: Vec<Requant> = (0..n_out)
                    .map(|_| {
                        let magnitude = 10f64.powi(-((rng.next() % 7) as i32 + relu as i32));
                        Requant::from_real((rng.next() % 1000) as f64 * 1e-3 * magnitude).unwrap()
                    })
                    .collect();
                let multipliers: Vec<i32> = requant.iter().map(|r| r.multiplier).collect();
                let shifts: Vec<i8> = requant.iter().map(|r| r.shift as i8).collect();
                let zero = (rng.next() % 256) as i32 as i8;
                let layer = blocked_layer(&blocked, &bias, &multipliers, &shifts, zero, relu);
                // each distinct path against the exact definition below: the plain-Rust lanes (what a
                // host without AVX runs), the scalar kernel (a core without DSP or SIMD), the
                // reference loop and each x86 path
                let (mut fast, mut oracle) = (vec![0i8; n_out], vec![0i8; n_out]);
                let mut scalar = vec![0i8; n_out];
                dense_i8_lanes(&input, &layer, &mut fast);
                dense_i8_scalar(&input, &layer, &mut scalar);
                dense_i8_reference(&input, &layer, &mut oracle);
                assert_eq!(oracle, fast, "{n_in}x{n_out}");
                assert_eq!(scalar, fast, "{n_in}x{n_out}: the scalar kernel (Cortex-M0, RISC-V)");
                #[cfg(all(feature = "std", target_arch = "x86_64"))]
                for (name, path) in x86_paths() {
                    let mut y = vec![0i8; n_out];
                    // SAFETY: `x86_paths` lists only what the CPU has; the layer fits its shape
                    unsafe { path(&input, &layer, &mut y) };
                    assert_eq!(y, fast, "{name} {n_in}x{n_out}");
                }
                for o in 0..n_out {
                    let mut acc = bias[o] as i64;
                    for i in 0..n_in {
                        acc += input[i] as i64 * weights[o * n_in + i] as i64;
                    }
                    let y = zero as i64 + reference(acc as i32, requant[o]) as i64;
                    let low = if relu { zero as i64 } else { -128 };
                    assert_eq!(fast[o] as i64, y.clamp(low, 127), "{n_in}x{n_out} output {o}");
                }
            }
        }
    }

    #[test]
    fn the_paired_form_gives_the_blocked_forms_bits_up_to_its_widest_input_and_extremes() {
        let mut rng = Rng(17);
        let widths = [(8, 4), (64, 128), (128, 10), (16, 7), (paired::ANY_WEIGHTS_INPUTS, 9), (640, 5)];
        for (n_in, n_out) in widths.into_iter().chain([(paired::MAX_INPUTS, 4)]) {
            // random weights and inputs, then the extremes of both (the form's worst case for
            // its halfword ranges and for the 2^23 bound on the accumulator), then trained-like
            // weights (within ±40) at the extreme inputs, which fit the widest layers
            type Draw = fn(&mut Rng) -> i8;
            let cases: [(Draw, Draw); 6] = [
                (|r| (r.next() % 255) as i8, |r| r.next() as i8),
                (|_| 127, |_| -128),
                (|_| -127, |_| -128),
                (|_| 127, |_| 127),
                (|r| if r.next() % 2 == 0 { 127 } else { -127 }, |r| if r.next() % 2 == 0 { 127 } else { -128 }),
                (|r| (r.next() % 81) as i8 - 40, |r| if r.next() % 2 == 0 { 127 } else { -128 }),
            ];
            for (case, (weight, input)) in cases.into_iter().enumerate() {
                let relu_case = case % 2 == 0;
                let plain: Vec<i8> = (0..n_in * n_out).map(|_| weight(&mut rng).max(-127)).collect();
                let x: Vec<i8> = (0..n_in).map(|_| input(&mut rng)).collect();
                let bias: Vec<i32> = (0..n_out).map(|_| (rng.next() % 20000) as i32 - 10000).collect();
                let requant: Vec<Requant> =
                    (0..n_out).map(|_| Requant::from_real((rng.next() % 1000 + 1) as f64 * 1e-7).unwrap()).collect();
                let multipliers: Vec<i32> = requant.iter().map(|r| r.multiplier).collect();
                let shifts: Vec<i8> = requant.iter().map(|r| r.shift as i8).collect();
                let mut blocked = vec![0i8; plain.len()];
                block_weights(&plain, n_in, n_out, &mut blocked);
                if !paired::fits(n_in, &shifts, &plain) {
                    // only wide layers of large weights fall back to the blocked form
                    assert!(n_in > paired::ANY_WEIGHTS_INPUTS && case < 5, "{n_in}x{n_out} case {case}");
                    continue;
                }
                let (mut pairs, mut pair_bias, mut pair_shifts) =
                    (vec![0i8; plain.len()], vec![0i32; n_out], vec![0i8; n_out]);
                paired::pair_weights(&blocked, &mut pairs);
                paired::pair_biases(&plain, &bias, n_in, &mut pair_bias);
                paired::pair_shifts(&shifts, &mut pair_shifts);
                let layer = |weights, bias, shifts, form| QuantLayer {
                    weights,
                    bias,
                    multipliers: &multipliers,
                    shifts,
                    output_zero: -7,
                    activation: fused(relu_case),
                    lookup: Lookup::Fused,
                    form,
                };
                // the paired form's emulation against the blocked form's reference loop
                let (mut want, mut got) = (vec![0i8; n_out], vec![0i8; n_out]);
                dense_i8_reference(&x, &layer(&blocked, &bias, &shifts, WeightForm::Blocked), &mut want);
                let paired_layer = layer(&pairs, &pair_bias, &pair_shifts, WeightForm::Paired);
                paired::dense_portable(&x, &paired_layer, &mut got);
                assert_eq!(got, want, "{n_in}x{n_out}");
                // and the sums themselves, before requantization clamps them
                for o in 0..n_out {
                    let exact: i64 =
                        bias[o] as i64 + (0..n_in).map(|i| x[i] as i64 * plain[o * n_in + i] as i64).sum::<i64>();
                    let row = |i: usize| pairs[weight_index(n_in, n_out, o, i)];
                    let acc = (0..n_in / 4).fold(0i32, |acc, g| {
                        let w = u32::from_le_bytes(
                            [row(4 * g), row(4 * g + 1), row(4 * g + 2), row(4 * g + 3)].map(|b| b as u8),
                        );
                        let [xs, ys] = paired::split_group([x[4 * g], x[4 * g + 1], x[4 * g + 2], x[4 * g + 3]]);
                        paired::smlad(xs, w, paired::smlad(ys, paired::sxtb16(w), acc))
                    });
                    assert_eq!(((acc >> 8) + pair_bias[o]) as i64, exact, "{n_in}x{n_out} output {o}");
                }
            }
        }
        let shifts = [-2i8, -31, -9];
        let w = |n: usize| vec![127i8; 3 * n];
        assert!(
            paired::fits(8, &shifts, &w(8)) && !paired::fits(8, &[-2, -1], &w(8)) && !paired::fits(8, &[-32], &w(8))
        );
        assert!(
            !paired::fits(paired::MAX_INPUTS + 8, &shifts, &w(paired::MAX_INPUTS + 8))
                && !paired::fits(12, &shifts, &w(12))
                && !paired::fits(0, &shifts, &[])
        );
        assert!(paired::fits(paired::ANY_WEIGHTS_INPUTS, &shifts, &w(paired::ANY_WEIGHTS_INPUTS)));
        assert!(!paired::fits(paired::ANY_WEIGHTS_INPUTS + 8, &shifts, &w(paired::ANY_WEIGHTS_INPUTS + 8)));
    }

    /// A 1024-input row whose bound is exactly 2^23 - 1, at the inputs that reach it: the paired
    /// sum is exact there (`S = -(2^23 - 1)`), and one more unit of bound leaves the form.
    #[test]
    fn the_paired_form_is_exact_at_its_bound() {
        let n = paired::MAX_INPUTS;
        // 512 even weights of 127 give 128 * 65024 = 8,323,072; odd weights of 127, 127 and 3
        // add 255 * 257 = 65,535: 8,388,607 = 2^23 - 1
        let mut row = vec![0i8; n];
        for i in (0..n).step_by(2) {
            row[i] = 127;
        }
        (row[1], row[3], row[5]) = (127, 127, 3);
        assert_eq!(paired::row_bound(&row), (1 << 23) - 1);
        let x: Vec<i8> = (0..n).map(|_| -128).collect();
        let exact: i64 = (0..n).map(|i| x[i] as i64 * row[i] as i64).sum();
        let mut blocked = vec![0i8; n];
        block_weights(&row, n, 1, &mut blocked);
        let mut pairs = vec![0i8; n];
        paired::pair_weights(&blocked, &mut pairs);
        let mut bias = [0i32];
        paired::pair_biases(&row, &[0], n, &mut bias);
        let acc = (0..n / 4).fold(0i32, |acc, g| {
            let w = u32::from_le_bytes(
                [pairs[4 * g], pairs[4 * g + 1], pairs[4 * g + 2], pairs[4 * g + 3]].map(|b| b as u8),
            );
            let [xs, ys] = paired::split_group([x[4 * g], x[4 * g + 1], x[4 * g + 2], x[4 * g + 3]]);
            paired::smlad(xs, w, paired::smlad(ys, paired::sxtb16(w), acc))
        });
        assert_eq!(acc >> 8, -((1 << 23) - 1), "S reaches the bound");
        assert_eq!(((acc >> 8) + bias[0]) as i64, exact);
        assert!(paired::fits(n, &[-9], &row));
        row[5] = 4;
        assert!(!paired::fits(n, &[-9], &row), "one unit over the bound");
    }
}
