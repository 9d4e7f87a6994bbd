//! Reading a dense network out of an ONNX graph, as Keras (through tf2onnx) and PyTorch (the
//! TorchScript and the dynamo exporters, opsets 7 to 21) write them.
//!
//! The nodes are taken in dependency order. Those whose inputs are all constants are evaluated
//! ([`super::tensors::fold`]: `Transpose` of a weight, the `Shape` → `Gather` → `Unsqueeze` →
//! `Concat` chains of a `Reshape`, `Cast`, `Constant`); the others form one chain from the graph's
//! input to its output, each node a step of a layer:
//!
//! | node | becomes |
//! |---|---|
//! | `MatMul` + `Add`, `Gemm` (`transB` 0 or 1, `alpha`, `beta`) | a Dense layer; the bias's length is checked against the layer's width |
//! | `Conv` (group 1, or one filter per channel), `MaxPool`, `AveragePool`, `GlobalAveragePool` | Conv2D, DepthwiseConv2D, pooling ([`super::spatial`]: NCHW read into NHWC, Keras's padding) |
//! | `Mul`, `Add`, `BatchNormalization` after a Dense or a convolution | folded into it (tf2onnx writes Keras's BatchNorm as `Mul` + `Add`) |
//! | `Relu`, `Sigmoid`, `Tanh`, `HardSigmoid`, a last `Softmax` | the layer's activation (after a `MaxPool`: the convolution's before it, as the two commute) |
//! | `Flatten`, `Reshape`, `Cast` to float, `Identity`, `Dropout` (off), `Transpose` NHWC ↔ NCHW | nothing (rows are row-major; a channels-first Flatten reorders the next Dense's rows) |
//! | `Sub` then `Div` by constants before the first layer | the input standardization (dropship's own export) |
//!
//! The batch dimension may be named, numbered or computed (`Shape` of the input): it is kept
//! symbolic. Anything else, or a graph that branches, is refused naming the node and its op.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use dropship_shared::artifact::Activation;
use dropship_shared::{Dims, LayerKind, LayerShape};
use prost::Message;
use tract_onnx::pb;

use super::spatial::{self, Image};
use super::tensors::{self, bool_value, Const, Dim};
use super::ImportError;
use crate::limits::{MAX_LAYERS, MAX_WIDTH};
use crate::network::{HostNetwork, Layer, Weights};

/// The default-domain opsets the importer reads.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

/// What an import found.
#[derive(Debug)]
pub struct Imported {
    /// The network (with the standardization the graph has, if any).
    pub network: HostNetwork,
    /// Nodes that run as nothing: Dropout, Identity, Flatten, Reshape, Cast.
    pub stripped: Vec<String>,
    /// The graph's value before a final Softmax (the logits), if it ends with one: the import is
    /// checked there too, where a shift common to every output is not hidden.
    pub pre_softmax: Option<String>,
    /// The graph input's shape without its batch dimension (`[784]`, or `[1, 28, 28]` for an
    /// image model that flattens it).
    pub input_shape: Vec<usize>,
}

/// Decodes ONNX bytes and imports the graph; nothing is run. Tensors kept in external files are
/// refused (use [`import_from_file`]).
pub fn import_bytes(bytes: &[u8]) -> Result<Imported, ImportError> {
    import_with(&decode(bytes)?, None)
}

/// Imports the model in the file `path`, whose bytes are `bytes`; tensors kept in external files
/// are read from files inside the model's directory only.
pub fn import_from_file(path: &Path, bytes: &[u8]) -> Result<Imported, ImportError> {
    let model = decode(bytes).map_err(|e| match e {
        ImportError::Decode { reason, .. } => ImportError::Decode { path: path.display().to_string(), reason },
        other => other,
    })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    import_with(&model, Some(dir))
}

fn decode(bytes: &[u8]) -> Result<pb::ModelProto, ImportError> {
    pb::ModelProto::decode(bytes).map_err(|e| ImportError::Decode { path: "the model".into(), reason: e.to_string() })
}

/// Imports a decoded model (tensors in external files refused).
pub fn import_model(model: &pb::ModelProto) -> Result<Imported, ImportError> {
    import_with(model, None)
}

fn default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

