//! Graphs shaped the way today's exporters write them import and match tract-onnx running the
//! original on raw outputs: PyTorch's dynamo exporter (opsets 18 to 21: a `Shape` → `Gather` →
//! `Unsqueeze` → `Concat` → `Reshape` flatten, `Transpose` + `MatMul` + `Add`, a named dynamic batch
//! dimension, `BatchNormalization`), tf2onnx's BatchNorm as `Mul` + `Add`, `Gemm` in each
//! transpose form with `alpha` and `beta`, and weights kept in external data files.

use dropship::deploy::onnx::{self, ImportError};
use dropship::network::InputForm;
use prost::Message;
use tract_onnx::pb;

fn weights(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 0.731 + seed).sin()) * 0.5).collect()
}

fn real(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    onnx::tensor_f32(name, dims, data)
}

fn ints(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: 7,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attributes: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto { attribute: attributes, ..onnx::node(op, name, inputs, &[output]) }
}

fn int_attribute(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn float_attribute(name: &str, value: f32) -> pb::AttributeProto {
    dropship_formats::onnx_graph::float_attribute(name, value)
}

/// A float input of shape `[batch, dims...]`, the batch named `batch` (`None`: a fixed 1).
fn input(name: &str, batch: Option<&str>, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |v| Dimension { value: Some(v), ..Default::default() };
    let first = match batch {
        Some(b) => dim(Value::DimParam(b.into())),
        None => dim(Value::DimValue(1)),
    };
    let mut v = onnx::value_info(name, 1);
    if let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = Some(pb::TensorShapeProto {
            dim: std::iter::once(first).chain(dims.iter().map(|d| dim(Value::DimValue(*d as i64)))).collect(),
        });
    }
    v
}

