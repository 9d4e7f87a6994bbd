//! int8 networks: the f32 standardization, the input's quantization, int8 layers, and the last
//! layer's output scale and zero point for turning its int8 outputs into reals. Runtime-shaped
//! (slices of layers), so the host and the firmware generator share it. The layers are Dense-only
//! [`QuantLayer`]s (what a Dense network's firmware links) or [`QuantGraphLayer`]s of every kind.

use crate::layer::{Dims, LayerKind, LayerShape};
use crate::ops::conv::int8::{conv2d_i8, depthwise_conv2d_i8};
use crate::ops::dense::int8::{dense_i8, QuantLayer};
use crate::ops::output::argmax_i8;
use crate::ops::pool::{average_pool_i8, global_average_pool_i8, max_pool_i8};
use crate::ops::quantize::{dequantize, quantize_input};
use crate::ops::standardize::standardize;
use crate::ops::window::Placement;

/// One int8 layer as a network runs it.
pub trait Int8Layer {
    /// Its output width after an input `input` wide; `None` if it cannot take that width.
    fn output_width(&self, input: usize) -> Option<usize>;
    /// Runs the layer on `input` (whose zero point is `input_zero`) into `output`.
    fn forward(&self, input: &[i8], input_zero: i8, output: &mut [i8]);
    /// The zero point of its output, after its activation, given its input's.
    fn output_zero(&self, input_zero: i8) -> i8;
}

impl Int8Layer for QuantLayer<'_> {
    fn output_width(&self, _: usize) -> Option<usize> {
        Some(self.bias.len())
    }

    fn forward(&self, input: &[i8], _: i8, output: &mut [i8]) {
        dense_i8(input, self, output);
    }

    fn output_zero(&self, _: i8) -> i8 {
        self.final_zero()
    }
}

/// One int8 layer of any kind: its shape, its maps and its parameters ([`QuantLayer::NONE`] for
/// pooling and Flatten, which keep their input's quantization). Conv2D's weights are in the Dense
/// kernel's order over its window, depthwise's `(rows, cols, channels)`
/// ([`crate::ops::conv::int8`]).
#[derive(Clone, Copy, Debug)]
pub struct QuantGraphLayer<'a> {
    /// What it computes, its units, window and activation.
    pub shape: LayerShape,
    /// Its input map.
    pub input: Dims,
    /// Its output map ([`LayerShape::output_dims`] of `input`).
    pub output: Dims,
    /// Its int8 parameters.
    pub quant: QuantLayer<'a>,
}

impl Int8Layer for QuantGraphLayer<'_> {
    fn output_width(&self, input: usize) -> Option<usize> {
        (input == self.input.len()).then_some(self.output.len())
    }

    fn forward(&self, x: &[i8], input_zero: i8, y: &mut [i8]) {
        let placement = Placement::new(self.input, self.shape.window);
        match (self.shape.kind, placement) {
            (LayerKind::Dense, _) => dense_i8(x, &self.quant, y),
            (LayerKind::Conv2d, Some(at)) => conv2d_i8(&at, x, input_zero, &self.quant, y),
            (LayerKind::DepthwiseConv2d, Some(at)) => depthwise_conv2d_i8(&at, x, input_zero, &self.quant, y),
            (LayerKind::MaxPool2d, Some(at)) => max_pool_i8(&at, x, y),
            (LayerKind::AveragePool2d, Some(at)) => average_pool_i8(&at, x, y),
            (LayerKind::GlobalAveragePool, _) => global_average_pool_i8(x, y),
            (LayerKind::Flatten, _) if x.len() == y.len() => y.copy_from_slice(x),
            _ => {}
        }
    }

    fn output_zero(&self, input_zero: i8) -> i8 {
        if LayerShape::has_weights(self.shape.kind) {
            self.quant.final_zero()
        } else {
            input_zero
        }
    }
}

/// An int8 network: the f32 standardization, the input's quantization, int8 layers, and the last
/// layer's output scale and zero point for turning its int8 logits into reals.
#[derive(Clone, Copy, Debug)]
pub struct QuantNetwork<'a, L = QuantLayer<'a>> {
    /// `(mean, scale)` per input feature, applied in f32 first.
    pub standardization: Option<(&'a [f32], &'a [f32])>,
    /// Scale of the quantized input.
    pub input_scale: f32,
    /// Zero point of the quantized input.
    pub input_zero: i8,
    /// The layers in order.
    pub layers: &'a [L],
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

impl<L: Int8Layer> QuantNetwork<'_, L> {
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
        let room = a.len().min(b.len());
        let mut width = n;
        let mut fits = z.len() >= n && room >= n;
        for layer in self.layers {
            match layer.output_width(width) {
                Some(out) if out <= room => width = out,
                _ => fits = false,
            }
        }
        if !fits || self.layers.is_empty() || width != logits.len() {
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
            let Some(out) = layer.output_width(width) else { return 0 };
            layer.forward(&x[..width], last_zero, &mut y[..out]);
            core::mem::swap(&mut x, &mut y);
            width = out;
            last_zero = layer.output_zero(last_zero);
            mark();
        }
        dequantize(&x[..width], self.output_scale, last_zero, logits);
        argmax_i8(&x[..width])
    }
}