fn int_attr(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

fn float_attr(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
}

fn node_name(n: &pb::NodeProto) -> String {
    if n.name.is_empty() {
        n.output.first().cloned().unwrap_or_default()
    } else {
        n.name.clone()
    }
}

/// The nodes in an order where each comes after the nodes whose outputs it takes (Kahn's
/// algorithm, linear in the graph); a cycle is refused.
fn dependency_order(graph: &pb::GraphProto) -> Result<Vec<&pb::NodeProto>, ImportError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for out in n.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(out.as_str(), i);
        }
    }
    let mut waiting = vec![0usize; graph.node.len()];
    let mut takers: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        let sources: HashSet<usize> = n.input.iter().filter_map(|v| producer.get(v.as_str()).copied()).collect();
        waiting[i] = sources.len();
        for s in sources {
            takers[s].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..graph.node.len()).filter(|i| waiting[*i] == 0).collect();
    let mut order = Vec::with_capacity(graph.node.len());
    while let Some(i) = ready.pop_front() {
        order.push(&graph.node[i]);
        for t in &takers[i] {
            waiting[*t] -= 1;
            if waiting[*t] == 0 {
                ready.push_back(*t);
            }
        }
    }
    if order.len() != graph.node.len() {
        return Err(ImportError::BadGraph("a cycle: some nodes take their own outputs".into()));
    }
    Ok(order)
}

/// A `Constant` node's value (`value`, `value_float(s)`, `value_int(s)`).
fn constant_node(n: &pb::NodeProto, base: Option<&Path>) -> Result<Const, ImportError> {
    let bad = |reason: &str| ImportError::BadNode { name: node_name(n), reason: reason.into() };
    let a = n.attribute.first().ok_or_else(|| bad("a Constant without a value"))?;
    match a.name.as_str() {
        "value" => tensors::read(a.t.as_ref().ok_or_else(|| bad("a Constant without its tensor"))?, base),
        "value_float" => Ok(Const::Real { dims: vec![], data: vec![a.f] }),
        "value_floats" => Ok(Const::Real { dims: vec![a.floats.len()], data: a.floats.clone() }),
        "value_int" => Ok(Const::Int { dims: vec![], data: vec![Dim::Known(a.i)] }),
        "value_ints" => {
            Ok(Const::Int { dims: vec![a.ints.len()], data: a.ints.iter().map(|v| Dim::Known(*v)).collect() })
        }
        other => Err(bad(&format!("a Constant of `{other}`"))),
    }
}

/// The chain being read and the network it becomes.
struct Walk<'g> {
    base: Option<&'g Path>,
    protos: HashMap<&'g str, &'g pb::TensorProto>,
    consts: HashMap<String, Const>,
    opset: i64,
    output: &'g str,
    /// The chain's current value and its shape (`None` until known).
    head: String,
    shape: Option<Vec<Dim>>,
    data_values: HashMap<String, Option<Vec<Dim>>>,
    layers: Vec<Layer>,
    pending_matmul: bool,
    mean: Option<Vec<f32>>,
    standardization: Option<(Vec<f32>, Vec<f32>)>,
    stripped: Vec<String>,
    pre_softmax: Option<String>,
    /// The chain's value when it is a 4-D map, and its logical layout.
    image: Option<Image>,
    /// A channels-first map a Flatten read in `(c, h, w)` order: the next Dense's rows are
    /// reordered to the artifact's `(h, w, c)`.
    flattened_from: Option<Dims>,
}

impl<'g> Walk<'g> {
    /// The constant named `name`, read from its initializer the first time.
    fn constant(&mut self, name: &str) -> Result<Option<&Const>, ImportError> {
        if !self.consts.contains_key(name) {
            let Some(proto) = self.protos.get(name) else { return Ok(None) };
            let value = tensors::read(proto, self.base)?;
            self.consts.insert(name.to_string(), value);
        }
        Ok(self.consts.get(name))
    }

    fn real(&mut self, n: &pb::NodeProto, i: usize) -> Result<(Vec<usize>, Vec<f32>), ImportError> {
        let bad = |reason: &str| ImportError::BadNode { name: node_name(n), reason: reason.into() };
        let name = n.input.get(i).filter(|s| !s.is_empty()).ok_or_else(|| bad("an input is missing"))?;
        if let Some(t) = self.protos.get(name.as_str()).filter(|t| !matches!(t.data_type, 1 | 11)) {
            return Err(ImportError::NotFloat { name: t.name.clone(), found: t.data_type });
        }
        match self.constant(name)? {
            Some(Const::Real { dims, data }) => Ok((dims.clone(), data.clone())),
            Some(Const::Int { .. }) => Err(bad("a weight input holds integers")),
            None => Err(bad("a weight input is not a constant")),
        }
    }

