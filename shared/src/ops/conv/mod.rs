//! The convolutions, f32: Keras's `Conv2D` and `DepthwiseConv2D` (depth multiplier 1) over NHWC
//! maps, then the layer's activation.
//!
//! Bit-exactness invariant (the Dense rule, [`crate::ops::dense`]): every output is `bias[o]`,
//! then `+ x * w` for each tap inside the input in kernel order (rows, columns, then input
//! channels), one rounding for each `*` and each `+`. Padded taps add nothing and are skipped.
//! Scratch: none.
//!
//! Every function here is total: lengths that do not match the placement leave the output as it
//! was (the network checks shapes before it runs).

use crate::ops::activation::Activation;
use crate::ops::window::Placement;

/// Scratch memory a convolution needs besides its input and output: none.
pub const SCRATCH_BYTES: usize = 0;

fn lengths_fit(at: &Placement, input: &[f32], output: &mut [f32], out_channels: usize) -> bool {
    input.len() == at.input.len() && output.len() == at.positions() * out_channels
}

/// Keras's `Conv2D`: `kernel` is `(rows, cols, in channels, filters)` row-major, `bias` one per
/// filter, `output` the `(out rows, out cols, filters)` map.
///
/// Each output position's filters are computed in blocks (16, 8, 4, then 1) whose accumulators
/// stay in registers while the window's taps are read; every block gives each output the same
/// order of additions.
pub fn conv2d(at: &Placement, input: &[f32], kernel: &[f32], bias: &[f32], output: &mut [f32], activation: Activation) {
    let (channels, filters) = (at.input.channels, bias.len());
    let taps = at.window.size[0] * at.window.size[1];
    if !lengths_fit(at, input, output, filters) || kernel.len() != taps * channels * filters {
        return;
    }
    let (_, cols) = at.output_size();
    for (position, out) in output.chunks_exact_mut(filters).enumerate() {
        let (row, col) = (position / cols, position % cols);
        let mut start = conv_blocks::<16>(at, (row, col), input, kernel, bias, out, 0);
        start = conv_blocks::<8>(at, (row, col), input, kernel, bias, out, start);
        start = conv_blocks::<4>(at, (row, col), input, kernel, bias, out, start);
        conv_blocks::<1>(at, (row, col), input, kernel, bias, out, start);
    }
    activation.apply_layer(output);
}

/// Filters `start..` of the position `(row, col)` in blocks of `K` while a whole block fits;
/// returns the next start.
#[inline(always)]
fn conv_blocks<const K: usize>(
    at: &Placement,
    (row, col): (usize, usize),
    input: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    mut start: usize,
) -> usize {
    let (channels, filters) = (at.input.channels, bias.len());
    while start + K <= filters {
        let (Some(Ok(b)), Some(Ok(o))) = (
            bias.get(start..start + K).map(<&[f32; K]>::try_from),
            out.get_mut(start..start + K).map(<&mut [f32; K]>::try_from),
        ) else {
            break;
        };
        let mut acc = *b;
        let inside = at.inside(row, col);
        for ky in inside.rows.0..inside.rows.1 {
            for kx in inside.cols.0..inside.cols.1 {
                let (tap, pixel) = (inside.tap(ky, kx), inside.pixel(ky, kx));
                let (Some(x), Some(rows)) = (
                    input.get(pixel * channels..(pixel + 1) * channels),
                    kernel.get(tap * channels * filters..(tap + 1) * channels * filters),
                ) else {
                    continue;
                };
                for (x, w) in x.iter().zip(rows.chunks_exact(filters)) {
                    if let Some(Ok(w)) = w.get(start..start + K).map(<&[f32; K]>::try_from) {
                        for k in 0..K {
                            acc[k] += *x * w[k];
                        }
                    }
                }
            }
        }
        *o = acc;
        start += K;
    }
    start
}

/// Keras's `DepthwiseConv2D` with one filter per channel: `kernel` is `(rows, cols, channels)`
/// row-major, `bias` one per channel, `output` the `(out rows, out cols, channels)` map. Channels
/// are computed in blocks (16, 8, 4, 1) as [`conv2d`]'s filters are.
pub fn depthwise_conv2d(
    at: &Placement,
    input: &[f32],
    kernel: &[f32],
    bias: &[f32],
    output: &mut [f32],
    activation: Activation,
) {
    let channels = at.input.channels;
    let taps = at.window.size[0] * at.window.size[1];
    if !lengths_fit(at, input, output, channels) || bias.len() != channels || kernel.len() != taps * channels {
        return;
    }
    let (_, cols) = at.output_size();
    for (position, out) in output.chunks_exact_mut(channels).enumerate() {
        let (row, col) = (position / cols, position % cols);
        let mut start = depthwise_blocks::<16>(at, (row, col), input, kernel, bias, out, 0);
        start = depthwise_blocks::<8>(at, (row, col), input, kernel, bias, out, start);
        start = depthwise_blocks::<4>(at, (row, col), input, kernel, bias, out, start);
        depthwise_blocks::<1>(at, (row, col), input, kernel, bias, out, start);
    }
    activation.apply_layer(output);
}

/// Channels `start..` of the position `(row, col)` in blocks of `K`; returns the next start.
#[inline(always)]
fn depthwise_blocks<const K: usize>(
    at: &Placement,
    (row, col): (usize, usize),
    input: &[f32],
    kernel: &[f32],
    bias: &[f32],
    out: &mut [f32],
    mut start: usize,
) -> usize {
    let channels = at.input.channels;
    while start + K <= channels {
        let (Some(Ok(b)), Some(Ok(o))) = (
            bias.get(start..start + K).map(<&[f32; K]>::try_from),
            out.get_mut(start..start + K).map(<&mut [f32; K]>::try_from),
        ) else {
            break;
        };
        let mut acc = *b;
        let inside = at.inside(row, col);
        let taps = (inside.rows.0..inside.rows.1)
            .flat_map(|ky| (inside.cols.0..inside.cols.1).map(move |kx| (inside.tap(ky, kx), inside.pixel(ky, kx))));
        for (tap, pixel) in taps {
            let (Some(Ok(x)), Some(Ok(w))) = (
                input.get(pixel * channels + start..pixel * channels + start + K).map(<&[f32; K]>::try_from),
                kernel.get(tap * channels + start..tap * channels + start + K).map(<&[f32; K]>::try_from),
            ) else {
                continue;
            };
            for k in 0..K {
                acc[k] += x[k] * w[k];
            }
        }
        *o = acc;
        start += K;
    }
    start
}

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
mod cortex_m4;
pub mod int8;

#[cfg(test)]
mod tests;
