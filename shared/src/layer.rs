//! The layer vocabulary every stage shares: what a layer computes, what follows it, how its
//! weights are stored. Training, run files, the artifact, import, export, quantization, host
//! inference and the firmware generator all speak it.
//!
//! A network is an ordered list of layers; each is a [`LayerKind`] with an [`Activation`] and a
//! [`Precision`]. Adding a kind or an activation starts here (ARCHITECTURE.md lists the rest).

/// What a layer computes. Each kind is a tag in the artifact and an operator in [`crate::ops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `y = x · W + b`, kernel input-major (see the crate docs).
    Dense,
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

codes!(LayerKind, "layer kind" { Dense = 1, "Dense"; });
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

/// One layer of a network without its parameters: what training builds, a run file records and
/// a report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// What the layer computes.
    pub kind: LayerKind,
    /// Output width.
    pub units: usize,
    /// What follows it.
    pub activation: Activation,
}

impl LayerShape {
    /// A dense layer of `units` outputs followed by `activation`.
    pub const fn dense(units: usize, activation: Activation) -> Self {
        Self { kind: LayerKind::Dense, units, activation }
    }

    /// Parameters of this layer after `fan_in` inputs.
    pub const fn parameters(&self, fan_in: usize) -> usize {
        match self.kind {
            LayerKind::Dense => fan_in * self.units + self.units,
        }
    }

    /// Multiply-accumulates of one inference of this layer after `fan_in` inputs.
    pub const fn macs(&self, fan_in: usize) -> usize {
        match self.kind {
            LayerKind::Dense => fan_in * self.units,
        }
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
    }
}
