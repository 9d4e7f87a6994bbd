//! int8 networks: the f32 standardization, the input's quantization, int8 layers, and the last
//! layer's output scale and zero point for turning its int8 outputs into reals. Runtime-shaped
//! (slices of layers), so the host and the firmware generator share it.

use crate::ops::dense::int8::{dense_i8, QuantLayer};
use crate::ops::output::argmax_i8;
use crate::ops::quantize::{dequantize, quantize_input};
use crate::ops::standardize::standardize;

/// An int8 network: the f32 standardization, the input's quantization, int8 layers, and the last
/// layer's output scale and zero point for turning its int8 logits into reals.
#[derive(Clone, Copy, Debug)]
pub struct QuantNetwork<'a> {
    /// `(mean, scale)` per input feature, applied in f32 first.
    pub standardization: Option<(&'a [f32], &'a [f32])>,
    /// Scale of the quantized input.
    pub input_scale: f32,
    /// Zero point of the quantized input.
    pub input_zero: i8,
    /// The layers in order.
    pub layers: &'a [QuantLayer<'a>],
    /// Scale of the last layer's output.
    pub output_scale: f32,
}

/// Working memory of one int8 inference: `F` standardized inputs, two int8 buffers of `W` (the
/// widest of the input and every layer).
pub struct QuantScratch<const F: usize, const W: usize> {
    z: [f32; F],
    a: [i8; W],
    b: [i8; W],
}

impl<const F: usize, const W: usize> Default for QuantScratch<F, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const F: usize, const W: usize> QuantScratch<F, W> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self { z: [0.0; F], a: [0; W], b: [0; W] }
    }
}

impl QuantNetwork<'_> {
    /// Runs one input (raw features) and writes the dequantized logits; returns the class. Widths
    /// that do not fit the scratch give class 0 and leave `logits` as they were.
    pub fn predict<const F: usize, const W: usize>(
        &self,
        input: &[f32],
        scratch: &mut QuantScratch<F, W>,
        logits: &mut [f32],
    ) -> usize {
        self.predict_in(input, &mut scratch.z, &mut scratch.a, &mut scratch.b, logits)
    }

    /// [`QuantNetwork::predict`], calling `mark` once the input is quantized and after each layer:
    /// the stages of one inference, for a firmware that reports what each cost.
    pub fn predict_marked<const F: usize, const W: usize, M: FnMut()>(
        &self,
        input: &[f32],
        scratch: &mut QuantScratch<F, W>,
        logits: &mut [f32],
        mark: &mut M,
    ) -> usize {
        self.run(input, (&mut scratch.z, &mut scratch.a, &mut scratch.b), logits, mark)
    }

    /// [`QuantNetwork::predict`] with caller-given buffers (the host sizes them at run time).
    pub fn predict_in(&self, input: &[f32], z: &mut [f32], a: &mut [i8], b: &mut [i8], logits: &mut [f32]) -> usize {
        self.run(input, (z, a, b), logits, &mut || {})
    }

    /// One inference with the buffers `(z, a, b)`, calling `mark` between its stages.
    fn run<M: FnMut()>(
        &self,
        input: &[f32],
        (z, a, b): (&mut [f32], &mut [i8], &mut [i8]),
        logits: &mut [f32],
        mark: &mut M,
    ) -> usize {
        let n = input.len();
        let fits = z.len() >= n
            && self.layers.iter().all(|l| l.bias.len() <= a.len().min(b.len()))
            && a.len().min(b.len()) >= n
            && self.layers.last().is_some_and(|l| l.bias.len() == logits.len());
        if !fits {
            return 0;
        }
        let z = &mut z[..n];
        match self.standardization {
            Some((mean, scale)) => standardize(input, mean, scale, z),
            None => z.copy_from_slice(input),
        }
        quantize_input(z, self.input_scale, self.input_zero, &mut a[..n]);
        mark();
        let (mut x, mut y) = (a, b);
        let mut width = n;
        let mut last_zero = self.input_zero;
        for layer in self.layers {
            let out = layer.bias.len();
            dense_i8(&x[..width], layer, &mut y[..out]);
            core::mem::swap(&mut x, &mut y);
            width = out;
            last_zero = layer.final_zero();
            mark();
        }
        dequantize(&x[..width], self.output_scale, last_zero, logits);
        argmax_i8(&x[..width])
    }
}
