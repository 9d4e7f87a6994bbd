//! CNNs through ONNX: dropship's export of a CNN runs in tract like the artifact and imports back
//! as the same network; PyTorch-shaped (NCHW `Conv`, `MaxPool`, `AveragePool`,
//! `GlobalAveragePool`, `Flatten`, `BatchNormalization`) and tf2onnx-shaped (NHWC input,
//! `Transpose`, `Conv`, `Transpose`, `Reshape`) graphs import and match tract; what the artifact
//! cannot express is refused naming the node.

use dropship::deploy::onnx::{self, ImportError};
use dropship::network::{HostNetwork, InputForm, Layer};
use dropship_formats::onnx_graph::{int_attribute, ints_attribute, tensor_i64};
use dropship_shared::{Activation, Dims, LayerKind, LayerShape, Padding, Window};
use prost::Message;
use tract_onnx::pb;

fn weights(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 0.731 + seed).sin()) * 0.5).collect()
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attributes: Vec<pb::AttributeProto>) -> pb::NodeProto {
    let mut n = onnx::node(op, name, inputs, &[output]);
    n.attribute = attributes;
    n
}

fn window(kernel: [i64; 2], strides: [i64; 2], pads: [i64; 4]) -> Vec<pb::AttributeProto> {
    vec![ints_attribute("kernel_shape", &kernel), ints_attribute("strides", &strides), ints_attribute("pads", &pads)]
}