    fn step(&mut self, n: &'g pb::NodeProto) -> Result<(), ImportError> {
        let name = node_name(n);
        let bad = |reason: &str| ImportError::BadNode { name: name.clone(), reason: reason.into() };
        if n.op_type == "Constant" {
            let value = constant_node(n, self.base)?;
            if let Some(out) = n.output.first() {
                self.consts.insert(out.clone(), value);
            }
            return Ok(());
        }
        let data: Vec<&String> = n.input.iter().filter(|i| self.data_values.contains_key(i.as_str())).collect();
        if data.is_empty() {
            let mut inputs = Vec::new();
            for i in &n.input {
                inputs.push(if i.is_empty() { None } else { self.constant(i)?.cloned() });
            }
            let refs: Vec<Option<&Const>> = inputs.iter().map(Option::as_ref).collect();
            let value = match tensors::fold(n, &refs, self.opset) {
                Some(value) => value.map_err(|r| bad(&r))?,
                None => return Err(ImportError::UnsupportedOp { name, op: n.op_type.clone() }),
            };
            if let Some(out) = n.output.first() {
                self.consts.insert(out.clone(), value);
            }
            return Ok(());
        }
        if n.op_type == "Shape" {
            let shape = self.data_values.get(data[0].as_str()).cloned().flatten();
            let shape = shape.ok_or_else(|| bad("the Shape of a value whose shape is not known"))?;
            if let Some(out) = n.output.first() {
                self.consts.insert(out.clone(), tensors::shape_of(n, &shape));
            }
            return Ok(());
        }
        if data.len() > 1 && data.iter().all(|d| **d == self.head) {
            return Err(bad("a weight input is not a constant"));
        }
        if data.len() > 1 || *data[0] != self.head {
            return Err(ImportError::BadGraph(format!(
                "node `{name}` (op {}) takes `{}`: the graph branches, and dropship imports a chain of layers",
                n.op_type, data[0]
            )));
        }
        self.layer_step(n, &name)?;
        let out = n.output.first().filter(|o| !o.is_empty()).ok_or_else(|| bad("the node has no output"))?;
        self.head = out.clone();
        self.data_values.insert(out.clone(), self.shape.clone());
        Ok(())
    }

    /// Pushes a dense layer of weights `w` (`dims`, transposed when `trans_b`) and optional bias.
    fn dense(
        &mut self,
        name: &str,
        (dims, w): (Vec<usize>, Vec<f32>),
        bias: Option<(Vec<usize>, Vec<f32>)>,
        trans_b: bool,
    ) -> Result<(), ImportError> {
        let bad = |reason: &str| ImportError::BadNode { name: name.to_string(), reason: reason.into() };
        let [rows, cols] = dims[..] else { return Err(bad("the weight is not 2-D")) };
        let (fan_in, fan_out) = if trans_b { (cols, rows) } else { (rows, cols) };
        if fan_in.max(fan_out) > MAX_WIDTH || fan_in.min(fan_out) == 0 {
            return Err(bad(&format!("a {fan_in} x {fan_out} layer: widths must be between 1 and {MAX_WIDTH}")));
        }
        match self.shape.as_deref() {
            None => {}
            Some([_, Dim::Known(w)]) if *w == fan_in as i64 => {}
            Some([_, Dim::Known(w)]) => {
                return Err(ImportError::ShapesDontChain { name: name.into(), expected: *w as usize, found: fan_in })
            }
            Some(other) => {
                return Err(bad(&format!("a dense layer on a value of shape {other:?}: Flatten it first")));
            }
        }
        if self.layers.len() >= MAX_LAYERS {
            return Err(ImportError::BadGraph(format!("more than {MAX_LAYERS} dense layers (the artifact's limit)")));
        }
        let weights = if trans_b {
            (0..fan_in).flat_map(|i| (0..fan_out).map(move |o| (i, o))).map(|(i, o)| w[o * fan_in + i]).collect()
        } else {
            w
        };
        let weights = match self.flattened_from.take() {
            Some(map) if map.len() == fan_in => spatial::channels_last_rows(map, &weights, fan_out),
            _ => weights,
        };
        let bias = match bias {
            None => vec![0.0; fan_out],
            Some((dims, values)) => broadcast_bias(&dims, values, fan_out).map_err(|r| bad(&r))?,
        };
        self.layers.push(Layer::dense(fan_in, weights, bias, Activation::Linear));
        self.shape = Some(vec![Dim::Batch, Dim::Known(fan_out as i64)]);
        Ok(())
    }

