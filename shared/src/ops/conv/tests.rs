//! The convolutions and pooling against naive loops written from Keras's definitions: the input
//! padded explicitly (Keras's split of the missing rows and columns), every window position and
//! every tap visited.

use super::*;
use crate::layer::{Dims, Padding, Window};
use crate::ops::pool::{average_pool, global_average_pool, max_pool};
use crate::test_rng::Rng;

fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0).collect()
}

/// Keras's `same` padding, written out: `(outputs, before)` along one axis.
fn keras_axis(input: usize, size: usize, stride: usize, padding: Padding) -> Option<(usize, usize)> {
    match padding {
        Padding::Valid => (input >= size).then(|| ((input - size) / stride + 1, 0)),
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + size).saturating_sub(input);
            Some((out, total / 2))
        }
    }
}

/// Per output position, each tap's input index in kernel order (`None`: a padded tap).
type Taps = Vec<Vec<Option<usize>>>;

/// `((out rows, out cols), taps)`.
fn windows(input: Dims, w: Window) -> Option<((usize, usize), Taps)> {
    let (oh, top) = keras_axis(input.height, w.size[0], w.stride[0], w.padding)?;
    let (ow, left) = keras_axis(input.width, w.size[1], w.stride[1], w.padding)?;
    let mut all = Vec::new();
    for oy in 0..oh {
        for ox in 0..ow {
            let mut taps = Vec::new();
            for ky in 0..w.size[0] {
                for kx in 0..w.size[1] {
                    let (iy, ix) = (
                        (oy * w.stride[0] + ky) as isize - top as isize,
                        (ox * w.stride[1] + kx) as isize - left as isize,
                    );
                    let inside = iy >= 0 && ix >= 0 && iy < input.height as isize && ix < input.width as isize;
                    taps.push(inside.then(|| iy as usize * input.width + ix as usize));
                }
            }
            all.push(taps);
        }
    }
    Some(((oh, ow), all))
}

/// Every window, padding and stride over odd sizes and channel counts that are not multiples of 4.
fn cases() -> Vec<(Dims, Window)> {
    let mut cases = Vec::new();
    for (h, w) in [(1, 1), (5, 7), (8, 6), (9, 4)] {
        for c in [1, 3, 6] {
            for size in [[1, 1], [2, 2], [3, 3], [3, 1], [2, 4], [4, 3]] {
                for stride in [[1, 1], [2, 2], [3, 1], [1, 2]] {
                    for padding in [Padding::Valid, Padding::Same] {
                        cases.push((Dims::image(h, w, c), Window::new(size, stride, padding)));
                    }
                }
            }
        }
    }
    cases
}

