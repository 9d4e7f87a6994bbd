//! The model artifact: the one format that leaves the host, its strict parser and its writer.
//!
//! Version 3, all integers `u32` little-endian unless said, all reals `f32` little-endian:
//!
//! ```text
//! magic "DSHP" | version = 3 | flags (bit 0: standardization, bit 1: int8 input quantization,
//!                                      bit 2: task)
//! input width | layer count
//! class-names length | UTF-8 class names, one per line (or empty)
//! provenance length  | UTF-8 text describing where the model came from (never read by inference)
//! [mean[input], scale[input]]                       if flag bit 0
//! [input scale, input zero point (i32)]             if flag bit 1
//! [task code, threshold (f32)]                       if flag bit 2
//! [height, width, channels]                          if flag bit 3 (an image; else 1×1×input)
//! per layer: kind tag | activation | precision | units
//!            [rows, cols, row stride, col stride, padding code]   for a windowed kind
//!            parameters
//! CRC-32 (ISO-HDLC) of every byte before it
//! ```
//!
//! `units` is the layer's output channels ([`LayerShape::units`]): a Dense layer's width, a
//! convolution's filters, the input's channels for depthwise and pooling layers, the values for
//! Flatten. Maps are NHWC; each layer's output map follows from its input's by Keras's rules
//! ([`LayerShape::output_dims`]), and a layer that cannot take its input is refused.
//!
//! The layer record is tagged ([`LayerKind::code`], [`Activation::code`], [`Precision::code`]),
//! so a new kind is a new tag; a tag this build does not know is refused by name, as written by a
//! newer dropship. A Dense layer's parameters:
//!
//! ```text
//! f32:  weights[in * out] (input-major, see the crate docs) | bias[out]
//! int8: output scale | output zero point (i32)
//!       weight scales[out] | multipliers[out] (i32) | shifts[out] (i32) | bias[out] (i32)
//!       weights[out * in] (i8, output-major), zero bytes up to a multiple of 4
//!       then, for sigmoid, tanh, hard-sigmoid and softmax (see [`crate::ops::activation::int8`]):
//!       pre-activation scale | pre-activation zero point (i32)
//!       table: 256 i8 (sigmoid, tanh, hard-sigmoid) or 256 u32 exponentials (softmax)
//! ```
//!
//! A convolution's f32 parameters are its kernel as Keras stores it, then its biases:
//! `(rows, cols, in channels, filters)` for Conv2D, `(rows, cols, channels)` for
//! DepthwiseConv2D. Pooling, global average pooling and Flatten have none, and no activation.
//!
//! int8 convolutions have the Dense record with one output per filter (or channel) and its window
//! as the inputs, weights as TensorFlow Lite stores them: Conv2D output-major
//! `(filters, rows, cols, in channels)`, at most [`crate::ops::conv::int8::MAX_COLUMN`] per
//! filter; DepthwiseConv2D `(rows, cols, channels)`. An int8 pooling or Flatten layer stores
//! nothing: its output keeps its input's scale and zero point ([`crate::ops::conv::int8`],
//! [`crate::ops::pool`]).
//!
//! An int8 layer with a table requantizes to its pre-activation's quantization; its output's is
//! the one [`Activation::int8_output`] fixes (checked). Softmax is only a network's last layer.
//!
//! The int8 integers are what runs (see [`crate::ops::dense::int8`]); the scales are what they stand
//! for, read by `inspect` and to turn int8 logits back into reals. One network has one precision
//! today: int8 layers chain their zero points, and no operator converts between the two.
//!
//! Versions 1 (f32) and 2 (int8), which earlier releases wrote, still read: they hold the same
//! layer records without the tags (all Dense, one precision per version), their shapes in the
//! header before the texts. The checksum is checked before any size in a file is believed.
//!
//! The class count is the last layer's width. The format has no field for dropout, for a
//! regularizer, for batch statistics or for any other training-only state.

mod read;
mod write;

pub use crate::error::{FormatError, Section};
pub use crate::layer::{Activation, Dims, LayerKind, LayerShape, Padding, Precision, Task, Window};
pub use crate::wire::{F32s, I32s};
pub use write::{ArtifactSpec, Int8Spec, LayerSpec, LookupSpec, ParamsSpec};

use crate::network::{Layers, Network, Standardization};
use crate::ops::dense::int8::Requant;

/// The four bytes every artifact starts with.
pub const MAGIC: [u8; 4] = *b"DSHP";
/// The format version this crate writes.
pub const VERSION: u32 = 3;
/// The oldest format version this crate reads.
pub const OLDEST_VERSION: u32 = 1;
/// Most layers an artifact may have.
pub const MAX_LAYERS: usize = 32;
/// Widest input or layer an artifact may have.
pub const MAX_WIDTH: usize = 4096;
/// Most values an activation map (an image, a convolution's output) may have.
pub const MAX_MAP: usize = 1 << 20;
/// Largest window side or stride.
pub const MAX_WINDOW: usize = 64;
/// Most weights and biases an artifact may have in all.
pub const MAX_PARAMETERS: usize = 1 << 22;
/// Longest class-name or provenance text.
pub const MAX_TEXT: usize = 1 << 16;

