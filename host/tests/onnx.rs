//! ONNX out and in: the export runs in tract like the artifact; Keras (tf2onnx), PyTorch and
//! hand-written graphs import with their Dropout/Identity/Softmax stripped; anything else is refused.

use std::process::Command;

use dropship::deploy::onnx::{self, ImportError};
use dropship::network::{HostNetwork, Layer};
use dropship_formats::onnx_graph;
use dropship_shared::artifact::Activation;
use prost::Message;
use tract_onnx::pb;

fn tensor(name: &str, dims: &[usize], data: &[f32], raw: bool) -> pb::TensorProto {
    let mut t = onnx::tensor_f32(name, dims, data);
    if raw {
        t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.float_data.clear();
    }
    t
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    onnx::node(op, name, inputs, &[output])
}

fn model(
    nodes: Vec<pb::NodeProto>,
    init: Vec<pb::TensorProto>,
    input: usize,
    output: (&str, usize),
    ir: i64,
    extra_domain: bool,
) -> pb::ModelProto {
    let mut opset = vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }];
    if extra_domain {
        opset.push(pb::OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 2 });
    }
    pb::ModelProto {
        ir_version: ir,
        opset_import: opset,
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: init,
            input: vec![onnx::value_info("input_1", input)],
            output: vec![onnx::value_info(output.0, output.1)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn weights(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 0.731 + seed).sin()) * 0.5).collect()
}

/// Keras through tf2onnx: MatMul + Add with Keras names, IR 7, an extra opset domain, Dropout
/// (an Identity at inference in tf2onnx's output) and a final Softmax.
fn keras_like() -> pb::ModelProto {
    let (w1, b1, w2, b2) = (weights(4 * 5, 0.1), weights(5, 0.2), weights(5 * 3, 0.3), weights(3, 0.4));
    model(
        vec![
            node(
                "MatMul",
                "sequential_1/dense_1/MatMul",
                &["input_1", "sequential_1/dense_1/MatMul/ReadVariableOp:0"],
                "mm1",
            ),
            node(
                "Add",
                "sequential_1/dense_1/BiasAdd",
                &["mm1", "sequential_1/dense_1/BiasAdd/ReadVariableOp:0"],
                "add1",
            ),
            node("Dropout", "sequential_1/dropout/Identity", &["add1"], "drop1"),
            node("Relu", "sequential_1/dense_1/Relu", &["drop1"], "relu1"),
            node(
                "MatMul",
                "sequential_1/dense_2/MatMul",
                &["relu1", "sequential_1/dense_2/MatMul/ReadVariableOp:0"],
                "mm2",
            ),
            node(
                "Add",
                "sequential_1/dense_2/BiasAdd",
                &["sequential_1/dense_2/BiasAdd/ReadVariableOp:0", "mm2"],
                "logits",
            ),
            node("Softmax", "sequential_1/dense_2/Softmax", &["logits"], "dense_2"),
        ],
        vec![
            tensor("sequential_1/dense_1/MatMul/ReadVariableOp:0", &[4, 5], &w1, true),
            tensor("sequential_1/dense_1/BiasAdd/ReadVariableOp:0", &[5], &b1, true),
            tensor("sequential_1/dense_2/MatMul/ReadVariableOp:0", &[5, 3], &w2, false),
            tensor("sequential_1/dense_2/BiasAdd/ReadVariableOp:0", &[3], &b2, false),
        ],
        4,
        ("dense_2", 3),
        7,
        true,
    )
}

