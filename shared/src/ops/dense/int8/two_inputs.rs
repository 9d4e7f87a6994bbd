//! The Cortex-M4's paired form over two inputs at once (two output positions of a pointwise
//! convolution through one layer): the weights are read and widened once for both, so a step of
//! four inputs, two outputs and two inputs (16 multiply-accumulates) is 12 instructions instead of
//! the single-input loop's 14, in cycles 18 instead of 20 (one `LDM` of four words, one `LDRD`,
//! two `SXTB16`, eight `SMLAD`). Each 4-output block of the paired weights is walked twice, two
//! outputs at a time (`LDRD` with a 16-byte step reads a group's two outputs' words); each pair of
//! outputs is requantized with its channel's parameters loaded once.

use super::cortex_m4::{dense_paired, split_paired};
use super::{paired, QuantLayer};
use crate::ops::activation::Activation;
use crate::ops::dsp::job_asm;
use core::mem::MaybeUninit;

/// The widest input the two-input path takes (its stack scratch: four words per group of four
/// inputs, 1 KiB); wider ones run the single-input path twice.
pub const MAX_INPUTS: usize = 256;

/// What [`two_blocks`] reads and advances, at the offsets its `asm!` loads them from.
#[repr(C)]
struct TwoJob {
    /// Both inputs split and interleaved per group, `X_a, Y_a, X_b, Y_b` (offset 0), and their end (4).
    x: *const u32,
    x_end: *const u32,
    /// The accumulators' start (8..24).
    zeros: [i32; 4],
    /// The next channel's bias (24), multiplier (28), right shift (32), the two outputs (36, 40).
    bias: *const i32,
    multipliers: *const i32,
    shifts: *const i8,
    out_a: *mut i8,
    out_b: *mut i8,
    /// The output zero point (44).
    zero: i32,
    /// The end of the first input's whole blocks of outputs (48).
    out_a_end: *mut i8,
    /// How far the weights go back between a block's two halves: its bytes less 8 (52).
    rewind: u32,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(TwoJob, x) == 0 && offset_of!(TwoJob, x_end) == 4 && offset_of!(TwoJob, zeros) == 8);
    assert!(offset_of!(TwoJob, bias) == 24 && offset_of!(TwoJob, multipliers) == 28);
    assert!(offset_of!(TwoJob, shifts) == 32 && offset_of!(TwoJob, out_a) == 36);
    assert!(offset_of!(TwoJob, out_b) == 40 && offset_of!(TwoJob, zero) == 44);
    assert!(offset_of!(TwoJob, out_a_end) == 48 && offset_of!(TwoJob, rewind) == 52);
};

/// `a` and `b` through a layer in the paired form, into `out_a` and `out_b`: both inputs a
/// multiple of 8 wide (at most [`MAX_INPUTS`]) and whole blocks of four outputs run
/// [`two_blocks`]; any other shape runs [`dense_paired`] on each.
pub(super) fn dense_paired_two(a: &[i8], b: &[i8], layer: &QuantLayer<'_>, out_a: &mut [i8], out_b: &mut [i8]) {
    let (n, n_out) = (a.len(), out_a.len());
    if n == 0
        || !n.is_multiple_of(8)
        || n > MAX_INPUTS
        || b.len() != n
        || out_b.len() != n_out
        || !n_out.is_multiple_of(4)
        || !layer.fits(n, n_out)
        || !(layer.weights.as_ptr() as usize).is_multiple_of(4)
    {
        dense_paired(a, layer, out_a);
        dense_paired(b, layer, out_b);
        return;
    }
    let mut split = [MaybeUninit::<u32>::uninit(); MAX_INPUTS];
    let groups = a.as_chunks::<4>().0.iter().zip(b.as_chunks::<4>().0);
    for ((xa, xb), words) in groups.zip(split.chunks_exact_mut(4)) {
        let ([xa, ya], [xb, yb]) = (split_paired(xa), split_paired(xb));
        words[0].write(xa);
        words[1].write(ya);
        words[2].write(xb);
        words[3].write(yb);
    }
    // SAFETY: the first `n` words were just written (four per group of four inputs)
    let x = unsafe { core::slice::from_raw_parts(split.as_ptr() as *const u32, n) };
    let (outs_a, outs_b) = (out_a.as_mut_ptr_range(), out_b.as_mut_ptr());
    let mut job = TwoJob {
        x: x.as_ptr(),
        x_end: x.as_ptr_range().end,
        zeros: [0; 4],
        bias: layer.bias.as_ptr(),
        multipliers: layer.multipliers.as_ptr(),
        shifts: layer.shifts.as_ptr(),
        out_a: outs_a.start,
        out_b: outs_b,
        zero: layer.output_zero as i32,
        out_a_end: outs_a.end,
        rewind: (4 * n - 8) as u32,
    };
    // SAFETY: `x` is word aligned and `n` words, a non-zero multiple of 8 (16 for the four-group
    // loop, n of 16); the weights hold `n_out * n` word-aligned bytes in the blocked paired order,
    // the biases, multipliers and right shifts `n_out` entries, as both outputs (the layer fits
    // its shape), `n_out` a non-zero multiple of 4
    unsafe {
        match (layer.activation == Activation::Relu, n.is_multiple_of(16)) {
            (true, true) => two_blocks_relu_16(&mut job, layer.weights.as_ptr()),
            (true, false) => two_blocks_relu(&mut job, layer.weights.as_ptr()),
            (false, true) => two_blocks_16(&mut job, layer.weights.as_ptr()),
            (false, false) => two_blocks(&mut job, layer.weights.as_ptr()),
        }
    }
}

