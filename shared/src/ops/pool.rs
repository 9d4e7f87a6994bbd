//! Pooling, f32: Keras's `MaxPooling2D`, `AveragePooling2D` and `GlobalAveragePooling2D` over
//! NHWC maps. Scratch: none.
//!
//! Bit-exactness invariant: a maximum starts from the window's first tap inside the input and
//! takes each later one that is greater (`>`; a NaN first tap stays); an average is `0 + x` for
//! each tap inside the input in kernel order, then one division by their count, as f32. Padded
//! taps are not counted (Keras, TFLite, ONNX's `count_include_pad = 0`).
//!
//! int8 (TensorFlow Lite's `MAX_POOL_2D` and `AVERAGE_POOL_2D`): the output keeps the input's
//! scale and zero point; a maximum is exact, an average is the integer sum of the taps inside the
//! input divided by their count and rounded half away from zero ([`rounded_mean`]). The global
//! average is that average over the whole map (TFLite's average pooling with a window the map's
//! size).

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

/// `round(sum / count)`, halves away from zero, as TensorFlow Lite's int8 average pooling
/// computes it (`(sum ± count / 2) / count`, truncating), saturated to int8. `count > 0`.
#[inline(always)]
pub fn rounded_mean(sum: i32, count: i32) -> i8 {
    let half = count / 2;
    let q = if sum > 0 { (sum + half) / count } else { (sum - half) / count };
    q.clamp(-128, 127) as i8
}

/// `MaxPooling2D`, int8: `output` is `(out rows, out cols, channels)` at the input's quantization.
pub fn max_pool_i8(at: &Placement, input: &[i8], output: &mut [i8]) {
    pool_i8(at, input, output, |taps| taps.fold(i8::MIN, i8::max));
}

/// `AveragePooling2D`, int8: `output` is `(out rows, out cols, channels)` at the input's
/// quantization.
pub fn average_pool_i8(at: &Placement, input: &[i8], output: &mut [i8]) {
    pool_i8(at, input, output, |taps| {
        let (sum, count) = taps.fold((0i32, 0i32), |(s, n), x| (s + x as i32, n + 1));
        rounded_mean(sum, count.max(1))
    });
}

/// Each output value from the values of its channel at the taps inside the input.
#[inline(always)]
fn pool_i8(at: &Placement, input: &[i8], output: &mut [i8], reduce: impl Fn(&mut dyn Iterator<Item = i8>) -> i8) {
    let channels = at.input.channels;
    if input.len() != at.input.len() || output.len() != at.positions() * channels || channels == 0 {
        return;
    }
    let (_, cols) = at.output_size();
    for (position, out) in output.chunks_exact_mut(channels).enumerate() {
        let (row, col) = (position / cols, position % cols);
        for (c, o) in out.iter_mut().enumerate() {
            *o = reduce(&mut at.taps(row, col).map(|(_, pixel)| input[pixel * channels + c]));
        }
    }
}

/// `GlobalAveragePooling2D`, int8: each channel's sum over the map, [`rounded_mean`] by the
/// positions; `output` has one value per channel, at the input's quantization.
pub fn global_average_pool_i8(input: &[i8], output: &mut [i8]) {
    let channels = output.len();
    let positions = input.len().checked_div(channels).unwrap_or(0);
    if positions == 0 || positions * channels != input.len() {
        return;
    }
    for (c, o) in output.iter_mut().enumerate() {
        let sum = input.iter().skip(c).step_by(channels).fold(0i32, |s, x| s + *x as i32);
        *o = rounded_mean(sum, positions as i32);
    }
}