    /// The last layer's `(kernel, bias)`, if it can still take an affine step (no activation yet).
    fn open_layer(&mut self, name: &str, op: &str) -> Result<(&mut Vec<f32>, &mut Vec<f32>), ImportError> {
        let bad = || ImportError::BadNode {
            name: name.to_string(),
            reason: format!("a {op} that does not follow a dense layer"),
        };
        match self.layers.last_mut() {
            Some(Layer { activation: Activation::Linear, weights: Weights::F32 { kernel, bias }, kind, .. })
                if LayerShape::has_weights(*kind) =>
            {
                Ok((kernel, bias))
            }
            _ => Err(bad()),
        }
    }

    fn layer_step(&mut self, n: &'g pb::NodeProto, name: &str) -> Result<(), ImportError> {
        let bad = |reason: &str| ImportError::BadNode { name: name.to_string(), reason: reason.into() };
        // the constant operand of a binary node: the input that is not the chain
        let other = usize::from(n.input.first() == Some(&self.head));
        match n.op_type.as_str() {
            "MatMul" => {
                if n.input.first() != Some(&self.head) {
                    return Err(bad("the data must be MatMul's first input"));
                }
                let w = self.real(n, 1)?;
                self.dense(name, w, None, false)?;
                self.pending_matmul = true;
            }
            "Gemm" => {
                if int_attr(n, "transA", 0) != 0 || n.input.first() != Some(&self.head) {
                    return Err(bad("only Gemm with the data as A, not transposed (transA = 0), is supported"));
                }
                let (alpha, beta) = (float_attr(n, "alpha", 1.0), float_attr(n, "beta", 1.0));
                let (dims, mut w) = self.real(n, 1)?;
                w.iter_mut().for_each(|v| *v *= alpha);
                let b = if n.input.get(2).is_some_and(|c| !c.is_empty()) {
                    let (dims, mut b) = self.real(n, 2)?;
                    b.iter_mut().for_each(|v| *v *= beta);
                    Some((dims, b))
                } else {
                    None
                };
                self.dense(name, (dims, w), b, int_attr(n, "transB", 0) != 0)?;
                self.pending_matmul = false;
            }
            "Conv" => {
                let map = self.image_map(n, name)?;
                let (dims, w) = self.real(n, 1)?;
                let (shape, kernel) = spatial::conv(n, map, &dims, &w).map_err(|r| bad(&r))?;
                let bias = if n.input.get(2).is_some_and(|c| !c.is_empty()) {
                    let (dims, b) = self.real(n, 2)?;
                    broadcast_bias(&dims, b, shape.units).map_err(|r| bad(&r))?
                } else {
                    vec![0.0; shape.units]
                };
                self.push_image_layer(name, Layer::f32_of(shape, map, kernel, bias))?;
            }
            "MaxPool" | "AveragePool" => {
                let map = self.image_map(n, name)?;
                let shape = spatial::pool(n, map).map_err(|r| bad(&r))?;
                self.push_image_layer(name, Layer::f32_of(shape, map, Vec::new(), Vec::new()))?;
            }
            "GlobalAveragePool" => {
                let map = self.image_map(n, name)?;
                let shape = LayerShape {
                    kind: LayerKind::GlobalAveragePool,
                    ..LayerShape::dense(map.channels, Activation::Linear)
                };
                self.push_image_layer(name, Layer::f32_of(shape, map, Vec::new(), Vec::new()))?;
            }
            "Transpose" => {
                let perm = n.attribute.iter().find(|a| a.name == "perm").map(|a| a.ints.clone()).unwrap_or_default();
                let image = self.image.ok_or_else(|| bad("a Transpose of a value that is not an image"))?;
                let image = image.transposed(&perm).map_err(|r| bad(&r))?;
                self.set_image(image);
                self.stripped.push(format!("{name} (Transpose, layouts are converted at import)"));
            }
            "Add" if !self.layers.is_empty() => {
                let (dims, values) = self.real(n, other)?;
                let dims = self.channel_constant(&dims);
                let (_, bias) = self.open_layer(name, "Add")?;
                let add = broadcast_bias(&dims, values, bias.len()).map_err(|r| bad(&r))?;
                bias.iter_mut().zip(add).for_each(|(b, a)| *b += a);
                self.pending_matmul = false;
            }
            "Mul" if !self.layers.is_empty() => {
                let (dims, values) = self.real(n, other)?;
                let dims = self.channel_constant(&dims);
                let (kernel, bias) = self.open_layer(name, "Mul")?;
                let scale = broadcast_bias(&dims, values, bias.len()).map_err(|r| bad(&r))?;
                scale_units(kernel, bias, &scale, None);
            }
            "BatchNormalization" => {
                if int_attr(n, "training_mode", 0) != 0 {
                    return Err(bad("training_mode is on: batch statistics are training-only"));
                }
                let epsilon = float_attr(n, "epsilon", 1e-5) as f64;
                let [(_, gamma), (_, beta), (_, mean), (_, var)] =
                    [self.real(n, 1)?, self.real(n, 2)?, self.real(n, 3)?, self.real(n, 4)?];
                let (kernel, bias) = self.open_layer(name, "BatchNormalization")?;
                let units = bias.len();
                if [&gamma, &beta, &mean, &var].iter().any(|v| v.len() != units) || var.iter().any(|v| *v < 0.0) {
                    return Err(bad(&format!("statistics that do not fit the layer's {units} units")));
                }
                let scale: Vec<f32> =
                    (0..units).map(|o| (gamma[o] as f64 / (var[o] as f64 + epsilon).sqrt()) as f32).collect();
                scale_units(kernel, bias, &scale, Some((&mean, &beta)));
                self.stripped.push(format!("{name} (BatchNormalization, folded into the dense layer)"));
            }
            op @ ("Relu" | "Sigmoid" | "Tanh" | "HardSigmoid" | "Softmax") => {
                let activation = match op {
                    "Relu" => Activation::Relu,
                    "Sigmoid" => Activation::Sigmoid,
                    "Tanh" => Activation::Tanh,
                    "HardSigmoid" => {
                        let (alpha, beta) = (float_attr(n, "alpha", 0.2), float_attr(n, "beta", 0.5));
                        if (alpha - 1.0 / 6.0).abs() > 1e-6 || beta != 0.5 {
                            return Err(bad(&format!(
                                "HardSigmoid with alpha {alpha}, beta {beta}: dropship's hard-sigmoid is \
                                 x/6 + 1/2 clipped to [0, 1] (PyTorch's Hardsigmoid, Keras 3's hard_sigmoid)"
                            )));
                        }
                        Activation::HardSigmoid
                    }
                    _ => {
                        if n.output.first().map(String::as_str) != Some(self.output) {
                            return Err(bad("a Softmax must be the graph's last node (it spans the layer)"));
                        }
                        let last_axis = self.shape.as_ref().map_or(1, |s| s.len() as i64 - 1);
                        let axis = int_attr(n, "axis", if self.opset >= 13 { -1 } else { 1 });
                        if axis != -1 && axis != last_axis {
                            return Err(bad("a Softmax over an axis other than the features"));
                        }
                        self.pre_softmax = Some(self.head.clone());
                        Activation::Softmax
                    }
                };
                // after a MaxPool, the activation is the convolution's before it: a monotonic
                // activation commutes with taking the largest value
                let last = self.layers.len().saturating_sub(1);
                let target = match self.layers.last().map(|l| l.kind) {
                    Some(LayerKind::MaxPool2d) if activation.is_elementwise() => last.checked_sub(1),
                    _ => Some(last),
                };
                let layer = target
                    .and_then(|i| self.layers.get_mut(i))
                    .filter(|l| l.activation == Activation::Linear && LayerShape::has_weights(l.kind))
                    .ok_or_else(|| bad(&format!("{op} must follow a dense or convolution layer")))?;
                layer.activation = activation;
                self.pending_matmul = false;
            }
            // dropship's own export: (x - mean) / scale before the first layer
            "Sub" if self.layers.is_empty() && self.mean.is_none() && self.standardization.is_none() => {
                self.mean = Some(self.real(n, 1)?.1)
            }
            "Div" if self.mean.is_some() => {
                let scale = self.real(n, 1)?.1;
                self.standardization = Some((self.mean.take().unwrap_or_default(), scale));
            }
            "Dropout" => {
                // inputs: data, ratio (optional), training_mode (optional, false when absent)
                if let Some(mode) = n.input.get(2).filter(|t| !t.is_empty()) {
                    match self.constant(mode)?.map(bool_value) {
                        Some(Some(false)) => {}
                        Some(Some(true)) => {
                            return Err(bad("training_mode is true: this Dropout would drop units at inference"))
                        }
                        _ => return Err(bad("training_mode is not a constant boolean: cannot tell it is off")),
                    }
                }
                self.stripped.push(format!("{name} (Dropout)"));
            }
            "Identity" => self.stripped.push(format!("{name} (Identity)")),
            "Cast" if int_attr(n, "to", 1) == 1 => self.stripped.push(format!("{name} (Cast to float)")),
            "Flatten" => {
                let layer = match self.image.take() {
                    Some(image) => self.flatten_image(image)?,
                    None => false,
                };
                let axis = int_attr(n, "axis", 1);
                if let Some(shape) = &self.shape {
                    let rank = shape.len() as i64;
                    if (if axis < 0 { axis + rank } else { axis }) != 1 {
                        return Err(bad("a Flatten that does not keep the batch dimension (axis 1)"));
                    }
                    self.shape = Some(vec![Dim::Batch, Dim::Known(known_product(&shape[1..]).map_err(|r| bad(&r))?)]);
                }
                if !layer {
                    self.stripped.push(format!("{name} (Flatten)"));
                }
            }
            "Reshape" => {
                let target = match n.input.get(1) {
                    Some(s) => self.constant(s)?.cloned(),
                    None => None,
                };
                let target = target.ok_or_else(|| bad("a Reshape to a shape that is not a constant"))?;
                let Const::Int { data: target, .. } = target else { return Err(bad("a Reshape to a real shape")) };
                self.shape = Some(reshaped(self.shape.as_deref(), &target).map_err(|r| bad(&r))?);
                match (self.image.take(), self.shape.as_deref()) {
                    (Some(image), Some([_, _])) => {
                        self.flatten_image(image)?;
                    }
                    (Some(_), _) => return Err(bad("a Reshape of an image to anything but a flat vector")),
                    // a flat value read as an image, in the layout the next operator says
                    (None, Some([_, Dim::Known(a), Dim::Known(b), Dim::Known(c)])) => {
                        self.image = Some(Image::Input([*a as usize, *b as usize, *c as usize]))
                    }
                    (None, _) => {}
                }
                self.stripped.push(format!("{name} (Reshape)"));
            }
            op => return Err(ImportError::UnsupportedOp { name: name.to_string(), op: op.into() }),
        }
        Ok(())
    }
}

