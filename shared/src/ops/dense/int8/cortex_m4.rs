//! The Cortex-M4 path of the int8 dense layer: four output channels at a time, four inputs per
//! step; each input word is split into its even and odd bytes once (`SXTB16`), each weight word
//! likewise, and `SMLAD` does two multiply-accumulates per instruction. The inner loop is written
//! out in `asm!` ([`block_pairs`]): it needs 14 registers, one `LDM` brings a group's 16 weights,
//! and LLVM's own schedule spilled an accumulator.

use super::{finish, finish_with, paired, scratch_bytes, QuantLayer, WeightForm, SPLIT_MAX};
use crate::ops::activation::Activation;
use crate::ops::dsp::{job_asm, smlad, ssub16, sxtb16, sxtb16_ror8, word};
use core::mem::MaybeUninit;

// The stack arrays below are the scratch `scratch_bytes` states.
const _: () = assert!(core::mem::size_of::<[u32; SPLIT_MAX / 2]>() == scratch_bytes(WeightForm::Blocked));
const _: () = assert!(core::mem::size_of::<[u32; paired::MAX_INPUTS / 2]>() == scratch_bytes(WeightForm::Paired));

/// `acc + x . w` over one word of each: two `SMLAD` on the even and the odd bytes.
#[inline(always)]
fn mac4(x_even: u32, x_odd: u32, w: u32, acc: i32) -> i32 {
    smlad(x_odd, sxtb16_ror8(w), smlad(x_even, sxtb16(w), acc))
}

fn tail(input: &[i8], row: &[i8], acc: i32) -> i32 {
    input.iter().zip(row).fold(acc, |a, (x, w)| a + *x as i32 * *w as i32)
}

pub(super) fn dense(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    let n = input.len();
    // `LDM` needs word-aligned weights (the firmware's are; see `Aligned`)
    let aligned = (layer.weights.as_ptr() as usize).is_multiple_of(4);
    if n == 0 || !n.is_multiple_of(8) || n > SPLIT_MAX || !aligned {
        return dense_general(input, layer, output);
    }
    // the inputs split into halfword pairs once for all blocks
    let mut split = [MaybeUninit::<u32>::uninit(); SPLIT_MAX / 2];
    for (x, halves) in input.as_chunks::<4>().0.iter().zip(split.chunks_exact_mut(2)) {
        let x = word(x);
        halves[0].write(sxtb16(x));
        halves[1].write(sxtb16_ror8(x));
    }
    // SAFETY: the first `n / 2` words were just written
    let words = unsafe { core::slice::from_raw_parts(split.as_ptr() as *const u32, n / 2) };
    dense_split(words, layer, output);
}

/// One group of four inputs as the paired form's `X` and `Y` words ([`paired::split_group`]).
#[inline(always)]
pub(super) fn split_paired(x: &[i8; 4]) -> [u32; 2] {
    let ones = 0x007f_007f; // 127 in both halfwords
    let x = word(x);
    let low = ssub16(sxtb16_ror8(x), ones);
    [low, ssub16((x << 8) & 0xff00_ff00, low)]
}

