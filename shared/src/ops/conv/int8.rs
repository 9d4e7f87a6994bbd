//! The convolutions, int8: Keras's `Conv2D` as one gathered window per output position through
//! the int8 Dense kernel (so every path that kernel has runs it: `SMLAD` on the Cortex-M4, AVX2
//! on the host), and `DepthwiseConv2D`, four channels at a time (`SXTB16` and `SMLABB`/`SMLATT`
//! on the Cortex-M4, as CMSIS-NN's `arm_depthwise_conv_s8_opt` does).
//!
//! # The arithmetic, exactly
//!
//! Weights are symmetric per output channel and the input's zero point `zp` is folded into the
//! bias over every tap of the window, as the Dense operator folds it over every input
//! ([`crate::ops::dense::int8`]): `b[o] = round(bias / (s_in * s_w[o])) - zp * sum of w[o]`. A
//! padded tap reads `zp`, so it adds `zp * w` back, and
//!
//! ```text
//! acc[o] = b[o] + sum over the window of x * w = round(bias / (s_in s_w)) + sum over the taps inside of (x - zp) * w
//! ```
//!
//! which is TensorFlow Lite's sum (it skips padded taps and offsets each input by `-zp`). Integer
//! sums are exact, so every order and every path gives the same bits; each output is then
//! requantized per channel as a Dense output is (one rounding, TFLite's).
//!
//! Weights: Conv2D output-major `(filters, rows, cols, in channels)`, TFLite's OHWI, which is the
//! Dense kernel's output-major order over `rows * cols * in channels` inputs (and is blocked or
//! paired like it); DepthwiseConv2D `(rows, cols, channels)`, TFLite's layout.
//!
//! Scratch: Conv2D gathers each window into a column of at most [`MAX_COLUMN`] bytes on the stack
//! (a 1×1 convolution reads its input in place), besides what the Dense kernel takes; depthwise
//! none.

use crate::ops::dense::int8::{dense_i8, finish_with, paired, QuantLayer};
use crate::ops::window::{Inside, Placement};

/// The largest window `rows * cols * in channels` an int8 Conv2D takes: the Dense kernel's paired
/// form's widest input.
pub const MAX_COLUMN: usize = paired::MAX_INPUTS;

/// Stack scratch of an int8 convolution besides the Dense kernel's ([`crate::ops::dense::int8::scratch_bytes`]):
/// the gathered column.
pub const SCRATCH_BYTES: usize = MAX_COLUMN;

/// Keras's `Conv2D`, int8: `layer` holds the filters (see the module docs) over
/// `rows * cols * in channels` inputs; `output` is the `(out rows, out cols, filters)` map.
/// Lengths that do not match leave `output` as it was.
pub fn conv2d_i8(at: &Placement, input: &[i8], input_zero: i8, layer: &QuantLayer<'_>, output: &mut [i8]) {
    let (channels, filters) = (at.input.channels, layer.bias.len());
    let [rows, cols] = at.window.size;
    let column_len = rows * cols * channels;
    if input.len() != at.input.len()
        || filters == 0
        || output.len() != at.positions() * filters
        || column_len > MAX_COLUMN
        || !layer.fits(column_len, filters)
    {
        return;
    }
    let out_cols = at.output_size().1;
    if rows == 1 && cols == 1 {
        // a 1×1 window is always inside the input: each position's channels are its column
        for (position, out) in output.chunks_exact_mut(filters).enumerate() {
            let pixel = at.inside(position / out_cols, position % out_cols).pixel(0, 0);
            if let Some(x) = input.get(pixel * channels..(pixel + 1) * channels) {
                dense_i8(x, layer, out);
            }
        }
        return;
    }
    let mut column = [input_zero; MAX_COLUMN];
    let column = &mut column[..column_len];
    for (position, out) in output.chunks_exact_mut(filters).enumerate() {
        let inside = at.inside(position / out_cols, position % out_cols);
        gather(&inside, (rows, cols), input, channels, input_zero, column);
        dense_i8(column, layer, out);
    }
}

/// The window `inside` of a `(rows, cols)` kernel as one column in kernel order (rows, columns,
/// channels): the taps inside the input copied a kernel row at a time, the padded ones `zero`.
#[inline(always)]
fn gather(inside: &Inside, (rows, cols): (usize, usize), input: &[i8], channels: usize, zero: i8, column: &mut [i8]) {
    if inside.rows != (0, rows) || inside.cols != (0, cols) {
        column.fill(zero);
    }
    let (col0, col1) = inside.cols;
    let n = (col1 - col0) * channels;
    for ky in inside.rows.0..inside.rows.1 {
        let (from, to) = (inside.pixel(ky, col0) * channels, inside.tap(ky, col0) * channels);
        if let (Some(x), Some(slot)) = (input.get(from..from + n), column.get_mut(to..to + n)) {
            slot.copy_from_slice(x);
        }
    }
}

