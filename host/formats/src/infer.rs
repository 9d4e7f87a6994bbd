//! Running an artifact of any shape on the host with the `shared` core's arithmetic: f32
//! ([`HostNetwork`]) or int8 ([`QuantHostNetwork`]), either behind [`AnyNetwork`].
//!
//! The device uses the const-generic `Network`; this runtime-shaped twin calls the same kernel
//! functions in the same order, so both give the same bits.

use anyhow::{Context, Result};
use dropship_shared::artifact::{Activation, ArtifactSpec, LayerSpec};
use dropship_shared::quant_artifact::{self, QuantArtifact};
use dropship_shared::FormatError;

use crate::quant_infer::QuantHostNetwork;
use dropship_shared::vectors::Vectors;
use dropship_shared::{kernel, Artifact};

/// What the rows given to [`HostNetwork::logits`] are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputForm {
    /// Raw features: the artifact's stored standardization is applied first.
    Raw,
    /// Already standardized by the caller: the stored standardization is skipped.
    Standardized,
}

/// One layer's parameters, input-major.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Input width.
    pub input: usize,
    /// `input * output` weights.
    pub weights: Vec<f32>,
    /// `output` biases.
    pub bias: Vec<f32>,
    /// What follows.
    pub activation: Activation,
}

/// An artifact loaded for host inference.
#[derive(Clone, Debug)]
pub struct HostNetwork {
    /// Input width.
    pub input: usize,
    /// Layers in order.
    pub layers: Vec<Layer>,
    /// `(mean, scale)`, if the artifact has one.
    pub standardization: Option<(Vec<f32>, Vec<f32>)>,
}

impl HostNetwork {
    /// Copies the parameters out of a validated artifact.
    pub fn from_artifact(a: &Artifact<'_>) -> Self {
        let layers = a
            .layers()
            .map(|l| Layer {
                input: l.input,
                weights: l.weights.iter().collect(),
                bias: l.bias.iter().collect(),
                activation: l.activation,
            })
            .collect();
        let standardization = a.standardization().map(|(m, s)| (m.iter().collect(), s.iter().collect()));
        Self { input: a.input(), layers, standardization }
    }

    /// Encodes the network as an artifact (validated by parsing it back before returning).
    pub fn to_artifact(&self, class_names: &str, provenance: &str) -> Result<Vec<u8>> {
        let layers: Vec<LayerSpec<'_>> = self
            .layers
            .iter()
            .map(|l| LayerSpec { weights: &l.weights, bias: &l.bias, activation: l.activation })
            .collect();
        let spec = ArtifactSpec {
            input: self.input,
            layers: &layers,
            standardization: self.standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            class_names,
            provenance,
        };
        let mut out = vec![0; spec.encoded_len()];
        let len = spec.write(&mut out).context("encoding the artifact")?;
        out.truncate(len);
        Ok(out)
    }

    /// Reads and validates an artifact file.
    pub fn load(path: &std::path::Path) -> Result<(Self, Vec<u8>)> {
        let bytes = crate::input::read(path)?;
        let artifact =
            Artifact::parse(&bytes).with_context(|| format!("{} is not a valid dropship artifact", path.display()))?;
        Ok((Self::from_artifact(&artifact), bytes))
    }

    /// Test vectors (raw input, these logits, their class) of `rows`, encoded for the firmware.
    pub fn vectors<'r>(&self, rows: impl Iterator<Item = &'r [f32]>) -> Result<Vec<u8>> {
        encode_vectors(self.input, self.classes(), rows, |r| self.logits(r, InputForm::Raw))
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.bias.len())
    }

    /// Logits for one row.
    pub fn logits(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        let mut x = first_layer_input(&self.standardization, row, form);
        for layer in &self.layers {
            let mut y = vec![0.0; layer.bias.len()];
            kernel::dense(&x, &layer.weights, &layer.bias, &mut y, layer.activation);
            x = y;
        }
        kernel::canonical_nans(&mut x);
        x
    }
}

