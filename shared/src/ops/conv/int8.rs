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
//! The Cortex-M4 runs depthwise layers of whole blocks of four channels in a paired form
//! ([`pair_depthwise_weights`]): each weight widened to a halfword, a block's four per tap in
//! the order `SMLABB`/`SMLATT` take them, the shifts as the Dense paired form's right shifts
//! (`cortex_m4`); [`depthwise_paired_portable`] runs the same form in plain Rust.
//!
//! Scratch: Conv2D gathers each window into a column of at most [`MAX_COLUMN`] bytes on the stack
//! (a 1×1 convolution reads its input in place), besides what the Dense kernel takes; the paired
//! depthwise path a row of [`MAX_PAIRED_CHANNELS`] zero points and [`MAX_PAIRED_TAPS`] tap
//! pointers ([`DEPTHWISE_SCRATCH_BYTES`]).

use crate::ops::dense::int8::{dense_i8, dense_i8_two, finish_with, paired, QuantLayer, WeightForm};
use crate::ops::window::{Inside, Placement};

/// The largest window `rows * cols * in channels` an int8 Conv2D takes: the Dense kernel's paired
/// form's widest input.
pub const MAX_COLUMN: usize = paired::MAX_INPUTS;

/// Stack scratch of an int8 convolution besides the Dense kernel's ([`crate::ops::dense::int8::scratch_bytes`]):
/// the gathered column.
pub const SCRATCH_BYTES: usize = MAX_COLUMN;

/// The most channels a depthwise layer in the paired form has (its row of zero points).
pub const MAX_PAIRED_CHANNELS: usize = 256;

/// The most taps (`rows * cols`) a depthwise layer in the paired form has (its table of tap
/// pointers).
pub const MAX_PAIRED_TAPS: usize = 25;

/// Stack scratch of the Cortex-M4's paired depthwise path: the zero points and the tap pointers.
pub const DEPTHWISE_SCRATCH_BYTES: usize = MAX_PAIRED_CHANNELS + 4 * MAX_PAIRED_TAPS;

/// Whether a depthwise layer of `channels` over a window of `taps` with these requantization
/// shifts can take the paired form: whole blocks of four channels, at most
/// [`MAX_PAIRED_CHANNELS`] and [`MAX_PAIRED_TAPS`], every shift in `-31..=-2` (the Dense paired
/// form's condition, [`paired::fits`]).
pub fn depthwise_pair_fits(channels: usize, taps: usize, shifts: &[i8]) -> bool {
    channels > 0
        && channels.is_multiple_of(4)
        && channels <= MAX_PAIRED_CHANNELS
        && (1..=MAX_PAIRED_TAPS).contains(&taps)
        && shifts.len() == channels
        && shifts.iter().all(|s| (-31..=-2).contains(s))
}

/// The paired form of depthwise weights `(taps, channels)`: per block of four channels `c..c + 4`,
/// per tap, the halfwords `w[c], w[c + 2], w[c + 1], w[c + 3]` (little-endian; the low and high
/// halves `SMLABB` and `SMLATT` take against the even and odd bytes of an input word).
/// `paired` must hold twice as many bytes as `plain`; `channels` a multiple of 4.
pub fn pair_depthwise_weights(plain: &[i8], taps: usize, channels: usize, paired: &mut [i8]) {
    let mut out = paired.chunks_exact_mut(2);
    for block in (0..channels / 4 * 4).step_by(4) {
        for tap in 0..taps {
            for k in [0, 2, 1, 3] {
                let w = plain.get(tap * channels + block + k).copied().unwrap_or(0) as i16;
                if let Some(slot) = out.next() {
                    let bytes = w.to_le_bytes();
                    slot[0] = bytes[0] as i8;
                    slot[1] = bytes[1] as i8;
                }
            }
        }
    }
}