fn model(
    opset: i64,
    nodes: Vec<pb::NodeProto>,
    init: Vec<pb::TensorProto>,
    x: pb::ValueInfoProto,
    out: (&str, usize),
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 9,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "pytorch".into(),
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: init,
            input: vec![x],
            output: vec![onnx::value_info(out.0, out.1)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes `m` into `dir` and imports it with the tract check.
fn import(dir: &std::path::Path, name: &str, m: &pb::ModelProto) -> anyhow::Result<(onnx::Imported, f32)> {
    let path = dir.join(name);
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    onnx::import_checked(&path)
}

/// `torch.onnx.export(..., dynamo=True)` of `Flatten → Linear(6, 5) → BatchNorm1d → ReLU →
/// Linear(5, 3)` on a `[batch, 2, 3]` input: the flatten is a chain of shape arithmetic, each
/// Linear a `Transpose` of its `[out, in]` weight, a `MatMul` and an `Add`.
fn dynamo(opset: i64) -> pb::ModelProto {
    let nodes = vec![
        node("Shape", "n0_shape", &["x"], "shape", vec![]),
        node(
            "Constant",
            "n1_zero",
            &[],
            "zero",
            vec![pb::AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(pb::TensorProto { dims: vec![], data_type: 7, int64_data: vec![0], ..Default::default() }),
                ..Default::default()
            }],
        ),
        node("Gather", "n2_batch", &["shape", "zero"], "batch", vec![int_attribute("axis", 0)]),
        node("Unsqueeze", "n3_unsqueeze", &["batch", "axes0"], "batch1", vec![]),
        node("Cast", "n4_cast", &["batch1"], "batch64", vec![int_attribute("to", 7)]),
        node("Concat", "n5_concat", &["batch64", "minus_one"], "flat_shape", vec![int_attribute("axis", 0)]),
        node("Reshape", "n6_view", &["x", "flat_shape"], "flat", vec![]),
        node("Transpose", "n7_t", &["fc1.weight"], "fc1_t", vec![]),
        node("MatMul", "n8_mm", &["flat", "fc1_t"], "mm1", vec![]),
        node("Add", "n9_add", &["mm1", "fc1.bias"], "fc1_out", vec![]),
        node(
            "BatchNormalization",
            "n10_bn",
            &["fc1_out", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
            "bn_out",
            vec![float_attribute("epsilon", 1e-5), int_attribute("training_mode", 0)],
        ),
        node("Relu", "n11_relu", &["bn_out"], "relu", vec![]),
        node(
            "Transpose",
            "n12_t",
            &["fc2.weight"],
            "fc2_t",
            vec![pb::AttributeProto {
                name: "perm".into(),
                r#type: pb::attribute_proto::AttributeType::Ints as i32,
                ints: vec![1, 0],
                ..Default::default()
            }],
        ),
        node("MatMul", "n13_mm", &["relu", "fc2_t"], "mm2", vec![]),
        node("Add", "n14_add", &["fc2.bias", "mm2"], "logits", vec![]),
    ];
    let init = vec![
        ints("axes0", &[0]),
        ints("minus_one", &[-1]),
        real("fc1.weight", &[5, 6], &weights(30, 0.1)),
        real("fc1.bias", &[5], &weights(5, 0.2)),
        real("bn.weight", &[5], &[1.5, 0.5, 1.0, 2.0, 0.75]),
        real("bn.bias", &[5], &[0.1, -0.2, 0.3, 0.0, 0.05]),
        real("bn.running_mean", &[5], &[0.2, -0.1, 0.0, 0.3, -0.4]),
        real("bn.running_var", &[5], &[0.5, 2.0, 1.0, 0.25, 4.0]),
        real("fc2.weight", &[3, 5], &weights(15, 0.3)),
        real("fc2.bias", &[3], &weights(3, 0.4)),
    ];
    model(opset, nodes, init, input("x", Some("s0"), &[2, 3]), ("logits", 3))
}

#[test]
fn pytorch_dynamo_graphs_of_opsets_18_to_21_import_and_match_tract() {
    let dir = tempfile::tempdir().unwrap();
    for opset in 18..=21 {
        let (imported, diff) = import(dir.path(), &format!("dynamo{opset}.onnx"), &dynamo(opset)).unwrap();
        assert!(diff <= 1e-5, "opset {opset}: {diff}");
        let shapes: Vec<(usize, usize)> = imported.network.layers().iter().map(|l| (l.input, l.output())).collect();
        assert_eq!(shapes, [(6, 5), (5, 3)], "opset {opset}");
        assert_eq!(imported.input_shape, [2, 3]);
        assert!(imported.stripped.iter().any(|s| s.contains("BatchNormalization")), "{:?}", imported.stripped);
    }
    // BatchNormalization in training mode is refused: its statistics would be the batch's
    let mut training = dynamo(18);
    let bn = &mut training.graph.as_mut().unwrap().node[10];
    bn.attribute[1].i = 1;
    let e = format!("{:#}", import(dir.path(), "training.onnx", &training).unwrap_err());
    assert!(e.contains("n10_bn") && e.contains("training_mode"), "{e}");
    // a Reshape that moves the batch dimension is refused by name
    let mut moved = dynamo(18);
    let g = moved.graph.as_mut().unwrap();
    g.initializer[1] = ints("minus_one", &[3]);
    g.node[5].input = vec!["minus_one".into(), "minus_one".into()];
    let e = format!("{:#}", import(dir.path(), "moved.onnx", &moved).unwrap_err());
    assert!(e.contains("n6_view"), "{e}");
}

/// Keras's `Dense → BatchNormalization → ReLU` through tf2onnx: `MatMul` + `Add`, then the
/// BatchNorm at inference as a `Mul` and an `Add` of constants, folded into the Dense.
#[test]
fn tf2onnx_batch_norm_as_mul_and_add_folds_into_the_dense_layer() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = vec![
        node("MatMul", "dense/MatMul", &["input_1", "w1"], "mm", vec![]),
        node("Add", "dense/BiasAdd", &["mm", "b1"], "dense", vec![]),
        node("Mul", "batch_normalization/batchnorm/mul_1", &["dense", "bn_scale"], "scaled", vec![]),
        node("Add", "batch_normalization/batchnorm/add_1", &["scaled", "bn_shift"], "bn", vec![]),
        node("Relu", "re_lu/Relu", &["bn"], "relu", vec![]),
        node("MatMul", "dense_1/MatMul", &["relu", "w2"], "mm2", vec![]),
        node("Add", "dense_1/BiasAdd", &["mm2", "b2"], "out", vec![]),
        node("Sigmoid", "dense_1/Sigmoid", &["out"], "probability", vec![]),
    ];
    let init = vec![
        real("w1", &[4, 6], &weights(24, 0.5)),
        real("b1", &[6], &weights(6, 0.6)),
        real("bn_scale", &[6], &[1.2, 0.8, 1.0, 2.5, 0.3, 1.1]),
        real("bn_shift", &[1, 6], &[0.1, 0.2, -0.3, 0.0, 0.5, -0.1]),
        real("w2", &[6, 1], &weights(6, 0.7)),
        real("b2", &[1], &[0.25]),
    ];
    let m = model(13, nodes, init, input("input_1", Some("unk__6"), &[4]), ("probability", 1));
    let (imported, diff) = import(dir.path(), "keras-bn.onnx", &m).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    let layers = imported.network.layers();
    assert_eq!(layers.len(), 2, "the Mul and the Add are not layers");
    assert_eq!(layers[1].activation, dropship_shared::Activation::Sigmoid);
    // a Mul by a constant of another width is refused, naming the node
    let mut wrong = m.clone();
    wrong.graph.as_mut().unwrap().initializer[2] = real("bn_scale", &[4], &[1.0; 4]);
    let e = onnx::import_model(&wrong).unwrap_err().to_string();
    assert!(e.contains("batch_normalization/batchnorm/mul_1") && e.contains("does not broadcast"), "{e}");
}

/// `Gemm` with `transB` 0 and 1, `alpha` and `beta`, a fixed batch of 1 and an image input
/// flattened first; a bias longer or shorter than the layer and `transA = 1` are refused.
#[test]
fn gemm_in_every_transpose_form_with_a_checked_bias() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(16 * 3, 0.9);
    let transposed: Vec<f32> = (0..16 * 3).map(|k| w[(k % 16) * 3 + k / 16]).collect(); // [3, 16]
    for (trans_b, weight) in [(0, real("w", &[16, 3], &w)), (1, real("w", &[3, 16], &transposed))] {
        let nodes = vec![
            node("Flatten", "flatten", &["image"], "flat", vec![int_attribute("axis", 1)]),
            node(
                "Gemm",
                "gemm",
                &["flat", "w", "b"],
                "out",
                vec![int_attribute("transB", trans_b), float_attribute("alpha", 0.5), float_attribute("beta", 2.0)],
            ),
        ];
        let m = model(
            17,
            nodes,
            vec![weight, real("b", &[3], &[0.1, 0.2, 0.3])],
            input("image", None, &[1, 4, 4]),
            ("out", 3),
        );
        let (imported, diff) = import(dir.path(), &format!("gemm{trans_b}.onnx"), &m).unwrap();
        assert!(diff <= 1e-5, "transB {trans_b}: {diff}");
        let net = &imported.network;
        assert_eq!((net.input(), imported.input_shape.clone()), (16, vec![1, 4, 4]));
        let row: Vec<f32> = (0..16).map(|i| i as f32 / 8.0).collect();
        let expected: Vec<f32> = (0..3)
            .map(|o| 0.5 * (0..16).map(|i| row[i] * w[i * 3 + o]).sum::<f32>() + 2.0 * [0.1, 0.2, 0.3][o])
            .collect();
        for (a, b) in net.logits(&row, InputForm::Raw).iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "transB {trans_b}: {a} vs {b}");
        }
        for bias in [vec![0.1; 4], vec![0.1; 2]] {
            let mut wrong = m.clone();
            wrong.graph.as_mut().unwrap().initializer[1] = real("b", &[bias.len()], &bias);
            let e = onnx::import_model(&wrong).unwrap_err().to_string();
            assert!(e.contains("`gemm`") && e.contains("does not broadcast to the layer's 3 outputs"), "{e}");
        }
        let mut trans_a = m.clone();
        trans_a.graph.as_mut().unwrap().node[1].attribute.push(int_attribute("transA", 1));
        let e = onnx::import_model(&trans_a).unwrap_err().to_string();
        assert!(e.contains("transA"), "{e}");
    }
}