impl Walk<'_> {
    /// The map an image operator reads (channels-first), or why the chain's value is not one.
    fn image_map(&self, n: &pb::NodeProto, name: &str) -> Result<Dims, ImportError> {
        let bad = |reason: String| ImportError::BadNode { name: name.to_string(), reason };
        let image = self.image.ok_or_else(|| bad(format!("a {} on a value that is not a 4-D image", n.op_type)))?;
        image.channels_first().map_err(bad)
    }

    /// Records the chain's value as `image` (its logical shape too).
    fn set_image(&mut self, image: Image) {
        let [a, b, c] = image.logical().map(|v| Dim::Known(v as i64));
        self.shape = Some(vec![Dim::Batch, a, b, c]);
        self.image = Some(image);
    }

    /// Appends a convolution or pooling layer; the chain's value becomes its channels-first map.
    fn push_image_layer(&mut self, name: &str, layer: Layer) -> Result<(), ImportError> {
        let out = layer.output_dims().filter(|d| d.len() <= dropship_shared::artifact::MAX_MAP).ok_or_else(|| {
            ImportError::BadNode { name: name.to_string(), reason: "a layer its input map cannot take".into() }
        })?;
        if self.layers.len() >= MAX_LAYERS {
            return Err(ImportError::BadGraph(format!("more than {MAX_LAYERS} layers (the artifact's limit)")));
        }
        self.layers.push(layer);
        self.set_image(Image::ChannelsFirst(out));
        Ok(())
    }

    /// The chain's `image` read as rows: a Flatten layer after a layer whose output is a map (the
    /// artifact's layers chain maps explicitly), and the order the next Dense reads them in.
    /// Whether it added a layer.
    fn flatten_image(&mut self, image: Image) -> Result<bool, ImportError> {
        self.flattened_from = image.flatten_order();
        let Some(map) = self.layers.last().and_then(Layer::output_dims).filter(|d| !d.is_flat()) else {
            return Ok(false);
        };
        if self.layers.len() >= MAX_LAYERS {
            return Err(ImportError::BadGraph(format!("more than {MAX_LAYERS} layers (the artifact's limit)")));
        }
        let shape = LayerShape { kind: LayerKind::Flatten, ..LayerShape::dense(map.len(), Activation::Linear) };
        self.layers.push(Layer::f32_of(shape, map, Vec::new(), Vec::new()));
        Ok(true)
    }

    /// A per-channel constant's shape as a bias's: `[1, C, 1, 1]` or `[C, 1, 1]` on a
    /// channels-first image (ONNX broadcasting from the right) becomes `[C]`.
    fn channel_constant(&self, dims: &[usize]) -> Vec<usize> {
        let channels_first = matches!(self.image, Some(Image::ChannelsFirst(_)));
        match dims {
            [1, c, 1, 1] | [c, 1, 1] if channels_first => vec![*c],
            other => other.to_vec(),
        }
    }
}

