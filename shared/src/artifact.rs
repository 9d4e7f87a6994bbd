//! The model artifact: the one format that leaves the host, and its strict parser.
//!
//! Version 1, all integers `u32` little-endian, all reals `f32` little-endian:
//!
//! ```text
//! magic "DSHP" | version = 1 | flags (bit 0: standardization present) | input width
//! layer count | per layer: output width, activation (0 linear, 1 ReLU)
//! class-names length | UTF-8 class names, one per line (or empty)
//! provenance length  | UTF-8 text describing where the model came from (never read by inference)
//! [mean[input], scale[input]]                       if flag bit 0
//! per layer: weights[in * out] (input-major, see the crate docs), bias[out]
//! CRC-32 (ISO-HDLC) of every byte before it
//! ```
//!
//! The class count is the last layer's width. The format has no field for dropout, for a
//! regularizer or for any other training-only state: a model in this format cannot carry them.

pub use crate::error::{FormatError, Section};
pub use crate::kernel::Activation;
use crate::network::{Layers, Network, Standardization};
pub use crate::wire::{F32s, I32s};
use crate::wire::{Reader, Writer};

/// The four bytes every artifact starts with.
pub const MAGIC: [u8; 4] = *b"DSHP";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Most layers an artifact may have.
pub const MAX_LAYERS: usize = 8;
/// Widest input or layer an artifact may have.
pub const MAX_WIDTH: usize = 4096;
/// Most weights and biases an artifact may have in all.
pub const MAX_PARAMETERS: usize = 1 << 22;
/// Longest class-name or provenance text.
pub const MAX_TEXT: usize = 1 << 16;

const FLAG_STANDARDIZATION: u32 = 1;

impl Activation {
    fn code(self) -> u32 {
        match self {
            Activation::Linear => 0,
            Activation::Relu => 1,
        }
    }

    fn from_code(layer: usize, code: u32) -> Result<Self, FormatError> {
        match code {
            0 => Ok(Activation::Linear),
            1 => Ok(Activation::Relu),
            _ => Err(FormatError::BadActivation { layer, code }),
        }
    }
}

/// One dense layer inside a parsed artifact.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a> {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// What follows the layer.
    pub activation: Activation,
    /// `input * output` weights, input-major.
    pub weights: F32s<'a>,
    /// `output` biases.
    pub bias: F32s<'a>,
}

/// Bytes of a version-1 body: every layer's f32 weights and biases.
fn f32_body_len(input: usize, shapes: &[(usize, Activation)]) -> usize {
    let mut fan_in = input;
    let mut values = 0;
    for (output, _) in shapes {
        values += fan_in * output + output;
        fan_in = *output;
    }
    4 * values
}

/// A validated artifact, borrowing its bytes.
#[derive(Clone, Debug)]
pub struct Artifact<'a> {
    input: usize,
    layers: [Option<LayerView<'a>>; MAX_LAYERS],
    layer_count: usize,
    standardization: Option<(F32s<'a>, F32s<'a>)>,
    class_names: &'a str,
    provenance: &'a str,
    len: usize,
}

fn limit(what: &'static str, value: usize, limit: usize) -> Result<usize, FormatError> {
    if value > limit {
        Err(FormatError::TooLarge { what, value, limit })
    } else if value == 0 {
        Err(FormatError::ShapeMismatch { what, expected: 1, found: 0 })
    } else {
        Ok(value)
    }
}

fn text<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, FormatError> {
    let len = r.u32()? as usize;
    if len > MAX_TEXT {
        return Err(FormatError::TooLarge { what, value: len, limit: MAX_TEXT });
    }
    core::str::from_utf8(r.take(len)?).map_err(|_| FormatError::BadText { what })
}

fn finite(values: F32s<'_>, section: Section) -> Result<(), FormatError> {
    match values.first_non_finite() {
        Some(index) => Err(FormatError::NonFinite { section, index }),
        None => Ok(()),
    }
}

/// What both artifact versions start with after the magic and version: flags, shapes, texts and the
/// standardization.
pub(crate) struct Header<'a> {
    pub(crate) input: usize,
    pub(crate) shapes: [(usize, Activation); MAX_LAYERS],
    pub(crate) layer_count: usize,
    pub(crate) class_names: &'a str,
    pub(crate) provenance: &'a str,
    pub(crate) standardization: Option<(F32s<'a>, F32s<'a>)>,
}