/// The paired form ([`pair_depthwise_weights`], right shifts) run in plain Rust with the Cortex-M4
/// kernel's arithmetic: what the tests hold it to, and what a core without the DSP extension
/// runs for a layer in that form.
pub fn depthwise_paired_portable(
    at: &Placement,
    input: &[i8],
    input_zero: i8,
    layer: &QuantLayer<'_>,
    output: &mut [i8],
) {
    let channels = at.input.channels;
    let [rows, cols] = at.window.size;
    let taps = rows * cols;
    let weight = |block: usize, tap: usize, k: usize| {
        // `k`'s place in the block's halfwords: w[c], w[c + 2], w[c + 1], w[c + 3]
        let at = 2 * ((block * taps + tap) * 4 + [0, 2, 1, 3][k]);
        i16::from_le_bytes([layer.weights[at] as u8, layer.weights[at + 1] as u8]) as i32
    };
    let out_cols = at.output_size().1;
    for (position, out) in output.chunks_exact_mut(channels).enumerate() {
        let inside = at.inside(position / out_cols, position % out_cols);
        for (c, out) in out.iter_mut().enumerate() {
            let mut acc = layer.bias[c];
            for tap in 0..taps {
                let (ky, kx) = (tap / cols, tap % cols);
                let inside_tap =
                    (inside.rows.0..inside.rows.1).contains(&ky) && (inside.cols.0..inside.cols.1).contains(&kx);
                let x = if inside_tap { input[inside.pixel(ky, kx) * channels + c] } else { input_zero };
                acc = acc.wrapping_add(x as i32 * weight(c / 4, tap, c % 4));
            }
            *out = finish_with(acc, layer.multipliers[c], -2 - layer.shifts[c], layer);
        }
    }
    layer.lookup.apply(output);
}

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
        // a 1×1 window is always inside the input: each position's channels are its column, two
        // positions at a time through the kernel (its weights read once for both)
        let column = |position: usize| {
            let pixel = at.inside(position / out_cols, position % out_cols).pixel(0, 0);
            input.get(pixel * channels..(pixel + 1) * channels)
        };
        let mut outputs = output.chunks_exact_mut(2 * filters);
        for (pair, out) in (&mut outputs).enumerate() {
            let (out_a, out_b) = out.split_at_mut(filters);
            if let (Some(a), Some(b)) = (column(2 * pair), column(2 * pair + 1)) {
                dense_i8_two(a, b, layer, out_a, out_b);
            }
        }
        let last = outputs.into_remainder();
        if let (false, Some(x)) = (last.is_empty(), column(at.positions().saturating_sub(1))) {
            dense_i8(x, layer, last);
        }
        return;
    }
    let mut column = [input_zero; MAX_COLUMN];
    let column = &mut column[..column_len];
    for (position, out) in output.chunks_exact_mut(filters).enumerate() {
        let inside = at.inside(position / out_cols, position % out_cols);
        gather(&inside, (rows, cols), (input, at.input.width, channels), input_zero, column);
        dense_i8(column, layer, out);
    }
}

/// The window `inside` of a `(rows, cols)` kernel as one column in kernel order (rows, columns,
/// channels): the taps inside the input copied a kernel row at a time, the padded ones `zero`.
#[inline(always)]
fn gather(
    inside: &Inside,
    (rows, cols): (usize, usize),
    (input, input_width, channels): (&[i8], usize, usize),
    zero: i8,
    column: &mut [i8],
) {
    if inside.rows != (0, rows) || inside.cols != (0, cols) {
        // a word at a time, inline (see `copy_words`)
        let word = [zero; 4];
        let mut slots = column.chunks_exact_mut(4);
        for slot in &mut slots {
            if let Ok::<&mut [i8; 4], _>(slot) = slot.try_into() {
                *slot = word;
            }
        }
        slots.into_remainder().fill(zero);
    }
    let ((row0, row1), (col0, col1)) = (inside.rows, inside.cols);
    let n = (col1 - col0) * channels;
    // one kernel row of taps inside the input at a time, an input row further each
    let (mut from, mut to) = (inside.pixel(row0, col0) * channels, inside.tap(row0, col0) * channels);
    let (from_step, to_step) = (input_width * channels, cols * channels);
    for _ in row0..row1 {
        if let (Some(x), Some(slot)) = (input.get(from..from + n), column.get_mut(to..to + n)) {
            copy_words(x, slot);
        }
        from += from_step;
        to += to_step;
    }
}

/// `to.copy_from_slice(from)` a word at a time, inline: a window's rows are a few bytes each (a
/// library `memcpy` call costs more than the copy).
#[inline(always)]
fn copy_words(from: &[i8], to: &mut [i8]) {
    let (mut words, mut slots) = (from.chunks_exact(4), to.chunks_exact_mut(4));
    for (word, slot) in (&mut words).zip(&mut slots) {
        if let (Ok::<&[i8; 4], _>(word), Ok::<&mut [i8; 4], _>(slot)) = (word.try_into(), slot.try_into()) {
            *slot = *word;
        }
    }
    for (byte, slot) in words.remainder().iter().zip(slots.into_remainder()) {
        *slot = *byte;
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
        || [layer.bias.len(), layer.multipliers.len(), layer.shifts.len()] != [channels; 3]
    {
        return;
    }
    if layer.form == WeightForm::Paired {
        if layer.weights.len() != 2 * rows * cols * channels || !channels.is_multiple_of(4) {
            return;
        }
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        super::cortex_m4::depthwise_paired(at, input, input_zero, layer, output);
        #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
        depthwise_paired_portable(at, input, input_zero, layer, output);
        return;
    }
    if layer.weights.len() != rows * cols * channels {
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
