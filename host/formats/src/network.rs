//! Running an artifact of any shape and precision on the host with the `shared` core's arithmetic.
//!
//! The device uses the const-generic `Network` (f32) or `QuantNetwork` (int8) from tables the
//! firmware generator writes; this runtime-shaped twin calls the same operators in the same order,
//! so both give the same bits. One type for every precision: a layer's weights carry it.

use anyhow::{Context, Result};
use dropship_shared::artifact::{ArtifactSpec, Int8Spec, Int8Table as ArtifactTable, LayerSpec, LookupSpec, Params};
use dropship_shared::footprint::Footprint;
use dropship_shared::network::graph::{Graph, GraphLayer};
use dropship_shared::network::int8::{QuantGraphLayer, QuantNetwork};
use dropship_shared::network::scratch_widths;
use dropship_shared::ops::activation::int8::Lookup;
use dropship_shared::ops::dense::int8::{block_weights, QuantLayer, Requant, WeightForm};
use dropship_shared::ops::{output, standardize};
use dropship_shared::vectors::Vectors;
use dropship_shared::{Activation, Artifact, Dims, LayerKind, LayerShape, Precision, Task, Window};

/// What the rows given to [`HostNetwork::logits`] are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputForm {
    /// Raw features: the artifact's stored standardization is applied first.
    Raw,
    /// Already standardized by the caller: the stored standardization is skipped.
    Standardized,
}

/// An int8 layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Weights {
    /// `output * input` weights, output-major, each in -127..=127.
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
    /// The activation's table, for sigmoid, tanh, hard-sigmoid and softmax.
    pub table: Option<Int8Table>,
}

/// An int8 layer's activation table ([`dropship_shared::ops::activation::int8`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Table {
    /// Scale of the requantized sums the table takes.
    pub pre_scale: f32,
    /// Their zero point.
    pub pre_zero: i8,
    /// The entries.
    pub entries: TableEntries,
}

/// What an int8 activation table holds.
#[derive(Clone, Debug, PartialEq)]
pub enum TableEntries {
    /// One output per pre-activation value from -128 (sigmoid, tanh, hard-sigmoid).
    Values(Box<[i8; 256]>),
    /// Softmax's exponentials at 2^15.
    Exponentials(Box<[u16; 256]>),
}

impl Int8Table {
    /// The table as the kernel and the artifact writer take it.
    pub fn lookup(&self) -> Lookup<'_> {
        match &self.entries {
            TableEntries::Values(v) => Lookup::Table(v),
            TableEntries::Exponentials(e) => Lookup::Softmax(e),
        }
    }

    fn from_artifact(l: &dropship_shared::artifact::Int8Lookup<'_>) -> Self {
        let entries = match l.table {
            ArtifactTable::Values(bytes) => {
                let mut v = [0i8; 256];
                v.iter_mut().zip(bytes).for_each(|(v, b)| *v = *b as i8);
                TableEntries::Values(Box::new(v))
            }
            ArtifactTable::Exponentials(exp) => {
                let mut e = [0u16; 256];
                e.iter_mut().zip(exp.iter()).for_each(|(e, x)| *e = x as u16);
                TableEntries::Exponentials(Box::new(e))
            }
        };
        Self { pre_scale: l.pre_scale, pre_zero: l.pre_zero, entries }
    }
}

/// A layer's parameters, in its precision.
#[derive(Clone, Debug, PartialEq)]
pub enum Weights {
    /// f32 kernel (input-major) and biases.
    F32 {
        /// `input * output` weights, input-major.
        kernel: Vec<f32>,
        /// `output` biases.
        bias: Vec<f32>,
    },
    /// int8 weights and their quantization.
    Int8(Int8Weights),
}

/// One layer: its kind, input, activation and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// What it computes.
    pub kind: LayerKind,
    /// Input width (values in its input map).
    pub input: usize,
    /// Its input map (`1 × 1 × input` for a Dense layer).
    pub input_dims: Dims,
    /// Output channels ([`LayerShape::units`]).
    pub units: usize,
    /// Its window ([`Window::NONE`] for the kinds without one).
    pub window: Window,
    /// What follows it.
    pub activation: Activation,
    /// Its parameters (f32 and empty for pooling and Flatten).
    pub weights: Weights,
}

