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