/// A float32 value of shape `[batch, dims...]`.
fn value(name: &str, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |v| Dimension { value: Some(v), ..Default::default() };
    let shape = std::iter::once(dim(Value::DimParam("N".into())))
        .chain(dims.iter().map(|d| dim(Value::DimValue(*d as i64))))
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto { dim: shape }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<pb::NodeProto>,
    init: Vec<pb::TensorProto>,
    input: &[usize],
    output: (&str, usize),
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "pytorch".into(),
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: init,
            input: vec![value("input", input)],
            output: vec![value(output.0, &[output.1])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn t(name: &str, dims: &[usize], seed: f32) -> pb::TensorProto {
    onnx::tensor_f32(name, dims, &weights(dims.iter().product(), seed))
}

/// PyTorch's MNIST-style CNN on a 12×10 grayscale image: conv 3×3 pad 1 → ReLU → MaxPool 2 →
/// depthwise 3×3 pad 1 → BatchNorm → ReLU → AveragePool 2 → pointwise 6 → ReLU → `Flatten` →
/// Linear 5 → Softmax (its Flatten reads channels-first: the Dense rows are reordered).
fn pytorch_cnn(tail_gap: bool) -> pb::ModelProto {
    let mut nodes = vec![
        node(
            "Conv",
            "/conv1/Conv",
            &["input", "conv1.weight", "conv1.bias"],
            "c1",
            window([3, 3], [1, 1], [1, 1, 1, 1]),
        ),
        node("MaxPool", "/pool1/MaxPool", &["c1"], "p1", window([2, 2], [2, 2], [0, 0, 0, 0])),
        node("Relu", "/relu1/Relu", &["p1"], "r1", vec![]),
        {
            let mut a = window([3, 3], [1, 1], [1, 1, 1, 1]);
            a.push(int_attribute("group", 4));
            node("Conv", "/dw/Conv", &["r1", "dw.weight", "dw.bias"], "c2", a)
        },
        node(
            "BatchNormalization",
            "/bn/BatchNormalization",
            &["c2", "bn.gamma", "bn.beta", "bn.mean", "bn.var"],
            "b2",
            vec![],
        ),
        node("Relu", "/relu2/Relu", &["b2"], "r2", vec![]),
        node("AveragePool", "/pool2/AveragePool", &["r2"], "p2", window([2, 2], [2, 2], [0, 0, 0, 0])),
        node("Conv", "/pw/Conv", &["p2", "pw.weight", "pw.bias"], "c3", vec![]),
        node("Relu", "/relu3/Relu", &["c3"], "r3", vec![]),
    ];
    let flat_from = if tail_gap {
        nodes.push(node("GlobalAveragePool", "/gap/GlobalAveragePool", &["r3"], "g", vec![]));
        "g"
    } else {
        "r3"
    };
    nodes.push(node("Flatten", "/flatten/Flatten", &[flat_from], "f", vec![int_attribute("axis", 1)]));
    nodes.push(node("Gemm", "/fc/Gemm", &["f", "fc.weight", "fc.bias"], "logits", vec![int_attribute("transB", 1)]));
    nodes.push(node("Softmax", "/softmax/Softmax", &["logits"], "probabilities", vec![int_attribute("axis", 1)]));
    let fc_in = if tail_gap { 6 } else { 6 * 3 * 2 };
    let var: Vec<f32> = weights(4, 9.0).iter().map(|v| v.abs() + 0.1).collect();
    let init = vec![
        t("conv1.weight", &[4, 1, 3, 3], 1.0),
        t("conv1.bias", &[4], 2.0),
        t("dw.weight", &[4, 1, 3, 3], 3.0),
        t("dw.bias", &[4], 4.0),
        t("bn.gamma", &[4], 5.0),
        t("bn.beta", &[4], 6.0),
        t("bn.mean", &[4], 7.0),
        onnx::tensor_f32("bn.var", &[4], &var),
        t("pw.weight", &[6, 4, 1, 1], 8.0),
        t("pw.bias", &[6], 10.0),
        t("fc.weight", &[5, fc_in], 11.0),
        t("fc.bias", &[5], 12.0),
    ];
    model(nodes, init, &[1, 12, 10], ("probabilities", 5))
}

/// Keras through tf2onnx: an NHWC 10×7×3 input, `Transpose` to NCHW, `Conv` with Keras's `same`
/// pads at stride 2 (none before, one after on the even side), ReLU, `MaxPool`, `Transpose` back,
/// `Reshape` to rows, `MatMul` + `Add`.
fn tf2onnx_cnn() -> pb::ModelProto {
    let nodes = vec![
        node("Transpose", "conv2d__6", &["input"], "nchw", vec![ints_attribute("perm", &[0, 3, 1, 2])]),
        node(
            "Conv",
            "sequential/conv2d/Conv2D",
            &["nchw", "conv.weight", "conv.bias"],
            "c",
            window([3, 3], [2, 2], [0, 1, 1, 1]),
        ),
        node("Relu", "sequential/conv2d/Relu", &["c"], "r", vec![]),
        node("MaxPool", "sequential/max_pooling2d/MaxPool", &["r"], "p", window([2, 2], [2, 2], [0, 0, 0, 0])),
        node(
            "Transpose",
            "sequential/max_pooling2d/MaxPool__12",
            &["p"],
            "nhwc",
            vec![ints_attribute("perm", &[0, 2, 3, 1])],
        ),
        node("Reshape", "sequential/flatten/Reshape", &["nhwc", "flatten.shape"], "f", vec![]),
        node("MatMul", "sequential/dense/MatMul", &["f", "dense.kernel"], "m", vec![]),
        node("Add", "sequential/dense/BiasAdd", &["m", "dense.bias"], "logits", vec![]),
    ];
    // 10×7 at stride 2 same: 5×4 (rows padded 0 before, 1 after; columns 1 and 1); pool 2: 2×2;
    // 5 filters: 20 values
    let init = vec![
        t("conv.weight", &[5, 3, 3, 3], 1.0),
        t("conv.bias", &[5], 2.0),
        tensor_i64("flatten.shape", &[2], &[-1, 20]),
        t("dense.kernel", &[20, 4], 3.0),
        t("dense.bias", &[4], 4.0),
    ];
    model(nodes, init, &[10, 7, 3], ("logits", 4))
}

fn write(dir: &std::path::Path, name: &str, m: &pb::ModelProto) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p
}

fn kinds(net: &HostNetwork) -> Vec<LayerKind> {
    net.layers().iter().map(|l| l.kind).collect()
}

#[test]
fn pytorch_cnns_import_and_match_tract() {
    use LayerKind::*;
    let dir = tempfile::tempdir().unwrap();
    for gap in [false, true] {
        let (imported, diff) = onnx::import_checked(&write(dir.path(), "torch.onnx", &pytorch_cnn(gap))).unwrap();
        assert!(diff <= 1e-5, "{diff}");
        let net = &imported.network;
        let mut expected = vec![Conv2d, MaxPool2d, DepthwiseConv2d, AveragePool2d, Conv2d];
        expected.extend(if gap { vec![GlobalAveragePool, Dense] } else { vec![Flatten, Dense] });
        assert_eq!(kinds(net), expected);
        assert_eq!(net.input_dims(), Dims::image(12, 10, 1));
        assert_eq!(net.layers()[0].activation, Activation::Relu, "the ReLU after the MaxPool runs on the conv");
        assert_eq!(net.layers()[0].window.padding, Padding::Same, "pads 1 at stride 1 are Keras's same");
        assert_eq!(net.layers().last().unwrap().activation, Activation::Softmax);
        assert!(imported.stripped.iter().any(|s| s.contains("BatchNormalization")), "{:?}", imported.stripped);
        // the artifact runs it the same way
        let back = HostNetwork::parse(&net.to_artifact("", "torch").unwrap()).unwrap();
        let row: Vec<f32> = weights(120, 0.5);
        assert_eq!(back.logits(&row, InputForm::Raw), net.logits(&row, InputForm::Raw));
    }
}

#[test]
fn tf2onnx_cnns_import_with_their_transposes_folded_and_match_tract() {
    let dir = tempfile::tempdir().unwrap();
    let checked = onnx::import_checked(&write(dir.path(), "keras.onnx", &tf2onnx_cnn()));
    let (imported, diff) = checked.map_err(|e| format!("{e:#}")).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    let net = &imported.network;
    assert_eq!(kinds(net), [LayerKind::Conv2d, LayerKind::MaxPool2d, LayerKind::Flatten, LayerKind::Dense]);
    assert_eq!(net.input_dims(), Dims::image(10, 7, 3), "the NHWC input is the artifact's image");
    assert_eq!(net.layers()[0].window, Window::new([3, 3], [2, 2], Padding::Same));
    assert_eq!(imported.stripped.iter().filter(|s| s.contains("Transpose")).count(), 2);
}

#[test]
fn a_cnn_exports_runs_in_tract_like_the_artifact_and_imports_back() {
    let image = Dims::image(11, 9, 2);
    let mut map = image;
    let mut layers = Vec::new();
    let mut seed = 0.0;
    let mut add = |shape: LayerShape| {
        seed += 1.0;
        let layer = Layer::f32_of(shape, map, weights(shape.weights(map), seed), weights(shape.biases(), seed + 0.5));
        map = layer.output_dims().unwrap();
        layers.push(layer);
    };
    use LayerKind::*;
    let w = |size, stride, padding| Window::new(size, stride, padding);
    add(LayerShape::windowed(Conv2d, 5, w([3, 3], [2, 2], Padding::Same), Activation::Relu));
    add(LayerShape::windowed(DepthwiseConv2d, 5, w([3, 3], [1, 1], Padding::Same), Activation::Tanh));
    add(LayerShape::windowed(MaxPool2d, 5, w([2, 2], [2, 2], Padding::Valid), Activation::Linear));
    add(LayerShape::windowed(Conv2d, 7, w([2, 3], [1, 1], Padding::Same), Activation::Sigmoid));
    add(LayerShape::windowed(AveragePool2d, 7, w([3, 3], [2, 2], Padding::Same), Activation::Linear));
    add(LayerShape { kind: Flatten, ..LayerShape::dense(14, Activation::Linear) });
    add(LayerShape::dense(4, Activation::Softmax));
    let mean: Vec<f32> = weights(image.len(), 0.3);
    let scale = vec![0.5; image.len()];
    let net = HostNetwork::f32(image.len(), layers, Some((mean, scale))).unwrap();
    let rows: Vec<f32> = weights(image.len() * 16, 2.0).iter().map(|v| v * 4.0).collect();
    let (bytes, diff) = onnx::export_checked(&net, &rows).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    let m = pb::ModelProto::decode(&bytes[..]).unwrap();
    let ops: Vec<&str> = m.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        [
            "Sub",
            "Div",
            "Reshape",
            "Transpose",
            "Conv",
            "Relu",
            "Conv",
            "Tanh",
            "MaxPool",
            "Conv",
            "Sigmoid",
            "AveragePool",
            "Transpose",
            "Flatten",
            "Gemm",
            "Softmax"
        ]
    );
    let back = onnx::import_model(&m).unwrap().network;
    assert_eq!(back.input_dims(), image);
    assert_eq!(kinds(&back), [Conv2d, DepthwiseConv2d, MaxPool2d, Conv2d, AveragePool2d, Flatten, Dense]);
    for row in rows.chunks(image.len()) {
        let (a, b) = (back.logits(row, InputForm::Raw), net.logits(row, InputForm::Raw));
        assert_eq!(a, b, "the same weights, the same bits");
    }
}