/// A layer in the paired form ([`paired`]): its inputs split into the form's `X`, `Y` words once,
/// then every whole block, requantization included, in one `asm!` loop ([`paired_blocks`]): 30
/// instructions per 32 multiply-accumulates and 12 per output.
pub(super) fn dense_paired(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    let n = input.len();
    if !n.is_multiple_of(8)
        || n > paired::MAX_INPUTS
        || !layer.fits(n, output.len())
        || !(layer.weights.as_ptr() as usize).is_multiple_of(4)
    {
        return paired::dense_portable(input, layer, output);
    }
    let mut split = [MaybeUninit::<u32>::uninit(); paired::MAX_INPUTS / 2];
    for (x, words) in input.as_chunks::<4>().0.iter().zip(split.chunks_exact_mut(2)) {
        let [low, high] = split_paired(x);
        words[0].write(low);
        words[1].write(high);
    }
    // SAFETY: the first `n / 2` words were just written
    let x = unsafe { core::slice::from_raw_parts(split.as_ptr() as *const u32, n / 2) };
    let whole_blocks = output.len() / 4 * 4;
    let rest = &layer.weights[whole_blocks * n..];
    if x.is_empty() {
        // the loop below would never end on an empty input
        return paired::dense_portable(input, layer, output);
    }
    if whole_blocks > 0 {
        // one mutable borrow for both ends: the pointers stay valid until the asm has run
        let outputs = output[..whole_blocks].as_mut_ptr_range();
        let mut job = PairedJob {
            x: x.as_ptr(),
            x_end: x.as_ptr_range().end,
            zeros: [0; 4],
            bias: layer.bias.as_ptr(),
            multipliers: layer.multipliers.as_ptr(),
            shifts: layer.shifts.as_ptr(),
            out: outputs.start,
            out_end: outputs.end,
            zero: layer.output_zero as i32,
        };
        // SAFETY: `x` is word aligned and a non-zero multiple of 16 bytes (n is of 8); the
        // weights hold `whole_blocks * n` word-aligned bytes, the biases, multipliers, right shifts
        // and outputs at least `whole_blocks` entries (the layer fits its shape)
        unsafe {
            if layer.activation == Activation::Relu {
                paired_blocks_relu(&mut job, layer.weights.as_ptr())
            } else {
                paired_blocks(&mut job, layer.weights.as_ptr())
            }
        }
    }
    for (k, row) in rest.chunks_exact(n).enumerate() {
        let o = whole_blocks + k;
        let acc = x.chunks_exact(2).zip(row.as_chunks::<4>().0).fold(0, |acc, (xy, w)| {
            let w = word(w);
            smlad(xy[0], w, smlad(xy[1], sxtb16(w), acc))
        });
        output[o] = finish_with((acc >> 8) + layer.bias[o], layer.multipliers[o], -2 - layer.shifts[o], layer);
    }
}

/// Inputs a multiple of 8 wide, split (`x`: even then odd halfword pairs of each group), and
/// word-aligned weights: every block is one call of [`block_pairs_split`].
fn dense_split(x: &[u32], layer: &QuantLayer<'_>, output: &mut [i8]) {
    let n = 2 * x.len();
    let whole_blocks = output.len() / 4 * 4;
    let (blocks, rest) = layer.weights.split_at(whole_blocks * n);
    let params = layer.bias.chunks_exact(4).zip(layer.multipliers.chunks_exact(4)).zip(layer.shifts.chunks_exact(4));
    for ((block, out), ((bias, multipliers), shifts)) in
        blocks.chunks_exact(4 * n).zip(output.chunks_exact_mut(4)).zip(params)
    {
        // SAFETY: `x` is word aligned and a non-zero multiple of 16 bytes (n is of 8); `block`
        // holds `4 * n` word-aligned bytes (`4 * n` from a word-aligned start)
        let acc = unsafe {
            block_pairs_split(x.as_ptr(), x.as_ptr().add(x.len()), block.as_ptr(), [bias[0], bias[1], bias[2], bias[3]])
        };
        for k in 0..4 {
            out[k] = finish_with(acc[k], multipliers[k], shifts[k], layer);
        }
    }
    for (k, row) in rest.chunks_exact(n).enumerate() {
        let o = whole_blocks + k;
        let mut acc = layer.bias[o];
        for (halves, w) in x.chunks_exact(2).zip(row.as_chunks::<4>().0) {
            let w = word(w);
            acc = smlad(halves[1], sxtb16_ror8(w), smlad(halves[0], sxtb16(w), acc));
        }
        output[o] = finish(acc, layer, o);
    }
}