impl Layer {
    /// An f32 dense layer: `kernel` input-major (`input * bias.len()` values).
    pub fn dense(input: usize, kernel: Vec<f32>, bias: Vec<f32>, activation: Activation) -> Self {
        let (units, weights) = (bias.len(), Weights::F32 { kernel, bias });
        let input_dims = Dims::flat(input);
        Self { kind: LayerKind::Dense, input, input_dims, units, window: Window::NONE, activation, weights }
    }

    /// An int8 dense layer.
    pub fn dense_int8(input: usize, weights: Int8Weights, activation: Activation) -> Self {
        Self::int8_of(LayerShape::dense(weights.bias.len(), activation), Dims::flat(input), weights)
    }

    /// An int8 layer of any kind after an `input` map (for pooling and Flatten, `weights` holds
    /// no parameters, only the output's quantization, which is the input's).
    pub fn int8_of(shape: LayerShape, input: Dims, weights: Int8Weights) -> Self {
        Self::of(shape, input, Weights::Int8(weights))
    }

    /// An f32 layer of any kind after an `input` map: `kernel` and `bias` in the artifact's
    /// layout, empty for the kinds without weights.
    pub fn f32_of(shape: LayerShape, input: Dims, kernel: Vec<f32>, bias: Vec<f32>) -> Self {
        Self::of(shape, input, Weights::F32 { kernel, bias })
    }

    fn of(shape: LayerShape, input: Dims, weights: Weights) -> Self {
        Self {
            kind: shape.kind,
            input: input.len(),
            input_dims: input,
            units: shape.units,
            window: shape.window,
            activation: shape.activation,
            weights,
        }
    }

    /// Its output map; `None` if it cannot take its input map.
    pub fn output_dims(&self) -> Option<Dims> {
        self.shape().output_dims(self.input_dims)
    }

    /// Output width (values in its output map).
    pub fn output(&self) -> usize {
        self.output_dims().map_or(0, |d| d.len())
    }

    /// How its weights are stored.
    pub fn precision(&self) -> Precision {
        match self.weights {
            Weights::F32 { .. } => Precision::F32,
            Weights::Int8(_) => Precision::Int8,
        }
    }

    /// The layer without its parameters.
    pub fn shape(&self) -> LayerShape {
        LayerShape { kind: self.kind, units: self.units, activation: self.activation, window: self.window }
    }

    /// The f32 `(kernel, bias)`; `None` for an int8 layer.
    pub fn f32(&self) -> Option<(&[f32], &[f32])> {
        match &self.weights {
            Weights::F32 { kernel, bias } => Some((kernel, bias)),
            Weights::Int8(_) => None,
        }
    }

    /// The int8 parameters; `None` for an f32 layer.
    pub fn int8(&self) -> Option<&Int8Weights> {
        match &self.weights {
            Weights::F32 { .. } => None,
            Weights::Int8(w) => Some(w),
        }
    }
}

/// An int8 layer as the kernel takes it: weights in the blocked order, one-byte shifts.
#[derive(Clone, Debug, PartialEq)]
struct KernelLayer {
    weights: Vec<i8>,
    multipliers: Vec<i32>,
    shifts: Vec<i8>,
}

impl KernelLayer {
    /// Dense and Conv2D weights blocked over each output's inputs (a Dense row, a window);
    /// depthwise ones as they are stored.
    fn of(layer: &Layer, w: &Int8Weights) -> Self {
        let mut weights = w.weights.clone();
        if matches!(layer.kind, LayerKind::Dense | LayerKind::Conv2d) && !w.bias.is_empty() {
            let fan_in = w.weights.len() / w.bias.len();
            block_weights(&w.weights, fan_in, w.bias.len(), &mut weights);
        }
        let multipliers = w.requant.iter().map(|r| r.multiplier).collect();
        let shifts = w.requant.iter().map(|r| r.shift as i8).collect();
        Self { weights, multipliers, shifts }
    }
}

/// An artifact loaded for host inference, of either precision.
#[derive(Clone, Debug, PartialEq)]
pub struct HostNetwork {
    input: usize,
    layers: Vec<Layer>,
    standardization: Option<(Vec<f32>, Vec<f32>)>,
    input_quantization: Option<(f32, i8)>,
    task: Option<(Task, f32)>,
    /// The int8 layers as the kernel takes them.
    kernel: Vec<KernelLayer>,
}

