//! The x86-64 paths of the int8 dense layer (the host's, chosen at run time), both walking the
//! blocked order four blocks (16 outputs) at a time so that each input group is prepared once:
//! AVX-VNNI (`VPDPBUSD`: 32 multiply-accumulates per instruction, weights offset to unsigned and
//! the offset's share subtracted once) where the CPU has it, else AVX2 (weights widened to i16,
//! `VPMADDWD`). Sums of integers wrap modulo 2^32, so both give the exact sums.

use super::{dot, finish, QuantLayer};
use core::arch::x86_64::*;

/// The AVX2 path. [`super::dense_i8_reference`]'s bits.
///
/// # Safety
/// The CPU must have AVX2, and `layer.fits(input.len(), output.len())`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dense_avx2(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    by_blocks(input, layer, output, |first, count, output| {
        // SAFETY: this CPU has AVX2 and the layer fits (this function's contract); `by_blocks`
        // passes whole blocks `first .. first + count` of the layer
        unsafe {
            match count {
                4 => blocks_avx2::<4>(input, layer, first, output),
                _ => blocks_avx2::<1>(input, layer, first, output),
            }
        }
    });
}

/// The AVX-VNNI path. [`super::dense_i8_reference`]'s bits.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI, and `layer.fits(input.len(), output.len())`.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn dense_vnni(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    // the weights go in offset by 128 (unsigned, as VPDPBUSD takes them), which adds
    // 128 * (sum of the grouped inputs) to every output's sum
    let grouped = &input[..input.len() / 4 * 4];
    let offset = grouped.iter().fold(0i32, |s, x| s.wrapping_add(*x as i32)).wrapping_mul(128);
    by_blocks(input, layer, output, |first, count, output| {
        // SAFETY: this CPU has AVX2 and AVX-VNNI and the layer fits (this function's contract);
        // `by_blocks` passes whole blocks `first .. first + count` of the layer
        unsafe {
            match count {
                4 => blocks_vnni::<4>(input, layer, first, offset, output),
                _ => blocks_vnni::<1>(input, layer, first, offset, output),
            }
        }
    });
}

/// Calls `blocks(first, count, output)` over the whole blocks, four at a time then one at a time,
/// and computes the outputs after the last whole block (plain output-major rows) itself.
#[inline(always)]
fn by_blocks(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8], mut blocks: impl FnMut(usize, usize, &mut [i8])) {
    let whole_blocks = output.len() / 4;
    let mut block = 0;
    while block < whole_blocks {
        let count = if block + 4 <= whole_blocks { 4 } else { 1 };
        blocks(block, count, output);
        block += count;
    }
    let n = input.len();
    for (k, out) in output[whole_blocks * 4..].iter_mut().enumerate() {
        let o = whole_blocks * 4 + k;
        *out = finish(dot(input, &layer.weights[o * n..(o + 1) * n], layer.bias[o]), layer, o);
    }
}

/// One pointer per block at its first weight; walked with wrapping arithmetic and read as byte
/// arrays, so builds that keep debug assertions add no per-step checks (the callers' length check
/// covers every read).
#[inline(always)]
fn block_starts<const B: usize>(layer: &QuantLayer<'_>, n: usize, first: usize) -> [*const i8; B] {
    core::array::from_fn(|k| layer.weights.as_ptr().wrapping_add((first + k) * 4 * n))
}

/// AVX2: blocks `first .. first + B`, each group's 16 weights widened to i16 and multiplied
/// pairwise against the group's four inputs repeated four times.
///
/// # Safety
/// The CPU must have AVX2; `layer.fits(input.len(), output.len())`, and blocks
/// `first .. first + B` must be whole blocks of the layer (`4 * (first + B) <= output.len()`):
/// every weight, bias and output read or written is then in bounds.
#[inline(always)]
unsafe fn blocks_avx2<const B: usize>(input: &[i8], layer: &QuantLayer<'_>, first: usize, output: &mut [i8]) {
    // SAFETY: the caller's contract above
    unsafe {
        let mut rows = block_starts::<B>(layer, input.len(), first);
        let mut acc = [_mm256_setzero_si256(); B];
        for x in input.chunks_exact(4) {
            let x = _mm256_cvtepi8_epi16(_mm_set1_epi32(i32::from_le_bytes(bytes::<4>(x))));
            for (a, row) in acc.iter_mut().zip(rows.iter_mut()) {
                let w = core::mem::transmute::<[i8; 16], __m128i>(*(*row as *const [i8; 16]));
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepi8_epi16(w), x));
                *row = row.wrapping_add(16);
            }
        }
        // lanes 2j and 2j + 1 hold output j's two pair sums; the in-lane pairwise add of two blocks
        // gives outputs 0, 1 | 2, 3 of the first and 0, 1 | 2, 3 of the second interleaved by 64-bit
        // halves, which the permutation puts in order
        let in_order = |a: __m256i, b: __m256i| _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(a, b));
        finish_blocks(&acc, in_order, input, layer, first, 0, output);
    }
}

