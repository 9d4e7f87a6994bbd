//! The Cortex-M4 path of the int8 depthwise convolution in its paired form
//! ([`super::int8::pair_depthwise_weights`]): per output position a table of the window's tap
//! pointers (a padded tap points at a row of zero points), then every block of four channels in
//! one `asm!` loop ([`depthwise_blocks`]): per tap one word of inputs split by two `SXTB16`, the
//! block's four halfword weights by one `LDRD`, four `SMLABB`/`SMLATT`; per output the Dense
//! kernel's paired requantization (`SMMUL`, right shift with one rounding, zero point, `SSAT`).

use super::int8::{MAX_PAIRED_CHANNELS, MAX_PAIRED_TAPS};
use crate::ops::activation::Activation;
use crate::ops::dense::int8::QuantLayer;
use crate::ops::dsp::job_asm;
use crate::ops::window::Placement;

/// What [`depthwise_blocks`] reads and advances, at the offsets its `asm!` loads them from.
#[repr(C)]
struct DepthwiseJob {
    /// The window's tap pointers (offset 0) and their end (4).
    taps: *const *const i8,
    taps_end: *const *const i8,
    /// The next block's biases (8), multipliers (12), right shifts (16) and outputs (20).
    bias: *const i32,
    multipliers: *const i32,
    shifts: *const i8,
    out: *mut i8,
    /// The end of the position's outputs (24).
    out_end: *mut i8,
    /// The output zero point (28).
    zero: i32,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(DepthwiseJob, taps) == 0 && offset_of!(DepthwiseJob, taps_end) == 4);
    assert!(offset_of!(DepthwiseJob, bias) == 8 && offset_of!(DepthwiseJob, multipliers) == 12);
    assert!(offset_of!(DepthwiseJob, shifts) == 16 && offset_of!(DepthwiseJob, out) == 20);
    assert!(offset_of!(DepthwiseJob, out_end) == 24 && offset_of!(DepthwiseJob, zero) == 28);
};

/// The paired form on the Cortex-M4: `layer` must be in it ([`super::int8::depthwise_pair_fits`]
/// its shape, the caller checked the lengths); weights not word aligned run the portable loop.
pub(super) fn depthwise_paired(
    at: &Placement,
    input: &[i8],
    input_zero: i8,
    layer: &QuantLayer<'_>,
    output: &mut [i8],
) {
    let channels = at.input.channels;
    let [rows, cols] = at.window.size;
    let taps = rows * cols;
    if !channels.is_multiple_of(4)
        || channels > MAX_PAIRED_CHANNELS
        || taps > MAX_PAIRED_TAPS
        || !(layer.weights.as_ptr() as usize).is_multiple_of(4)
    {
        return super::int8::depthwise_paired_portable(at, input, input_zero, layer, output);
    }
    let zeros = [input_zero; MAX_PAIRED_CHANNELS];
    let mut table = [zeros.as_ptr(); MAX_PAIRED_TAPS];
    let out_cols = at.output_size().1;
    for (position, out) in output.chunks_exact_mut(channels).enumerate() {
        let inside = at.inside(position / out_cols, position % out_cols);
        let ((row0, row1), (col0, col1)) = (inside.rows, inside.cols);
        for (ky, row) in table[..taps].chunks_exact_mut(cols).enumerate() {
            if !(row0..row1).contains(&ky) {
                row.fill(zeros.as_ptr());
                continue;
            }
            // the row's first tap inside, then one pixel further per tap (only ever read inside)
            let first = input.as_ptr().wrapping_add(inside.pixel(ky, col0) * channels);
            for (kx, tap) in row.iter_mut().enumerate() {
                *tap = match (col0..col1).contains(&kx) {
                    true => first.wrapping_add((kx - col0) * channels),
                    false => zeros.as_ptr(),
                };
            }
        }
        let out = out.as_mut_ptr_range();
        let mut job = DepthwiseJob {
            taps: table.as_ptr(),
            taps_end: table[..taps].as_ptr_range().end,
            bias: layer.bias.as_ptr(),
            multipliers: layer.multipliers.as_ptr(),
            shifts: layer.shifts.as_ptr(),
            out: out.start,
            out_end: out.end,
            zero: layer.output_zero as i32,
        };
        // SAFETY: every tap pointer starts `channels` readable bytes (an input pixel, or the row
        // of zero points); the weights are word aligned and hold `2 * taps * channels` bytes (the
        // paired form's length, checked by the caller), the biases, multipliers, shifts and the
        // position's outputs `channels` entries, a non-zero multiple of 4; `taps >= 1`
        unsafe {
            match (layer.activation == Activation::Relu, taps.is_multiple_of(3)) {
                (true, true) => depthwise_blocks_relu_3(&mut job, layer.weights.as_ptr()),
                (true, false) => depthwise_blocks_relu(&mut job, layer.weights.as_ptr()),
                (false, true) => depthwise_blocks_3(&mut job, layer.weights.as_ptr()),
                (false, false) => depthwise_blocks(&mut job, layer.weights.as_ptr()),
            }
        }
    }
}