impl<'a> Header<'a> {
    /// Reads the header of a `version` file; `body_len(header)` is the length of what follows the
    /// standardization, so the total length is checked before any of it is read.
    pub(crate) fn read(
        bytes: &'a [u8],
        version: u32,
        body_len: impl Fn(usize, &[(usize, Activation)]) -> usize,
    ) -> Result<(Self, Reader<'a>), FormatError> {
        let mut r = Reader::after_header(bytes, MAGIC, version)?;
        let flags = r.u32()?;
        if flags & !FLAG_STANDARDIZATION != 0 {
            return Err(FormatError::UnknownFlags { flags });
        }
        let input = limit("input width", r.u32()? as usize, MAX_WIDTH)?;
        let layer_count = limit("layer count", r.u32()? as usize, MAX_LAYERS)?;
        let mut shapes = [(0usize, Activation::Linear); MAX_LAYERS];
        let mut parameters = 0usize;
        let mut fan_in = input;
        for (layer, shape) in shapes.iter_mut().take(layer_count).enumerate() {
            let output = limit("layer width", r.u32()? as usize, MAX_WIDTH)?;
            *shape = (output, Activation::from_code(layer, r.u32()?)?);
            parameters += fan_in * output + output;
            fan_in = output;
        }
        limit("parameter count", parameters, MAX_PARAMETERS)?;
        let class_names = text(&mut r, "class names")?;
        let provenance = text(&mut r, "provenance")?;
        let classes = fan_in;
        if !class_names.is_empty() && class_names.lines().count() != classes {
            return Err(FormatError::BadText { what: "class names (one per class)" });
        }
        let has_standardization = flags & FLAG_STANDARDIZATION != 0;
        let standardization_len = if has_standardization { 2 * input } else { 0 };
        let expected = r.position() + 4 * standardization_len + body_len(input, &shapes[..layer_count]) + 4;
        if bytes.len() < expected {
            return Err(FormatError::Truncated { needed: expected, len: bytes.len() });
        }
        if bytes.len() > expected {
            return Err(FormatError::TrailingBytes { expected, len: bytes.len() });
        }
        let standardization = if has_standardization {
            let (mean, scale) = (r.f32s(input)?, r.f32s(input)?);
            finite(mean, Section::Mean)?;
            finite(scale, Section::Scale)?;
            if let Some(index) = scale.iter().position(|s| s <= 0.0) {
                return Err(FormatError::BadScale { index });
            }
            Some((mean, scale))
        } else {
            None
        };
        let header = Self { input, shapes, layer_count, class_names, provenance, standardization };
        Ok((header, r))
    }

    /// `(input, output, activation)` of every layer.
    pub(crate) fn layers(&self) -> impl Iterator<Item = (usize, usize, Activation)> + '_ {
        let inputs = core::iter::once(self.input).chain(self.shapes.iter().map(|s| s.0));
        inputs.zip(self.shapes.iter().take(self.layer_count)).map(|(i, (o, a))| (i, *o, *a))
    }
}

/// The version a dropship artifact declares (1: f32, 2: int8), if the bytes start like one.
pub fn version(bytes: &[u8]) -> Option<u32> {
    let header = bytes.get(..8)?;
    (header[..4] == MAGIC).then(|| u32::from_le_bytes([header[4], header[5], header[6], header[7]]))
}

/// Writes the part both versions share, up to and including the standardization.
pub(crate) fn write_header(
    w: &mut Writer<'_>,
    version: u32,
    input: usize,
    layers: impl Iterator<Item = (usize, Activation)> + Clone,
    standardization: Option<(&[f32], &[f32])>,
    class_names: &str,
    provenance: &str,
) -> Result<(), FormatError> {
    w.bytes(&MAGIC)?;
    w.u32(version)?;
    w.u32(if standardization.is_some() { FLAG_STANDARDIZATION } else { 0 })?;
    w.u32(input as u32)?;
    w.u32(layers.clone().count() as u32)?;
    for (output, activation) in layers {
        w.u32(output as u32)?;
        w.u32(activation.code())?;
    }
    w.u32(class_names.len() as u32)?;
    w.bytes(class_names.as_bytes())?;
    w.u32(provenance.len() as u32)?;
    w.bytes(provenance.as_bytes())?;
    if let Some((mean, scale)) = standardization {
        for (what, v) in [("mean length", mean), ("scale length", scale)] {
            if v.len() != input {
                return Err(FormatError::ShapeMismatch { what, expected: input, found: v.len() });
            }
        }
        w.f32s(mean)?;
        w.f32s(scale)?;
    }
    Ok(())
}

