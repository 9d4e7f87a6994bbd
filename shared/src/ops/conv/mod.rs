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
pub fn conv2d(at: &Placement, input: &[f32], kernel: &[f32], bias: &[f32], output: &mut [f32], activation: Activation) {
    let (channels, filters) = (at.input.channels, bias.len());
    let taps = at.window.size[0] * at.window.size[1];
    if !lengths_fit(at, input, output, filters) || kernel.len() != taps * channels * filters {
        return;
    }
    let (_, cols) = at.output_size();
    for (position, out) in output.chunks_exact_mut(filters).enumerate() {
        out.copy_from_slice(bias);
        for (tap, pixel) in at.taps(position / cols, position % cols) {
            let x = &input[pixel * channels..][..channels];
            let rows = &kernel[tap * channels * filters..][..channels * filters];
            for (x, row) in x.iter().zip(rows.chunks_exact(filters)) {
                for (o, w) in out.iter_mut().zip(row) {
                    *o += *x * *w;
                }
            }
        }
    }
    activation.apply_layer(output);
}

/// Keras's `DepthwiseConv2D` with one filter per channel: `kernel` is `(rows, cols, channels)`
/// row-major, `bias` one per channel, `output` the `(out rows, out cols, channels)` map.
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
        out.copy_from_slice(bias);
        for (tap, pixel) in at.taps(position / cols, position % cols) {
            let x = &input[pixel * channels..][..channels];
            let w = &kernel[tap * channels..][..channels];
            for ((o, x), w) in out.iter_mut().zip(x).zip(w) {
                *o += *x * *w;
            }
        }
    }
    activation.apply_layer(output);
}

#[cfg(test)]
mod tests;
