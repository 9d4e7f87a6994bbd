//! The one error type of dropship's binary formats (artifacts and vector files), typed and `no_std`.

use core::fmt;

/// Why bytes are not a valid artifact or vector file. Parsing never panics, whatever the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with its magic bytes ([`crate::artifact::MAGIC`], [`crate::vectors::MAGIC`]).
    BadMagic,
    /// A version this build does not read.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The bytes end before the structure they describe.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// Bytes after the checksum.
    TrailingBytes {
        /// Expected length.
        expected: usize,
        /// Actual length.
        len: usize,
    },
    /// The stored checksum does not match the content.
    ChecksumMismatch {
        /// CRC in the file.
        stored: u32,
        /// CRC of the content.
        computed: u32,
    },
    /// A value that is NaN or infinite.
    NonFinite {
        /// Which section holds it.
        section: Section,
        /// Its index within that section.
        index: usize,
    },
    /// A standardization scale that is zero or negative.
    BadScale {
        /// Feature index.
        index: usize,
    },
    /// A size above the format's limits.
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its value.
        value: usize,
        /// The limit.
        limit: usize,
    },
    /// A shape that is zero or does not match what the caller needs.
    ShapeMismatch {
        /// Which dimension.
        what: &'static str,
        /// What was required.
        expected: usize,
        /// What the file has.
        found: usize,
    },
    /// A layer whose `(inputs, outputs)` differ from the network it is loaded into.
    LayerShape {
        /// Layer index.
        layer: usize,
        /// The network's `(inputs, outputs)`.
        expected: (usize, usize),
        /// The file's.
        found: (usize, usize),
    },
    /// A layer kind, activation or precision code this build does not know: a newer dropship
    /// wrote the file.
    UnknownCode {
        /// Layer index.
        layer: usize,
        /// Which field: "layer kind", "activation" or "precision".
        what: &'static str,
        /// The code in the file.
        code: u32,
    },
    /// A layer whose precision differs from the network's (one precision per network today).
    MixedPrecision {
        /// Layer index.
        layer: usize,
        /// The network's precision.
        expected: crate::layer::Precision,
        /// The layer's.
        found: crate::layer::Precision,
    },
    /// Flag bits this version does not know.
    UnknownFlags {
        /// The flags in the file.
        flags: u32,
    },
    /// Text that is not UTF-8, or class names that don't match the class count.
    BadText {
        /// Which text.
        what: &'static str,
    },
    /// An int8 quantization parameter out of its range (a scale that is not positive and finite, a
    /// weight of -128, a requantization multiplier or shift outside TFLite's ranges, a bias that
    /// could overflow an accumulator).
    BadQuantization {
        /// Layer index (`usize::MAX` for the input).
        layer: usize,
        /// Which parameter.
        what: &'static str,
        /// Its index within the layer.
        index: usize,
    },
    /// A layer whose activation the network type it is loaded into was built without (a
    /// `Dense<IN, OUT, false>` applies linear and ReLU only).
    ActivationNotBuilt {
        /// Layer index.
        layer: usize,
        /// The artifact's activation.
        activation: crate::layer::Activation,
    },
    /// An operator that spans a layer (softmax) somewhere other than the last layer.
    NotLast {
        /// Layer index.
        layer: usize,
        /// The operator.
        what: &'static str,
    },
    /// A layer that cannot take its input map, or a layer this build does not run in its
    /// precision or with its activation.
    BadLayer {
        /// Layer index.
        layer: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The output buffer is too small for the artifact.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        len: usize,
    },
}

/// A part of an artifact, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Standardization means.
    Mean,
    /// Standardization scales.
    Scale,
    /// Weights of a layer.
    Weights(usize),
    /// Biases of a layer.
    Bias(usize),
    /// Vector-file inputs or logits.
    Vector(usize),
    /// The task's threshold.
    Task,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Mean => write!(f, "standardization mean"),
            Section::Scale => write!(f, "standardization scale"),
            Section::Weights(l) => write!(f, "layer {l} weights"),
            Section::Bias(l) => write!(f, "layer {l} bias"),
            Section::Vector(v) => write!(f, "vector {v}"),
            Section::Task => write!(f, "task threshold"),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FormatError::*;
        match self {
            BadMagic => write!(f, "not a dropship file (bad magic bytes)"),
            UnsupportedVersion { found, supported } => {
                write!(f, "unsupported format version {found} (this build reads ")?;
                match supported {
                    1 => write!(f, "1)")?,
                    _ => write!(f, "1 to {supported})")?,
                }
                if found > supported {
                    write!(f, ": a newer dropship wrote it")?;
                }
                Ok(())
            }
            Truncated { needed, len } => {
                write!(f, "truncated: {len} bytes, at least {needed} needed")
            }
            TrailingBytes { expected, len } => {
                write!(f, "{len} bytes where the structure ends at {expected}")
            }
            ChecksumMismatch { stored, computed } => {
                write!(f, "checksum mismatch: the file is corrupt or truncated (stored {stored:#010x}, content gives {computed:#010x})")
            }
            NonFinite { section, index } => {
                write!(f, "non-finite value in {section} at index {index}")
            }
            BadScale { index } => write!(f, "standardization scale {index} is not positive"),
            TooLarge { what, value, limit } => {
                write!(f, "{what} {value} is above the limit {limit}")
            }
            ShapeMismatch { what, expected, found } => {
                write!(f, "{what} is {found}, expected {expected}")
            }
            LayerShape { layer, expected, found } => {
                write!(f, "layer {layer} is {} -> {}, expected {} -> {}", found.0, found.1, expected.0, expected.1)
            }
            UnknownCode { layer: usize::MAX, what, code } => {
                write!(f, "{what} code {code}, which this build does not know: a newer dropship wrote it")
            }
            UnknownCode { layer, what, code } => {
                write!(
                    f,
                    "layer {layer} has {what} code {code}, which this build does not know: a newer dropship wrote it"
                )
            }
            MixedPrecision { layer, expected, found } => {
                write!(f, "layer {layer} is {found} in an {expected} network: one precision per network")
            }
            UnknownFlags { flags } => write!(f, "unknown flag bits {flags:#x}: a newer dropship wrote it"),
            BadText { what } => write!(f, "{what} is not valid"),
            BadQuantization { layer: usize::MAX, what, index } => write!(f, "input {what} {index} is out of range"),
            BadQuantization { layer, what, index } => write!(f, "layer {layer} {what} {index} is out of range"),
            ActivationNotBuilt { layer, activation } => {
                write!(
                    f,
                    "layer {layer} has {activation}, which this network type was built without (linear and ReLU only)"
                )
            }
            NotLast { layer, what } => {
                write!(f, "layer {layer} has {what}, which only a network's last layer may have")
            }
            BadLayer { layer, what } => write!(f, "layer {layer}: {what}"),
            BufferTooSmall { needed, len } => write!(f, "buffer of {len} bytes, {needed} needed"),
        }
    }
}

impl core::error::Error for FormatError {}