impl HostNetwork {
    /// A network of these layers; `input_quantization` is the int8 input's `(scale, zero point)`
    /// and must be present exactly when the layers are int8. One precision per network.
    pub fn new(
        input: usize,
        layers: Vec<Layer>,
        standardization: Option<(Vec<f32>, Vec<f32>)>,
        input_quantization: Option<(f32, i8)>,
    ) -> Result<Self> {
        let precision = if input_quantization.is_some() { Precision::Int8 } else { Precision::F32 };
        if let Some((i, l)) = layers.iter().enumerate().find(|(_, l)| l.precision() != precision) {
            anyhow::bail!("layer {i} is {} in an {precision} network: one precision per network", l.precision());
        }
        let last = layers.len().saturating_sub(1);
        if let Some((i, l)) = layers.iter().enumerate().find(|(i, l)| *i != last && !l.activation.is_elementwise()) {
            anyhow::bail!("layer {i} has {}, which only a network's last layer may have", l.activation);
        }
        let mut map = layers.first().map_or(Dims::flat(input), |l| l.input_dims);
        anyhow::ensure!(map.len() == input, "the first layer takes {map}, not {input} values");
        for (i, l) in layers.iter().enumerate() {
            anyhow::ensure!(l.input_dims == map, "layer {i} takes {}, but its input is {map}", l.input_dims);
            let out = l.output_dims().with_context(|| format!("layer {i} ({}) cannot take a {map} input", l.kind))?;
            map = out;
        }
        let kernel = layers.iter().filter_map(|l| l.int8().map(|w| KernelLayer::of(l, w))).collect();
        Ok(Self { input, layers, standardization, input_quantization, task: None, kernel })
    }

    /// An f32 network (no input quantization).
    pub fn f32(input: usize, layers: Vec<Layer>, standardization: Option<(Vec<f32>, Vec<f32>)>) -> Result<Self> {
        Self::new(input, layers, standardization, None)
    }

    /// Copies the parameters out of a validated artifact of any version.
    pub fn from_artifact(a: &Artifact<'_>) -> Self {
        let layers = a
            .layers()
            .map(|l| {
                let weights = match l.params {
                    Params::F32 { weights, bias } => {
                        Weights::F32 { kernel: weights.iter().collect(), bias: bias.iter().collect() }
                    }
                    Params::Int8(p) => Weights::Int8(Int8Weights {
                        weights: p.weights_i8().collect(),
                        bias: p.bias.iter().collect(),
                        requant: p.requant().collect(),
                        weight_scales: p.weight_scales.iter().collect(),
                        output_scale: p.output_scale,
                        output_zero: p.output_zero,
                        table: p.lookup.as_ref().map(Int8Table::from_artifact),
                    }),
                };
                Layer {
                    kind: l.kind,
                    input: l.input,
                    input_dims: l.input_dims,
                    units: l.output_dims.channels,
                    window: l.window,
                    activation: l.activation,
                    weights,
                }
            })
            .collect();
        let standardization = a.standardization().map(|(m, s)| (m.iter().collect(), s.iter().collect()));
        let mut net = Self::new(a.input(), layers, standardization, a.input_quantization())
            .expect("a parsed artifact has one precision");
        net.task = a.task();
        net
    }

    /// Parses and validates artifact bytes of any version.
    pub fn parse(bytes: &[u8]) -> Result<Self, dropship_shared::FormatError> {
        Ok(Self::from_artifact(&Artifact::parse(bytes)?))
    }

    /// Reads and validates an artifact file.
    pub fn load(path: &std::path::Path) -> Result<(Self, Vec<u8>)> {
        let bytes = crate::input::read(path)?;
        let net =
            Self::parse(&bytes).with_context(|| format!("{} is not a valid dropship artifact", path.display()))?;
        Ok((net, bytes))
    }