impl HostNetwork {
    /// Whether running `row` leaves f32's range anywhere: a standardized input or a layer's value
    /// before its activation that is infinite or NaN (ReLU would turn NaN into 0 and hide it). The
    /// logits of such a row are not meaningful; `predict` warns about them.
    pub fn overflows(&self, row: &[f32], form: InputForm) -> bool {
        let mut x = first_layer_input(&self.standardization, row, form);
        for layer in &self.layers {
            if x.iter().any(|v| !v.is_finite()) {
                return true;
            }
            let mut y = vec![0.0; layer.bias.len()];
            kernel::dense(&x, &layer.weights, &layer.bias, &mut y, Activation::Linear);
            if layer.activation == Activation::Relu {
                if y.iter().any(|v| !v.is_finite()) {
                    return true;
                }
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            x = y;
        }
        x.iter().any(|v| !v.is_finite())
    }
}

/// What a network's first layer takes for `row`: the row standardized (raw input and a
/// standardization), or as it is.
fn first_layer_input(standardization: &Option<(Vec<f32>, Vec<f32>)>, row: &[f32], form: InputForm) -> Vec<f32> {
    match (standardization, form) {
        (Some((mean, scale)), InputForm::Raw) => {
            let mut z = vec![0.0; row.len()];
            kernel::standardize(row, mean, scale, &mut z);
            z
        }
        _ => row.to_vec(),
    }
}

/// An artifact of either version, loaded for host inference.
#[derive(Clone, Debug)]
pub enum AnyNetwork {
    /// Version 1: f32 weights.
    F32(HostNetwork),
    /// Version 2: int8 weights and activations.
    Int8(QuantHostNetwork),
}

impl AnyNetwork {
    /// Parses and validates artifact bytes of either version.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        match dropship_shared::artifact::version(bytes) {
            Some(quant_artifact::VERSION) => {
                Ok(Self::Int8(QuantHostNetwork::from_artifact(&QuantArtifact::parse(bytes)?)))
            }
            Some(found) if found > quant_artifact::VERSION => {
                Err(FormatError::UnsupportedVersion { found, supported: quant_artifact::VERSION })
            }
            _ => Ok(Self::F32(HostNetwork::from_artifact(&Artifact::parse(bytes)?))),
        }
    }

    /// Reads and validates an artifact file of either version.
    pub fn load(path: &std::path::Path) -> Result<(Self, Vec<u8>)> {
        let bytes = crate::input::read(path)?;
        let net =
            Self::parse(&bytes).with_context(|| format!("{} is not a valid dropship artifact", path.display()))?;
        Ok((net, bytes))
    }

    /// Input width.
    pub fn input(&self) -> usize {
        match self {
            Self::F32(n) => n.input,
            Self::Int8(n) => n.input,
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Self::F32(n) => n.classes(),
            Self::Int8(n) => n.classes(),
        }
    }

    /// Logits for one row (dequantized for int8), bit for bit what the device computes.
    /// Whether `row` leaves f32's range: in an f32 network anywhere ([`HostNetwork::overflows`]),
    /// in an int8 one in its standardized input (the integer layers saturate by definition).
    pub fn overflows(&self, row: &[f32], form: InputForm) -> bool {
        match self {
            Self::F32(n) => n.overflows(row, form),
            Self::Int8(n) => first_layer_input(&n.standardization, row, form).iter().any(|v| !v.is_finite()),
        }
    }

    pub fn logits(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        match self {
            Self::F32(n) => n.logits(row, form),
            Self::Int8(n) => n.logits(row, form),
        }
    }

    /// Test vectors (raw input, these logits, their class) of `rows`, encoded for the firmware.
    pub fn vectors<'r>(&self, rows: impl Iterator<Item = &'r [f32]>) -> Result<Vec<u8>> {
        encode_vectors(self.input(), self.classes(), rows, |r| self.logits(r, InputForm::Raw))
    }
}

/// The one vector encoder: each row, the `logits` of it and their class.
fn encode_vectors<'r>(
    input: usize,
    classes: usize,
    rows: impl Iterator<Item = &'r [f32]>,
    logits: impl Fn(&[f32]) -> Vec<f32>,
) -> Result<Vec<u8>> {
    let rows: Vec<&[f32]> = rows.collect();
    let logits: Vec<Vec<f32>> = rows.iter().map(|r| logits(r)).collect();
    let records = rows.iter().zip(&logits).map(|(r, l)| (*r, kernel::argmax(l), &l[..]));
    let mut out = vec![0; Vectors::encoded_len(rows.len(), input, classes)];
    Vectors::write(&mut out, input, classes, records).context("encoding the vectors")?;
    Ok(out)
}
