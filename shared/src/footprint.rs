//! What a model takes on the device: flash for its parameters, RAM for one inference's
//! activations. The one rule that `inspect`, `quantize`, the firmware generator (its `SHAPE` and
//! the board-fit check) read.

use crate::artifact::Artifact;
use crate::layer::{Activation, Dims, LayerKind, LayerShape, Precision};
use crate::network::activation_bytes;
use crate::network::graph::GraphLayer;
use crate::network::int8::QuantGraphLayer;

/// Bytes a model takes on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Flash: the parameters and the standardization, as the firmware lays them out.
    pub weight_bytes: usize,
    /// RAM: the activations of one inference.
    pub activation_bytes: usize,
}

impl Footprint {
    /// The footprint of a network of `precision` whose widths are `widths` (the input, then every
    /// layer's output), with or without a standardization.
    ///
    /// f32: the const-generic `Network` (see [`crate::network`]): per Dense layer its f32 weights
    /// and biases and one word for its activation; the standardization's mean and scale and one
    /// word for its presence, present or not; activations in two buffers and the logits.
    /// int8: per layer int8 weights, int32 biases, a 4-byte multiplier and a 1-byte shift per
    /// channel; the f32 standardization if present; activations as f32 standardized inputs and
    /// two int8 buffers of the widest width.
    pub fn new(precision: Precision, widths: &[usize], standardization: bool) -> Self {
        let input = widths.first().copied().unwrap_or(0);
        let pairs = widths.windows(2).map(|w| (w[0], w[1]));
        match precision {
            Precision::F32 => Self {
                weight_bytes: pairs.map(|(i, o)| 4 * (i * o + o) + 4).sum::<usize>() + 8 * input + 4,
                activation_bytes: activation_bytes(widths),
            },
            Precision::Int8 => Self {
                weight_bytes: pairs.map(|(i, o)| i * o + 9 * o).sum::<usize>()
                    + if standardization { 8 * input } else { 0 },
                activation_bytes: 4 * input + 2 * widths.iter().copied().max().unwrap_or(0),
            },
        }
    }

    /// This footprint with the flash of the activation tables of layers followed by `activations`.
    pub fn with_tables(self, precision: Precision, activations: impl Iterator<Item = Activation>) -> Self {
        let tables: usize = activations.map(|a| table_bytes(precision, a)).sum();
        Self { weight_bytes: self.weight_bytes + tables, ..self }
    }

    /// The footprint of an f32 network of any layer kind as the firmware lays it out
    /// ([`crate::network::graph::Graph`]): its `parameters` as f32 statics, one [`GraphLayer`]
    /// per layer, the standardization's mean and scale if present; activations as the Dense rule
    /// (two buffers by [`crate::network::scratch_widths`] over `widths`, and the outputs).
    pub fn graph(widths: &[usize], parameters: usize, standardization: bool) -> Self {
        let input = widths.first().copied().unwrap_or(0);
        let layers = widths.len().saturating_sub(1);
        Self {
            weight_bytes: 4 * parameters
                + layers * core::mem::size_of::<GraphLayer<'static>>()
                + if standardization { 8 * input } else { 0 },
            activation_bytes: activation_bytes(widths),
        }
    }

    /// The footprint of an int8 network of any layer kind as the firmware lays it out
    /// ([`crate::network::int8::QuantGraphLayer`]): per layer its int8 weights, int32 biases, a
    /// 4-byte multiplier and a 1-byte shift per channel, and the layer's record; the f32
    /// standardization if present; activations as the Dense rule (f32 standardized inputs, two int8
    /// buffers of the widest map) and, when a convolution gathers its windows, the column it
    /// gathers them in ([`crate::ops::conv::int8::SCRATCH_BYTES`], on the stack).
    pub fn int8_graph(layers: &[(LayerShape, Dims)], widths: &[usize], standardization: bool) -> Self {
        let input = widths.first().copied().unwrap_or(0);
        let record = core::mem::size_of::<QuantGraphLayer<'static>>();
        let weights: usize = layers.iter().map(|(s, d)| s.weights(*d) + 9 * s.biases() + record).sum();
        let gathers = layers.iter().any(|(s, _)| s.kind == LayerKind::Conv2d && s.window.size != [1, 1]);
        Self {
            weight_bytes: weights + if standardization { 8 * input } else { 0 },
            activation_bytes: 4 * input
                + 2 * widths.iter().copied().max().unwrap_or(0)
                + if gathers { crate::ops::conv::int8::SCRATCH_BYTES } else { 0 },
        }
        .with_tables(Precision::Int8, layers.iter().map(|(s, _)| s.activation))
    }