/// AVX-VNNI: blocks `first .. first + B`, two groups (32 weights of a block) per instruction
/// against the two groups' inputs, each repeated four times.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI; `layer.fits(input.len(), output.len())`, and blocks
/// `first .. first + B` must be whole blocks of the layer (`4 * (first + B) <= output.len()`):
/// every weight, bias and output read or written is then in bounds.
#[inline(always)]
unsafe fn blocks_vnni<const B: usize>(
    input: &[i8],
    layer: &QuantLayer<'_>,
    first: usize,
    offset: i32,
    output: &mut [i8],
) {
    // SAFETY: the caller's contract above
    unsafe {
        let mut rows = block_starts::<B>(layer, input.len(), first);
        let mut acc = [_mm256_setzero_si256(); B];
        let flip = _mm256_set1_epi8(-128);
        let spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        let grouped = &input[..input.len() / 4 * 4];
        let pairs = grouped.chunks_exact(8);
        let last = pairs.remainder();
        for x in pairs {
            let x = _mm256_permutevar8x32_epi32(_mm256_set1_epi64x(i64::from_le_bytes(bytes::<8>(x))), spread);
            for (a, row) in acc.iter_mut().zip(rows.iter_mut()) {
                let w = core::mem::transmute::<[i8; 32], __m256i>(*(*row as *const [i8; 32]));
                *a = _mm256_dpbusd_avx_epi32(*a, _mm256_xor_si256(w, flip), x);
                *row = row.wrapping_add(32);
            }
        }
        if !last.is_empty() {
            // an odd group out: its weights in the low half, zero inputs against the high half
            let word = i32::from_le_bytes(bytes::<4>(last));
            let x = _mm256_setr_epi32(word, word, word, word, 0, 0, 0, 0);
            for (a, row) in acc.iter_mut().zip(rows.iter()) {
                let w = core::mem::transmute::<[i8; 16], __m128i>(*(*row as *const [i8; 16]));
                let w = _mm256_inserti128_si256::<0>(_mm256_setzero_si256(), w);
                *a = _mm256_dpbusd_avx_epi32(*a, _mm256_xor_si256(w, flip), x);
            }
        }
        // each lane holds one output's sum over every other group: the two 128-bit halves of two
        // blocks added give the two blocks' four outputs in order
        let in_order = |a: __m256i, b: __m256i| {
            _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(a, b), _mm256_permute2x128_si256::<0x31>(a, b))
        };
        finish_blocks(&acc, in_order, input, layer, first, offset, output);
    }
}

