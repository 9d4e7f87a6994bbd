//! The int8 model artifact (format version 2) and its strict parser. Version-1 (f32) files are
//! [`crate::Artifact`]; [`crate::artifact::version`] tells them apart.
//!
//! Integers little-endian (`u32` unless said), reals `f32` little-endian:
//!
//! ```text
//! magic "DSHP" | version = 2 | flags | input width | layer count | per layer: width, activation
//! class names | provenance | [mean[input], scale[input]]          (all as in version 1)
//! input scale | input zero point (i32)
//! per layer: output scale | output zero point (i32)
//!            weight scales[out] | multipliers[out] (i32) | shifts[out] (i32) | bias[out] (i32)
//!            weights[out * in] (i8, output-major), zero bytes up to a multiple of 4
//! CRC-32 (ISO-HDLC) of every byte before it
//! ```
//!
//! The integers are what runs (see [`crate::quant`] for the arithmetic); the scales are what the
//! integers stand for, read by `inspect` and to turn the int8 logits back into reals. As in
//! version 1, there is no field for dropout or any regularizer.

use crate::artifact::{write_header, Activation, FormatError, Header, MAX_LAYERS};
use crate::quant::Requant;
use crate::wire::{F32s, I32s, Writer};

/// The int8 format's version number.
pub const VERSION: u32 = 2;

/// One int8 layer inside a parsed artifact.
#[derive(Clone, Copy, Debug)]
pub struct QuantLayerView<'a> {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// ReLU fused into the requantization, or linear.
    pub activation: Activation,
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
}

impl QuantLayerView<'_> {
    /// The requantization of each output channel.
    pub fn requant(&self) -> impl Iterator<Item = Requant> + '_ {
        self.multipliers.iter().zip(self.shifts.iter()).map(|(multiplier, shift)| Requant { multiplier, shift })
    }

    /// The weights as int8.
    pub fn weights_i8(&self) -> impl Iterator<Item = i8> + '_ {
        self.weights.iter().map(|b| *b as i8)
    }
}

/// A validated int8 artifact, borrowing its bytes.
#[derive(Clone, Debug)]
pub struct QuantArtifact<'a> {
    input: usize,
    input_scale: f32,
    input_zero: i8,
    layers: [Option<QuantLayerView<'a>>; MAX_LAYERS],
    layer_count: usize,
    standardization: Option<(F32s<'a>, F32s<'a>)>,
    class_names: &'a str,
    provenance: &'a str,
    len: usize,
}

fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn body_len(input: usize, shapes: &[(usize, Activation)]) -> usize {
    let mut fan_in = input;
    let mut len = 8;
    for (output, _) in shapes {
        len += 8 + 16 * output + padded(fan_in * output);
        fan_in = *output;
    }
    len
}

fn bad(layer: usize, what: &'static str, index: usize) -> FormatError {
    FormatError::BadQuantization { layer, what, index }
}

fn scale(value: f32, layer: usize, what: &'static str) -> Result<f32, FormatError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(bad(layer, what, 0))
    }
}

fn zero_point(value: u32, layer: usize, what: &'static str) -> Result<i8, FormatError> {
    let v = value as i32;
    if (-128..=127).contains(&v) {
        Ok(v as i8)
    } else {
        Err(bad(layer, what, 0))
    }
}

/// Largest |bias| that keeps every accumulator of a layer with `fan_in` inputs within i32.
fn bias_limit(fan_in: usize) -> u64 {
    (i32::MAX as u64).saturating_sub(128 * 127 * fan_in as u64)
}