/// The requantization of accumulator `$a`: the high word of its product with the multiplier, the
/// right shift with one rounding, ReLU when asked (`USAT`, as the paired Dense form), the zero
/// point, the int8 clamp, the store.
macro_rules! finish_channel {
    ($a:literal) => {
        finish_channel!($a, "")
    };
    ($a:literal, relu) => {
        finish_channel!($a, concat!("usat ", $a, ", #16, ", $a, "\n"))
    };
    ($a:literal, $relu:expr) => {
        concat!(
            "ldr r10, [r0], #4\n",
            "smmul ",
            $a,
            ", ",
            $a,
            ", r10\n",
            "ldrb r10, [r1], #1\n",
            "asr ",
            $a,
            ", ",
            $a,
            ", r10\n",
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
            ", r9\n",
            "ssat ",
            $a,
            ", #8, ",
            $a,
            "\n",
            "strb ",
            $a,
            ", [r6], #1\n",
        )
    };
}

/// One tap of a block: its pointer from the table (`r0`), the word of four channels at the block's
/// offset (`r12`), the block's four halfword weights (`r9`, `r10`), four multiply-accumulates.
macro_rules! depthwise_tap {
    () => {
        concat!(
            "ldr r6, [r0], #4\n",
            "ldr r6, [r6, r12]\n",
            "ldrd r9, r10, [r2], #8\n",
            "sxtb16 r7, r6\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlabb r3, r7, r9, r3\n",
            "smlatt r5, r7, r9, r5\n",
            "smlabb r4, r6, r10, r4\n",
            "smlatt r8, r6, r10, r8\n",
        )
    };
}

/// Every block of four channels of one output position: the accumulators from the biases, the
/// window's taps (the listed steps per turn of the loop), the four outputs' requantization.
macro_rules! depthwise_blocks {
    ($(#[$doc:meta])* $name:ident, [$($tap:ident),+] $(, $relu:ident)?) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Each of `job.taps .. job.taps_end` (at least one, a multiple of the steps per turn of
        /// the loop) must point at `n` readable bytes, `n`
        /// the number of outputs `job.out .. job.out_end` (a non-zero multiple of 4); `w` must be
        /// word aligned with `2 * n` bytes per tap, and `job`'s biases, multipliers and shifts `n`
        /// entries each.
        unsafe fn $name(job: &mut DepthwiseJob, w: *const i8) {
            // SAFETY: the caller's contract (above) covers every load and store; `job`'s layout
            // is the one the offsets assume (checked at compile time); r6/r7 and the two words
            // pushed are restored before the loop ends
            unsafe { job_asm!(
                job as *mut DepthwiseJob,
                w,
                "movs r12, #0",
                "2:",
                "ldr lr, [sp]",
                "ldr r1, [lr, #8]",
                "ldmia r1!, {{r3, r4, r5, r8}}",
                "str r1, [lr, #8]",
                "ldrd r0, r1, [lr]",
                "3:",
                $($tap!(),)+
                "cmp r0, r1",
                "bne 3b",
                "ldr lr, [sp]",
                "add r11, lr, #12",
                "ldm r11, {{r0, r1, r6, r7, r9}}",
                finish_channel!("r3" $(, $relu)?),
                finish_channel!("r4" $(, $relu)?),
                finish_channel!("r5" $(, $relu)?),
                finish_channel!("r8" $(, $relu)?),
                "stm r11, {{r0, r1, r6}}",
                "adds r12, r12, #4",
                "cmp r6, r7",
                "bne 2b",
            ) };
        }
    };
}

depthwise_blocks!(
    /// One position's every block of four channels, linear: 11 instructions per tap and 10 per
    /// output.
    depthwise_blocks,
    [depthwise_tap]
);

depthwise_blocks!(
    /// [`depthwise_blocks`] three taps per turn of the loop (windows of 3, 6, 9, ... taps): 29
    /// instructions per three taps.
    depthwise_blocks_3,
    [depthwise_tap, depthwise_tap, depthwise_tap]
);

depthwise_blocks!(
    /// [`depthwise_blocks`] with ReLU fused into the requantization (11 instructions per output).
    depthwise_blocks_relu,
    [depthwise_tap],
    relu
);

depthwise_blocks!(
    /// [`depthwise_blocks_3`] with ReLU fused into the requantization.
    depthwise_blocks_relu_3,
    [depthwise_tap, depthwise_tap, depthwise_tap],
    relu
);
