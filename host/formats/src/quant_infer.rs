//! int8 networks on the host: the runtime-shaped owner of an int8 artifact's parameters, run by the
//! `shared` core's [`QuantNetwork`] (the portable kernel), so its logits are the device's bits.

use anyhow::{Context, Result};
use dropship_shared::artifact::Activation;
use dropship_shared::quant::{block_weights, QuantLayer, QuantNetwork, Requant, WeightForm};
use dropship_shared::quant_artifact::{QuantArtifact, QuantArtifactSpec, QuantLayerSpec};

use crate::infer::InputForm;

/// One int8 layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantHostLayer {
    /// Input width.
    pub input: usize,
    /// `output * input` weights, output-major.
    pub weights: Vec<i8>,
    /// Folded biases.
    pub bias: Vec<i32>,
    /// Requantization per output channel.
    pub requant: Vec<Requant>,
    /// Weight scale per output channel.
    pub weight_scales: Vec<f32>,
    /// Output tensor scale.
    pub output_scale: f32,
    /// Output tensor zero point.
    pub output_zero: i8,
    /// ReLU fused, or linear.
    pub activation: Activation,
}

/// A layer as the kernel takes it: weights in the blocked order, multipliers and one-byte shifts.
#[derive(Clone, Debug, PartialEq)]
struct KernelLayer {
    weights: Vec<i8>,
    multipliers: Vec<i32>,
    shifts: Vec<i8>,
}

impl KernelLayer {
    fn of(l: &QuantHostLayer) -> Self {
        let mut weights = vec![0; l.weights.len()];
        block_weights(&l.weights, l.input, l.bias.len(), &mut weights);
        let multipliers = l.requant.iter().map(|r| r.multiplier).collect();
        let shifts = l.requant.iter().map(|r| r.shift as i8).collect();
        Self { weights, multipliers, shifts }
    }
}

/// An int8 artifact loaded for host inference.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantHostNetwork {
    /// Input width.
    pub input: usize,
    /// Input scale.
    pub input_scale: f32,
    /// Input zero point.
    pub input_zero: i8,
    /// Layers in order.
    pub layers: Vec<QuantHostLayer>,
    /// `(mean, scale)`, if the artifact has one.
    pub standardization: Option<(Vec<f32>, Vec<f32>)>,
    /// The layers as the kernel takes them.
    kernel: Vec<KernelLayer>,
}

impl QuantHostNetwork {
    /// A network of these parameters (weights output-major, as the artifact stores them).
    pub fn new(
        input: usize,
        (input_scale, input_zero): (f32, i8),
        layers: Vec<QuantHostLayer>,
        standardization: Option<(Vec<f32>, Vec<f32>)>,
    ) -> Self {
        let kernel = layers.iter().map(KernelLayer::of).collect();
        Self { input, input_scale, input_zero, layers, standardization, kernel }
    }

    /// Copies the parameters out of a validated int8 artifact.
    pub fn from_artifact(a: &QuantArtifact<'_>) -> Self {
        let (input_scale, input_zero) = a.input_quantization();
        let layers = a
            .layers()
            .map(|l| QuantHostLayer {
                input: l.input,
                weights: l.weights_i8().collect(),
                bias: l.bias.iter().collect(),
                requant: l.requant().collect(),
                weight_scales: l.weight_scales.iter().collect(),
                output_scale: l.output_scale,
                output_zero: l.output_zero,
                activation: l.activation,
            })
            .collect();
        let standardization = a.standardization().map(|(m, s)| (m.iter().collect(), s.iter().collect()));
        Self::new(a.input(), (input_scale, input_zero), layers, standardization)
    }

    /// Encodes the network as an int8 artifact (validated by parsing it back).
    pub fn to_artifact(&self, class_names: &str, provenance: &str) -> Result<Vec<u8>> {
        let layers: Vec<QuantLayerSpec<'_>> = self
            .layers
            .iter()
            .map(|l| QuantLayerSpec {
                weights: &l.weights,
                bias: &l.bias,
                requant: &l.requant,
                weight_scales: &l.weight_scales,
                output_scale: l.output_scale,
                output_zero: l.output_zero,
                activation: l.activation,
            })
            .collect();
        let spec = QuantArtifactSpec {
            input: self.input,
            input_scale: self.input_scale,
            input_zero: self.input_zero,
            layers: &layers,
            standardization: self.standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            class_names,
            provenance,
        };
        let mut out = vec![0; spec.encoded_len()];
        let len = spec.write(&mut out).context("encoding the int8 artifact")?;
        out.truncate(len);
        Ok(out)
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.bias.len())
    }

    /// The layers as the shared kernel takes them (borrowing this network).
    pub fn kernel_layers(&self) -> Vec<QuantLayer<'_>> {
        self.layers
            .iter()
            .zip(&self.kernel)
            .map(|(l, k)| QuantLayer {
                weights: &k.weights,
                bias: &l.bias,
                multipliers: &k.multipliers,
                shifts: &k.shifts,
                output_zero: l.output_zero,
                relu: l.activation == Activation::Relu,
                form: WeightForm::Blocked,
            })
            .collect()
    }

    /// The shared core's network over `layers` ([`QuantHostNetwork::kernel_layers`]); `form`
    /// says whether the rows it will get are raw or already standardized.
    pub fn network<'a>(&'a self, layers: &'a [QuantLayer<'a>], form: InputForm) -> QuantNetwork<'a> {
        let standardization = match form {
            InputForm::Raw => self.standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            InputForm::Standardized => None,
        };
        QuantNetwork {
            standardization,
            input_scale: self.input_scale,
            input_zero: self.input_zero,
            layers,
            output_scale: self.layers.last().map_or(1.0, |l| l.output_scale),
        }
    }

    /// Dequantized logits for one row, bit for bit what the device computes.
    pub fn logits(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        let layers = self.kernel_layers();
        let net = self.network(&layers, form);
        let widest = self.layers.iter().map(|l| l.bias.len()).chain([self.input]).max().unwrap_or(0);
        let (mut z, mut a, mut b) = (vec![0.0; self.input], vec![0i8; widest], vec![0i8; widest]);
        let mut logits = vec![0.0; self.classes()];
        net.predict_in(row, &mut z, &mut a, &mut b, &mut logits);
        logits
    }

    /// Bytes of flash the device's copy takes: int8 weights, int32 biases, per channel a 4-byte
    /// multiplier and a 1-byte shift, and the f32 standardization.
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self.layers.iter().map(|l| l.weights.len() + 4 * l.bias.len() + 5 * l.requant.len()).sum();
        layers + self.standardization.as_ref().map_or(0, |(m, s)| 4 * (m.len() + s.len()))
    }
}