/// A deeper Keras model through tf2onnx: `MatMul` + `Add` + `Dropout` + `Relu` per hidden layer,
/// then `MatMul` + `Add` + `Softmax`, with the widths given (input first).
fn keras_like_deep(widths: &[usize]) -> pb::ModelProto {
    let (mut nodes, mut init) = (Vec::new(), Vec::new());
    let mut current = "input_1".to_string();
    let last = widths.len() - 2;
    for (i, pair) in widths.windows(2).enumerate() {
        let (kernel, bias) = (format!("dense_{i}/kernel:0"), format!("dense_{i}/bias:0"));
        init.push(tensor(&kernel, &[pair[0], pair[1]], &weights(pair[0] * pair[1], i as f32), i % 2 == 0));
        init.push(tensor(&bias, &[pair[1]], &weights(pair[1], 10.0 + i as f32), false));
        let (mm, add) = (format!("mm{i}"), format!("add{i}"));
        nodes.push(node("MatMul", &format!("dense_{i}/MatMul"), &[&current, &kernel], &mm));
        nodes.push(node("Add", &format!("dense_{i}/BiasAdd"), &[&mm, &bias], &add));
        current = add;
        if i < last {
            let (drop, relu) = (format!("drop{i}"), format!("relu{i}"));
            nodes.push(node("Dropout", &format!("dropout_{i}/Identity"), &[&current], &drop));
            nodes.push(node("Relu", &format!("dense_{i}/Relu"), &[&drop], &relu));
            current = relu;
        }
    }
    nodes.push(node("Softmax", "softmax", &[&current], "probabilities"));
    let classes = widths[widths.len() - 1];
    model(nodes, init, widths[0], ("probabilities", classes), 7, true)
}

/// PyTorch: Gemm with transB = 1 (weights stored (out, in)), an Identity.
fn pytorch_like() -> pb::ModelProto {
    let mut gemm1 = node("Gemm", "/fc1/Gemm", &["input_1", "fc1.weight", "fc1.bias"], "h");
    gemm1.attribute.push(pb::AttributeProto { name: "transB".into(), i: 1, r#type: 2, ..Default::default() });
    let mut gemm2 = node("Gemm", "/fc2/Gemm", &["r", "fc2.weight", "fc2.bias"], "out");
    gemm2.attribute.push(pb::AttributeProto { name: "transB".into(), i: 1, r#type: 2, ..Default::default() });
    model(
        vec![gemm1, node("Identity", "/drop/Identity", &["h"], "hi"), node("Relu", "/relu/Relu", &["hi"], "r"), gemm2],
        vec![
            tensor("fc1.weight", &[6, 4], &weights(24, 1.0), false),
            tensor("fc1.bias", &[6], &weights(6, 2.0), false),
            tensor("fc2.weight", &[2, 6], &weights(12, 3.0), false),
            tensor("fc2.bias", &[2], &weights(2, 4.0), false),
        ],
        4,
        ("out", 2),
        8,
        false,
    )
}

fn write(dir: &std::path::Path, name: &str, m: &pb::ModelProto) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p
}

#[test]
fn keras_tf2onnx_graph_imports_with_dropout_stripped_and_its_softmax_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (imported, diff) = onnx::import_checked(&write(dir.path(), "keras.onnx", &keras_like())).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    assert!(imported.pre_softmax.is_some(), "checked before the Softmax too");
    assert_eq!(imported.stripped.len(), 1, "{:?}", imported.stripped);
    let l = &imported.network.layers();
    assert_eq!((l.len(), l[0].input, l[0].output(), l[1].output()), (2, 4, 5, 3));
    assert_eq!(l[0].activation, Activation::Relu);
    assert_eq!(l[1].activation, Activation::Softmax);
    assert_eq!(l[0].f32().unwrap().0, &weights(20, 0.1)[..], "raw_data weights read little-endian, (in, out) kept");
}

#[test]
fn a_three_layer_keras_graph_imports_with_every_dropout_stripped_and_matches_tract() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "deep.onnx", &keras_like_deep(&[6, 8, 5, 3]));
    let (imported, diff) = onnx::import_checked(&path).unwrap();
    assert!(diff <= 1e-5, "tract running the original and the imported network differ by {diff}");
    assert!(imported.pre_softmax.is_some());
    assert_eq!(imported.stripped.len(), 2, "two Dropouts: {:?}", imported.stripped);
    let l = &imported.network.layers();
    let shapes: Vec<(usize, usize, Activation)> = l.iter().map(|l| (l.input, l.output(), l.activation)).collect();
    assert_eq!(
        shapes,
        [(6, 8, Activation::Relu), (8, 5, Activation::Relu), (5, 3, Activation::Softmax)],
        "three Dense layers, ReLU between, the Softmax last"
    );
    // And it survives the trip to an artifact and back.
    let bytes = imported.network.to_artifact("", "deep import").unwrap();
    assert_eq!(dropship_shared::Artifact::parse(&bytes).unwrap().layers().count(), 3);
}

