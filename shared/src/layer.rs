//! The layer vocabulary every stage shares: what a layer computes, what follows it, how its
//! weights are stored. Training, run files, the artifact, import, export, quantization, host
//! inference and the firmware generator all speak it.
//!
//! A network is an ordered list of layers; each is a [`LayerKind`] with an [`Activation`] and a
//! [`Precision`]. Adding a kind or an activation starts here (ARCHITECTURE.md lists the rest).

/// What a layer computes. Each kind is a tag in the artifact and an operator in [`crate::ops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `y = x · W + b`, kernel input-major (see the crate docs). Its input is flat (1×1×N).
    Dense,
    /// Keras's `Conv2D`: `units` filters over a [`Window`] of the NHWC input, kernel
    /// `(height, width, in channels, filters)` as Keras stores it.
    Conv2d,
    /// Keras's `DepthwiseConv2D` (depth multiplier 1): one filter per channel, kernel
    /// `(height, width, channels)`.
    DepthwiseConv2d,
    /// `MaxPooling2D`: the largest value of each window, per channel.
    MaxPool2d,
    /// `AveragePooling2D`: the mean of each window's values inside the input (padding excluded).
    AveragePool2d,
    /// `GlobalAveragePooling2D`: the mean of each channel over the whole map, to 1×1×C.
    GlobalAveragePool,
    /// `Flatten`: the NHWC map as one vector (its memory order already is).
    Flatten,
}