/// `kernel[i][o] *= scale[o]` and `bias[o] = (bias[o] - mean[o]) · scale[o] + shift[o]` (without
/// `mean`/`shift`: `bias[o] *= scale[o]`).
fn scale_units(kernel: &mut [f32], bias: &mut [f32], scale: &[f32], centre: Option<(&[f32], &[f32])>) {
    let units = bias.len();
    for (k, w) in kernel.iter_mut().enumerate() {
        *w *= scale[k % units];
    }
    for (o, b) in bias.iter_mut().enumerate() {
        *b = match centre {
            Some((mean, shift)) => (*b - mean[o]) * scale[o] + shift[o],
            None => *b * scale[o],
        };
    }
}

/// The product of known dimensions.
fn known_product(dims: &[Dim]) -> Result<i64, String> {
    dims.iter().try_fold(1i64, |p, d| match d {
        Dim::Known(v) if *v > 0 => p.checked_mul(*v).ok_or_else(|| "a shape too large".to_string()),
        _ => Err(format!("a shape {dims:?} that is not known past the batch dimension")),
    })
}

/// The shape a `Reshape` to `target` gives a chain value of shape `shape`: the batch dimension must
/// stay first (`0`, `-1` or the batch size itself), the rest keeps its number of values.
fn reshaped(shape: Option<&[Dim]>, target: &[Dim]) -> Result<Vec<Dim>, String> {
    let Some(shape) = shape else { return Err("a Reshape of a value whose shape is not known".into()) };
    let features = known_product(shape.get(1..).unwrap_or(&[]))?;
    let mut out: Vec<Dim> = target
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Known(0) => shape.get(i).copied().unwrap_or(Dim::Known(1)),
            other => *other,
        })
        .collect();
    match out.first() {
        Some(Dim::Batch) => {}
        Some(Dim::Known(-1)) => out[0] = Dim::Batch,
        _ => return Err(format!("a Reshape to {target:?} moves the batch dimension")),
    }
    let rest = &mut out[1..];
    let known = rest
        .iter()
        .try_fold(1i64, |p, d| match d {
            Dim::Known(v) if *v > 0 => p.checked_mul(*v),
            _ => Some(p),
        })
        .ok_or_else(|| format!("a Reshape to {target:?}: a shape too large"))?;
    for d in rest.iter_mut() {
        match d {
            Dim::Known(-1) if known > 0 && features % known == 0 => *d = Dim::Known(features / known),
            Dim::Known(v) if *v > 0 => {}
            _ => return Err(format!("a Reshape to {target:?} of a batch of {features} values each")),
        }
    }
    if known_product(&out[1..])? != features {
        return Err(format!("a Reshape to {target:?} of a batch of {features} values each"));
    }
    Ok(out)
}