/// Keras's `DepthwiseConv2D` with one filter per channel, int8: `layer.weights` is
/// `(rows, cols, channels)`, one bias, multiplier and shift per channel; `output` is the
/// `(out rows, out cols, channels)` map. Lengths that do not match leave `output` as it was.
#[inline(never)] // its own registers: inlined into a network's loop, its accumulators spilled
pub fn depthwise_conv2d_i8(at: &Placement, input: &[i8], input_zero: i8, layer: &QuantLayer<'_>, output: &mut [i8]) {
    let channels = at.input.channels;
    let [rows, cols] = at.window.size;
    if input.len() != at.input.len()
        || channels == 0
        || output.len() != at.positions() * channels
        || layer.weights.len() != rows * cols * channels
        || [layer.bias.len(), layer.multipliers.len(), layer.shifts.len()] != [channels; 3]
    {
        return;
    }
    let out_cols = at.output_size().1;
    let zeros = u32::from_le_bytes([input_zero as u8; 4]);
    for (position, out) in output.chunks_exact_mut(channels).enumerate() {
        let inside = at.inside(position / out_cols, position % out_cols);
        let ((row0, row1), (col0, col1)) = (inside.rows, inside.cols);
        let padded = |ky: usize, kx: usize| !((row0..row1).contains(&ky) && (col0..col1).contains(&kx));
        let whole = inside.rows == (0, rows) && inside.cols == (0, cols);
        let mut c = 0;
        while c + 4 <= channels {
            let mut acc = [layer.bias[c], layer.bias[c + 1], layer.bias[c + 2], layer.bias[c + 3]];
            for ky in row0..row1 {
                let x = inside.pixel(ky, col0) * channels + c;
                let w = inside.tap(ky, col0) * channels + c;
                // SAFETY: taps `(ky, col0..col1)` are inside the input (`Placement::inside`), so
                // the words read at `x + k * channels` (k < col1 - col0) lie within the input's
                // `positions * channels` bytes, and those at `w + k * channels` within the
                // `rows * cols * channels` weights (both lengths checked above; `c + 4 <= channels`).
                acc = unsafe {
                    let (xp, wp) = (input.as_ptr().add(x), layer.weights.as_ptr().add(w));
                    match col1 - col0 {
                        3 => row_taps::<3>(xp, wp, channels, acc),
                        2 => row_taps::<2>(xp, wp, channels, acc),
                        n => {
                            (0..n).fold(acc, |acc, k| row_taps::<1>(xp.add(k * channels), wp.add(k * channels), 0, acc))
                        }
                    }
                };
            }
            if !whole {
                // padded taps read the zero point
                for ky in 0..rows {
                    for kx in (0..cols).filter(|kx| padded(ky, *kx)) {
                        acc = mac4(zeros, word_at(layer.weights, (ky * cols + kx) * channels + c), acc);
                    }
                }
            }
            for (k, acc) in acc.into_iter().enumerate() {
                out[c + k] = finish_with(acc, layer.multipliers[c + k], layer.shifts[c + k], layer);
            }
            c += 4;
        }
        for c in c..channels {
            let mut acc = layer.bias[c];
            for tap in 0..rows * cols {
                let (ky, kx) = (tap / cols, tap % cols);
                let x = if padded(ky, kx) { input_zero } else { input[inside.pixel(ky, kx) * channels + c] };
                acc = acc.wrapping_add(x as i32 * layer.weights[tap * channels + c] as i32);
            }
            out[c] = finish_with(acc, layer.multipliers[c], layer.shifts[c], layer);
        }
    }
    layer.lookup.apply(output);
}

/// `N` taps of four channels, `step` bytes apart in the input (`x`) and the weights (`w`), unrolled.
///
/// # Safety
///
/// The four bytes at `x + k * step` and at `w + k * step` must be readable for every `k < N`.
#[inline(always)]
unsafe fn row_taps<const N: usize>(x: *const i8, w: *const i8, step: usize, mut acc: [i32; 4]) -> [i32; 4] {
    for k in 0..N {
        // SAFETY: readable by the caller's contract (an unaligned word load)
        let (x, w) =
            unsafe { (x.add(k * step).cast::<u32>().read_unaligned(), w.add(k * step).cast::<u32>().read_unaligned()) };
        acc = mac4(x, w, acc);
    }
    acc
}

/// The little-endian word of the four bytes at `at` (0 past the end: the caller checked lengths).
#[inline(always)]
fn word_at(values: &[i8], at: usize) -> u32 {
    match values.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => 0,
    }
}

/// Four channels' `acc + x * w`: on the Cortex-M4 one word of each split into even and odd bytes
/// (`SXTB16`) and four halfword multiply-accumulates (`SMLABB`, `SMLATT`).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
fn mac4(x: u32, w: u32, acc: [i32; 4]) -> [i32; 4] {
    use crate::ops::dsp::{smlabb, smlatt, sxtb16, sxtb16_ror8};
    let (x_even, x_odd, w_even, w_odd) = (sxtb16(x), sxtb16_ror8(x), sxtb16(w), sxtb16_ror8(w));
    [
        smlabb(x_even, w_even, acc[0]),
        smlabb(x_odd, w_odd, acc[1]),
        smlatt(x_even, w_even, acc[2]),
        smlatt(x_odd, w_odd, acc[3]),
    ]
}

/// Four channels' `acc + x * w`, each a byte of the little-endian words `x` and `w` (wrapping:
/// the sums cannot overflow, see the Dense operator).
#[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
fn mac4(x: u32, w: u32, acc: [i32; 4]) -> [i32; 4] {
    let (x, w) = (x.to_le_bytes(), w.to_le_bytes());
    core::array::from_fn(|k| acc[k].wrapping_add(x[k] as i8 as i32 * w[k] as i8 as i32))
}