#[test]
fn what_the_artifact_cannot_express_is_refused_naming_the_node() {
    let refused = |m: &pb::ModelProto| onnx::import_model(m).unwrap_err().to_string();
    // PyTorch's symmetric padding at stride 2 on an even input is not Keras's `same`
    let mut m = pytorch_cnn(false);
    m.graph.as_mut().unwrap().node[0].attribute = window([3, 3], [2, 2], [1, 1, 1, 1]);
    let e = refused(&m);
    assert!(e.contains("/conv1/Conv") && e.contains("pads [1, 1, 1, 1]") && e.contains("Keras"), "{e}");
    // dilations, groups of several channels, ceil_mode, a channels-first input of 3 channels
    let mut m = pytorch_cnn(false);
    m.graph.as_mut().unwrap().node[0].attribute.push(ints_attribute("dilations", &[2, 2]));
    assert!(refused(&m).contains("dilations"));
    let mut m = pytorch_cnn(false);
    m.graph.as_mut().unwrap().node[3].attribute.retain(|a| a.name != "group");
    m.graph.as_mut().unwrap().node[3].attribute.push(int_attribute("group", 2));
    let e = refused(&m);
    assert!(e.contains("/dw/Conv") && e.contains("group 2"), "{e}");
    let mut m = pytorch_cnn(false);
    m.graph.as_mut().unwrap().node[1].attribute.push(int_attribute("ceil_mode", 1));
    assert!(refused(&m).contains("ceil_mode"));
    let mut m = pytorch_cnn(false);
    m.graph.as_mut().unwrap().input[0] = value("input", &[3, 12, 10]);
    m.graph.as_mut().unwrap().initializer[0] = t("conv1.weight", &[4, 3, 3, 3], 1.0);
    let e = refused(&m);
    assert!(e.contains("channels-first input of 3 channels"), "{e}");
    // an operator outside the vocabulary still names itself
    let mut m = pytorch_cnn(false);
    m.graph.as_mut().unwrap().node[1].op_type = "LpPool".into();
    assert!(
        matches!(onnx::import_model(&m), Err(ImportError::UnsupportedOp { name, op }) if name == "/pool1/MaxPool" && op == "LpPool")
    );
}

