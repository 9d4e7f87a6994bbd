//! ONNX graphs as protobuf: dropship's export written, other tools' Dense/ReLU exports read.
//!
//! Out: a network becomes a standard opset-13 graph (`Sub`/`Div` for the standardization,
//! `Gemm`, then `Relu`, `Sigmoid`, `Tanh`, `HardSigmoid` or a final `Softmax`; no Dropout), built
//! from `tract_onnx::pb`.
//!
//! In: a dense network exported elsewhere (Keras through tf2onnx: `MatMul` + `Add`; PyTorch:
//! `Gemm` with `transB = 1`; hand-written graphs) becomes a network, each activation node the
//! layer's activation (a `Softmax` only last). `Dropout` and `Identity` nodes are stripped;
//! anything else is refused by name. Nothing here runs a graph: the host checks imports with tract.

use std::collections::HashMap;

use dropship_shared::artifact::Activation;
use prost::Message;
use tract_onnx::pb;

use crate::limits::{product_within, MAX_LAYERS, MAX_PARAMETERS, MAX_WIDTH};
use crate::network::{HostNetwork, Layer, Weights};

/// ONNX element type FLOAT.
const FLOAT: i32 = 1;
/// The opset the export targets.
pub const OPSET: i64 = 13;

/// Why an ONNX file cannot become an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: not an ONNX model ({reason})")]
    Decode { path: String, reason: String },
    #[error("node `{name}` (op {op}) is not supported: dropship imports Dense/ReLU networks (MatMul + Add, Gemm, Relu; Dropout, Identity and a final Softmax are stripped)")]
    UnsupportedOp { name: String, op: String },
    #[error("tensor `{name}` has element type {found}; only float32 is supported")]
    NotFloat { name: String, found: i32 },
    #[error("node `{name}`: {reason}")]
    BadNode { name: String, reason: String },
    #[error("layer shapes don't chain: node `{name}` takes {found} inputs, the previous layer gives {expected}")]
    ShapesDontChain { name: String, expected: usize, found: usize },
    #[error("the graph has {0}")]
    BadGraph(String),
    #[error("the model holds no graph: not an exported network")]
    NoGraph,
}

/// A float32 initializer (values in `float_data`).
pub fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|d| *d as i64).collect(),
        data_type: FLOAT,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// A node of the default domain.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A float attribute of a node.
pub fn float_attribute(name: &str, value: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: value,
        ..Default::default()
    }
}