impl<'a> QuantArtifact<'a> {
    /// Parses and validates `bytes`: structure, limits, checksum, scales, zero points, multipliers,
    /// shifts, weights in -127..=127, and biases that cannot overflow an accumulator.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (header, mut r) = Header::read(bytes, VERSION, body_len)?;
        let input_scale = scale(f32::from_bits(r.u32()?), usize::MAX, "scale")?;
        let input_zero = zero_point(r.u32()?, usize::MAX, "zero point")?;
        let mut layers = [None; MAX_LAYERS];
        for (layer, (slot, (fan_in, output, activation))) in layers.iter_mut().zip(header.layers()).enumerate() {
            let output_scale = scale(f32::from_bits(r.u32()?), layer, "output scale")?;
            let output_zero = zero_point(r.u32()?, layer, "output zero point")?;
            let weight_scales = r.f32s(output)?;
            if let Some(index) = weight_scales.iter().position(|s| !(s.is_finite() && s > 0.0)) {
                return Err(bad(layer, "weight scale", index));
            }
            let (multipliers, shifts, bias) = (r.i32s(output)?, r.i32s(output)?, r.i32s(output)?);
            let bad_requant = multipliers
                .iter()
                .zip(shifts.iter())
                .position(|(multiplier, shift)| !Requant { multiplier, shift }.is_valid());
            if let Some(index) = bad_requant {
                return Err(bad(layer, "requantization", index));
            }
            if let Some(index) = bias.iter().position(|b| b.unsigned_abs() as u64 > bias_limit(fan_in)) {
                return Err(bad(layer, "bias", index));
            }
            let weights = r.take(fan_in * output)?;
            if let Some(index) = weights.iter().position(|w| *w as i8 == i8::MIN) {
                return Err(bad(layer, "weight", index));
            }
            if let Some(index) = r.take(padded(fan_in * output) - fan_in * output)?.iter().position(|b| *b != 0) {
                return Err(bad(layer, "weight padding byte", index));
            }
            *slot = Some(QuantLayerView {
                input: fan_in,
                output,
                activation,
                output_scale,
                output_zero,
                weight_scales,
                multipliers,
                shifts,
                bias,
                weights,
            });
        }
        Ok(Self {
            input: header.input,
            input_scale,
            input_zero,
            layers,
            layer_count: header.layer_count,
            standardization: header.standardization,
            class_names: header.class_names,
            provenance: header.provenance,
            len: bytes.len(),
        })
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }

    /// `(scale, zero point)` of the quantized input.
    pub fn input_quantization(&self) -> (f32, i8) {
        (self.input_scale, self.input_zero)
    }

    /// Number of classes (the last layer's width).
    pub fn classes(&self) -> usize {
        self.layers().last().map_or(0, |l| l.output)
    }

    /// The layers in order.
    pub fn layers(&self) -> impl DoubleEndedIterator<Item = QuantLayerView<'a>> + '_ {
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

    /// Where the model came from. Inference never reads it.
    pub fn provenance(&self) -> &'a str {
        self.provenance
    }

    /// The widths from the input to the classes.
    pub fn widths(&self) -> impl Iterator<Item = usize> + '_ {
        core::iter::once(self.input).chain(self.layers().map(|l| l.output))
    }

    /// Size of the artifact in bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }
}

/// An int8 layer to write.
#[derive(Clone, Copy, Debug)]
pub struct QuantLayerSpec<'a> {
    /// `output * input` weights, output-major, each in -127..=127.
    pub weights: &'a [i8],
    /// Folded biases, one per output.
    pub bias: &'a [i32],
    /// Requantization per output.
    pub requant: &'a [Requant],
    /// Weight scale per output.
    pub weight_scales: &'a [f32],
    /// Scale of the output tensor.
    pub output_scale: f32,
    /// Zero point of the output tensor.
    pub output_zero: i8,
    /// ReLU fused, or linear.
    pub activation: Activation,
}

/// Everything an int8 artifact holds.
#[derive(Clone, Copy, Debug)]
pub struct QuantArtifactSpec<'a> {
    /// Input width.
    pub input: usize,
    /// Scale of the quantized input.
    pub input_scale: f32,
    /// Zero point of the quantized input.
    pub input_zero: i8,
    /// Layers in order.
    pub layers: &'a [QuantLayerSpec<'a>],
    /// `(mean, scale)` per input feature.
    pub standardization: Option<(&'a [f32], &'a [f32])>,
    /// Class names, one per line, or empty.
    pub class_names: &'a str,
    /// Free text about the model's origin.
    pub provenance: &'a str,
}

