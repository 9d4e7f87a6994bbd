//! ONNX graphs as protobuf: dropship's export written, other tools' Dense/ReLU exports read.
//!
//! Out: a network becomes a standard opset-13 graph (`Sub`/`Div` for the standardization,
//! `Gemm`, then `Relu`, `Sigmoid`, `Tanh`, `HardSigmoid` or a final `Softmax`; no Dropout), built
//! from `tract_onnx::pb`. A CNN's rows are reshaped to NHWC images and transposed to NCHW for
//! `Conv`, `MaxPool`, `AveragePool` and `GlobalAveragePool` (explicit pads: Keras's rule), and
//! back before a `Flatten`, as tf2onnx writes Keras's CNNs.
//!
//! In: a network exported elsewhere (Keras through tf2onnx: `MatMul` + `Add`, its CNNs' `Conv`
//! between `Transpose`s; PyTorch: `Gemm` with `transB = 1`, `Conv`, `MaxPool`, `AveragePool`,
//! `GlobalAveragePool`, `Flatten`; hand-written graphs) becomes a network, each activation node
//! the layer's activation (a `Softmax` only last). `Dropout` and `Identity` nodes are stripped;
//! anything else is refused by name. Nothing here runs a graph: the host checks imports with tract.

use dropship_shared::artifact::Activation;
use dropship_shared::LayerKind;
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
    #[error("node `{name}` (op {op}) is not supported: dropship imports chains of MatMul + Add, Gemm, Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, Relu, Sigmoid, Tanh, HardSigmoid, a final Softmax, Flatten, Reshape and Transpose (Dropout and Identity are stripped)")]
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

/// An int64 initializer.
pub fn tensor_i64(name: &str, dims: &[usize], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|d| *d as i64).collect(),
        data_type: 7,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute of a node.
