//! Runtime-shaped f32 networks of every layer kind (convolutions, pooling, Flatten, Dense): a
//! slice of [`GraphLayer`]s over two activation buffers, for the firmware generator (layers in
//! flash statics, buffers sized at compile time) and the host, which run the same operators in
//! the same order and so give the same bits.
//!
//! The buffers follow [`super::scratch_widths`]: the input and every second layer's output in
//! `a`, the others in `b`; the last layer writes the caller's outputs.

use crate::layer::{Dims, LayerKind, LayerShape};
use crate::ops::output::{argmax, canonical_nans};
use crate::ops::standardize::standardize;
use crate::ops::window::Placement;
use crate::ops::{conv, dense, pool};

/// One layer: its shape, its input map, its parameters (empty for pooling and Flatten).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphLayer<'a> {
    /// What it computes, its units, window and activation.
    pub shape: LayerShape,
    /// Its input map.
    pub input: Dims,
    /// Its output map ([`LayerShape::output_dims`] of `input`).
    pub output: Dims,
    /// Its weights in the artifact's layout (Dense input-major, convolutions as Keras stores them).
    pub weights: &'a [f32],
    /// One bias per output channel.
    pub bias: &'a [f32],
}

impl GraphLayer<'_> {
    /// Runs the layer: `input` holds [`GraphLayer::input`]'s values, `output` receives
    /// [`GraphLayer::output`]'s. Lengths that differ leave `output` as it was.
    pub fn forward(&self, input: &[f32], output: &mut [f32]) {
        let (Some(x), Some(y)) = (input.get(..self.input.len()), output.get_mut(..self.output.len())) else {
            return;
        };
        let activation = self.shape.activation;
        let placement = Placement::new(self.input, self.shape.window);
        match (self.shape.kind, placement) {
            (LayerKind::Dense, _) => dense::dense(x, self.weights, self.bias, y, activation),
            (LayerKind::Conv2d, Some(at)) => conv::conv2d(&at, x, self.weights, self.bias, y, activation),
            (LayerKind::DepthwiseConv2d, Some(at)) => {
                conv::depthwise_conv2d(&at, x, self.weights, self.bias, y, activation)
            }
            (LayerKind::MaxPool2d, Some(at)) => pool::max_pool(&at, x, y),
            (LayerKind::AveragePool2d, Some(at)) => pool::average_pool(&at, x, y),
            (LayerKind::GlobalAveragePool, _) => pool::global_average_pool(x, y),
            (LayerKind::Flatten, _) if x.len() == y.len() => y.copy_from_slice(x),
            _ => {}
        }
    }
}

/// `standardize → layers`, any kinds, f32.
#[derive(Clone, Copy, Debug)]
pub struct Graph<'a> {
    /// `(mean, scale)` per input value, applied to raw inputs first.
    pub standardization: Option<(&'a [f32], &'a [f32])>,
    /// The layers in order.
    pub layers: &'a [GraphLayer<'a>],
}

/// Working memory of one inference: the two activation buffers ([`super::scratch_widths`]).
#[derive(Clone, Debug)]
pub struct GraphScratch<const A: usize, const B: usize> {
    a: [f32; A],
    b: [f32; B],
}

impl<const A: usize, const B: usize> GraphScratch<A, B> {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self { a: [0.0; A], b: [0.0; B] }
    }
}