/// One group's step: both inputs' `X`, `Y` words (`r6`, `r7`; `r9`, `r10`) by one `LDM`, two
/// outputs' paired weight words (`r11`, `r12`) by one `LDRD` (to the next group: 16 bytes on);
/// per output one `SXTB16` and four `SMLAD` (accumulators `r3`, `r5`: the first output of inputs
/// a and b; `r4`, `r8`: the second).
macro_rules! two_step {
    () => {
        concat!(
            "ldmia r0!, {{r6, r7, r9, r10}}\n",
            "ldrd r11, r12, [r2], #16\n",
            "sxtb16 lr, r11\n",
            "smlad r3, r7, lr, r3\n",
            "smlad r3, r6, r11, r3\n",
            "smlad r5, r10, lr, r5\n",
            "smlad r5, r9, r11, r5\n",
            "sxtb16 lr, r12\n",
            "smlad r4, r7, lr, r4\n",
            "smlad r4, r6, r12, r4\n",
            "smlad r8, r10, lr, r8\n",
            "smlad r8, r9, r12, r8\n",
        )
    };
}

/// One output channel for both inputs (accumulators `$a`, `$b`): the channel's bias,
/// multiplier and right shift loaded once, then each as the paired Dense form requantizes
/// (`(acc >> 8) + bias`, `SMMUL`, the right shift with one rounding, ReLU by `USAT` when asked,
/// the zero point, `SSAT`), stored to each output.
macro_rules! finish_two {
    ($a:literal, $b:literal) => {
        finish_two!($a, $b, "")
    };
    ($a:literal, $b:literal, relu) => {
        finish_two!($a, $b, concat!("usat ", $a, ", #16, ", $a, "\n", "usat ", $b, ", #16, ", $b, "\n"))
    };
    ($a:literal, $b:literal, $relu:expr) => {
        concat!(
            "ldr r11, [r0], #4\n",
            "add ",
            $a,
            ", r11, ",
            $a,
            ", asr #8\n",
            "add ",
            $b,
            ", r11, ",
            $b,
            ", asr #8\n",
            "ldr r11, [r1], #4\n",
            "smmul ",
            $a,
            ", ",
            $a,
            ", r11\n",
            "smmul ",
            $b,
            ", ",
            $b,
            ", r11\n",
            "ldrb r11, [r6], #1\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", r11\n",
            "asr ",
            $b,
            ", ",
            $b,
            ", r11\n",
            "adds ",
            $a,
            ", ",
            $a,
            ", #1\n",
            "adds ",
            $b,
            ", ",
            $b,
            ", #1\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", #1\n",
            "asr ",
            $b,
            ", ",
            $b,
            ", #1\n",
            $relu,
            "add ",
            $a,
            ", ",
            $a,
            ", r10\n",
            "add ",
            $b,
            ", ",
            $b,
            ", r10\n",
            "ssat ",
            $a,
            ", #8, ",
            $a,
            "\n",
            "ssat ",
            $b,
            ", #8, ",
            $b,
            "\n",
            "strb ",
            $a,
            ", [r7], #1\n",
            "strb ",
            $b,
            ", [r9], #1\n",
        )
    };
}

/// Every whole block of four outputs for both inputs: its first two outputs over every group,
/// their requantization, the weights back to the block's third output, the last two.
macro_rules! two_blocks {
    ($(#[$doc:meta])* $name:ident, [$($step:ident),+] $(, $relu:ident)?) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `job.x .. job.x_end` must be word aligned, four words per group of four inputs, a
        /// non-zero multiple of the groups per turn of the loop; `w` word aligned with
        /// `job.rewind + 8` weights per block of four outputs; `job`'s other pointers must reach
        /// `job.out_a_end - job.out_a` entries, a non-zero multiple of 4.
        unsafe fn $name(job: &mut TwoJob, w: *const i8) {
            // SAFETY: the caller's contract (above) covers every load and store; `job`'s layout
            // is the one the offsets assume (checked at compile time); r6/r7 and the two words
            // pushed are restored before the loop ends
            unsafe { job_asm!(
                job as *mut TwoJob,
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
                finish_two!("r3", "r5" $(, $relu)?),
                finish_two!("r4", "r8" $(, $relu)?),
                "stm r12, {{r0, r1, r6, r7, r9}}",
                "ldr r11, [lr, #52]",
                "sub r2, r2, r11",
                "ldm lr, {{r0, r1, r3, r4, r5, r8}}",
                "4:",
                $($step!(),)+
                "cmp r0, r1",
                "bne 4b",
                "ldr lr, [sp]",
                "add r12, lr, #24",
                "ldm r12, {{r0, r1, r6, r7, r9, r10}}",
                finish_two!("r3", "r5" $(, $relu)?),
                finish_two!("r4", "r8" $(, $relu)?),
                "stm r12, {{r0, r1, r6, r7, r9}}",
                "subs r2, r2, #8",
                "ldr r11, [lr, #48]",
                "cmp r7, r11",
                "bne 2b",
            ) };
        }
    };
}

two_blocks!(
    /// Both inputs, linear, two groups per turn of the loop.
    two_blocks,
    [two_step, two_step]
);
two_blocks!(
    /// [`two_blocks`] with ReLU.
    two_blocks_relu,
    [two_step, two_step],
    relu
);
two_blocks!(
    /// [`two_blocks`] four groups per turn of the loop (inputs a multiple of 16 wide).
    two_blocks_16,
    [two_step, two_step, two_step, two_step]
);
two_blocks!(
    /// [`two_blocks_16`] with ReLU.
    two_blocks_relu_16,
    [two_step, two_step, two_step, two_step],
    relu
);

// The paired form's split is what the two-input path interleaves.
const _: () = assert!(MAX_INPUTS <= paired::MAX_INPUTS);