/// A bias of `width` values from a constant of shape `dims`: `[width]`, `[1, width]`, or one
/// value broadcast to every output, as ONNX's broadcasting reads them; any other shape is refused.
fn broadcast_bias(dims: &[usize], values: Vec<f32>, width: usize) -> Result<Vec<f32>, String> {
    let trailing = dims.last().copied().unwrap_or(1);
    let leading_ones = dims.len() <= 2 && dims.iter().rev().skip(1).all(|d| *d == 1);
    match (values.len(), leading_ones) {
        (1, true) => Ok(vec![values[0]; width]),
        (n, true) if n == width && trailing == width => Ok(values),
        _ => Err(format!("a constant of shape {dims:?} does not broadcast to the layer's {width} outputs")),
    }
}

/// The graph input's shape, batch first (`None` when the graph does not say).
fn input_shape(input: &pb::ValueInfoProto) -> Result<Option<Vec<Dim>>, ImportError> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(None);
    };
    if t.elem_type != 1 {
        return Err(ImportError::NotFloat { name: input.name.clone(), found: t.elem_type });
    }
    let Some(shape) = &t.shape else { return Ok(None) };
    let mut dims = Vec::new();
    for (i, d) in shape.dim.iter().enumerate() {
        dims.push(match (i, &d.value) {
            (0, _) => Dim::Batch,
            (_, Some(Value::DimValue(v))) if *v > 0 => Dim::Known(*v),
            _ => {
                return Err(ImportError::BadGraph(format!(
                    "input `{}`: dimension {i} is not a fixed size (only the batch dimension may vary)",
                    input.name
                )))
            }
        });
    }
    Ok((dims.len() >= 2).then_some(dims))
}