/// Any shape: the raw-input `asm!` loop over the pairs of groups of word-aligned weights, the rest
/// in Rust.
fn dense_general(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    let (n, n_out) = (input.len(), output.len());
    let whole_blocks = n_out / 4 * 4;
    let (blocks, rest) = layer.weights.split_at(whole_blocks * n);
    let x_tail = input.chunks_exact(4).remainder();
    // `LDM` needs word-aligned weights (the firmware's are; see `Aligned`)
    let aligned = (layer.weights.as_ptr() as usize).is_multiple_of(4);
    let params = layer.bias.chunks_exact(4).zip(layer.multipliers.chunks_exact(4)).zip(layer.shifts.chunks_exact(4));
    let blocks = blocks.chunks_exact((4 * n).max(1)).zip(output.chunks_exact_mut(4)).zip(params);
    for ((block, out), ((bias, multipliers), shifts)) in blocks {
        let (grouped, tails) = block.split_at(4 * (n - x_tail.len()));
        let pairs = grouped.len() / 32;
        let mut acc = [bias[0], bias[1], bias[2], bias[3]];
        let mut rest_groups = grouped;
        if pairs > 0 && aligned {
            // SAFETY: `grouped` holds `32 * pairs` word-aligned bytes (checked above) and `input`
            // `8 * pairs` bytes from their starts
            acc = unsafe { block_pairs(input.as_ptr(), input.as_ptr().add(8 * pairs), grouped.as_ptr(), acc) };
            rest_groups = &grouped[32 * pairs..];
        }
        let done = (grouped.len() - rest_groups.len()) / 4;
        for (x, w) in input[done..].as_chunks::<4>().0.iter().zip(rest_groups.as_chunks::<16>().0) {
            let x = word(x);
            let (x_even, x_odd) = (sxtb16(x), sxtb16_ror8(x));
            for (a, w) in acc.iter_mut().zip(w.as_chunks::<4>().0) {
                *a = mac4(x_even, x_odd, word(w), *a);
            }
        }
        if !x_tail.is_empty() {
            for (a, row_tail) in acc.iter_mut().zip(tails.chunks_exact(x_tail.len())) {
                *a = tail(x_tail, row_tail, *a);
            }
        }
        for k in 0..4 {
            out[k] = finish_with(acc[k], multipliers[k], shifts[k], layer);
        }
    }
    for (k, row) in rest.chunks_exact(n).enumerate() {
        let o = whole_blocks + k;
        let mut acc = layer.bias[o];
        for (x, w) in input.as_chunks::<4>().0.iter().zip(row.as_chunks::<4>().0) {
            let x = word(x);
            acc = mac4(sxtb16(x), sxtb16_ror8(x), word(w), acc);
        }
        output[o] = finish(tail(x_tail, row.chunks_exact(4).remainder(), acc), layer, o);
    }
}

/// One group's step in [`block_pairs`]: four inputs split into halfword pairs (`lr` even, `r6`
/// odd), the block's 16 weights by one `LDM`, two `SMLAD` per output (accumulators `r3`, `r4`, `r5`,
/// `r8`); each weight register, once used, becomes the next output's scratch.
macro_rules! group_step {
    () => {
        concat!(
            "ldr r6, [r0], #4\n",
            "ldmia r2!, {{r9, r10, r11, r12}}\n",
            "sxtb16 lr, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "sxtb16 r7, r9\n",
            "smlad r3, lr, r7, r3\n",
            "sxtb16 r9, r9, ror #8\n",
            "smlad r3, r6, r9, r3\n",
            "sxtb16 r9, r10\n",
            "smlad r4, lr, r9, r4\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlad r4, r6, r10, r4\n",
            "sxtb16 r10, r11\n",
            "smlad r5, lr, r10, r5\n",
            "sxtb16 r11, r11, ror #8\n",
            "smlad r5, r6, r11, r5\n",
            "sxtb16 r11, r12\n",
            "smlad r8, lr, r11, r8\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r8, r6, r12, r8\n",
        )
    };
}

/// [`group_step`] with the inputs already split: `r6` even, `r7` odd halfword pairs by one `LDM`.
macro_rules! split_group_step {
    () => {
        concat!(
            "ldmia r0!, {{r6, r7}}\n",
            "ldmia r2!, {{r9, r10, r11, r12}}\n",
            "sxtb16 lr, r9\n",
            "smlad r3, r6, lr, r3\n",
            "sxtb16 r9, r9, ror #8\n",
            "smlad r3, r7, r9, r3\n",
            "sxtb16 r9, r10\n",
            "smlad r4, r6, r9, r4\n",
            "sxtb16 r10, r10, ror #8\n",
            "smlad r4, r7, r10, r4\n",
            "sxtb16 r10, r11\n",
            "smlad r5, r6, r10, r5\n",
            "sxtb16 r11, r11, ror #8\n",
            "smlad r5, r7, r11, r5\n",
            "sxtb16 r11, r12\n",
            "smlad r8, r6, r11, r8\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r8, r7, r12, r8\n",
        )
    };
}