#[test]
fn a_pytorch_cnn_imports_inspects_predicts_and_generates_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "torch.onnx", &pytorch_cnn(false));
    let header: Vec<String> = (0..120).map(|i| format!("p{i}")).collect();
    let rows: Vec<String> =
        (0..3).map(|r| weights(120, r as f32).iter().map(f32::to_string).collect::<Vec<_>>().join(",")).collect();
    std::fs::write(dir.path().join("rows.csv"), format!("{}\n{}\n", header.join(","), rows.join("\n"))).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dropship")).args(args).current_dir(dir.path()).output().unwrap()
    };
    let out = run(&["import", "torch.onnx", "-o", "cnn.dsm"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Conv2D(12x10x1 -> 12x10x4, 3x3 window, stride 1x1, same) ReLU"), "{text}");
    let out = run(&["inspect", "cnn.dsm"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("DepthwiseConv2D(6x5x4 -> 6x5x4, 3x3 window, stride 1x1, same) + ReLU"), "{text}");
    assert!(text.contains("MaxPool2D(12x10x4 -> 6x5x4, 2x2 window, stride 2x2, valid)"), "{text}");
    let out = run(&["predict", "cnn.dsm", "rows.csv", "--logits"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4, "header and three rows");
    let out = run(&["generate", "cnn.dsm", "-o", "model.rs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = std::fs::read_to_string(dir.path().join("model.rs")).unwrap();
    assert!(code.contains("network::graph::Graph") && code.contains("LayerKind::DepthwiseConv2d"));
    // quantized to int8 on the same rows: inspect reads it, predict runs it, generate writes the
    // int8 graph
    let out = run(&["quantize", "cnn.dsm", "-o", "q.dsm", "--calibration", "rows.csv"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["inspect", "q.dsm"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("int8"), "{text}");
    let out = run(&["predict", "q.dsm", "rows.csv", "--logits"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["generate", "q.dsm", "-o", "q.rs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let code = std::fs::read_to_string(dir.path().join("q.rs")).unwrap();
    assert!(code.contains("QuantGraphLayer") && code.contains("LayerKind::DepthwiseConv2d"));
}