/// The int8 parameters of a layer inside a parsed artifact.
#[derive(Clone, Copy, Debug)]
pub struct Int8Params<'a> {
    /// Scale of the output tensor.
    pub output_scale: f32,
    /// Zero point of the output tensor.
    pub output_zero: i8,
    /// Scale of each output channel's weights.
    pub weight_scales: F32s<'a>,
    /// Requantization multipliers, one per output channel.
    pub multipliers: I32s<'a>,
    /// Requantization shifts, one per output channel.
    pub shifts: I32s<'a>,
    /// Folded int32 biases.
    pub bias: I32s<'a>,
    /// `output * input` int8 weights, output-major.
    pub weights: &'a [u8],
    /// The activation's table, for sigmoid, tanh, hard-sigmoid and softmax.
    pub lookup: Option<Int8Lookup<'a>>,
}

/// An int8 layer's activation table inside a parsed artifact.
#[derive(Clone, Copy, Debug)]
pub struct Int8Lookup<'a> {
    /// Scale of the requantized sums the table takes.
    pub pre_scale: f32,
    /// Their zero point.
    pub pre_zero: i8,
    /// The table.
    pub table: Int8Table<'a>,
}

/// The stored form of an int8 activation table.
#[derive(Clone, Copy, Debug)]
pub enum Int8Table<'a> {
    /// 256 int8 outputs, one per pre-activation value from -128 (sigmoid, tanh, hard-sigmoid).
    Values(&'a [u8]),
    /// 256 exponentials at 2^15, `e[0] = 32768`, never increasing (softmax).
    Exponentials(I32s<'a>),
}

impl Int8Params<'_> {
    /// The requantization of each output channel.
    pub fn requant(&self) -> impl Iterator<Item = Requant> + '_ {
        self.multipliers.iter().zip(self.shifts.iter()).map(|(multiplier, shift)| Requant { multiplier, shift })
    }

    /// The weights as int8.
    pub fn weights_i8(&self) -> impl Iterator<Item = i8> + '_ {
        self.weights.iter().map(|b| *b as i8)
    }
}

/// A layer's parameters, in its precision.
#[derive(Clone, Copy, Debug)]
pub enum Params<'a> {
    /// f32 weights (input-major) and biases.
    F32 {
        /// `input * output` weights, input-major.
        weights: F32s<'a>,
        /// `output` biases.
        bias: F32s<'a>,
    },
    /// int8 weights and their quantization.
    Int8(Int8Params<'a>),
}

/// One layer inside a parsed artifact.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a> {
    /// What it computes.
    pub kind: LayerKind,
    /// Input width (values in its input map).
    pub input: usize,
    /// Output width (values in its output map).
    pub output: usize,
    /// Its input map.
    pub input_dims: Dims,
    /// Its output map.
    pub output_dims: Dims,
    /// Its window ([`Window::NONE`] for the kinds without one).
    pub window: Window,
    /// What follows it.
    pub activation: Activation,
    /// Its parameters (f32 `weights` and `bias` empty for a layer without any).
    pub params: Params<'a>,
}

impl<'a> LayerView<'a> {
    /// How its weights are stored.
    pub fn precision(&self) -> Precision {
        match self.params {
            Params::F32 { .. } => Precision::F32,
            Params::Int8(_) => Precision::Int8,
        }
    }

    /// The layer without its parameters.
    pub fn shape(&self) -> LayerShape {
        LayerShape {
            kind: self.kind,
            units: self.output_dims.channels,
            activation: self.activation,
            window: self.window,
        }
    }

    /// Its weights and biases.
    pub fn parameters(&self) -> usize {
        self.shape().parameters(self.input_dims)
    }

    /// Its multiply-accumulates per inference.
    pub fn macs(&self) -> usize {
        self.shape().macs(self.input_dims)
    }

    /// The f32 `(weights, bias)`, if the layer is f32.
    pub fn f32_params(&self) -> Option<(F32s<'a>, F32s<'a>)> {
        match self.params {
            Params::F32 { weights, bias } => Some((weights, bias)),
            Params::Int8(_) => None,
        }
    }

    /// The int8 parameters, if the layer is int8.
    pub fn int8_params(&self) -> Option<Int8Params<'a>> {
        match self.params {
            Params::F32 { .. } => None,
            Params::Int8(p) => Some(p),
        }
    }
}

/// A validated artifact of any version, borrowing its bytes.
#[derive(Clone, Debug)]
pub struct Artifact<'a> {
    version: u32,
    input: usize,
    input_dims: Dims,
    input_quantization: Option<(f32, i8)>,
    task: Option<(Task, f32)>,
    layers: [Option<LayerView<'a>>; MAX_LAYERS],
    layer_count: usize,
    standardization: Option<(F32s<'a>, F32s<'a>)>,
    class_names: &'a str,
    provenance: &'a str,
    len: usize,
}

/// The version a dropship artifact declares, if the bytes start like one.
pub fn version(bytes: &[u8]) -> Option<u32> {
    let header = bytes.get(..8)?;
    (header[..4] == MAGIC).then(|| u32::from_le_bytes([header[4], header[5], header[6], header[7]]))
}

