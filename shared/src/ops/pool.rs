//! Pooling, f32: Keras's `MaxPooling2D`, `AveragePooling2D` and `GlobalAveragePooling2D` over
//! NHWC maps. Scratch: none.
//!
//! Bit-exactness invariant: a maximum starts from the window's first tap inside the input and
//! takes each later one that is greater (`>`; a NaN first tap stays); an average is `0 + x` for
//! each tap inside the input in kernel order, then one division by their count, as f32. Padded
//! taps are not counted (Keras, TFLite, ONNX's `count_include_pad = 0`).

use crate::ops::window::Placement;

/// Scratch memory a pooling layer needs besides its input and output: none.
pub const SCRATCH_BYTES: usize = 0;

/// `MaxPooling2D`: `output` is `(out rows, out cols, channels)`.
pub fn max_pool(at: &Placement, input: &[f32], output: &mut [f32]) {
    pool(
        at,
        input,
        output,
        |out, x, first| {
            for (o, x) in out.iter_mut().zip(x) {
                if first || *x > *o {
                    *o = *x;
                }
            }
        },
        |_, _| {},
    );
}

/// `AveragePooling2D`: `output` is `(out rows, out cols, channels)`.
pub fn average_pool(at: &Placement, input: &[f32], output: &mut [f32]) {
    pool(
        at,
        input,
        output,
        |out, x, first| {
            if first {
                out.fill(0.0);
            }
            for (o, x) in out.iter_mut().zip(x) {
                *o += *x;
            }
        },
        |out, count| {
            let count = count as f32;
            out.iter_mut().for_each(|o| *o /= count);
        },
    );
}

/// Each output position's window: `take(out, x, first)` per tap inside the input, then
/// `finish(out, taps)`.
#[inline(always)]
fn pool(
    at: &Placement,
    input: &[f32],
    output: &mut [f32],
    take: impl Fn(&mut [f32], &[f32], bool),
    finish: impl Fn(&mut [f32], usize),
) {
    let channels = at.input.channels;
    if input.len() != at.input.len() || output.len() != at.positions() * channels || channels == 0 {
        return;
    }
    let (_, cols) = at.output_size();
    for (position, out) in output.chunks_exact_mut(channels).enumerate() {
        let mut count = 0;
        for (_, pixel) in at.taps(position / cols, position % cols) {
            take(out, &input[pixel * channels..][..channels], count == 0);
            count += 1;
        }
        finish(out, count);
    }
}

/// `GlobalAveragePooling2D`: each channel's values summed in map order from 0, divided by the
/// positions as f32; `output` has one value per channel.
pub fn global_average_pool(input: &[f32], output: &mut [f32]) {
    let channels = output.len();
    let positions = input.len().checked_div(channels).unwrap_or(0);
    if positions == 0 || positions * channels != input.len() {
        return;
    }
    output.fill(0.0);
    for x in input.chunks_exact(channels) {
        for (o, x) in output.iter_mut().zip(x) {
            *o += *x;
        }
    }
    let count = positions as f32;
    output.iter_mut().for_each(|o| *o /= count);
}