/// Outputs of blocks `first .. first + B` from their accumulators: `in_order(a, b)` turns two
/// blocks' accumulators into their eight sums in order; `offset` is subtracted from every sum.
/// Sixteen at a time in vector registers when there are four blocks, no input tail and every
/// multiplier takes the `s >= 33` path; else one output at a time.
///
/// # Safety
/// The CPU must have AVX2; `layer.fits(input.len(), output.len())`, and blocks
/// `first .. first + B` must be whole blocks of the layer (`4 * (first + B) <= output.len()`):
/// every weight, bias and output read or written is then in bounds.
#[inline(always)]
unsafe fn finish_blocks<const B: usize>(
    acc: &[__m256i; B],
    in_order: impl Fn(__m256i, __m256i) -> __m256i,
    input: &[i8],
    layer: &QuantLayer<'_>,
    first: usize,
    offset: i32,
    output: &mut [i8],
) {
    // SAFETY: the caller's contract above
    unsafe {
        let n = input.len();
        let x_tail = input.chunks_exact(4).remainder();
        let offset8 = _mm256_set1_epi32(offset);
        let mut sums = [0i32; 16];
        for (pair, slot) in acc.chunks(2).zip(sums.chunks_exact_mut(8)) {
            let (a, b) = (pair[0], pair.get(1).copied().unwrap_or(_mm256_setzero_si256()));
            let v = _mm256_sub_epi32(in_order(a, b), offset8);
            _mm256_storeu_si256(slot.as_mut_ptr() as *mut __m256i, v);
        }
        if B == 4 && x_tail.is_empty() && finish_16(&sums, layer, 4 * first, output) {
            return;
        }
        for k in 0..B {
            let block = first + k;
            let tails = &layer.weights[block * 4 * n + (n - x_tail.len()) * 4..(block + 1) * 4 * n];
            for j in 0..4 {
                let o = 4 * block + j;
                let row_tail = &tails[j * x_tail.len()..(j + 1) * x_tail.len()];
                output[o] = finish(dot(x_tail, row_tail, layer.bias[o].wrapping_add(sums[4 * k + j])), layer, o);
            }
        }
    }
}

/// Outputs `first .. first + 16` from their sums, eight lanes at a time: the bias, the
/// requantization of [`super::requantize`]'s `s >= 33` path (every calibrated layer's), the zero
/// point and the clamp. `false`, with nothing written, when a multiplier needs the general path.
///
/// # Safety
/// The CPU must have AVX2, and outputs `first .. first + 16` must exist in `output` and in the
/// layer's biases, multipliers and shifts.
#[inline(always)]
unsafe fn finish_16(sums: &[i32; 16], layer: &QuantLayer<'_>, first: usize, output: &mut [i8]) -> bool {
    // SAFETY: the caller's contract above
    unsafe {
        let shifts =
            core::mem::transmute::<[i8; 16], __m128i>(*(layer.shifts.as_ptr().wrapping_add(first) as *const [i8; 16]));
        // `s >= 33` is `shift <= -2`
        if _mm_movemask_epi8(_mm_cmpgt_epi8(shifts, _mm_set1_epi8(-2))) != 0 {
            return false;
        }
        let low = _mm256_set1_epi32(if layer.activation == crate::ops::activation::Activation::Relu {
            layer.output_zero as i32
        } else {
            -128
        });
        let zero = _mm256_set1_epi32(layer.output_zero as i32);
        let lanes = |values: *const i32| core::mem::transmute::<[i32; 8], __m256i>(*(values as *const [i32; 8]));
        let mut out = [0i32; 16];
        for half in 0..2 {
            let o = first + 8 * half;
            let acc = _mm256_add_epi32(
                lanes(sums.as_ptr().wrapping_add(8 * half)),
                lanes(layer.bias.as_ptr().wrapping_add(o)),
            );
            let multipliers = lanes(layer.multipliers.as_ptr().wrapping_add(o));
            // the high words of the 64-bit products acc * M, even lanes then odd lanes
            let even = _mm256_srli_epi64::<32>(_mm256_mul_epi32(acc, multipliers));
            let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(acc), _mm256_srli_epi64::<32>(multipliers));
            let high = _mm256_blend_epi32::<0b1010_1010>(even, odd);
            // ((high >> (s - 33)) + 1) >> 1, with s - 33 = -2 - shift
            let shift = _mm256_cvtepi8_epi32(if half == 0 { shifts } else { _mm_srli_si128::<8>(shifts) });
            let by = _mm256_sub_epi32(_mm256_set1_epi32(-2), shift);
            let rounded = _mm256_srai_epi32::<1>(_mm256_add_epi32(_mm256_srav_epi32(high, by), _mm256_set1_epi32(1)));
            let y = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(rounded, zero), low), _mm256_set1_epi32(127));
            _mm256_storeu_si256(out.as_mut_ptr().wrapping_add(8 * half) as *mut __m256i, y);
        }
        for (slot, y) in output[first..first + 16].iter_mut().zip(out) {
            *slot = y as i8;
        }
        true
    }
}

/// `N` int8 values as the bytes of a little-endian word.
#[inline(always)]
fn bytes<const N: usize>(x: &[i8]) -> [u8; N] {
    core::array::from_fn(|i| x[i] as u8)
}