/// One block's loop over pairs of groups, `$step` twice per turn, the accumulators (`r3`, `r4`,
/// `r5`, `r8`) starting from `acc`: a function of the inputs `x .. x_end`, the block's weights `w`
/// and `acc`. r6 and r7 are LLVM's (base and frame pointer): saved on the stack and restored.
macro_rules! block_loop {
    ($(#[$doc:meta])* $name:ident, $x:ty, $step:ident) => {
        $(#[$doc])*
        unsafe fn $name(x: *const $x, x_end: *const $x, w: *const i8, acc: [i32; 4]) -> [i32; 4] {
            let [mut a0, mut a1, mut a2, mut a3] = acc;
            // SAFETY: the caller's contract (above) covers every load; the loop writes only the
            // registers it declares, and r6/r7 are restored before it ends
            unsafe { core::arch::asm!(
                "push {{r6, r7}}",
                "2:",
                $step!(),
                $step!(),
                "cmp r0, r1",
                "bne 2b",
                "pop {{r6, r7}}",
                inout("r0") x => _,
                in("r1") x_end,
                inout("r2") w => _,
                inout("r3") a0,
                inout("r4") a1,
                inout("r5") a2,
                inout("r8") a3,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                out("r12") _,
                out("lr") _,
                options(readonly),
            ) };
            [a0, a1, a2, a3]
        }
    };
}

block_loop!(
    /// `acc[k] + sum_i x[i] * w[k][i]` for one block over pairs of groups (eight inputs and 32
    /// weights per turn of the loop): 42 instructions per 32 multiply-accumulates.
    ///
    /// # Safety
    /// `x .. x_end` must be readable and a non-zero multiple of 8 bytes long; `w` must be word
    /// aligned with four times as many readable bytes.
    block_pairs,
    i8,
    group_step
);

block_loop!(
    /// [`block_pairs`] over inputs split beforehand (`x .. x_end`: even then odd halfword pairs of
    /// each group, word aligned): 38 instructions per 32 multiply-accumulates.
    ///
    /// # Safety
    /// `x .. x_end` must be readable, word aligned and a non-zero multiple of 16 bytes long; `w`
    /// must be word aligned with twice as many readable bytes.
    block_pairs_split,
    u32,
    split_group_step
);

/// One group's step in [`paired_blocks`]: the group's `X` (`r6`) and `Y` (`r7`) words and the
/// block's 16 paired weights by two `LDM`; per output one `SXTB16` and two `SMLAD`.
macro_rules! paired_group_step {
    () => {
        concat!(
            "ldmia r0!, {{r6, r7}}\n",
            "ldmia r2!, {{r9, r10, r11, r12}}\n",
            "sxtb16 lr, r9\n",
            "smlad r3, r7, lr, r3\n",
            "smlad r3, r6, r9, r3\n",
            "sxtb16 r9, r10\n",
            "smlad r4, r7, r9, r4\n",
            "smlad r4, r6, r10, r4\n",
            "sxtb16 r10, r11\n",
            "smlad r5, r7, r10, r5\n",
            "smlad r5, r6, r11, r5\n",
            "sxtb16 r11, r12\n",
            "smlad r8, r7, r11, r8\n",
            "smlad r8, r6, r12, r8\n",
        )
    };
}

/// What [`paired_blocks`] reads and advances, at the offsets its `asm!` loads them from.
#[repr(C)]
struct PairedJob {
    /// The split inputs (offset 0) and their end (4).
    x: *const u32,
    x_end: *const u32,
    /// The accumulators' start (8..24).
    zeros: [i32; 4],
    /// The next block's biases (24), multipliers (28), right shifts (32) and outputs (36).
    bias: *const i32,
    multipliers: *const i32,
    shifts: *const i8,
    out: *mut i8,
    /// The end of the whole blocks' outputs (40).
    out_end: *mut i8,
    /// The output zero point (44).
    zero: i32,
}

// The asm of `paired_blocks` loads `PairedJob`'s fields at these offsets (`ldm` of the first
// six words; `add r12, lr, #24` then `ldm`/`stm` of the next six): the layout is checked here.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(PairedJob, x) == 0 && offset_of!(PairedJob, x_end) == 4);
    assert!(offset_of!(PairedJob, zeros) == 8);
    assert!(offset_of!(PairedJob, bias) == 24 && offset_of!(PairedJob, multipliers) == 28);
    assert!(offset_of!(PairedJob, shifts) == 32 && offset_of!(PairedJob, out) == 36);
    assert!(offset_of!(PairedJob, out_end) == 40 && offset_of!(PairedJob, zero) == 44);
};

/// The requantization of accumulator `$a` in [`paired_blocks`]: `(acc >> 8) + bias`, the high word
/// of its product with the multiplier, the right shift with one rounding, ReLU when asked (`USAT`:
/// below 0 is 0, and anything past 2^16 saturates at 127 anyway), the zero point, the int8 clamp.
macro_rules! finish_output {
    ($a:literal) => {
        finish_output!($a, "")
    };
    ($a:literal, relu) => {
        finish_output!($a, concat!("usat ", $a, ", #16, ", $a, "\n"))
    };
    ($a:literal, $relu:expr) => {
        concat!(
            "ldr r11, [r0], #4\n",
            "add ",
            $a,
            ", r11, ",
            $a,
            ", asr #8\n",
            "ldr r11, [r1], #4\n",
            "smmul ",
            $a,
            ", ",
            $a,
            ", r11\n",
            "ldrb r11, [r6], #1\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", r11\n",
            "adds ",
            $a,
            ", ",
            $a,
            ", #1\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", #1\n",
            $relu,
            "add ",
            $a,
            ", ",
            $a,
            ", r10\n",
            "ssat ",
            $a,
            ", #8, ",
            $a,
            "\n",
            "strb ",
            $a,
            ", [r7], #1\n",
        )
    };
}

/// Every whole block of a paired layer: per block the accumulators from zero, the loop of
/// [`paired_group_step`] over the split inputs, then the four outputs' requantization.
macro_rules! paired_blocks {
    ($(#[$doc:meta])* $name:ident, [$($step:ident),+] $(, $relu:ident)?) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `job.x .. job.x_end` must be word aligned and a non-zero multiple of 16 bytes; `w` word
        /// aligned, with `n` (twice the split words) weights per output; `job`'s other pointers
        /// must reach `(job.out_end - job.out)` entries, a non-zero multiple of 4.
        unsafe fn $name(job: &mut PairedJob, w: *const i8) {
            // SAFETY: the caller's contract (above) covers every load and store; `job`'s layout
            // is the one the offsets assume (checked at compile time); r6/r7 and the two words
            // pushed are restored before the loop ends
            unsafe { job_asm!(
                job as *mut PairedJob,
                w,
                "2:",
                "ldr lr, [sp]",
                "ldm lr, {{r0, r1, r3, r4, r5, r8}}",
                "3:",
                $($step!(),)+
                "cmp r0, r1",
                "bne 3b",
                "ldr lr, [sp]",
                "add r12, lr, #24",
                "ldm r12, {{r0, r1, r6, r7, r9, r10}}",
                finish_output!("r3" $(, $relu)?),
                finish_output!("r4" $(, $relu)?),
                finish_output!("r5" $(, $relu)?),
                finish_output!("r8" $(, $relu)?),
                "ldr lr, [sp]",
                "add r12, lr, #24",
                "stm r12, {{r0, r1, r6, r7}}",
                "cmp r7, r9",
                "bne 2b",
            ) };
        }
    };
}

paired_blocks!(
    /// The whole blocks of a paired layer without ReLU, into `job.out`.
    paired_blocks,
    [paired_group_step, paired_group_step]
);
paired_blocks!(
    /// [`paired_blocks`] with ReLU.
    paired_blocks_relu,
    [paired_group_step, paired_group_step],
    relu
);