    /// Encodes the network as an artifact (validated by parsing it back before returning).
    pub fn to_artifact(&self, class_names: &str, provenance: &str) -> Result<Vec<u8>> {
        let layers: Vec<LayerSpec<'_>> = self
            .layers
            .iter()
            .map(|l| {
                let params = match &l.weights {
                    _ if !LayerShape::has_weights(l.kind) => dropship_shared::artifact::ParamsSpec::None,
                    Weights::F32 { kernel, bias } => {
                        dropship_shared::artifact::ParamsSpec::F32 { weights: kernel, bias }
                    }
                    Weights::Int8(w) => dropship_shared::artifact::ParamsSpec::Int8(Int8Spec {
                        weights: &w.weights,
                        bias: &w.bias,
                        requant: &w.requant,
                        weight_scales: &w.weight_scales,
                        output_scale: w.output_scale,
                        output_zero: w.output_zero,
                        lookup: w.table.as_ref().map(|t| LookupSpec {
                            pre_scale: t.pre_scale,
                            pre_zero: t.pre_zero,
                            table: t.lookup(),
                        }),
                    }),
                };
                LayerSpec { shape: l.shape(), params }
            })
            .collect();
        let spec = ArtifactSpec {
            input: self.input,
            image: Some(self.input_dims()).filter(|d| !d.is_flat()),
            input_quantization: self.input_quantization,
            layers: &layers,
            standardization: self.standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            task: self.task,
            class_names,
            provenance,
        };
        let mut out = vec![0; spec.encoded_len()];
        let len = spec.write(&mut out).context("encoding the artifact")?;
        out.truncate(len);
        Ok(out)
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }

    /// The input map: an image, or `1 × 1 × input`.
    pub fn input_dims(&self) -> Dims {
        self.layers.first().map_or(Dims::flat(self.input), |l| l.input_dims)
    }

    /// The layers in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// `(mean, scale)`, if the network standardizes its input.
    pub fn standardization(&self) -> Option<&(Vec<f32>, Vec<f32>)> {
        self.standardization.as_ref()
    }

    /// Replaces the input standardization (an import's, from a run).
    pub fn set_standardization(&mut self, standardization: Option<(Vec<f32>, Vec<f32>)>) {
        self.standardization = standardization;
    }

    /// What the outputs are and their threshold, as the artifact records it (`None`: a classifier
    /// of a file that does not say).
    pub fn task(&self) -> Option<(Task, f32)> {
        self.task
    }

    /// The task the outputs are read by: the recorded one, else classification.
    pub fn task_or_classify(&self) -> (Task, f32) {
        self.task.unwrap_or((Task::Classify, 0.0))
    }

    /// Records what the outputs are and their threshold.
    pub fn set_task(&mut self, task: Option<(Task, f32)>) {
        self.task = task;
    }

    /// `(scale, zero point)` of the int8 input.
    pub fn input_quantization(&self) -> Option<(f32, i8)> {
        self.input_quantization
    }

    /// The network's precision.
    pub fn precision(&self) -> Precision {
        if self.input_quantization.is_some() {
            Precision::Int8
        } else {
            Precision::F32
        }
    }