#[test]
fn conv2d_equals_the_naive_loop_for_every_padding_stride_and_odd_size() {
    let mut rng = Rng(0x5eed_c0de);
    let mut checked = 0;
    for (dims, window) in cases() {
        let Some(((oh, ow), all)) = windows(dims, window) else {
            assert!(Placement::new(dims, window).is_none(), "{dims} {window:?} fits nowhere in Keras");
            continue;
        };
        let at = Placement::new(dims, window).expect("fits");
        assert_eq!(at.output_size(), (oh, ow), "{dims} {window:?}");
        // 29 filters run a block of each size: 16, 8, 4 and 1
        for filters in [1, 5, 29] {
            let c = dims.channels;
            let taps = window.size[0] * window.size[1];
            let (x, k, b) =
                (values(&mut rng, dims.len()), values(&mut rng, taps * c * filters), values(&mut rng, filters));
            let mut out = vec![f32::NAN; oh * ow * filters];
            conv2d(&at, &x, &k, &b, &mut out, Activation::Relu);
            for (p, taps_at) in all.iter().enumerate() {
                for f in 0..filters {
                    let (mut acc, mut wide) = (b[f], b[f] as f64);
                    for (t, pixel) in taps_at.iter().enumerate() {
                        for ci in 0..c {
                            let w = k[(t * c + ci) * filters + f];
                            let v = pixel.map_or(0.0, |i| x[i * c + ci]);
                            acc += v * w;
                            wide += v as f64 * w as f64;
                        }
                    }
                    let got = out[p * filters + f];
                    assert_eq!(got, acc.max(0.0), "{dims} {window:?} position {p} filter {f}");
                    assert!((got as f64 - wide.max(0.0)).abs() < 1e-5, "{got} vs {wide}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 1200, "{checked} cases");
}

#[test]
fn depthwise_conv2d_equals_the_naive_loop_for_every_padding_stride_and_odd_size() {
    let mut rng = Rng(0xdee9_5eed);
    // 29 channels run a block of each size: 16, 8, 4 and 1
    let wide = [(Dims::image(5, 4, 29), Window::new([3, 3], [2, 2], Padding::Same))];
    for (dims, window) in cases().into_iter().chain(wide) {
        let Some(((oh, ow), all)) = windows(dims, window) else { continue };
        let at = Placement::new(dims, window).expect("fits");
        let c = dims.channels;
        let taps = window.size[0] * window.size[1];
        let (x, k, b) = (values(&mut rng, dims.len()), values(&mut rng, taps * c), values(&mut rng, c));
        let mut out = vec![f32::NAN; oh * ow * c];
        depthwise_conv2d(&at, &x, &k, &b, &mut out, Activation::Linear);
        for (p, taps_at) in all.iter().enumerate() {
            for ch in 0..c {
                let mut acc = b[ch];
                for (t, pixel) in taps_at.iter().enumerate() {
                    acc += pixel.map_or(0.0, |i| x[i * c + ch]) * k[t * c + ch];
                }
                assert_eq!(out[p * c + ch], acc, "{dims} {window:?} position {p} channel {ch}");
            }
        }
    }
}

#[test]
fn pooling_equals_the_naive_loop_and_ignores_padding() {
    let mut rng = Rng(0x9001_5eed);
    for (dims, window) in cases() {
        let Some(((oh, ow), all)) = windows(dims, window) else { continue };
        let at = Placement::new(dims, window).expect("fits");
        let c = dims.channels;
        let x = values(&mut rng, dims.len());
        let (mut max, mut mean) = (vec![f32::NAN; oh * ow * c], vec![f32::NAN; oh * ow * c]);
        max_pool(&at, &x, &mut max);
        average_pool(&at, &x, &mut mean);
        for (p, taps_at) in all.iter().enumerate() {
            for ch in 0..c {
                let inside: Vec<f32> = taps_at.iter().flatten().map(|i| x[i * c + ch]).collect();
                assert!(!inside.is_empty(), "every Keras window overlaps its input");
                let expected_max = inside.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let expected_mean = inside.iter().fold(0.0f32, |s, v| s + v) / inside.len() as f32;
                assert_eq!(max[p * c + ch], expected_max, "{dims} {window:?}");
                assert_eq!(mean[p * c + ch], expected_mean, "{dims} {window:?}");
            }
        }
    }
    let x = [1.0, -2.0, 3.0, 4.0, 5.0, -6.0];
    let mut gap = [0.0; 2];
    global_average_pool(&x, &mut gap);
    assert_eq!(gap, [3.0, -4.0 / 3.0]);
}

#[test]
fn same_padding_at_stride_two_pads_after_on_an_even_input_as_keras_does() {
    // 4×4 input of 1..16, 3×3 window of ones, stride 2, same: Keras pads one row and column after
    // (none before), so the first output is the top-left 3×3 sum and the last the bottom-right 2×2.
    let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    let at = Placement::new(Dims::image(4, 4, 1), Window::new([3, 3], [2, 2], Padding::Same)).expect("fits");
    let mut out = [0.0; 4];
    conv2d(&at, &x, &[1.0; 9], &[0.0], &mut out, Activation::Linear);
    assert_eq!(
        out,
        [
            1.0 + 2.0 + 3.0 + 5.0 + 6.0 + 7.0 + 9.0 + 10.0 + 11.0,
            3.0 + 4.0 + 7.0 + 8.0 + 11.0 + 12.0,
            9.0 + 10.0 + 11.0 + 13.0 + 14.0 + 15.0,
            11.0 + 12.0 + 15.0 + 16.0
        ]
    );
}

/// The int8 operators against the definition written out with no folding: `round(bias) + sum
/// over the taps inside of (x - zp) * w`, requantized in i128 (TFLite's one rounding, half up),
/// plus the output zero point, clamped (at the zero point after ReLU).
mod int8 {
    use super::{cases, windows, Taps};
    use crate::layer::{Activation, Dims, Padding, Window};
    use crate::ops::conv::int8::{conv2d_i8, depthwise_conv2d_i8, depthwise_pair_fits, pair_depthwise_weights};
    use crate::ops::dense::int8::{block_weights, paired, QuantLayer, Requant, WeightForm};
    use crate::ops::pool::{average_pool_i8, global_average_pool_i8, max_pool_i8};
    use crate::ops::window::Placement;
    use crate::test_rng::Rng;

    fn requantized(acc: i64, r: Requant, zero: i8, relu: bool) -> i8 {
        let s = 31 - r.shift;
        let q = (acc as i128 * r.multiplier as i128 + (1i128 << (s - 1))).div_euclid(1i128 << s);
        (zero as i128 + q).clamp(if relu { zero as i128 } else { -128 }, 127) as i8
    }

    /// Random per-channel parameters: unfolded biases, requantizations (real multipliers from
    /// 1e-4 to 0.1), weights in -127..=127 with every fourth channel at the extremes.
    fn parameters(rng: &mut Rng, channels: usize, fan_in: usize) -> (Vec<i32>, Vec<Requant>, Vec<i8>) {
        let bias = (0..channels).map(|_| (rng.next() % 40_001) as i32 - 20_000).collect();
        let requant = (0..channels)
            .map(|_| {
                Requant::from_real((rng.next() % 1000 + 1) as f64 * 10f64.powi(-((rng.next() % 3) as i32 + 4)) * 100.0)
            })
            .map(|r| r.expect("representable"))
            .collect();
        let weights = (0..channels * fan_in)
            .map(|i| {
                if (i / fan_in.max(1)) % 4 == 3 {
                    [127, -127][rng.next() as usize % 2]
                } else {
                    (rng.next() % 255) as i8
                }
            })
            .map(|w| w.max(-127))
            .collect();
        (bias, requant, weights)
    }

    fn input(rng: &mut Rng, n: usize, extreme: bool) -> Vec<i8> {
        (0..n).map(|_| if extreme { [-128, 127][rng.next() as usize % 2] } else { rng.next() as i8 }).collect()
    }

    fn layer<'a>(
        weights: &'a [i8],
        bias: &'a [i32],
        (multipliers, shifts): (&'a [i32], &'a [i8]),
        zero: i8,
        relu: bool,
        form: WeightForm,
    ) -> QuantLayer<'a> {
        QuantLayer {
            weights,
            bias,
            multipliers,
            shifts,
            output_zero: zero,
            activation: if relu { Activation::Relu } else { Activation::Linear },
            lookup: crate::ops::activation::int8::Lookup::Fused,
            form,
        }
    }

    fn split(requant: &[Requant]) -> (Vec<i32>, Vec<i8>) {
        (requant.iter().map(|r| r.multiplier).collect(), requant.iter().map(|r| r.shift as i8).collect())
    }

    /// The cases of the f32 tests, and the same windows over 9 channels (two blocks of four and
    /// one left over for depthwise), with wide maps at the column's edge.
    fn int8_cases() -> Vec<(Dims, Window)> {
        let nine = cases().into_iter().map(|(d, w)| (Dims::image(d.height, d.width, 9), w));
        let edge = [
            (Dims::image(49, 10, 1), Window::new([10, 4], [2, 2], Padding::Same)),
            (Dims::image(6, 5, 64), Window::new([4, 4], [1, 1], Padding::Same)),
            (Dims::image(25, 5, 64), Window::new([1, 1], [1, 1], Padding::Valid)),
            (Dims::image(25, 5, 64), Window::new([3, 3], [1, 1], Padding::Same)),
        ];
        cases()
            .into_iter()
            .filter(|(d, _)| d.channels != 3 || d.height != 8)
            .chain(nine.step_by(3))
            .chain(edge)
            .collect()
    }

    #[test]
    fn conv2d_i8_equals_the_definition_in_both_weight_forms() {
        let mut rng = Rng(0x1a7e_c0de);
        let (mut checked, mut paired_checked) = (0, 0);
        for (case, (dims, window)) in int8_cases().into_iter().enumerate() {
            let Some(((oh, ow), all)) = windows(dims, window) else { continue };
            let at = Placement::new(dims, window).expect("fits");
            let c = dims.channels;
            let fan_in = window.size[0] * window.size[1] * c;
            let filters = [1, 5, 12][case % 3];
            let (bias, requant, plain) = parameters(&mut rng, filters, fan_in);
            let (multipliers, shifts) = split(&requant);
            let (zp, zero, relu) = (rng.next() as i8, rng.next() as i8, case % 2 == 0);
            let x = input(&mut rng, dims.len(), case % 5 == 0);
            let folded: Vec<i32> = (0..filters)
                .map(|f| {
                    bias[f] - zp as i32 * plain[f * fan_in..(f + 1) * fan_in].iter().map(|w| *w as i32).sum::<i32>()
                })
                .collect();
            let want = expected_conv(&all, &x, (&plain, &bias, &requant), (c, fan_in, filters), (zp, zero, relu));
            let mut blocked = vec![0; plain.len()];
            block_weights(&plain, fan_in, filters, &mut blocked);
            let mut got = vec![0i8; oh * ow * filters];
            let l = layer(&blocked, &folded, (&multipliers, &shifts), zero, relu, WeightForm::Blocked);
            conv2d_i8(&at, &x, zp, &l, &mut got);
            assert_eq!(got, want, "{dims} {window:?} {filters} filters");
            checked += 1;
            if paired::fits(fan_in, &shifts, &plain) {
                let (mut pairs, mut pair_bias, mut pair_shifts) =
                    (vec![0; plain.len()], vec![0; filters], vec![0; filters]);
                paired::pair_weights(&blocked, &mut pairs);
                paired::pair_biases(&plain, &folded, fan_in, &mut pair_bias);
                paired::pair_shifts(&shifts, &mut pair_shifts);
                let l = layer(&pairs, &pair_bias, (&multipliers, &pair_shifts), zero, relu, WeightForm::Paired);
                let mut got = vec![0i8; oh * ow * filters];
                conv2d_i8(&at, &x, zp, &l, &mut got);
                assert_eq!(got, want, "paired: {dims} {window:?} {filters} filters");
                paired_checked += 1;
            }
        }
        assert!(checked > 600 && paired_checked > 20, "{checked} cases, {paired_checked} paired");
    }

    fn expected_conv(
        all: &Taps,
        x: &[i8],
        (plain, bias, requant): (&[i8], &[i32], &[Requant]),
        (c, fan_in, filters): (usize, usize, usize),
        (zp, zero, relu): (i8, i8, bool),
    ) -> Vec<i8> {
        let mut out = Vec::new();
        for taps_at in all {
            for f in 0..filters {
                let mut acc = bias[f] as i64;
                for (t, pixel) in taps_at.iter().enumerate() {
                    let Some(i) = pixel else { continue };
                    for ci in 0..c {
                        acc += (x[i * c + ci] as i64 - zp as i64) * plain[f * fan_in + t * c + ci] as i64;
                    }
                }
                out.push(requantized(acc, requant[f], zero, relu));
            }
        }
        out
    }

    #[test]
    fn depthwise_conv2d_i8_equals_the_definition() {
        let mut rng = Rng(0xd1d1_5eed);
        for (case, (dims, window)) in int8_cases().into_iter().enumerate() {
            let Some(((oh, ow), all)) = windows(dims, window) else { continue };
            let at = Placement::new(dims, window).expect("fits");
            let (c, taps) = (dims.channels, window.size[0] * window.size[1]);
            // `(channels, taps)` from the helper, stored `(taps, channels)` as the kernel takes them
            let (bias, requant, by_channel) = parameters(&mut rng, c, taps);
            let w: Vec<i8> = (0..taps * c).map(|i| by_channel[(i % c) * taps + i / c]).collect();
            let (multipliers, shifts) = split(&requant);
            let (zp, zero, relu) = (rng.next() as i8, rng.next() as i8, case % 2 == 1);
            let x = input(&mut rng, dims.len(), case % 5 == 0);
            let folded: Vec<i32> =
                (0..c).map(|ch| bias[ch] - zp as i32 * (0..taps).map(|t| w[t * c + ch] as i32).sum::<i32>()).collect();
            let mut got = vec![0i8; oh * ow * c];
            depthwise_conv2d_i8(
                &at,
                &x,
                zp,
                &layer(&w, &folded, (&multipliers, &shifts), zero, relu, WeightForm::Blocked),
                &mut got,
            );
            for (p, taps_at) in all.iter().enumerate() {
                for ch in 0..c {
                    let acc = taps_at.iter().enumerate().fold(bias[ch] as i64, |acc, (t, pixel)| {
                        acc + pixel.map_or(0, |i| (x[i * c + ch] as i64 - zp as i64) * w[t * c + ch] as i64)
                    });
                    let want = requantized(acc, requant[ch], zero, relu);
                    assert_eq!(got[p * c + ch], want, "{dims} {window:?} position {p} channel {ch}");
                }
            }
        }
    }

    /// The Cortex-M4's paired depthwise form (halfword weights, right shifts), run by its portable
    /// twin, gives the plain form's bits over the windows above at 8 and 64 channels, at extreme
    /// inputs and weights too; the device runs the same form under QEMU (`tests/`).
    #[test]
    fn the_depthwise_paired_form_gives_the_plain_forms_bits() {
        let mut rng = Rng(0x9a12_ed00);
        let mut checked = 0;
        let wide = cases().into_iter().step_by(7).map(|(d, w)| (Dims::image(d.height, d.width, 64), w));
        let eight = cases().into_iter().step_by(2).map(|(d, w)| (Dims::image(d.height, d.width, 8), w));
        for (case, (dims, window)) in eight.chain(wide).enumerate() {
            let Some(((oh, ow), _)) = windows(dims, window) else { continue };
            let at = Placement::new(dims, window).expect("fits");
            let (c, taps) = (dims.channels, window.size[0] * window.size[1]);
            let (bias, requant, w) = parameters(&mut rng, c, taps);
            // the form takes multipliers below 1/4 (every calibrated layer's)
            let requant: Vec<Requant> = requant
                .into_iter()
                .map(|r| if r.shift > -2 { Requant::from_real(r.to_real() / 64.0).expect("representable") } else { r })
                .collect();
            let (multipliers, shifts) = split(&requant);
            assert!(depthwise_pair_fits(c, taps, &shifts), "{dims} {window:?} {shifts:?}");
            let (zp, zero, relu) = (rng.next() as i8, rng.next() as i8, case % 2 == 0);
            let x = input(&mut rng, dims.len(), case % 3 == 0);
            let (mut plain, mut pairs) = (vec![0i8; oh * ow * c], vec![0i8; oh * ow * c]);
            depthwise_conv2d_i8(
                &at,
                &x,
                zp,
                &layer(&w, &bias, (&multipliers, &shifts), zero, relu, WeightForm::Blocked),
                &mut plain,
            );
            let mut paired_weights = vec![0i8; 2 * w.len()];
            pair_depthwise_weights(&w, taps, c, &mut paired_weights);
            let mut right = vec![0i8; c];
            paired::pair_shifts(&shifts, &mut right);
            let l = layer(&paired_weights, &bias, (&multipliers, &right), zero, relu, WeightForm::Paired);
            depthwise_conv2d_i8(&at, &x, zp, &l, &mut pairs);
            assert_eq!(pairs, plain, "{dims} {window:?}");
            checked += 1;
        }
        assert!(checked > 300, "{checked}");
        assert!(!depthwise_pair_fits(6, 9, &[-5; 6]) && !depthwise_pair_fits(8, 36, &[-5; 8]));
        assert!(!depthwise_pair_fits(8, 9, &[-1; 8]) && depthwise_pair_fits(8, 9, &[-2; 8]));
    }

    #[test]
    fn int8_pooling_equals_tflites_definition() {
        let mut rng = Rng(0x9007_5eed);
        for (case, (dims, window)) in int8_cases().into_iter().enumerate() {
            let Some(((oh, ow), all)) = windows(dims, window) else { continue };
            let at = Placement::new(dims, window).expect("fits");
            let c = dims.channels;
            let x = input(&mut rng, dims.len(), case % 5 == 0);
            let (mut max, mut mean) = (vec![0i8; oh * ow * c], vec![0i8; oh * ow * c]);
            max_pool_i8(&at, &x, &mut max);
            average_pool_i8(&at, &x, &mut mean);
            for (p, taps_at) in all.iter().enumerate() {
                for ch in 0..c {
                    let inside: Vec<i64> = taps_at.iter().flatten().map(|i| x[i * c + ch] as i64).collect();
                    let exact = inside.iter().sum::<i64>() as f64 / inside.len() as f64;
                    assert_eq!(
                        max[p * c + ch] as i64,
                        *inside.iter().max().expect("a tap inside"),
                        "{dims} {window:?}"
                    );
                    // half away from zero, as TFLite's `(sum ± count / 2) / count` rounds
                    assert_eq!(mean[p * c + ch] as f64, exact.round(), "{dims} {window:?} {inside:?}");
                }
            }
        }
        // ties: 1 and 2 average to 1.5 -> 2, -1 and -2 to -1.5 -> -2; 127s stay 127
        let mut out = [0i8; 3];
        global_average_pool_i8(&[1, -1, 127, 2, -2, 127], &mut out);
        assert_eq!(out, [2, -2, 127]);
        let x = input(&mut rng, 125 * 64, false);
        let mut gap = [0i8; 64];
        global_average_pool_i8(&x, &mut gap);
        for ch in 0..64 {
            let sum: i64 = (0..125).map(|p| x[p * 64 + ch] as i64).sum();
            assert_eq!(gap[ch] as f64, (sum as f64 / 125.0).round(), "channel {ch}");
        }
    }
}
