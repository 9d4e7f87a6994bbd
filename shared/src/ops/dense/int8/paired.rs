//! The paired weight form ([`super::WeightForm::Paired`]): three instructions per four
//! multiply-accumulates on a Cortex-M4 instead of four, for layers at most [`MAX_INPUTS`] wide.
//!
//! `SMLAD` multiplies halfwords, so int8 weights must be widened, two per `SXTB16`; done plainly,
//! every four weights cost two `SXTB16` and two `SMLAD`. Here the blocked order's neighbouring
//! weights `(w_e, w_o)` (inputs `2j` and `2j + 1`) are stored as one halfword `h = w_e + 256 w_o`
//! (exact: both are in -127..=127), whose low byte is still `w_e`. One `SXTB16` gives the two
//! `w_e` of a word; the raw word gives the two `h`. With, per input pair,
//!
//! ```text
//! X = x_o - 127                     (in -255..=0)
//! Y = 256 x_e - X                   (in -32768..=32767: exactly fits a halfword)
//! X * h + Y * w_e = 256 (x_e w_e + x_o w_o) - 256 * 127 w_o
//! ```
//!
//! so `SMLAD(X, word) + SMLAD(Y, SXTB16(word))` accumulates `256 * (sum - 127 * sum of w_o)`.
//! The form's biases carry `+ 127 * sum of w_o` (per output, over the odd inputs), and
//! `(acc >> 8) + bias` is the plain form's sum. The shift is exact while `|acc / 256|` stays below
//! 2^23: at most `24,320.5` per input (`128 * 127 + 127 * 127 / 2`), hence [`MAX_INPUTS`].
//!
//! The form also takes only layers whose requantization shifts are all at most -2 (every
//! calibrated layer's: multipliers below 1/4), and stores each as the right shift
//! `s - 33 = -2 - shift` (0..=29) that [`super::requantize`]'s fast path applies to the high word
//! of `acc * M`: the Cortex-M4's requantization is then six instructions with no branch.

use super::QuantLayer;

/// The widest layer input the paired form takes (see the module docs).
pub const MAX_INPUTS: usize = 344;

/// Whether a layer from `n_in` inputs with these requantization shifts can take the paired form: a
/// whole number of input pairs of groups (the Cortex-M4 loop's step), at most [`MAX_INPUTS`], and
/// every shift in `-31..=-2`.
pub fn fits(n_in: usize, shifts: &[i8]) -> bool {
    n_in > 0 && n_in.is_multiple_of(8) && n_in <= MAX_INPUTS && shifts.iter().all(|s| (-31..=-2).contains(s))
}

/// The paired form's right shifts, `-2 - shift` for each requantization shift.
pub fn pair_shifts(shifts: &[i8], paired: &mut [i8]) {
    for (s, out) in shifts.iter().zip(paired.iter_mut()) {
        *out = -2 - s;
    }
}

/// `clamp(zero + ((high(sum * M) >> right) + 1) >> 1, low, 127)`: [`super::finish`] for a
/// layer in the paired form, whose shifts are right shifts.
fn finish(sum: i32, layer: &QuantLayer<'_>, o: usize) -> i8 {
    super::finish_with(sum, layer.multipliers[o], -2 - layer.shifts[o], layer)
}

/// The paired form of blocked-order weights ([`super::block_weights`]): each byte pair
/// `(w_e, w_o)` rewritten as the little-endian halfword `w_e + 256 w_o`. `paired` must have the
/// length of `blocked`, which must be even.
pub fn pair_weights(blocked: &[i8], paired: &mut [i8]) {
    for (pair, out) in blocked.chunks_exact(2).zip(paired.chunks_exact_mut(2)) {
        let h = (pair[0] as i16 + 256 * pair[1] as i16).to_le_bytes();
        out[0] = h[0] as i8;
        out[1] = h[1] as i8;
    }
}

/// The paired form's biases: `bias[o] + 127 * sum of w[o][i]` over the odd inputs `i`, from the
/// artifact's output-major weights (`plain[o * n_in + i]`).
pub fn pair_biases(plain: &[i8], bias: &[i32], n_in: usize, paired: &mut [i32]) {
    for ((row, b), out) in plain.chunks_exact(n_in.max(1)).zip(bias).zip(paired.iter_mut()) {
        let odd: i32 = row.iter().skip(1).step_by(2).map(|w| *w as i32).sum();
        *out = b + 127 * odd;
    }
}

/// One group of four inputs as the two words the paired loop multiplies: `X` (halfwords
/// `x1 - 127`, `x3 - 127`) and `Y` (halfwords `256 x0 - X.lo`, `256 x2 - X.hi`).
pub fn split_group(x: [i8; 4]) -> [u32; 2] {
    let pack = |lo: i32, hi: i32| (lo as i16 as u16 as u32) | ((hi as i16 as u16 as u32) << 16);
    let (x_lo, x_hi) = (x[1] as i32 - 127, x[3] as i32 - 127);
    [pack(x_lo, x_hi), pack(256 * x[0] as i32 - x_lo, 256 * x[2] as i32 - x_hi)]
}

/// `acc + a.lo * b.lo + a.hi * b.hi` on signed halfwords, wrapping: what `SMLAD` does.
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let product = |x: u32, y: u32| (x as u16 as i16 as i32) * (y as u16 as i16 as i32);
    acc.wrapping_add(product(a, b)).wrapping_add(product(a >> 16, b >> 16))
}

/// The low byte of each halfword, sign-extended: what `SXTB16` does.
pub fn sxtb16(v: u32) -> u32 {
    (v as u8 as i8 as i16 as u16 as u32) | (((v >> 16) as u8 as i8 as i16 as u16 as u32) << 16)
}

/// The paired form run in plain Rust with the Cortex-M4's arithmetic (what the tests check the
/// form with, and what other targets run for a paired layer). `layer` must fit the shape and be
/// in the paired form (which [`fits`] its input width).
pub fn dense_portable(input: &[i8], layer: &QuantLayer<'_>, output: &mut [i8]) {
    let n = input.len();
    let whole_blocks = output.len() / 4 * 4;
    let word = |w: &[i8]| u32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]);
    // the output's `(acc >> 8) + bias`, from the words of its weights in input order
    let sum = |o: usize, words: &mut dyn Iterator<Item = u32>| {
        let acc = input.chunks_exact(4).zip(words).fold(0i32, |acc, (x, w)| {
            let [xs, ys] = split_group([x[0], x[1], x[2], x[3]]);
            smlad(xs, w, smlad(ys, sxtb16(w), acc))
        });
        (acc >> 8).wrapping_add(layer.bias[o])
    };
    for o in 0..output.len() {
        let s = if o < whole_blocks {
            let block = &layer.weights[o / 4 * 4 * n..(o / 4 + 1) * 4 * n];
            sum(o, &mut block.chunks_exact(16).map(|g| word(&g[4 * (o % 4)..4 * (o % 4) + 4])))
        } else {
            let start = whole_blocks * n + (o - whole_blocks) * n;
            sum(o, &mut layer.weights[start..start + n].chunks_exact(4).map(word))
        };
        output[o] = finish(s, layer, o);
    }
}