#[test]
fn pytorch_gemm_trans_b_imports_transposed() {
    let dir = tempfile::tempdir().unwrap();
    let (imported, diff) = onnx::import_checked(&write(dir.path(), "torch.onnx", &pytorch_like())).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    assert!(imported.pre_softmax.is_none());
    let w = weights(24, 1.0); // (out 6, in 4)
    let l0 = &imported.network.layers()[0];
    assert_eq!(l0.f32().unwrap().0[2 * 6 + 5], w[5 * 4 + 2], "input 2 -> output 5");
}

#[test]
fn unsupported_ops_types_and_shapes_are_refused_by_name() {
    let mut m = keras_like();
    m.graph.as_mut().unwrap().node[3].op_type = "Elu".into();
    let e = onnx::import_model(&m).unwrap_err();
    assert!(
        matches!(&e, ImportError::UnsupportedOp { name, op } if name == "sequential_1/dense_1/Relu" && op == "Elu"),
        "{e}"
    );

    let mut m = keras_like();
    m.graph.as_mut().unwrap().node[0].op_type = "Conv".into();
    assert!(onnx::import_model(&m).unwrap_err().to_string().contains("a Conv on a value that is not a 4-D image"));

    let mut m = keras_like();
    m.graph.as_mut().unwrap().initializer[0].data_type = 7; // int64
    let e = onnx::import_model(&m).unwrap_err();
    assert!(matches!(e, ImportError::NotFloat { found: 7, .. }), "{e}");

    let mut m = keras_like();
    let g = m.graph.as_mut().unwrap();
    g.initializer[2] = tensor("sequential_1/dense_2/MatMul/ReadVariableOp:0", &[7, 3], &weights(21, 0.3), false);
    let e = onnx::import_model(&m).unwrap_err();
    assert!(matches!(e, ImportError::ShapesDontChain { expected: 5, found: 7, .. }), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("x.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff not protobuf").unwrap();
    assert!(onnx::import_checked(&garbage).is_err());
}

#[test]
fn export_runs_in_tract_like_the_artifact_and_imports_back() {
    let layers = vec![
        Layer::dense(4, weights(20, 5.0), weights(5, 6.0), Activation::Relu),
        Layer::dense(5, weights(15, 7.0), weights(3, 8.0), Activation::Linear),
    ];
    let net = HostNetwork::f32(4, layers, Some((vec![1.0, 2.0, 3.0, 4.0], vec![0.5, 1.0, 2.0, 4.0]))).unwrap();
    let rows: Vec<f32> = (0..40).map(|i| i as f32 * 0.37 - 3.0).collect();
    let (bytes, diff) = onnx::export_checked(&net, &rows).unwrap();
    assert!(diff <= 1e-5);
    let m = pb::ModelProto::decode(&bytes[..]).unwrap();
    let ops: Vec<&str> = m.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Sub", "Div", "Gemm", "Relu", "Gemm"], "opset-13 nodes, no Dropout");
    assert_eq!(m.opset_import[0].version, 13);
    let back = onnx::import_model(&m).unwrap().network;
    assert_eq!(back.standardization(), net.standardization());
    for (a, b) in back.layers().iter().zip(net.layers()) {
        assert_eq!(a, b);
    }
}

/// Every activation of the vocabulary goes out as its ONNX operator, runs in tract like the
/// artifact (within 1e-5 of the largest output) and comes back as the same network; Keras 2's
/// HardSigmoid (alpha 0.2) and a Softmax before the last layer are refused by name.
#[test]
fn every_activation_exports_runs_in_tract_and_imports_back() {
    let layers = vec![
        Layer::dense(4, weights(24, 5.0), weights(6, 6.0), Activation::Tanh),
        Layer::dense(6, weights(36, 7.0), weights(6, 8.0), Activation::Sigmoid),
        Layer::dense(6, weights(30, 9.0), weights(5, 1.0), Activation::HardSigmoid),
        Layer::dense(5, weights(15, 2.0), weights(3, 3.0), Activation::Softmax),
    ];
    let net = HostNetwork::f32(4, layers, None).unwrap();
    let rows: Vec<f32> = (0..80).map(|i| (i as f32 * 0.37 - 3.0) * 4.0).collect();
    let (bytes, diff) = onnx::export_checked(&net, &rows).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    let m = pb::ModelProto::decode(&bytes[..]).unwrap();
    let ops: Vec<&str> = m.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Gemm", "Tanh", "Gemm", "Sigmoid", "Gemm", "HardSigmoid", "Gemm", "Softmax"]);
    let dir = tempfile::tempdir().unwrap();
    let (imported, diff) = onnx::import_checked(&write(dir.path(), "all.onnx", &m)).unwrap();
    assert!(diff <= 1e-5, "{diff}");
    assert_eq!(imported.network.layers(), net.layers());
    // Keras 2's hard_sigmoid (0.2 x + 0.5) is another function: refused, saying which one we have
    let mut keras2 = m.clone();
    let g = keras2.graph.as_mut().unwrap();
    g.node[5].attribute = vec![onnx_graph::float_attribute("alpha", 0.2)];
    let e = onnx::import_model(&keras2).unwrap_err().to_string();
    assert!(e.contains("alpha 0.2") && e.contains("PyTorch's Hardsigmoid"), "{e}");
    // a Softmax in the middle spans a hidden layer: refused
    let mut middle = m.clone();
    middle.graph.as_mut().unwrap().node[3].op_type = "Softmax".into();
    let e = onnx::import_model(&middle).unwrap_err().to_string();
    assert!(e.contains("Softmax must be the graph's last node"), "{e}");
}

#[test]
fn import_command_writes_an_artifact_that_predict_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "keras.onnx", &keras_like());
    std::fs::write(dir.path().join("rows.csv"), "a,b,c,d\n0.1,0.2,0.3,0.4\n1,0,-1,2\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dropship")).args(args).current_dir(dir.path()).output().unwrap()
    };
    let out = run(&["import", "keras.onnx", "-o", "k.dsm"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("stripped sequential_1/dropout/Identity (Dropout)") && text.contains("final Softmax is kept"),
        "{text}"
    );
    let out = run(&["predict", "k.dsm", "rows.csv", "--logits"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "header and two rows");
    let mut bad = keras_like();
    bad.graph.as_mut().unwrap().node[1].op_type = "Selu".into();
    write(dir.path(), "bad.onnx", &bad);
    let out = run(&["import", "bad.onnx", "-o", "bad.dsm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Selu"));
    assert!(!dir.path().join("bad.dsm").exists(), "nothing written on failure");
}

/// PyTorch's `torch.onnx.export` of `Linear → Dropout → ReLU → Linear`: the Dropout node carries
/// its `ratio` (a double here) and `training_mode` (a bool) as initializers.
fn pytorch_with_dropout_inputs(training_mode: bool) -> pb::ModelProto {
    let mut m = pytorch_like();
    let graph = m.graph.as_mut().unwrap();
    graph.node[1] = onnx::node("Dropout", "/drop/Dropout", &["h", "dropout.ratio", "dropout.training_mode"], &["hi"]);
    graph.initializer.push(pb::TensorProto {
        name: "dropout.ratio".into(),
        data_type: 11,
        double_data: vec![0.5],
        ..Default::default()
    });
    graph.initializer.push(pb::TensorProto {
        name: "dropout.training_mode".into(),
        data_type: 9,
        raw_data: vec![u8::from(training_mode)],
        ..Default::default()
    });
    m
}

#[test]
fn pytorch_dropout_with_a_bool_training_mode_is_stripped_and_true_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "torch-dropout.onnx", &pytorch_with_dropout_inputs(false));
    let (imported, diff) = onnx::import_checked(&path).unwrap();
    assert!(diff <= 1e-5, "matches tract running the original: {diff}");
    assert_eq!(imported.stripped, vec!["/drop/Dropout (Dropout)".to_string()]);
    assert_eq!(imported.network.layers().len(), 2);
    assert_eq!(imported.network.layers()[0].activation, Activation::Relu);
    let path = write(dir.path(), "torch-training.onnx", &pytorch_with_dropout_inputs(true));
    let e = format!("{:#}", onnx::import_checked(&path).unwrap_err());
    assert!(e.contains("/drop/Dropout") && e.contains("training_mode is true"), "{e}");
}