impl QuantArtifactSpec<'_> {
    /// Exact size of the encoded artifact.
    pub fn encoded_len(&self) -> usize {
        let header = 4 + 4 * 4 + 8 * self.layers.len() + 8 + self.class_names.len() + self.provenance.len();
        let std = self.standardization.map_or(0, |(m, s)| 4 * (m.len() + s.len()));
        let shapes: [(usize, Activation); MAX_LAYERS] = core::array::from_fn(|i| {
            self.layers.get(i).map_or((0, Activation::Linear), |l| (l.bias.len(), l.activation))
        });
        header + std + body_len(self.input, &shapes[..self.layers.len().min(MAX_LAYERS)]) + 4
    }

    /// Encodes into `out` (at least [`QuantArtifactSpec::encoded_len`] bytes), then validates the
    /// result with [`QuantArtifact::parse`]. Returns the length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FormatError> {
        let mut w = Writer::new(out);
        let mut fan_in = self.input;
        for layer in self.layers {
            let output = layer.bias.len();
            for (what, len, expected) in [
                ("layer weights", layer.weights.len(), fan_in * output),
                ("layer requantization", layer.requant.len(), output),
                ("layer weight scales", layer.weight_scales.len(), output),
            ] {
                if len != expected {
                    return Err(FormatError::ShapeMismatch { what, expected, found: len });
                }
            }
            fan_in = output;
        }
        let shapes = self.layers.iter().map(|l| (l.bias.len(), l.activation));
        write_header(&mut w, VERSION, self.input, shapes, self.standardization, self.class_names, self.provenance)?;
        w.f32s(&[self.input_scale])?;
        w.i32s(core::iter::once(self.input_zero as i32))?;
        for layer in self.layers {
            w.f32s(&[layer.output_scale])?;
            w.i32s(core::iter::once(layer.output_zero as i32))?;
            w.f32s(layer.weight_scales)?;
            w.i32s(layer.requant.iter().map(|r| r.multiplier))?;
            w.i32s(layer.requant.iter().map(|r| r.shift))?;
            w.i32s(layer.bias.iter().copied())?;
            let bytes = layer.weights.len();
            for chunk in layer.weights.chunks(64) {
                let mut buf = [0u8; 64];
                for (b, v) in buf.iter_mut().zip(chunk) {
                    *b = *v as u8;
                }
                w.bytes(&buf[..chunk.len()])?;
            }
            w.bytes(&[0u8; 3][..padded(bytes) - bytes])?;
        }
        let len = w.finish_with_checksum()?;
        QuantArtifact::parse(&out[..len])?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(weights: &[i8], bias: &[i32]) -> Vec<u8> {
        let requant = [Requant::from_real(0.01).unwrap(); 2];
        let layer = QuantLayerSpec {
            weights,
            bias,
            requant: &requant,
            weight_scales: &[0.5, 0.25],
            output_scale: 0.1,
            output_zero: -3,
            activation: Activation::Relu,
        };
        let spec = QuantArtifactSpec {
            input: 3,
            input_scale: 0.02,
            input_zero: 5,
            layers: &[layer],
            standardization: Some((&[0.0, 1.0, 2.0], &[1.0, 1.0, 2.0])),
            class_names: "",
            provenance: "test",
        };
        let mut out = vec![0; spec.encoded_len()];
        let len = spec.write(&mut out).unwrap();
        assert_eq!(len, out.len());
        out
    }

    #[test]
    fn writes_what_it_parses_and_refuses_out_of_range_integers() {
        let bytes = sample(&[1, -2, 3, 127, -127, 0], &[100, -100]);
        let a = QuantArtifact::parse(&bytes).unwrap();
        assert_eq!((a.input(), a.classes(), a.parameters(), a.input_quantization()), (3, 2, 8, (0.02, 5)));
        let l = a.layers().next().unwrap();
        assert_eq!(l.weights_i8().collect::<Vec<_>>(), [1, -2, 3, 127, -127, 0]);
        assert_eq!(
            (l.output_zero, l.activation, l.bias.iter().collect::<Vec<_>>()),
            (-3, Activation::Relu, vec![100, -100])
        );
        assert_eq!(crate::artifact::version(&bytes), Some(2));
        assert!(matches!(crate::Artifact::parse(&bytes), Err(FormatError::UnsupportedVersion { found: 2, .. })));
        // -128 is outside the symmetric range; a bias that could overflow an accumulator is refused
        let mut out = vec![0; 1024];
        let requant = [Requant::from_real(0.01).unwrap(); 2];
        let bad = |weights: &[i8], bias: &[i32], out: &mut [u8]| {
            let layer = QuantLayerSpec {
                weights,
                bias,
                requant: &requant,
                weight_scales: &[0.5, 0.25],
                output_scale: 0.1,
                output_zero: 0,
                activation: Activation::Linear,
            };
            let spec = QuantArtifactSpec {
                input: 3,
                input_scale: 0.02,
                input_zero: 0,
                layers: &[layer],
                standardization: None,
                class_names: "",
                provenance: "",
            };
            spec.write(out)
        };
        assert!(bad(&[-128, 0, 0, 0, 0, 0], &[0, 0], &mut out).is_err());
        assert!(bad(&[0; 6], &[i32::MAX, 0], &mut out).is_err());
        assert!(bad(&[0; 6], &[0, 0], &mut out).is_ok());
    }

    #[test]
    fn every_flipped_bit_is_an_error_not_a_panic() {
        let bytes = sample(&[1, -2, 3, 127, -127, 0], &[100, -100]);
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(QuantArtifact::parse(&b).is_err(), "bit {bit}");
        }
    }
}