impl<const A: usize, const B: usize> Default for GraphScratch<A, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl Graph<'_> {
    /// Runs a raw input, writes the outputs, returns the largest's index.
    pub fn predict<const A: usize, const B: usize>(
        &self,
        input: &[f32],
        scratch: &mut GraphScratch<A, B>,
        outputs: &mut [f32],
    ) -> usize {
        self.predict_in(input, &mut scratch.a, &mut scratch.b, outputs, &mut || {})
    }

    /// [`Graph::predict`], calling `mark` once the input is standardized and after each layer.
    pub fn predict_marked<const A: usize, const B: usize, M: FnMut()>(
        &self,
        input: &[f32],
        scratch: &mut GraphScratch<A, B>,
        outputs: &mut [f32],
        mark: &mut M,
    ) -> usize {
        self.predict_in(input, &mut scratch.a, &mut scratch.b, outputs, mark)
    }

    /// One inference with caller-given buffers (the host sizes them at run time). Buffers
    /// smaller than [`super::scratch_widths`] says give class 0 and leave `outputs` as they were.
    pub fn predict_in<M: FnMut()>(
        &self,
        input: &[f32],
        a: &mut [f32],
        b: &mut [f32],
        outputs: &mut [f32],
        mark: &mut M,
    ) -> usize {
        let n = input.len();
        let last = self.layers.len().saturating_sub(1);
        let fits = self.layers.iter().enumerate().all(|(i, l)| {
            let buffer = if i % 2 == 0 { b.len() } else { a.len() };
            (i == last || l.output.len() <= buffer) && l.input.len() <= if i % 2 == 0 { a.len() } else { b.len() }
        });
        let Some(z) = a.get_mut(..n) else { return 0 };
        if !fits || self.layers.last().is_none_or(|l| l.output.len() != outputs.len()) {
            return 0;
        }
        match self.standardization {
            Some((mean, scale)) => standardize(input, mean, scale, z),
            None => z.copy_from_slice(input),
        }
        mark();
        let (mut x, mut y) = (a, b);
        for (i, layer) in self.layers.iter().enumerate() {
            if i == last {
                layer.forward(x, outputs);
            } else {
                layer.forward(x, y);
                core::mem::swap(&mut x, &mut y);
            }
            mark();
        }
        canonical_nans(outputs);
        argmax(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Activation, Padding, Window};
    use crate::network::{scratch_widths, Chain, Dense, Layers, Scratch};

    #[test]
    fn a_dense_graph_gives_the_typed_networks_bits_and_a_conv_graph_runs_by_hand() {
        // the same 3 -> 5 -> 2 Dense network both ways
        let w1: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let w2: Vec<f32> = (0..10).map(|i| (i as f32 * 0.71).cos()).collect();
        let (b1, b2) = ([0.1, -0.2, 0.3, 0.0, 0.5], [0.25, -0.75]);
        let layers = [
            GraphLayer {
                shape: LayerShape::dense(5, Activation::Relu),
                input: Dims::flat(3),
                output: Dims::flat(5),
                weights: &w1,
                bias: &b1,
            },
            GraphLayer {
                shape: LayerShape::dense(2, Activation::Linear),
                input: Dims::flat(5),
                output: Dims::flat(2),
                weights: &w2,
                bias: &b2,
            },
        ];
        let graph = Graph { standardization: None, layers: &layers };
        let mut typed = Chain { head: Dense::<3, 5>::ZERO, tail: Dense::<5, 2>::ZERO };
        typed.head.weights.as_flattened_mut().copy_from_slice(&w1);
        typed.head.bias = b1;
        typed.head.activation = Activation::Relu;
        typed.tail.weights.as_flattened_mut().copy_from_slice(&w2);
        typed.tail.bias = b2;
        let input = [0.5, -1.5, 2.0];
        let (mut a, mut b, mut expected) = ([0.0; 3], [0.0; 5], [0.0; 2]);
        a.copy_from_slice(&input);
        typed.forward(&mut a, &mut b, &mut expected);
        let mut got = [0.0; 2];
        graph.predict(&input, &mut GraphScratch::<3, 5>::new(), &mut got);
        assert_eq!(got.map(f32::to_bits), expected.map(f32::to_bits));
        assert_eq!(scratch_widths(&[3, 5, 2]), (3, 5));
        let _ = Scratch::<3, 5>::new();

        // 3×3×1 image -> conv 2×2 (one filter of ones, valid) -> 2×2×1 -> max pool 2 -> 1×1×1 -> flatten -> dense 1
        let conv =
            LayerShape::windowed(LayerKind::Conv2d, 1, Window::new([2, 2], [1, 1], Padding::Valid), Activation::Relu);
        let pool = LayerShape::windowed(
            LayerKind::MaxPool2d,
            1,
            Window::new([2, 2], [2, 2], Padding::Valid),
            Activation::Linear,
        );
        let flatten = LayerShape { kind: LayerKind::Flatten, ..LayerShape::dense(1, Activation::Linear) };
        let layers = [
            GraphLayer {
                shape: conv,
                input: Dims::image(3, 3, 1),
                output: Dims::image(2, 2, 1),
                weights: &[1.0; 4],
                bias: &[-10.0],
            },
            GraphLayer {
                shape: pool,
                input: Dims::image(2, 2, 1),
                output: Dims::image(1, 1, 1),
                weights: &[],
                bias: &[],
            },
            GraphLayer { shape: flatten, input: Dims::image(1, 1, 1), output: Dims::flat(1), weights: &[], bias: &[] },
            GraphLayer {
                shape: LayerShape::dense(2, Activation::Linear),
                input: Dims::flat(1),
                output: Dims::flat(2),
                weights: &[1.0, -1.0],
                bias: &[0.0, 0.0],
            },
        ];
        let graph = Graph { standardization: None, layers: &layers };
        let mut out = [0.0; 2];
        // windows sum to 12, 16, 24, 28; minus 10, ReLU: 2, 6, 14, 18; max 18
        let class =
            graph.predict(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &mut GraphScratch::<9, 4>::new(), &mut out);
        assert_eq!((out, class), ([18.0, -18.0], 0));
        // scratch too small: class 0, outputs untouched
        let mut out = [7.0; 2];
        assert_eq!(graph.predict(&[0.0; 9], &mut GraphScratch::<9, 3>::new(), &mut out), 0);
        assert_eq!(out, [7.0; 2]);
    }
}