/// The import is checked on raw logits, not after the final Softmax, which cannot see a shift
/// common to every logit, such as a one-value bias read wrongly: a Gemm whose bias is one value
/// for every output (ONNX broadcasting), followed by a Softmax, imports with that value on every
/// output and matches tract's raw logits (the check runs the graph cut before the Softmax).
#[test]
fn imports_are_checked_on_raw_logits_and_broadcast_biases_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = pytorch_like();
    let g = m.graph.as_mut().unwrap();
    g.initializer[3] = tensor("fc2.bias", &[1], &[0.75], false);
    g.node.push(node("Softmax", "/softmax/Softmax", &["out"], "probabilities"));
    g.output[0] = onnx::value_info("probabilities", 2);
    let (imported, diff) = onnx::import_checked(&write(dir.path(), "broadcast.onnx", &m)).unwrap();
    assert_eq!(imported.pre_softmax.as_deref(), Some("out"));
    assert_eq!(imported.network.layers()[1].f32().unwrap().1, &[0.75, 0.75][..]);
    assert!(diff <= 1e-5, "{diff}");
    // a bias of another length is refused, naming the node
    m.graph.as_mut().unwrap().initializer[3] = tensor("fc2.bias", &[3], &[0.75; 3], false);
    let e = onnx::import_model(&m).unwrap_err().to_string();
    assert!(e.contains("/fc2/Gemm") && e.contains("does not broadcast"), "{e}");
    // a constant added to every logit after the dense layers is part of the last layer's bias
    // (what tf2onnx's BatchNorm Add is): folded, and checked on the shifted logits before the
    // Softmax, which alone could not see the shift
    let mut m = keras_like();
    let g = m.graph.as_mut().unwrap();
    let softmax = g.node.iter().position(|n| n.op_type == "Softmax").unwrap();
    let into_softmax = g.node[softmax].input[0].clone();
    g.node[softmax].input[0] = "shifted".into();
    g.node.insert(softmax, node("Add", "shift", &[&into_softmax, "five"], "shifted"));
    g.initializer.push(tensor("five", &[3], &[5.0; 3], false));
    let plain = onnx::import_model(&keras_like()).unwrap().network;
    let (shifted, diff) = onnx::import_checked(&write(dir.path(), "shifted.onnx", &m)).unwrap();
    assert_eq!(shifted.pre_softmax.as_deref(), Some("shifted"));
    let bias = |n: &HostNetwork| n.layers()[1].f32().unwrap().1.to_vec();
    assert_eq!(bias(&shifted.network), bias(&plain).iter().map(|b| b + 5.0).collect::<Vec<_>>());
    assert!(diff <= 1e-5, "{diff}");
}