/// What follows a layer, applied to each of its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// Nothing: the layer's output is used as is (logits).
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`: a binary classifier's output, a gate.
    Sigmoid,
    /// `(e^x - e^-x) / (e^x + e^-x)`.
    Tanh,
    /// `e^x_i / sum_j e^x_j` over the layer: a classifier's probabilities (last layer only).
    Softmax,
    /// `min(max(x + 3, 0), 6) / 6`: PyTorch's `Hardsigmoid`, Keras 3's `hard_sigmoid`.
    HardSigmoid,
}

/// How a layer's weights are stored and computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 weights and activations.
    F32,
    /// int8 weights and activations, int32 biases, TFLite's per-channel requantization.
    Int8,
}

/// What a network's outputs are, which says how they are read (the artifact records it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// One output per class (logits, or a softmax's probabilities); the class is the largest.
    Classify,
    /// One sigmoid output: the probability of the positive class, compared with a threshold.
    Binary,
    /// Linear outputs: the predicted values, in the targets' units.
    Regress,
    /// The input reconstructed (standardized): the anomaly score is the mean squared error of
    /// the reconstruction, compared with a threshold.
    Autoencode,
}

/// A value of the vocabulary that has a name (what run files and the command line read and
/// write), whatever its type.
pub trait Named: Sized + Copy + 'static {
    /// What the value is called in messages ("activation", "task").
    const WHAT: &'static str;
    /// The value's name.
    fn name(self) -> &'static str;
    /// The value of a name; `None` for a name a newer dropship wrote.
    fn from_name(name: &str) -> Option<Self>;
}

/// A code as the artifact stores it, and back.
macro_rules! codes {
    ($ty:ident, $what:literal { $($variant:ident = $code:literal, $name:literal;)* }) => {
        impl Named for $ty {
            const WHAT: &'static str = $what;

            fn name(self) -> &'static str {
                $ty::name(self)
            }

            fn from_name(name: &str) -> Option<Self> {
                $ty::from_name(name)
            }
        }

        impl $ty {
            /// Every value, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The artifact's code for this value.
            pub const fn code(self) -> u32 {
                match self { $(Self::$variant => $code),* }
            }

            /// The value of an artifact code; `None` for a code a newer dropship wrote.
            pub const fn from_code(code: u32) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)* _ => None }
            }

            /// The value of a name [`Self::name`] gives; `None` for a name a newer dropship wrote.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }

            /// How dropship's CLI, reports and logs name it.
            pub const fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
        }

        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

codes!(LayerKind, "layer kind" {
    Dense = 1, "Dense";
    Conv2d = 2, "Conv2D";
    DepthwiseConv2d = 3, "DepthwiseConv2D";
    MaxPool2d = 4, "MaxPool2D";
    AveragePool2d = 5, "AveragePool2D";
    GlobalAveragePool = 6, "GlobalAveragePool";
    Flatten = 7, "Flatten";
});
codes!(Padding, "padding" { Valid = 0, "valid"; Same = 1, "same"; });
codes!(Activation, "activation" {
    Linear = 0, "linear";
    Relu = 1, "ReLU";
    Sigmoid = 2, "sigmoid";
    Tanh = 3, "tanh";
    Softmax = 4, "softmax";
    HardSigmoid = 5, "hard-sigmoid";
});

impl Activation {
    /// Whether it maps each value alone; softmax spans its layer, so only a network's last layer
    /// may have it.
    pub const fn is_elementwise(self) -> bool {
        !matches!(self, Activation::Softmax)
    }

    /// The fixed `(scale, zero point)` of an int8 layer's output after this activation, TFLite's:
    /// outputs in `[0, 1]` at 1/256 from -128, tanh's `[-1, 1]` at 1/128 from 0. `None` for linear
    /// and ReLU, whose output quantization comes from calibration (ReLU is fused into the
    /// requantization's clamp); the others run as a table after it
    /// ([`crate::ops::activation::int8`]).
    pub const fn int8_output(self) -> Option<(f32, i8)> {
        match self {
            Activation::Linear | Activation::Relu => None,
            Activation::Sigmoid | Activation::Softmax | Activation::HardSigmoid => Some((1.0 / 256.0, -128)),
            Activation::Tanh => Some((1.0 / 128.0, 0)),
        }
    }
}
codes!(Precision, "precision" { F32 = 0, "f32"; Int8 = 1, "int8"; });
codes!(Task, "task" { Classify = 0, "classify"; Binary = 1, "binary"; Regress = 2, "regress"; Autoencode = 3, "autoencode"; });

/// How a window meets the edges of its input: Keras's (and TFLite's) two rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Only windows wholly inside the input: `out = (in - size) / stride + 1`.
    Valid,
    /// `out = ceil(in / stride)`; the missing rows and columns are split with the smaller half
    /// before (top, left) and the larger after, as Keras pads at stride 2.
    Same,
}

/// Height, width and channels of one activation map, stored NHWC (channels fastest). A flat
/// vector is 1×1×N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Values per position.
    pub channels: usize,
}

impl Dims {
    /// A flat vector of `n` values.
    pub const fn flat(n: usize) -> Self {
        Self { height: 1, width: 1, channels: n }
    }

    /// An image of `height × width × channels`.
    pub const fn image(height: usize, width: usize, channels: usize) -> Self {
        Self { height, width, channels }
    }

    /// Values in the map (saturating).
    pub const fn len(&self) -> usize {
        self.height.saturating_mul(self.width).saturating_mul(self.channels)
    }

    /// Whether the map holds no value.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it is a flat vector (one position).
    pub const fn is_flat(&self) -> bool {
        self.height == 1 && self.width == 1
    }
}

impl core::fmt::Display for Dims {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_flat() {
            write!(f, "{}", self.channels)
        } else {
            write!(f, "{}x{}x{}", self.height, self.width, self.channels)
        }
    }
}

/// The window of a convolution or a pooling layer: its size, its stride, its padding rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// `[rows, columns]` the window spans.
    pub size: [usize; 2],
    /// `[rows, columns]` between two windows.
    pub stride: [usize; 2],
    /// How it meets the edges.
    pub padding: Padding,
}

/// Where a window's outputs fall along one axis: how many, and the padding before the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    /// Outputs along the axis.
    pub outputs: usize,
    /// Padded positions before the input's first (the window's first tap is `o * stride - before`).
    pub before: usize,
}

impl Window {
    /// What layers without a window record: 1×1, stride 1, valid.
    pub const NONE: Self = Self { size: [1, 1], stride: [1, 1], padding: Padding::Valid };

    /// A `rows × cols` window, stride `stride` both ways.
    pub const fn new(size: [usize; 2], stride: [usize; 2], padding: Padding) -> Self {
        Self { size, stride, padding }
    }

    /// Keras's rule along `axis` (0: rows, 1: columns) for an input of `input` positions; `None`
    /// if no output fits (a valid window larger than the input, a zero size or stride).
    pub const fn axis(&self, axis: usize, input: usize) -> Option<Axis> {
        let (size, stride) = (self.size[axis], self.stride[axis]);
        if size == 0 || stride == 0 || input == 0 {
            return None;
        }
        match self.padding {
            Padding::Valid if input < size => None,
            Padding::Valid => Some(Axis { outputs: (input - size) / stride + 1, before: 0 }),
            Padding::Same => {
                let outputs = input.div_ceil(stride);
                let needed = (outputs - 1) * stride + size;
                let total = needed.saturating_sub(input);
                Some(Axis { outputs, before: total / 2 })
            }
        }
    }
}

/// One layer of a network without its parameters: what training builds, a run file records and
/// a report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// What the layer computes.
    pub kind: LayerKind,
    /// Output channels: a Dense layer's outputs, a convolution's filters; for the other kinds,
    /// their input's channels (depthwise, pooling) or values (Flatten).
    pub units: usize,
    /// What follows it.
    pub activation: Activation,
    /// The window of a convolution or pooling layer ([`Window::NONE`] for the others).
    pub window: Window,
}

impl LayerShape {
    /// A dense layer of `units` outputs followed by `activation`.
    pub const fn dense(units: usize, activation: Activation) -> Self {
        Self { kind: LayerKind::Dense, units, activation, window: Window::NONE }
    }

    /// A layer of `kind` with a window; `units` as [`LayerShape::units`] says.
    pub const fn windowed(kind: LayerKind, units: usize, window: Window, activation: Activation) -> Self {
        Self { kind, units, activation, window }
    }

    /// Whether the kind has a window (the artifact records it).
    pub const fn has_window(kind: LayerKind) -> bool {
        matches!(kind, LayerKind::Conv2d | LayerKind::DepthwiseConv2d | LayerKind::MaxPool2d | LayerKind::AveragePool2d)
    }

    /// Whether the kind has weights and biases.
    pub const fn has_weights(kind: LayerKind) -> bool {
        matches!(kind, LayerKind::Dense | LayerKind::Conv2d | LayerKind::DepthwiseConv2d)
    }

    /// The map this layer makes of `input`; `None` if it cannot take it (a Dense layer after a
    /// map that is not flat, a window that fits nowhere, channels that differ from the input's
    /// for a kind that keeps them).
    pub const fn output_dims(&self, input: Dims) -> Option<Dims> {
        let spatial = match (self.window.axis(0, input.height), self.window.axis(1, input.width)) {
            (Some(rows), Some(cols)) => Some((rows.outputs, cols.outputs)),
            _ => None,
        };
        let keeps_channels = self.units == input.channels;
        match (self.kind, spatial) {
            (LayerKind::Dense, _) if input.is_flat() => Some(Dims::flat(self.units)),
            (LayerKind::Conv2d, Some((h, w))) => Some(Dims::image(h, w, self.units)),
            (LayerKind::DepthwiseConv2d | LayerKind::MaxPool2d | LayerKind::AveragePool2d, Some((h, w)))
                if keeps_channels =>
            {
                Some(Dims::image(h, w, self.units))
            }
            (LayerKind::GlobalAveragePool, _) if keeps_channels => Some(Dims::flat(self.units)),
            (LayerKind::Flatten, _) if self.units == input.len() => Some(Dims::flat(self.units)),
            _ => None,
        }
    }

    /// Weights of this layer after an `input` map (biases not counted; saturating, so a shape
    /// read from untrusted bytes cannot overflow on a 32-bit core: the artifact's limits refuse it).
    pub const fn weights(&self, input: Dims) -> usize {
        let taps = self.window.size[0].saturating_mul(self.window.size[1]);
        match self.kind {
            LayerKind::Dense => input.len().saturating_mul(self.units),
            LayerKind::Conv2d => taps.saturating_mul(input.channels).saturating_mul(self.units),
            LayerKind::DepthwiseConv2d => taps.saturating_mul(self.units),
            _ => 0,
        }
    }

    /// Biases of this layer: one per output channel for the kinds that have weights.
    pub const fn biases(&self) -> usize {
        if Self::has_weights(self.kind) {
            self.units
        } else {
            0
        }
    }

    /// Parameters (weights and biases) of this layer after an `input` map.
    pub const fn parameters(&self, input: Dims) -> usize {
        self.weights(input) + self.biases()
    }

    /// Multiply-accumulates of one inference of this layer after an `input` map, counting every
    /// tap of every window (padded ones too, as MLPerf Tiny and TFLite count them).
    pub const fn macs(&self, input: Dims) -> usize {
        let out = match self.output_dims(input) {
            Some(out) => out,
            None => return 0,
        };
        let taps = self.window.size[0].saturating_mul(self.window.size[1]);
        match self.kind {
            LayerKind::Dense => input.len().saturating_mul(self.units),
            LayerKind::Conv2d => out.len().saturating_mul(taps).saturating_mul(input.channels),
            LayerKind::DepthwiseConv2d => out.len().saturating_mul(taps),
            _ => 0,
        }
    }
}

/// A layer as dropship's reports show it: `Dense(64 -> 128)`,
/// `Conv2D(28x28x1 -> 14x14x8, 3x3 window, stride 2x2, same)`; [`LayerShape::describe`].
#[derive(Clone, Copy, Debug)]
pub struct Described {
    shape: LayerShape,
    input: Dims,
}

impl core::fmt::Display for Described {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (shape, input) = (self.shape, self.input);
        write!(f, "{}({input} -> ", shape.kind)?;
        match shape.output_dims(input) {
            Some(out) => write!(f, "{out}")?,
            None => f.write_str("?")?,
        }
        if LayerShape::has_window(shape.kind) {
            let Window { size: [rows, cols], stride: [sr, sc], padding } = shape.window;
            write!(f, ", {rows}x{cols} window, stride {sr}x{sc}, {padding}")?;
        }
        f.write_str(")")
    }
}

impl LayerShape {
    /// How reports show this layer after an `input` map.
    pub const fn describe(self, input: Dims) -> Described {
        Described { shape: self, input }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_unknown_codes_are_none() {
        for kind in LayerKind::ALL {
            assert_eq!(LayerKind::from_code(kind.code()), Some(*kind));
        }
        for a in Activation::ALL {
            assert_eq!(Activation::from_code(a.code()), Some(*a));
        }
        for p in Precision::ALL {
            assert_eq!(Precision::from_code(p.code()), Some(*p));
        }
        for t in Task::ALL {
            assert_eq!((Task::from_code(t.code()), Task::from_name(t.name())), (Some(*t), Some(*t)));
        }
        assert_eq!(LayerKind::from_code(0), None, "0 is never a layer kind: a zeroed record is an error");
        assert_eq!(Activation::from_code(99), None);
        for a in Activation::ALL {
            assert_eq!(Activation::from_name(a.name()), Some(*a));
        }
        assert_eq!((LayerKind::from_name("Dense"), LayerKind::from_name("dense")), (Some(LayerKind::Dense), None));
        assert_eq!((Activation::Relu.to_string(), LayerKind::Dense.to_string()), ("ReLU".into(), "Dense".into()));
        for p in Padding::ALL {
            assert_eq!(Padding::from_code(p.code()), Some(*p));
        }
    }

    /// Keras's padding rule, with the figures TensorFlow's `conv2d` documentation gives:
    /// `same` at stride 2 over an even input pads one row after and none before; over an odd
    /// input, one on each side.
    #[test]
    fn windows_follow_keras_padding_rules_including_the_asymmetric_stride_two_case() {
        let same = |size, stride| Window::new([size, size], [stride, stride], Padding::Same);
        let valid = |size, stride| Window::new([size, size], [stride, stride], Padding::Valid);
        assert_eq!(same(3, 2).axis(0, 28), Some(Axis { outputs: 14, before: 0 }), "total 1: 0 before, 1 after");
        assert_eq!(same(3, 2).axis(0, 27), Some(Axis { outputs: 14, before: 1 }), "total 2: 1 and 1");
        assert_eq!(same(3, 1).axis(0, 5), Some(Axis { outputs: 5, before: 1 }));
        assert_eq!(same(4, 1).axis(0, 5), Some(Axis { outputs: 5, before: 1 }), "total 3: 1 before, 2 after");
        assert_eq!(same(1, 3).axis(0, 7), Some(Axis { outputs: 3, before: 0 }));
        assert_eq!(same(2, 2).axis(0, 5), Some(Axis { outputs: 3, before: 0 }));
        assert_eq!(valid(3, 1).axis(0, 28), Some(Axis { outputs: 26, before: 0 }));
        assert_eq!(valid(3, 2).axis(0, 28), Some(Axis { outputs: 13, before: 0 }));
        assert_eq!(valid(2, 2).axis(0, 5), Some(Axis { outputs: 2, before: 0 }), "the last row is dropped");
        assert_eq!(valid(5, 1).axis(0, 4), None, "a valid window larger than its input fits nowhere");
        assert_eq!(Window::new([0, 1], [1, 1], Padding::Same).axis(0, 4), None);
        // the DS-CNN's first layer: 49×10 input, 10×4 kernel, stride 2, same
        let ds = Window::new([10, 4], [2, 2], Padding::Same);
        let conv = LayerShape::windowed(LayerKind::Conv2d, 64, ds, Activation::Relu);
        let input = Dims::image(49, 10, 1);
        assert_eq!(conv.output_dims(input), Some(Dims::image(25, 5, 64)));
        assert_eq!(conv.parameters(input), 10 * 4 * 64 + 64);
        assert_eq!(conv.macs(input), 25 * 5 * 64 * 40);
    }

    #[test]
    fn each_kind_takes_the_maps_it_can_and_refuses_the_others() {
        let image = Dims::image(6, 5, 3);
        let w = Window::new([2, 2], [2, 2], Padding::Valid);
        let dw = LayerShape::windowed(LayerKind::DepthwiseConv2d, 3, w, Activation::Relu);
        assert_eq!(dw.output_dims(image), Some(Dims::image(3, 2, 3)));
        assert_eq!((dw.parameters(image), dw.macs(image)), (4 * 3 + 3, 3 * 2 * 3 * 4));
        assert_eq!(LayerShape { units: 4, ..dw }.output_dims(image), None, "depthwise keeps the channels");
        let pool = LayerShape::windowed(LayerKind::MaxPool2d, 3, w, Activation::Linear);
        assert_eq!((pool.output_dims(image), pool.parameters(image)), (Some(Dims::image(3, 2, 3)), 0));
        let gap = LayerShape { kind: LayerKind::GlobalAveragePool, ..LayerShape::dense(3, Activation::Linear) };
        assert_eq!(gap.output_dims(image), Some(Dims::flat(3)));
        let flatten = LayerShape { kind: LayerKind::Flatten, ..LayerShape::dense(90, Activation::Linear) };
        assert_eq!(flatten.output_dims(image), Some(Dims::flat(90)));
        assert_eq!(LayerShape::dense(10, Activation::Linear).output_dims(image), None, "Dense needs a flat input");
        assert_eq!(LayerShape::dense(10, Activation::Linear).output_dims(Dims::flat(90)), Some(Dims::flat(10)));
        assert_eq!(LayerShape::dense(10, Activation::Linear).parameters(Dims::flat(90)), 910);
        assert_eq!(Dims::image(28, 28, 1).to_string(), "28x28x1");
        assert_eq!(LayerShape::dense(10, Activation::Linear).describe(Dims::flat(90)).to_string(), "Dense(90 -> 10)");
        assert_eq!(dw.describe(image).to_string(), "DepthwiseConv2D(6x5x3 -> 3x2x3, 2x2 window, stride 2x2, valid)");
    }
}
