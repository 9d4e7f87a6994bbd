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

use dropship_shared::artifact::Activation;
use tract_onnx::pb;

use crate::network::HostNetwork;

/// ONNX element type FLOAT.
const FLOAT: i32 = 1;
/// The opset the export targets.
pub const OPSET: i64 = 13;

/// Why an ONNX file cannot become an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: not an ONNX model ({reason})")]
    Decode { path: String, reason: String },
    #[error("node `{name}` (op {op}) is not supported: dropship imports dense networks (MatMul + Add, Gemm, BatchNormalization, Relu, Sigmoid, Tanh, HardSigmoid, a final Softmax; Dropout and Identity are stripped)")]
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

mod import;
mod tensors;

pub use import::{import_bytes, import_from_file, import_model, Imported, OPSETS};
