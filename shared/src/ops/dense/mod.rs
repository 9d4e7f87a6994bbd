//! The Dense operator, f32: `y = x · W + b` then the activation, on plain slices; its int8 form
//! is [`int8`].
//!
//! Bit-exactness invariant: every output is `bias[o]`, then `+ x[i] * w[i][o]` for `i` in input
//! order, one rounding for each `*` and each `+` (no fused multiply-add, no reassociation). The
//! portable path, the host's AVX build of it and the Cortex-M4F build all keep that order, so they
//! give the same bits. Scratch: none ([`SCRATCH_BYTES`]; the caller's two activation buffers, see
//! [`crate::network`]).
//!
//! Every function here is total: mismatched lengths never panic (the const-generic types in
//! [`crate::network`] make them impossible; the runtime-shaped host path checks them before).

pub mod int8;

/// Scratch memory one f32 Dense layer needs besides its input and output: none (its blocks of
/// outputs live in registers or vector lanes).
pub const SCRATCH_BYTES: usize = 0;

use crate::ops::activation::{relu, Activation};

/// Outputs accumulated together in one block: registers on the device, vector lanes on the host.
const BLOCK: usize = 16;

/// `output[o] = bias[o] + sum_i input[i] * weights[i * output.len() + o]`, added in input order,
/// then `activation` ([`Activation::apply_layer`]: each value as its block is stored, softmax over
/// the whole output at the end).
///
/// `weights` is input-major (`(input.len(), output.len())`, row-major). The outputs are computed in
/// blocks; the order of the additions for each output is the same whatever the block size.
pub fn dense(input: &[f32], weights: &[f32], bias: &[f32], output: &mut [f32], activation: Activation) {
    dense_blocked::<BLOCK>(input, weights, bias, output, activation);
}

/// [`dense`] with outputs computed `K` at a time first (then 16, 4, 1 for what is left). A layer
/// with at most 16 outputs passes its own width, so all its accumulators stay in registers.
/// Every `K` gives bit-identical results.
pub fn dense_blocked<const K: usize>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    activation: Activation,
) {
    dense_dispatch::<K, true>(input, weights, bias, output, activation);
}

/// [`dense_blocked`] for a layer followed by ReLU or nothing (`activation`; any other is taken
/// as linear): the same bits, and none of the other activations' code (what a firmware whose
/// layers are all linear and ReLU links).
pub fn dense_fused<const K: usize>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    activation: Activation,
) {
    dense_dispatch::<K, false>(input, weights, bias, output, activation);
}

/// The AVX build on a host that has it, else the portable one; `CURVES` as in
/// [`dense_blocked_portable`].
#[inline]
fn dense_dispatch<const K: usize, const CURVES: bool>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    activation: Activation,
) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if std::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        unsafe { dense_blocked_avx::<K, CURVES>(input, weights, bias, output, activation) };
        return;
    }
    dense_blocked_portable::<K, CURVES>(input, weights, bias, output, activation);
}

/// The same code compiled for 8-lane AVX: wider vectors across outputs, the same multiplies and
/// additions in the same order for each output, so the same bits (AVX has no fused multiply-add).
///
/// # Safety
/// The CPU must have AVX.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx")]
unsafe fn dense_blocked_avx<const K: usize, const CURVES: bool>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    activation: Activation,
) {
    dense_blocked_portable::<K, CURVES>(input, weights, bias, output, activation);
}

/// The blocks of outputs with ReLU fused as each block is stored, then with `CURVES` any other
/// activation over the whole layer ([`Activation::apply_layer`]); without it nothing else (the
/// caller passes linear or ReLU).
#[inline(always)]
fn dense_blocked_portable<const K: usize, const CURVES: bool>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    activation: Activation,
) {
    let width = output.len();
    let mut start = dense_blocks::<K>(input, weights, bias, output, width, 0, activation);
    start = dense_blocks::<BLOCK>(input, weights, bias, output, width, start, activation);
    start = dense_blocks::<4>(input, weights, bias, output, width, start, activation);
    dense_blocks::<1>(input, weights, bias, output, width, start, activation);
    if CURVES && !matches!(activation, Activation::Linear | Activation::Relu) {
        activation.apply_layer(output);
    }
}