/// Weights kept in a file beside the model (`save_as_external_data`) are read; a location outside
/// the model's directory is refused, and so is external data with no file to resolve it from.
#[test]
fn external_data_is_read_only_from_beside_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let w = weights(6 * 2, 1.1);
    let mut blob = vec![0u8; 16]; // the weights start at an offset
    blob.extend(w.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(models.join("weights.bin"), &blob).unwrap();
    std::fs::write(dir.path().join("outside.bin"), &blob).unwrap();
    let external = |location: &str| pb::TensorProto {
        name: "w".into(),
        dims: vec![6, 2],
        data_type: 1,
        data_location: Some(1),
        external_data: [("location", location.to_string()), ("offset", "16".into()), ("length", "48".into())]
            .into_iter()
            .map(|(k, v)| pb::StringStringEntryProto { key: k.into(), value: v })
            .collect(),
        ..Default::default()
    };
    let with = |location: &str| {
        let nodes = vec![node("Gemm", "fc", &["x", "w", "b"], "y", vec![])];
        model(
            18,
            nodes,
            vec![external(location), real("b", &[2], &[0.5, -0.5])],
            input("x", Some("batch"), &[6]),
            ("y", 2),
        )
    };
    let (imported, diff) = import(&models, "external.onnx", &with("weights.bin")).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    assert_eq!(imported.network.layers()[0].f32().unwrap().0, &w[..]);
    for outside in ["../outside.bin", "/etc/passwd", ""] {
        let e = format!("{:#}", import(&models, "outside.onnx", &with(outside)).unwrap_err());
        assert!(e.contains("inside the model's directory") || e.contains("without a location"), "{outside}: {e}");
    }
    let e = onnx::import_bytes(&with("weights.bin").encode_to_vec()).unwrap_err();
    assert!(matches!(&e, ImportError::BadGraph(m) if m.contains("import the model from its file")), "{e}");
}