/// What the importer used to accept silently: a custom domain's `Gemm`, opsets it does not know,
/// two initializers with one name, a tensor with raw and typed data.
#[test]
fn custom_domains_unknown_opsets_and_ambiguous_tensors_are_refused() {
    let mut m = pytorch_like();
    m.graph.as_mut().unwrap().node[0].domain = "com.example".into();
    let e = onnx::import_model(&m).unwrap_err().to_string();
    assert!(e.contains("com.example.Gemm") && e.contains("/fc1/Gemm"), "{e}");
    for version in [1, 99] {
        let mut m = pytorch_like();
        m.opset_import[0].version = version;
        let e = onnx::import_model(&m).unwrap_err().to_string();
        assert!(e.contains(&format!("opset {version}")), "{e}");
    }
    let mut m = pytorch_like();
    let g = m.graph.as_mut().unwrap();
    let twin = g.initializer[1].clone();
    g.initializer.push(twin);
    assert!(onnx::import_model(&m).unwrap_err().to_string().contains("two initializers named `fc1.bias`"));
    let mut m = pytorch_like();
    let t = &mut m.graph.as_mut().unwrap().initializer[1];
    t.raw_data = t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert!(onnx::import_model(&m).unwrap_err().to_string().contains("both raw and typed data"));
}