/// Computes outputs `start..` in blocks of `K` while a whole block fits; returns the next start.
#[inline(always)]
fn dense_blocks<const K: usize>(
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    width: usize,
    mut start: usize,
    activation: Activation,
) -> usize {
    if K == 0 {
        return start;
    }
    while start + K <= width {
        let (Some(out), Some(b)) = (output.get_mut(start..start + K), bias.get(start..start + K)) else {
            break;
        };
        let (Ok(out), Ok(b)) = (<&mut [f32; K]>::try_from(out), <&[f32; K]>::try_from(b)) else {
            break;
        };
        let mut acc = *b;
        for (x, row) in input.iter().zip(weights.chunks_exact(width)) {
            if let Some(Ok(w)) = row.get(start..start + K).map(<&[f32; K]>::try_from) {
                for k in 0..K {
                    acc[k] += *x * w[k];
                }
            }
        }
        // ReLU is fused here; every other activation is a pass over the layer after its blocks
        if activation == Activation::Relu {
            for a in &mut acc {
                *a = relu(*a);
            }
        }
        *out = acc;
        start += K;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::output::{argmax, canonical_nans};
    use crate::ops::standardize::standardize;

    fn relu(values: &mut [f32]) {
        values.iter_mut().for_each(|v| *v = Activation::Relu.apply(*v));
    }

    /// The reference: one output at a time, in input order, the obvious way.
    fn naive(input: &[f32], weights: &[f32], bias: &[f32], out: usize) -> Vec<f32> {
        (0..out)
            .map(|o| {
                let mut acc = bias[o];
                for (i, x) in input.iter().enumerate() {
                    acc += x * weights[i * out + o];
                }
                acc
            })
            .collect()
    }

    /// `inf + -inf` gives NaN, whose bits depend on the target (x86 0xffc00000, the Cortex-M4F
    /// 0x7fc00000); `canonical_nans` makes every one of them 0x7fc00000, and ReLU makes it +0.
    #[test]
    fn overflowing_inputs_give_the_canonical_nan_after_canonical_nans() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for outputs in [1, 3, 4, 10, 16, 21] {
            // 3e38 * 2 overflows to +inf in one product, -inf in the other: their sum is NaN
            let input = [3e38f32, 3e38, f32::NAN.copysign(-1.0), 1.0];
            let mut weights = vec![0.0f32; 4 * outputs];
            for o in 0..outputs {
                weights[o] = 2.0;
                weights[outputs + o] = -2.0;
                weights[2 * outputs + o] = if o % 2 == 0 { 0.0 } else { 1.0 };
            }
            let bias = vec![0.0f32; outputs];
            for blocked in [dense, dense_blocked::<7>, dense_blocked::<2>, dense_blocked_portable::<16, true>] {
                let mut out = vec![0.0; outputs];
                blocked(&input, &weights, &bias, &mut out, Activation::Linear);
                assert!(out.iter().all(|v| v.is_nan()));
                canonical_nans(&mut out);
                assert_eq!(bits(&out), vec![0x7fc0_0000; outputs], "{outputs} outputs");
                blocked(&input, &weights, &bias, &mut out, Activation::Relu);
                assert_eq!(bits(&out), vec![0; outputs], "ReLU maps NaN to +0");
            }
        }
        let mut mixed = [1.5, f32::NAN, -f32::NAN, f32::from_bits(0x7fc0_1234), f32::INFINITY];
        canonical_nans(&mut mixed);
        assert_eq!(bits(&mixed), [1.5f32.to_bits(), 0x7fc0_0000, 0x7fc0_0000, 0x7fc0_0000, 0x7f80_0000]);
    }

    #[test]
    fn blocked_dense_is_bit_identical_to_the_naive_order_for_every_width() {
        for (inputs, outputs) in [(3, 1), (5, 4), (7, 17), (64, 128), (128, 10), (9, 21)] {
            let input: Vec<f32> = (0..inputs).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let weights: Vec<f32> = (0..inputs * outputs).map(|i| (i as f32 * 1.13).cos() / 7.0).collect();
            let bias: Vec<f32> = (0..outputs).map(|o| o as f32 * 0.01 - 0.05).collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let expected = naive(&input, &weights, &bias, outputs);
            let mut relu_expected = expected.clone();
            relu(&mut relu_expected);
            let mut out = vec![0.0; outputs];
            dense(&input, &weights, &bias, &mut out, Activation::Linear);
            assert_eq!(bits(&out), bits(&expected), "{inputs}x{outputs}");
            dense(&input, &weights, &bias, &mut out, Activation::Relu);
            assert_eq!(bits(&out), bits(&relu_expected), "{inputs}x{outputs} relu");
            for blocked in [
                dense_blocked::<10>,
                dense_blocked::<7>,
                dense_blocked::<2>,
                dense_blocked::<0>,
                dense_blocked_portable::<16, true>,
            ] {
                blocked(&input, &weights, &bias, &mut out, Activation::Linear);
                assert_eq!(bits(&out), bits(&expected), "{inputs}x{outputs} blocked");
            }
        }
    }

    /// The fused-only kernel gives the full kernel's bits for linear and ReLU layers.
    #[test]
    fn the_fused_kernel_gives_the_full_kernels_bits() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (inputs, outputs) in [(3, 1), (7, 17), (64, 128), (128, 10)] {
            let input: Vec<f32> = (0..inputs).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let weights: Vec<f32> = (0..inputs * outputs).map(|i| (i as f32 * 1.13).cos() / 7.0).collect();
            let bias: Vec<f32> = (0..outputs).map(|o| o as f32 * 0.01 - 0.05).collect();
            for relu in [false, true] {
                let activation = if relu { Activation::Relu } else { Activation::Linear };
                let (mut full, mut fused, mut narrow) = (vec![0.0; outputs], vec![0.0; outputs], vec![0.0; outputs]);
                dense(&input, &weights, &bias, &mut full, activation);
                dense_fused::<0>(&input, &weights, &bias, &mut fused, activation);
                dense_fused::<7>(&input, &weights, &bias, &mut narrow, activation);
                assert_eq!(
                    (bits(&fused), bits(&narrow)),
                    (bits(&full), bits(&full)),
                    "{inputs}x{outputs} {activation}"
                );
            }
        }
    }

    #[test]
    fn dense_by_hand() {
        // x = [1, 2]; W (in, out) = [[1, 2, 3], [4, 5, 6]]; b = [0.5, 0, -1]
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [0.5, 0.0, -1.0];
        let mut out = [0.0; 3];
        dense(&[1.0, 2.0], &w, &b, &mut out, Activation::Linear);
        assert_eq!(out, [9.5, 12.0, 14.0]);
        // x = [1, -2]: [1 - 8 + 0.5, 2 - 10, 3 - 12 - 1] = [-6.5, -8, -10] -> ReLU -> 0
        dense(&[1.0, -2.0], &w, &b, &mut out, Activation::Relu);
        assert_eq!(out, [0.0, 0.0, 0.0]);
    }

    #[test]
    fn relu_argmax_standardize() {
        let mut v = [-1.0, 0.0, 2.5, -0.0, f32::NAN];
        relu(&mut v);
        assert_eq!(v, [0.0, 0.0, 2.5, 0.0, 0.0]);
        assert_eq!(argmax(&[0.1, 0.7, 0.7, -3.0]), 1);
        let mut o = [0.0; 2];
        standardize(&[3.0, 5.0], &[1.0, 5.0], &[2.0, 1.0], &mut o);
        assert_eq!(o, [1.0, 0.0]);
    }
}
