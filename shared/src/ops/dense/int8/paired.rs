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
//! so `SMLAD(X, word) + SMLAD(Y, SXTB16(word))` accumulates `256 * S`, with
//! `S = sum over pairs of x_e w_e + (x_o - 127) w_o`. The form's biases carry `+ 127 * sum of w_o`
//! (per output, over the odd inputs), and `(acc >> 8) + bias` is the plain form's sum.
//!
//! The shift is exact while `|S| < 2^23`, so that `256 S` is an i32 (the accumulator wraps modulo
//! 2^32 on the way, as `SMLAD` does, and ends exact). For every input `|S|` is at most the row's
//! bound `sum of 128 |w_e| + 255 |w_o|` ([`row_bound`]): a layer fits when every row's bound is
//! below 2^23. Any weights keep it there up to [`ANY_WEIGHTS_INPUTS`] inputs (`24,320.5` per
//! input at worst); wider layers (the 640 inputs of MLPerf Tiny's anomaly detector) fit when
//! their weights do, which trained weights, far from all ±127, do. The width itself is bounded by
//! the stack scratch the Cortex-M4 splits the input into, [`MAX_INPUTS`].
//!
//! The form also takes only layers whose requantization shifts are all at most -2 (every
//! calibrated layer's: multipliers below 1/4), and stores each as the right shift
//! `s - 33 = -2 - shift` (0..=29) that [`super::requantize`]'s fast path applies to the high word
//! of `acc * M`: the Cortex-M4's requantization is then six instructions with no branch.

use super::QuantLayer;

/// The widest layer input the paired form takes: the Cortex-M4 splits it into `MAX_INPUTS / 2`
/// words on the stack (see the module docs).
pub const MAX_INPUTS: usize = 1024;

/// Up to this many inputs every layer's sums stay exact, whatever its weights.
pub const ANY_WEIGHTS_INPUTS: usize = 344;

/// The largest `|S|` (see the module docs) a row of weights `w` (one output's, in input order)
/// can reach over every int8 input: `sum of 128 |w_e| + 255 |w_o|`.
pub fn row_bound(row: &[i8]) -> i64 {
    row.iter().enumerate().map(|(i, w)| (w.unsigned_abs() as i64) * if i % 2 == 0 { 128 } else { 255 }).sum()
}

/// Whether a layer from `n_in` inputs with these requantization shifts and output-major weights
/// (`weights[o * n_in + i]`, the artifact's order) can take the paired form: a whole number of
/// input pairs of groups (the Cortex-M4 loop's step), at most [`MAX_INPUTS`], every shift in
/// `-31..=-2`, and every row's [`row_bound`] below 2^23 (always so up to [`ANY_WEIGHTS_INPUTS`]).
pub fn fits(n_in: usize, shifts: &[i8], weights: &[i8]) -> bool {
    n_in > 0
        && n_in.is_multiple_of(8)
        && n_in <= MAX_INPUTS
        && shifts.iter().all(|s| (-31..=-2).contains(s))
        && (n_in <= ANY_WEIGHTS_INPUTS || weights.chunks(n_in).all(|row| row_bound(row) < 1 << 23))
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