impl<'a> Artifact<'a> {
    /// Parses and validates `bytes` of any version this crate reads: checksum, structure, limits,
    /// finiteness, and for int8 layers scales, zero points, requantization, weights in
    /// -127..=127 and biases that cannot overflow an accumulator.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        read::parse(bytes)
    }

    /// The format version the bytes were written in.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }

    /// The input map: an image's `height × width × channels`, or `1 × 1 × input`.
    pub fn input_dims(&self) -> Dims {
        self.input_dims
    }

    /// Whether every layer is Dense (the const-generic [`Network`] runs it on a device; any
    /// other kind runs in a [`crate::network::graph::Graph`]).
    pub fn is_dense_only(&self) -> bool {
        self.layers().all(|l| l.kind == LayerKind::Dense)
    }

    /// How the network's weights are stored (every layer has the same precision).
    pub fn precision(&self) -> Precision {
        self.layers().next().map_or(Precision::F32, |l| l.precision())
    }

    /// `(scale, zero point)` of the quantized input of an int8 network.
    pub fn input_quantization(&self) -> Option<(f32, i8)> {
        self.input_quantization
    }

    /// What the outputs are and the threshold they are compared with (binary: the probability's,
    /// autoencode: the anomaly score's); `None` in files that do not say (a classifier).
    pub fn task(&self) -> Option<(Task, f32)> {
        self.task
    }

    /// Number of outputs (the last layer's width; the classes of a classifier).
    pub fn classes(&self) -> usize {
        self.layers().last().map_or(0, |l| l.output)
    }

    /// The layers in order.
    pub fn layers(&self) -> impl DoubleEndedIterator<Item = LayerView<'a>> + '_ {
        self.layers.iter().take(self.layer_count).flatten().copied()
    }

    /// Weights and biases in all layers.
    pub fn parameters(&self) -> usize {
        self.layers().map(|l| l.parameters()).sum()
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        self.layers().map(|l| l.macs()).sum()
    }

    /// `(mean, scale)` of the input standardization, if the model carries one.
    pub fn standardization(&self) -> Option<(F32s<'a>, F32s<'a>)> {
        self.standardization
    }

    /// Class names, one per line, or empty.
    pub fn class_names(&self) -> &'a str {
        self.class_names
    }

    /// Where the model came from (run, regularizer, ...). Inference never reads it.
    pub fn provenance(&self) -> &'a str {
        self.provenance
    }

    /// The widths from the input to the outputs: the input, then every layer's output.
    pub fn widths(&self) -> impl Iterator<Item = usize> + '_ {
        core::iter::once(self.input).chain(self.layers().map(|l| l.output))
    }

    /// Size of the artifact in bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// Loads an f32 artifact into a fixed-size network of the same shape: depth, every width and
    /// every activation come from the artifact; a shape that differs from the type, or int8
    /// weights, are an error.
    pub fn load_into<L: Layers, const IN: usize, const CLASSES: usize>(
        &self,
        net: &mut Network<L, IN, CLASSES>,
    ) -> Result<(), FormatError> {
        let shape = |what, expected, found| {
            if expected == found {
                Ok(())
            } else {
                Err(FormatError::ShapeMismatch { what, expected, found })
            }
        };
        if let Some(layer) = self.layers().position(|l| l.kind != LayerKind::Dense) {
            return Err(FormatError::BadLayer { layer, what: "not Dense: a Dense-only network type cannot hold it" });
        }
        shape("layer count", L::DEPTH, self.layer_count)?;
        shape("input width", IN, self.input)?;
        shape("class count", CLASSES, self.classes())?;
        net.standardization = match self.standardization {
            Some((mean, scale)) => {
                let mut s = Standardization::IDENTITY;
                mean.copy_to(&mut s.mean)?;
                scale.copy_to(&mut s.scale)?;
                Some(s)
            }
            None => None,
        };
        let mut result = Ok(());
        net.layers.for_each_layer_mut(0, &mut |index, layer| {
            let Some(Some(view)) = self.layers.get(index) else {
                result = result.and(Err(FormatError::ShapeMismatch {
                    what: "layer count",
                    expected: L::DEPTH,
                    found: index,
                }));
                return;
            };
            let loaded = match view.params {
                _ if view.input != layer.input || view.output != layer.bias.len() => Err(FormatError::LayerShape {
                    layer: index,
                    expected: (layer.input, layer.bias.len()),
                    found: (view.input, view.output),
                }),
                Params::Int8(_) => {
                    Err(FormatError::MixedPrecision { layer: index, expected: Precision::F32, found: Precision::Int8 })
                }
                Params::F32 { .. }
                    if !layer.curves && !matches!(view.activation, Activation::Linear | Activation::Relu) =>
                {
                    Err(FormatError::ActivationNotBuilt { layer: index, activation: view.activation })
                }
                Params::F32 { weights, bias } => {
                    *layer.activation = view.activation;
                    weights.copy_to(layer.weights).and_then(|()| bias.copy_to(layer.bias))
                }
            };
            result = result.and(loaded);
        });
        result
    }
}