/// Import is linear in the graph's size and refuses depth as soon as it is seen: 120,000 chained
/// Identity nodes and a 5,000-layer Gemm chain are answered in well under a second each (the
/// chain walk was quadratic: 120 s and 40 s).
#[test]
fn long_chains_are_walked_in_linear_time_and_depth_is_refused_early() {
    let identities: Vec<pb::NodeProto> = (0..120_000)
        .map(|i| {
            node(
                "Identity",
                &format!("id{i}"),
                &[&if i == 0 { "h".to_string() } else { format!("v{}", i - 1) }],
                &format!("v{i}"),
            )
        })
        .collect();
    let mut m = pytorch_like();
    let g = m.graph.as_mut().unwrap();
    // fc1 -> 120,000 identities -> relu -> fc2
    g.node.remove(1);
    g.node.extend(identities);
    g.node[1].input[0] = "v119999".into();
    let start = std::time::Instant::now();
    let imported = onnx::import_model(&m).unwrap();
    assert_eq!(imported.stripped.len(), 120_000);
    let identity_seconds = start.elapsed().as_secs_f64();
    let gemms: Vec<pb::NodeProto> = (0..5000)
        .map(|i| {
            let from = if i == 0 { "input_1".to_string() } else { format!("g{}", i - 1) };
            node("Gemm", &format!("gemm{i}"), &[&from, "w", "b"], &format!("g{i}"))
        })
        .collect();
    let m = model(
        gemms,
        vec![tensor("w", &[4, 4], &weights(16, 0.5), false), tensor("b", &[4], &weights(4, 0.6), false)],
        4,
        ("g4999", 4),
        8,
        false,
    );
    let start = std::time::Instant::now();
    let e = onnx::import_model(&m).unwrap_err().to_string();
    assert!(e.contains("dense layers"), "{e}");
    let depth_seconds = start.elapsed().as_secs_f64();
    // generous bounds (a loaded CI machine): the quadratic walk took minutes
    assert!(identity_seconds < 10.0 && depth_seconds < 1.0, "{identity_seconds} s, {depth_seconds} s");
}

/// A long-trained model's logits are large, and tract's order of summation differs from the
/// artifact's by a few ULPs of them: the export's check scales its limit with the logits (a fixed
/// 1e-5 refused a 1000-epoch digits run by 0.0000114).
#[test]
fn a_long_trained_model_exports_to_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dropship"))
            .args(args)
            .current_dir(dir.path())
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["train", "--epochs", "1000", "--quiet", "--out", "long"]);
    let printed = run(&["export", "long/base", "-o", "m.dsm", "--onnx", "m.onnx"]);
    assert!(printed.contains("tract-onnx matches the artifact"), "{printed}");
}