fn import_with(model: &pb::ModelProto, base: Option<&Path>) -> Result<Imported, ImportError> {
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let opset = match model.opset_import.iter().find(|o| default_domain(&o.domain)).map(|o| o.version) {
        Some(v) if OPSETS.contains(&v) => v,
        Some(v) => {
            return Err(ImportError::BadGraph(format!(
                "opset {v}: dropship reads opsets {} to {}",
                OPSETS.start(),
                OPSETS.end()
            )))
        }
        None => return Err(ImportError::BadGraph("no opset of the default ONNX domain".into())),
    };
    if let Some(n) = graph.node.iter().find(|n| !default_domain(&n.domain)) {
        return Err(ImportError::UnsupportedOp { name: n.name.clone(), op: format!("{}.{}", n.domain, n.op_type) });
    }
    let mut protos = HashMap::new();
    for t in &graph.initializer {
        if protos.insert(t.name.as_str(), t).is_some() {
            return Err(ImportError::BadGraph(format!("two initializers named `{}`", t.name)));
        }
    }
    let input = graph
        .input
        .iter()
        .find(|i| !protos.contains_key(i.name.as_str()))
        .ok_or_else(|| ImportError::BadGraph("no non-constant input".into()))?;
    let output = graph.output.first().ok_or_else(|| ImportError::BadGraph("no output".into()))?;
    let shape = input_shape(input)?;
    let mut walk = Walk {
        base,
        protos,
        consts: HashMap::new(),
        opset,
        output: &output.name,
        head: input.name.clone(),
        shape: shape.clone(),
        data_values: HashMap::from([(input.name.clone(), shape.clone())]),
        layers: Vec::new(),
        pending_matmul: false,
        mean: None,
        standardization: None,
        stripped: Vec::new(),
        pre_softmax: None,
        image: None,
        flattened_from: None,
    };
    if let Some([_, Dim::Known(a), Dim::Known(b), Dim::Known(c)]) = shape.as_deref() {
        walk.image = Some(Image::Input([*a as usize, *b as usize, *c as usize]));
    }
    for n in dependency_order(graph)? {
        walk.step(n)?;
    }
    if walk.head != output.name {
        return Err(ImportError::BadGraph(format!(
            "the chain from the input ends at `{}`, not at the output `{}`",
            walk.head, output.name
        )));
    }
    let first = walk.layers.first().ok_or_else(|| ImportError::BadGraph("no layer".into()))?;
    let input_width = first.input;
    if let Some((m, sc)) = &walk.standardization {
        if m.len() != input_width || sc.len() != input_width || sc.iter().any(|v| *v <= 0.0) {
            return Err(ImportError::BadGraph("a standardization that does not match the first layer".into()));
        }
    }
    let input_shape = match &shape {
        Some(dims) => dims[1..].iter().map(|d| if let Dim::Known(v) = d { *v as usize } else { 0 }).collect(),
        None => vec![input_width],
    };
    Ok(Imported {
        network: HostNetwork::f32(input_width, walk.layers, walk.standardization)
            .map_err(|e| ImportError::BadGraph(e.to_string()))?,
        stripped: walk.stripped,
        pre_softmax: walk.pre_softmax,
        input_shape,
    })
}