    /// The footprint of a network of these layers (shape and input map) and widths, in its
    /// precision: the Dense rule ([`Footprint::new`]) for Dense-only networks, else the graph's.
    pub fn of_layers(
        precision: Precision,
        layers: &[(LayerShape, Dims)],
        widths: &[usize],
        standardization: bool,
    ) -> Self {
        let dense_only = layers.iter().all(|(s, _)| s.kind == LayerKind::Dense);
        match (precision, dense_only) {
            (_, true) => Self::new(precision, widths, standardization)
                .with_tables(precision, layers.iter().map(|(s, _)| s.activation)),
            (Precision::F32, false) => {
                Self::graph(widths, layers.iter().map(|(s, d)| s.parameters(*d)).sum(), standardization)
            }
            (Precision::Int8, false) => Self::int8_graph(layers, widths, standardization),
        }
    }

    /// The footprint of a parsed artifact.
    pub fn of(artifact: &Artifact<'_>) -> Self {
        let mut widths = [0; crate::artifact::MAX_LAYERS + 1];
        let mut layers = [(LayerShape::dense(0, Activation::Linear), Dims::flat(0)); crate::artifact::MAX_LAYERS];
        for (slot, width) in widths.iter_mut().zip(artifact.widths()) {
            *slot = width;
        }
        for (slot, layer) in layers.iter_mut().zip(artifact.layers()) {
            *slot = (layer.shape(), layer.input_dims);
        }
        let n = artifact.layers().count();
        Self::of_layers(artifact.precision(), &layers[..n], &widths[..n + 1], artifact.standardization().is_some())
    }
}

/// A deployed model's shape and footprint, as generated code and the device report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape {
    /// Widths from the input to the outputs: `widths[0]` inputs, `widths[i + 1]` layer `i`'s outputs.
    pub widths: &'static [usize],
    /// Every layer's kind, width and activation, as the artifact describes it.
    pub layers: &'static [crate::layer::LayerShape],
    /// Weights and biases.
    pub parameters: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// Bytes of flash the weights and standardization take.
    pub weight_bytes: usize,
    /// Bytes of activations one inference needs.
    pub activation_bytes: usize,
}

impl ModelShape {
    /// Number of layers.
    pub const fn depth(&self) -> usize {
        self.layers.len()
    }
}

/// Flash an int8 layer's activation table takes on the device: 256 int8 values (sigmoid, tanh,
/// hard-sigmoid), 256 u16 exponentials (softmax); none for f32 layers, linear and ReLU.
pub const fn table_bytes(precision: Precision, activation: Activation) -> usize {
    match (precision, activation) {
        (Precision::F32, _) | (_, Activation::Linear | Activation::Relu) => 0,
        (Precision::Int8, Activation::Softmax) => 512,
        (Precision::Int8, _) => 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Chain, Dense, Network};

    /// The f32 rule is the size of the firmware's network type, for odd and even shapes.
    #[test]
    fn the_f32_rule_is_the_size_of_the_network_type() {
        type Digits = Network<Chain<Dense<64, 128>, Dense<128, 10>>, 64, 10>;
        type Odd = Network<Chain<Dense<3, 5>, Chain<Dense<5, 7>, Dense<7, 1>>>, 3, 1>;
        type One = Network<Dense<9, 2>, 9, 2>;
        for (widths, size, activations) in [
            (&[64, 128, 10][..], core::mem::size_of::<Digits>(), Digits::ACTIVATION_BYTES),
            (&[3, 5, 7, 1][..], core::mem::size_of::<Odd>(), Odd::ACTIVATION_BYTES),
            (&[9, 2][..], core::mem::size_of::<One>(), One::ACTIVATION_BYTES),
        ] {
            for standardization in [false, true] {
                let f = Footprint::new(Precision::F32, widths, standardization);
                assert_eq!((f.weight_bytes, f.activation_bytes), (size, activations), "{widths:?}");
            }
        }
        assert_eq!(Footprint::new(Precision::F32, &[64, 128, 10], true).weight_bytes, 38964, "the golden log's figure");
    }

    #[test]
    fn the_int8_rule_by_hand() {
        // 64*16 + 9*16 + 16*10 + 9*10 = 1024 + 144 + 160 + 90; standardization 2*64 f32
        let f = Footprint::new(Precision::Int8, &[64, 16, 10], true);
        assert_eq!((f.weight_bytes, f.activation_bytes), (1418 + 512, 4 * 64 + 2 * 64));
        assert_eq!(Footprint::new(Precision::Int8, &[64, 16, 10], false).weight_bytes, 1418);
    }
}