/// A float32 graph input or output of shape `[batch, width]`.
pub fn value_info(name: &str, width: usize) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |v| Dimension { value: Some(v), ..Default::default() };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![dim(Value::DimParam("batch".into())), dim(Value::DimValue(width as i64))],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The artifact's network as an ONNX model taking raw inputs (standardization included). f32 only:
/// an int8 network is refused (ONNX's quantized operators are not what dropship writes).
pub fn export_model(net: &HostNetwork) -> anyhow::Result<pb::ModelProto> {
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut current = "input".to_string();
    if let Some((mean, scale)) = net.standardization() {
        initializers.push(tensor_f32("standardization.mean", &[net.input()], mean));
        initializers.push(tensor_f32("standardization.scale", &[net.input()], scale));
        nodes.push(node("Sub", "center", &["input", "standardization.mean"], &["centered"]));
        nodes.push(node("Div", "scale", &["centered", "standardization.scale"], &["standardized"]));
        current = "standardized".into();
    }
    let last = net.layers().len().saturating_sub(1);
    for (i, layer) in net.layers().iter().enumerate() {
        let Some((kernel, bias)) = layer.f32() else {
            anyhow::bail!("layer {i} is {}: only f32 models export to ONNX (export the f32 model)", layer.precision());
        };
        let (w, b) = (format!("dense_{i}.kernel"), format!("dense_{i}.bias"));
        let out = if i == last && layer.activation == Activation::Linear {
            "logits".to_string()
        } else {
            format!("dense_{i}")
        };
        initializers.push(tensor_f32(&w, &[layer.input, bias.len()], kernel));
        initializers.push(tensor_f32(&b, &[bias.len()], bias));
        nodes.push(node("Gemm", &format!("dense_{i}"), &[&current, &w, &b], &[&out]));
        current = out;
        let op = match layer.activation {
            Activation::Linear => continue,
            Activation::Relu => "Relu",
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::HardSigmoid => "HardSigmoid",
            Activation::Softmax => "Softmax",
        };
        let name = format!("{}_{i}", layer.activation.name().replace('-', "_"));
        let out = if i == last { "logits".to_string() } else { name.clone() };
        let mut activation = node(op, &name, &[&current], &[&out]);
        if layer.activation == Activation::HardSigmoid {
            activation.attribute = vec![float_attribute("alpha", 1.0 / 6.0), float_attribute("beta", 0.5)];
        }
        nodes.push(activation);
        current = out;
    }
    Ok(pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "dropship".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(pb::GraphProto {
            name: "dropship".into(),
            node: nodes,
            initializer: initializers,
            input: vec![value_info("input", net.input())],
            output: vec![value_info("logits", net.classes())],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// What an import found.
#[derive(Debug)]
pub struct Imported {
    /// The network (without standardization).
    pub network: HostNetwork,
    /// Nodes removed: Dropout, Identity.
    pub stripped: Vec<String>,
    /// The graph's value before a final Softmax (the logits), if it ends with one: the import is
    /// checked there too, where a shift common to every output is not hidden.
    pub pre_softmax: Option<String>,
}

/// The default-domain opsets the importer reads: the `Gemm`, `MatMul`, `Add`, `Relu`, `Dropout`
/// and `Softmax` it knows are those of opsets 7 to 21.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=21;

fn tensor_values(t: &pb::TensorProto) -> Result<(Vec<usize>, Vec<f32>), ImportError> {
    if t.data_type != FLOAT {
        return Err(ImportError::NotFloat { name: t.name.clone(), found: t.data_type });
    }
    let dims: Vec<usize> = t.dims.iter().map(|d| usize::try_from(*d).unwrap_or(0)).collect();
    if product_within(&dims, MAX_PARAMETERS).is_none() {
        return Err(ImportError::BadGraph(format!(
            "tensor `{}` of shape {dims:?}: above the limit of {} values",
            t.name, MAX_PARAMETERS
        )));
    }
    if !t.raw_data.is_empty() && !t.float_data.is_empty() {
        return Err(ImportError::BadGraph(format!("tensor `{}` holds both raw and typed data", t.name)));
    }
    let data: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        t.float_data.clone()
    };
    if Some(data.len()) != product_within(&dims, usize::MAX) {
        return Err(ImportError::BadGraph(format!(
            "tensor `{}` with {} values for shape {dims:?}",
            t.name,
            data.len()
        )));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(ImportError::BadGraph(format!("a non-finite value in tensor `{}` at {i}", t.name)));
    }
    Ok((dims, data))
}

/// ONNX element type BOOL.
const BOOL: i32 = 9;

/// The value of a one-element boolean tensor (`int32_data` or one raw byte), if it is one.
fn bool_value(t: &pb::TensorProto) -> Option<bool> {
    if t.data_type != BOOL {
        return None;
    }
    match (t.raw_data.as_slice(), t.int32_data.as_slice()) {
        ([b], []) => Some(*b != 0),
        ([], [v]) => Some(*v != 0),
        _ => None,
    }
}

fn int_attr(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

fn float_attr(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
}

/// Decodes ONNX bytes and imports the graph ([`import_model`]); nothing is run.
pub fn import_bytes(bytes: &[u8]) -> Result<Imported, ImportError> {
    let model = pb::ModelProto::decode(bytes)
        .map_err(|e| ImportError::Decode { path: "the model".into(), reason: e.to_string() })?;
    import_model(&model)
}

/// Turns an ONNX Dense/ReLU graph into a network, following the chain from the graph's input.
/// A leading `Sub`/`Div` by constants (dropship's own export) becomes the standardization.
pub fn import_model(model: &pb::ModelProto) -> Result<Imported, ImportError> {
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let default_domain = |d: &str| d.is_empty() || d == "ai.onnx";
    match model.opset_import.iter().find(|o| default_domain(&o.domain)).map(|o| o.version) {
        Some(v) if OPSETS.contains(&v) => {}
        Some(v) => {
            return Err(ImportError::BadGraph(format!(
                "opset {v}: dropship reads opsets {} to {}",
                OPSETS.start(),
                OPSETS.end()
            )))
        }
        None => return Err(ImportError::BadGraph("no opset of the default ONNX domain".into())),
    }
    if let Some(n) = graph.node.iter().find(|n| !default_domain(&n.domain)) {
        return Err(ImportError::UnsupportedOp { name: n.name.clone(), op: format!("{}.{}", n.domain, n.op_type) });
    }
    // Constant tensors by name, converted only when a layer uses them: a Dropout's bool
    // `training_mode` or double `ratio` is never a weight, so its type does not matter.
    let mut tensors: HashMap<String, &pb::TensorProto> = HashMap::new();
    for t in &graph.initializer {
        if tensors.insert(t.name.clone(), t).is_some() {
            return Err(ImportError::BadGraph(format!("two initializers named `{}`", t.name)));
        }
    }
    for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
        if let (Some(out), Some(t)) = (n.output.first(), n.attribute.iter().find_map(|a| a.t.as_ref())) {
            tensors.insert(out.clone(), t);
        }
    }
    let mut constants: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for n in graph.node.iter().filter(|n| matches!(n.op_type.as_str(), "MatMul" | "Add" | "Gemm" | "Sub" | "Div")) {
        for name in n.input.iter().skip(usize::from(n.op_type != "Add")) {
            if let Some(t) = tensors.get(name) {
                constants.insert(name.clone(), tensor_values(t)?);
            }
        }
    }
    let input = graph
        .input
        .iter()
        .find(|i| !tensors.contains_key(&i.name))
        .ok_or_else(|| ImportError::BadGraph("no non-constant input".into()))?;
    if let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        if t.elem_type != FLOAT {
            return Err(ImportError::NotFloat { name: input.name.clone(), found: t.elem_type });
        }
    }
    let output = graph.output.first().ok_or_else(|| ImportError::BadGraph("no output".into()))?.name.clone();
    let mut layers: Vec<Layer> = Vec::new();
    let mut stripped = Vec::new();
    let mut pre_softmax = None;
    let mut current = input.name.clone();
    let mut width: Option<usize> = None;
    let mut pending_matmul = false;
    let mut mean: Option<Vec<f32>> = None;
    let mut standardization: Option<(Vec<f32>, Vec<f32>)> = None;
    // The nodes that take each value (a node's first input, or either input of an Add), found
    // once: the walk below is linear in the graph's size.
    let mut takers: HashMap<&str, Vec<&pb::NodeProto>> = HashMap::new();
    for n in graph.node.iter().filter(|n| n.op_type != "Constant") {
        let mut inputs: Vec<&str> = n.input.first().map(String::as_str).into_iter().collect();
        if n.op_type == "Add" {
            inputs.extend(n.input.get(1).map(String::as_str).filter(|i| Some(*i) != inputs.first().copied()));
        }
        for i in inputs {
            takers.entry(i).or_default().push(n);
        }
    }
    // Each step consumes one node: a graph whose chain loops back is refused, not followed forever.
    for _ in 0..=graph.node.len() {
        if current == output {
            break;
        }
        if layers.len() > MAX_LAYERS {
            return Err(ImportError::BadGraph(format!("more than {MAX_LAYERS} dense layers (the artifact's limit)")));
        }
        let consumers: &[&pb::NodeProto] = takers.get(current.as_str()).map_or(&[], Vec::as_slice);
        let [n] = consumers else {
            return Err(ImportError::BadGraph(format!(
                "{} consumers of `{current}` (a chain of layers is needed)",
                consumers.len()
            )));
        };
        let name = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
        let bad = |reason: &str| ImportError::BadNode { name: name.clone(), reason: reason.into() };
        let constant = |i: usize| {
            n.input.get(i).and_then(|x| constants.get(x)).ok_or_else(|| bad("a weight input is not a constant"))
        };
        let mut dense = |w_dims: &[usize],
                         w: Vec<f32>,
                         b: Option<(Vec<usize>, Vec<f32>)>,
                         trans_b: bool|
         -> Result<(), ImportError> {
            let [rows, cols] = w_dims else {
                return Err(bad("the weight is not 2-D"));
            };
            let (fan_in, fan_out) = if trans_b { (*cols, *rows) } else { (*rows, *cols) };
            if fan_in.max(fan_out) > MAX_WIDTH || fan_in.min(fan_out) == 0 {
                return Err(bad(&format!("a {fan_in} x {fan_out} layer: widths must be between 1 and {}", MAX_WIDTH)));
            }
            if let Some(expected) = width {
                if expected != fan_in {
                    return Err(ImportError::ShapesDontChain { name: name.clone(), expected, found: fan_in });
                }
            }
            let weights = if trans_b {
                (0..fan_in).flat_map(|i| (0..fan_out).map(move |o| (i, o))).map(|(i, o)| w[o * fan_in + i]).collect()
            } else {
                w
            };
            let bias = match b {
                None => vec![0.0; fan_out],
                Some((dims, values)) => broadcast_bias(&dims, values, fan_out).map_err(|r| bad(&r))?,
            };
            layers.push(Layer::dense(fan_in, weights, bias, Activation::Linear));
            width = Some(fan_out);
            Ok(())
        };
        match n.op_type.as_str() {
            "MatMul" => {
                let (dims, w) = constant(1)?.clone();
                dense(&dims, w, None, false)?;
                pending_matmul = true;
            }
            "Add" if pending_matmul => {
                let other = if n.input.first() == Some(&current) { 1 } else { 0 };
                let (dims, b) = constant(other)?.clone();
                let layer = layers.last_mut().ok_or_else(|| bad("an Add without its MatMul"))?;
                if let Weights::F32 { bias, .. } = &mut layer.weights {
                    *bias = broadcast_bias(&dims, b, bias.len()).map_err(|r| bad(&r))?;
                }
                pending_matmul = false;
            }
            "Gemm" => {
                if int_attr(n, "transA", 0) != 0
                    || float_attr(n, "alpha", 1.0) != 1.0
                    || float_attr(n, "beta", 1.0) != 1.0
                {
                    return Err(bad("only Gemm with transA = 0, alpha = 1, beta = 1 is supported"));
                }
                let (dims, w) = constant(1)?.clone();
                let b = if n.input.get(2).is_some_and(|c| !c.is_empty()) { Some(constant(2)?.clone()) } else { None };
                dense(&dims, w, b, int_attr(n, "transB", 0) != 0)?;
                pending_matmul = false;
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
                        if n.output.first() != Some(&output) {
                            return Err(bad("a Softmax must be the graph's last node (it spans the layer)"));
                        }
                        if !matches!(int_attr(n, "axis", -1), -1 | 1) {
                            return Err(bad("a Softmax over an axis other than the features"));
                        }
                        pre_softmax = Some(current.clone());
                        Activation::Softmax
                    }
                };
                let layer = layers
                    .last_mut()
                    .filter(|l| l.activation == Activation::Linear)
                    .ok_or_else(|| bad(&format!("{op} must follow a dense layer")))?;
                layer.activation = activation;
                pending_matmul = false;
            }
            // dropship's own export: (x - mean) / scale before the first layer.
            "Sub" if layers.is_empty() && mean.is_none() && standardization.is_none() => {
                mean = Some(constant(1)?.1.clone())
            }
            "Div" if mean.is_some() => {
                standardization = Some((mean.take().unwrap_or_default(), constant(1)?.1.clone()))
            }
            "Dropout" => {
                // inputs: data, ratio (optional), training_mode (optional, false when absent)
                match n.input.get(2).filter(|t| !t.is_empty()) {
                    None => {}
                    Some(mode) => match tensors.get(mode).map(|t| bool_value(t)) {
                        Some(Some(false)) => {}
                        Some(Some(true)) => {
                            return Err(bad("training_mode is true: this Dropout would drop units at inference"))
                        }
                        _ => return Err(bad("training_mode is not a constant boolean: cannot tell it is off")),
                    },
                }
                stripped.push(format!("{name} (Dropout)"));
            }
            "Identity" => stripped.push(format!("{name} (Identity)")),
            op => return Err(ImportError::UnsupportedOp { name, op: op.into() }),
        }
        current = n
            .output
            .first()
            .cloned()
            .ok_or_else(|| ImportError::BadGraph(format!("node `{}` has no output", n.name)))?;
    }
    if current != output {
        return Err(ImportError::BadGraph(format!("a cycle: the chain from the input never reaches `{output}`")));
    }
    let input_width = layers.first().map(|l| l.input).ok_or_else(|| ImportError::BadGraph("no dense layer".into()))?;
    if let Some((m, sc)) = &standardization {
        if m.len() != input_width || sc.len() != input_width || sc.iter().any(|v| *v <= 0.0) {
            return Err(ImportError::BadGraph("a standardization that does not match the first layer".into()));
        }
    }
    Ok(Imported {
        network: HostNetwork::f32(input_width, layers, standardization)
            .map_err(|e| ImportError::BadGraph(e.to_string()))?,
        stripped,
        pre_softmax,
    })
}

/// A bias of `width` values from a constant of shape `dims`: `[width]`, `[1, width]`, or one
/// value broadcast to every output, as ONNX's broadcasting reads them; any other shape is refused.
fn broadcast_bias(dims: &[usize], values: Vec<f32>, width: usize) -> Result<Vec<f32>, String> {
    let trailing = dims.last().copied().unwrap_or(1);
    let leading_ones = dims.len() <= 2 && dims.iter().rev().skip(1).all(|d| *d == 1);
    match (values.len(), leading_ones) {
        (1, true) => Ok(vec![values[0]; width]),
        (n, true) if n == width && trailing == width => Ok(values),
        _ => Err(format!("a bias of shape {dims:?} does not broadcast to the layer's {width} outputs")),
    }
}