    /// Number of outputs (classes).
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.output())
    }

    /// The widths from the input to the outputs.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.input).chain(self.layers.iter().map(|l| l.output())).collect()
    }

    /// What the network takes on the device ([`Footprint`], the firmware's rule).
    pub fn footprint(&self) -> Footprint {
        let layers: Vec<_> = self.layers.iter().map(|l| (l.shape(), l.input_dims)).collect();
        Footprint::of_layers(self.precision(), &layers, &self.widths(), self.standardization.is_some())
    }

    /// Logits for one row (dequantized for int8), bit for bit what the device computes.
    pub fn logits(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        match self.precision() {
            Precision::F32 => self.f32_logits(row, form),
            Precision::Int8 => self.int8_logits(row, form),
        }
    }

    /// The f32 layers as the shared core's [`Graph`] runs them (borrowing this network).
    pub fn graph_layers(&self) -> Vec<GraphLayer<'_>> {
        self.layers
            .iter()
            .filter_map(|l| {
                let (weights, bias) = l.f32()?;
                Some(GraphLayer { shape: l.shape(), input: l.input_dims, output: l.output_dims()?, weights, bias })
            })
            .collect()
    }

    fn f32_logits(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        let layers = self.graph_layers();
        let standardization = match form {
            InputForm::Raw => self.standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            InputForm::Standardized => None,
        };
        let graph = Graph { standardization, layers: &layers };
        let (a, b) = scratch_widths(&self.widths());
        let (mut a, mut b) = (vec![0.0; a.max(row.len())], vec![0.0; b]);
        let mut outputs = vec![0.0; self.classes()];
        graph.predict_in(row, &mut a, &mut b, &mut outputs, &mut || {});
        outputs
    }

    /// The int8 layers as the shared core runs them (borrowing this network).
    pub fn kernel_layers(&self) -> Vec<QuantGraphLayer<'_>> {
        self.layers
            .iter()
            .filter_map(|l| l.int8().map(|w| (l, w)))
            .zip(&self.kernel)
            .map(|((l, w), k)| QuantGraphLayer {
                shape: l.shape(),
                input: l.input_dims,
                output: l.output_dims().unwrap_or(Dims::flat(0)),
                quant: QuantLayer {
                    weights: &k.weights,
                    bias: &w.bias,
                    multipliers: &k.multipliers,
                    shifts: &k.shifts,
                    output_zero: w.table.as_ref().map_or(w.output_zero, |t| t.pre_zero),
                    activation: l.activation,
                    lookup: w.table.as_ref().map_or(Lookup::Fused, Int8Table::lookup),
                    form: WeightForm::Blocked,
                },
            })
            .collect()
    }

    /// The shared core's int8 network over `layers` ([`HostNetwork::kernel_layers`]); `form`
    /// says whether the rows it will get are raw or already standardized.
    pub fn quant_network<'a>(
        &'a self,
        layers: &'a [QuantGraphLayer<'a>],
        form: InputForm,
    ) -> QuantNetwork<'a, QuantGraphLayer<'a>> {
        let standardization = match form {
            InputForm::Raw => self.standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            InputForm::Standardized => None,
        };
        let (input_scale, input_zero) = self.input_quantization.unwrap_or((1.0, 0));
        QuantNetwork {
            standardization,
            input_scale,
            input_zero,
            layers,
            output_scale: self.layers.last().and_then(Layer::int8).map_or(1.0, |w| w.output_scale),
        }
    }

    fn int8_logits(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        let layers = self.kernel_layers();
        let net = self.quant_network(&layers, form);
        let widest = self.widths().into_iter().max().unwrap_or(0);
        let (mut z, mut a, mut b) = (vec![0.0; self.input], vec![0i8; widest], vec![0i8; widest]);
        let mut logits = vec![0.0; self.classes()];
        net.predict_in(row, &mut z, &mut a, &mut b, &mut logits);
        logits
    }

    /// Whether running `row` leaves f32's range: for f32 layers a standardized input or a layer's
    /// value before its activation that is infinite or NaN (ReLU would turn NaN into 0 and hide
    /// it); for int8 ones the standardized input (the integer layers saturate by definition). The
    /// logits of such a row are not meaningful; `predict` warns about them.
    pub fn overflows(&self, row: &[f32], form: InputForm) -> bool {
        let mut x = self.first_layer_input(row, form);
        if self.precision() == Precision::Int8 {
            return x.iter().any(|v| !v.is_finite());
        }
        for layer in self.graph_layers() {
            if x.iter().any(|v| !v.is_finite()) {
                return true;
            }
            let linear = GraphLayer { shape: LayerShape { activation: Activation::Linear, ..layer.shape }, ..layer };
            let mut y = vec![0.0; layer.output.len()];
            linear.forward(&x, &mut y);
            if y.iter().any(|v| !v.is_finite()) {
                return true;
            }
            layer.shape.activation.apply_layer(&mut y);
            x = y;
        }
        x.iter().any(|v| !v.is_finite())
    }

    /// What the first layer takes for `row`: the row standardized (raw input and a
    /// standardization), or as it is.
    fn first_layer_input(&self, row: &[f32], form: InputForm) -> Vec<f32> {
        match (&self.standardization, form) {
            (Some((mean, scale)), InputForm::Raw) => {
                let mut z = vec![0.0; row.len()];
                standardize::standardize(row, mean, scale, &mut z);
                z
            }
            _ => row.to_vec(),
        }
    }

    /// Test vectors (raw input, these logits, their class) of `rows`, encoded for the firmware.
    pub fn vectors<'r>(&self, rows: impl Iterator<Item = &'r [f32]>) -> Result<Vec<u8>> {
        let rows: Vec<&[f32]> = rows.collect();
        let logits: Vec<Vec<f32>> = rows.iter().map(|r| self.logits(r, InputForm::Raw)).collect();
        let records = rows.iter().zip(&logits).map(|(r, l)| (*r, output::argmax(l), &l[..]));
        let mut out = vec![0; Vectors::encoded_len(rows.len(), self.input, self.classes())];
        Vectors::write(&mut out, self.input, self.classes(), records).context("encoding the vectors")?;
        Ok(out)
    }
}