pub fn int_attribute(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// An integer-list attribute of a node.
pub fn ints_attribute(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn transpose(name: &str, input: &str, perm: [i64; 4]) -> pb::NodeProto {
    let mut n = node("Transpose", name, &[input], &[name]);
    n.attribute = vec![ints_attribute("perm", &perm)];
    n
}

/// `kernel_shape`, `strides` and the explicit `pads` Keras's rule gives the layer's window.
fn window_attributes(layer: &crate::network::Layer) -> anyhow::Result<Vec<pb::AttributeProto>> {
    let (w, d) = (layer.window, layer.input_dims);
    let mut pads = [0i64; 4];
    for (axis, len) in [d.height, d.width].into_iter().enumerate() {
        let a = w.axis(axis, len).ok_or_else(|| anyhow::anyhow!("a {} window its input cannot take", layer.kind))?;
        let total = ((a.outputs - 1) * w.stride[axis] + w.size[axis]).saturating_sub(len);
        pads[axis] = a.before as i64;
        pads[axis + 2] = (total - a.before) as i64;
    }
    if w.padding == dropship_shared::Padding::Valid {
        pads = [0; 4];
    }
    let ints = |v: [usize; 2]| [v[0] as i64, v[1] as i64];
    Ok(vec![
        ints_attribute("kernel_shape", &ints(w.size)),
        ints_attribute("strides", &ints(w.stride)),
        ints_attribute("pads", &pads),
    ])
}

/// A convolution's kernel in ONNX's `[out, in / group, rows, cols]` layout, from the artifact's
/// Keras layout (`(rows, cols, in, out)`, or `(rows, cols, channels)` for a depthwise one).
fn onnx_conv_weights(layer: &crate::network::Layer, kernel: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let [rows, cols] = layer.window.size;
    let (taps, channels, out) = (rows * cols, layer.input_dims.channels, layer.units);
    if layer.kind == LayerKind::DepthwiseConv2d {
        let values = (0..channels).flat_map(|c| (0..taps).map(move |t| kernel[t * channels + c])).collect();
        return (vec![channels, 1, rows, cols], values);
    }
    let values = (0..out)
        .flat_map(|o| (0..channels).flat_map(move |i| (0..taps).map(move |t| kernel[(t * channels + i) * out + o])))
        .collect();
    (vec![out, channels, rows, cols], values)
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
    let mut channels_first = false;
    for (i, layer) in net.layers().iter().enumerate() {
        let Some((kernel, bias)) = layer.f32() else {
            anyhow::bail!("layer {i} is {}: only f32 models export to ONNX (export the f32 model)", layer.precision());
        };
        let image = layer.kind != LayerKind::Dense && layer.kind != LayerKind::Flatten;
        if image && !channels_first {
            // rows → [batch, h, w, c] → [batch, c, h, w]
            let d = layer.input_dims;
            let shape = format!("image_{i}.shape");
            initializers.push(tensor_i64(&shape, &[4], &[-1, d.height as i64, d.width as i64, d.channels as i64]));
            nodes.push(node("Reshape", &format!("image_{i}"), &[&current, &shape], &[&format!("image_{i}")]));
            nodes.push(transpose(&format!("nchw_{i}"), &format!("image_{i}"), [0, 3, 1, 2]));
            current = format!("nchw_{i}");
            channels_first = true;
        } else if !image && channels_first {
            // [batch, c, h, w] → [batch, h, w, c] → rows, the artifact's order
            nodes.push(transpose(&format!("nhwc_{i}"), &current, [0, 2, 3, 1]));
            let mut flatten = node("Flatten", &format!("flat_{i}"), &[&format!("nhwc_{i}")], &[&format!("flat_{i}")]);
            flatten.attribute = vec![int_attribute("axis", 1)];
            nodes.push(flatten);
            current = format!("flat_{i}");
            channels_first = false;
        }
        let stem = format!("{}_{i}", layer.kind.name().to_lowercase());
        let out = if i == last && !image && layer.activation == Activation::Linear {
            "logits".to_string()
        } else {
            stem.clone()
        };
        match layer.kind {
            LayerKind::Flatten => continue,
            LayerKind::Dense => {
                let (w, b) = (format!("{stem}.kernel"), format!("{stem}.bias"));
                initializers.push(tensor_f32(&w, &[layer.input, bias.len()], kernel));
                initializers.push(tensor_f32(&b, &[bias.len()], bias));
                nodes.push(node("Gemm", &stem, &[&current, &w, &b], &[&out]));
            }
            kind => {
                let (op, weights) = match kind {
                    LayerKind::Conv2d | LayerKind::DepthwiseConv2d => ("Conv", Some(onnx_conv_weights(layer, kernel))),
                    LayerKind::MaxPool2d => ("MaxPool", None),
                    LayerKind::AveragePool2d => ("AveragePool", None),
                    _ => ("GlobalAveragePool", None),
                };
                let mut inputs = vec![current.clone()];
                if let Some((dims, values)) = weights {
                    let (w, b) = (format!("{stem}.kernel"), format!("{stem}.bias"));
                    initializers.push(tensor_f32(&w, &dims, &values));
                    initializers.push(tensor_f32(&b, &[bias.len()], bias));
                    inputs.extend([w, b]);
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let mut n = node(op, &stem, &inputs, &[&out]);
                if kind != LayerKind::GlobalAveragePool {
                    n.attribute = window_attributes(layer)?;
                }
                if kind == LayerKind::DepthwiseConv2d {
                    n.attribute.push(int_attribute("group", layer.units as i64));
                }
                nodes.push(n);
            }
        }
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
        let out = if i == last && !image { "logits".to_string() } else { name.clone() };
        let mut activation = node(op, &name, &[&current], &[&out]);
        if layer.activation == Activation::HardSigmoid {
            activation.attribute = vec![float_attribute("alpha", 1.0 / 6.0), float_attribute("beta", 0.5)];
        }
        nodes.push(activation);
        current = out;
    }
    if channels_first {
        // a network that ends on a map: its outputs in the artifact's NHWC order
        nodes.push(transpose("nhwc_outputs", &current, [0, 2, 3, 1]));
        let mut flatten = node("Flatten", "flat_outputs", &["nhwc_outputs"], &["logits"]);
        flatten.attribute = vec![int_attribute("axis", 1)];
        nodes.push(flatten);
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
mod spatial;
mod tensors;

pub use import::{import_bytes, import_from_file, import_model, Imported, OPSETS};