impl<'a> Artifact<'a> {
    /// Parses and validates `bytes`: structure, limits, checksum, finiteness.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (header, mut r) = Header::read(bytes, VERSION, f32_body_len)?;
        let Header { input, layer_count, standardization, class_names, provenance, .. } = header;
        let mut layers = [None; MAX_LAYERS];
        for (layer, (slot, (fan_in, output, activation))) in layers.iter_mut().zip(header.layers()).enumerate() {
            let weights = r.f32s(fan_in * output)?;
            let bias = r.f32s(output)?;
            finite(weights, Section::Weights(layer))?;
            finite(bias, Section::Bias(layer))?;
            *slot = Some(LayerView { input: fan_in, output, activation, weights, bias });
        }
        Ok(Self { input, layers, layer_count, standardization, class_names, provenance, len: bytes.len() })
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Number of classes (the last layer's width).
    pub fn classes(&self) -> usize {
        self.layers().last().map_or(0, |l| l.output)
    }

    /// The layers in order.
    pub fn layers(&self) -> impl DoubleEndedIterator<Item = LayerView<'a>> + '_ {
        self.layers.iter().take(self.layer_count).flatten().copied()
    }

    /// Weights and biases in all layers.
    pub fn parameters(&self) -> usize {
        self.layers().map(|l| l.input * l.output + l.output).sum()
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

    /// The widths from the input to the classes: the input, then every layer's output.
    pub fn widths(&self) -> impl Iterator<Item = usize> + '_ {
        core::iter::once(self.input).chain(self.layers().map(|l| l.output))
    }

    /// Size of the artifact in bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// Loads the artifact into a fixed-size network of the same shape: depth, every width and
    /// every activation come from the artifact; a shape that differs from the type is an error.
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
            let loaded = if view.input != layer.input || view.output != layer.bias.len() {
                Err(FormatError::LayerShape {
                    layer: index,
                    expected: (layer.input, layer.bias.len()),
                    found: (view.input, view.output),
                })
            } else {
                *layer.activation = view.activation;
                view.weights.copy_to(layer.weights).and_then(|()| view.bias.copy_to(layer.bias))
            };
            result = result.and(loaded);
        });
        result
    }
}

/// A layer to write: weights input-major.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec<'a> {
    /// `input * output` weights, input-major.
    pub weights: &'a [f32],
    /// `output` biases.
    pub bias: &'a [f32],
    /// What follows the layer.
    pub activation: Activation,
}

/// Everything an artifact holds, borrowed from the writer's memory.
#[derive(Clone, Copy, Debug)]
pub struct ArtifactSpec<'a> {
    /// Input width.
    pub input: usize,
    /// Layers in order; the last one's width is the class count.
    pub layers: &'a [LayerSpec<'a>],
    /// `(mean, scale)` per input feature.
    pub standardization: Option<(&'a [f32], &'a [f32])>,
    /// Class names, one per line, or empty.
    pub class_names: &'a str,
    /// Free text about the model's origin.
    pub provenance: &'a str,
}

impl ArtifactSpec<'_> {
    /// Exact size of the encoded artifact.
    pub fn encoded_len(&self) -> usize {
        let header = 4 + 4 * 4 + 8 * self.layers.len() + 8 + self.class_names.len() + self.provenance.len();
        let std = self.standardization.map_or(0, |(m, s)| m.len() + s.len());
        let params: usize = self.layers.iter().map(|l| l.weights.len() + l.bias.len()).sum();
        header + 4 * (std + params) + 4
    }

    /// Encodes into `out` (at least [`ArtifactSpec::encoded_len`] bytes), then validates the result
    /// with [`Artifact::parse`], so nothing this writes fails to load. Returns the length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FormatError> {
        let mut w = Writer::new(out);
        let mut fan_in = self.input;
        for (i, layer) in self.layers.iter().enumerate() {
            let output = layer.bias.len();
            if layer.weights.len() != fan_in * output {
                return Err(FormatError::ShapeMismatch {
                    what: if i == 0 { "layer 0 weights" } else { "layer weights" },
                    expected: fan_in * output,
                    found: layer.weights.len(),
                });
            }
            fan_in = output;
        }
        let shapes = self.layers.iter().map(|l| (l.bias.len(), l.activation));
        write_header(&mut w, VERSION, self.input, shapes, self.standardization, self.class_names, self.provenance)?;
        for layer in self.layers {
            w.f32s(layer.weights)?;
            w.f32s(layer.bias)?;
        }
        let len = w.finish_with_checksum()?;
        Artifact::parse(&out[..len])?;
        Ok(len)
    }
}
