//! A corpus of bad input, as a hostile but realistic user types it: every case exits non-zero with
//! a message naming what and where, never panics, and leaves the directory exactly as it was
//! (every name, byte and mode). Then the output-safety cases, signals included.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dropship::deploy::onnx;
use dropship::network::{HostNetwork, Layer};
use dropship_shared::artifact::Activation;
use prost::Message;
use tract_onnx::pb;

fn dropship(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dropship"))
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every entry under `dir`: relative path → (contents, or None for a directory; mode).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32)> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let contents = if meta.is_dir() {
                stack.push(path.clone());
                None
            } else if meta.is_file() {
                Some(std::fs::read(&path).unwrap())
            } else {
                None // a FIFO or a symbolic link: its name and mode
            };
            found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), (contents, meta.permissions().mode()));
        }
    }
    found
}

/// Runs `args` in `dir` and checks the refusal: exit 1 or 2, no panic, every word of `expect` in
/// stderr, and the directory exactly as before.
fn refused_in(dir: &Path, args: &[&str], expect: &[&str]) {
    let before = snapshot(dir);
    let out = dropship(args, dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?} panicked: {err}");
    for word in expect {
        assert!(err.contains(word), "{args:?}: expected `{word}` in: {err}");
    }
    assert!(snapshot(dir) == before, "{args:?} changed the directory");
}

/// [`refused_in`] a fresh directory holding `files`.
fn refused(args: &[&str], files: &[(&str, &[u8])], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    refused_in(dir.path(), args, expect);
}

const GOOD: &str = "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n2,3,1\n4,4,0\n5,5,1\n6,1,0\n1,1,1\n";
/// Three classes.
const GOOD3: &str = "a,b,label\n1,2,0\n3,4,1\n5,6,2\n7,8,1\n9,1,0\n2,3,1\n4,4,2\n5,5,1\n6,1,0\n1,1,2\n";

#[test]
fn bad_csv_files_are_refused_naming_the_file_line_and_column() {
    let train = |f: &'static str| ["train", "--data", f, "--epochs", "1", "--out", "run"];
    let cases: &[(&[u8], &[&str])] = &[
        (b"", &["d.csv", "empty"]),
        (b"   \n\n", &["d.csv", "empty"]),
        (b"a,b,label\n", &["d.csv", "only a header"]),
        (b"a,b,label\n1,2,0\n1,2\n", &["d.csv", "line 3", "2 fields"]),
        (b"a,b,label\n1,2,0\n1,2,0,4\n", &["d.csv", "line 3", "4 fields"]),
        (b"a,b,label\n1,x,0\n", &["line 2", "column `b`", "`x` is not a number"]),
        (b"a,b,label\n1,,0\n", &["line 2", "column `b`", "is not a number"]),
        (b"a,b,label\n0x10,1,0\n", &["column `a`", "`0x10`"]),
        (b"a,b,label\n1,nan,0\n", &["column `b`", "not finite"]),
        (b"a,b,label\n1,inf,0\n", &["column `b`", "not finite"]),
        (b"a,b,label\n1,-inf,0\n", &["column `b`", "not finite"]),
        (b"a,b,label\n1,1e400,0\n", &["column `b`", "not finite"]),
        (b"a,b,label\n1,2,-1\n", &["column `label`", "non-negative integer"]),
        (b"a,b,label\n1,2,0.5\n", &["task: regress", "`0.5` on line 2", "1 row(s): too few"]),
        (b"a,b,label\n1,2,cat\n", &["column `label`", "`cat`"]),
        (b"a,b,label\n1,2,\n", &["column `label`", "non-negative integer"]),
        (b"a,b,label\n1,2,2000000000\n1,2,0\n", &["line 2", "label 2000000000 is above the limit 4095"]),
        (b"a,b,label\n1,2,1000000\n1,2,0\n", &["label 1000000 is above the limit"]),
        (b"a,b,label\n1,2,3\n4,5,3\n", &["d.csv", "at least two"]),
        (b"a,b,label\n1,2,0\n3,4,0\n5,6,0\n1,1,1\n", &["d.csv", "class 1 (column `label`) has 1 row(s)"]),
        (b"a,a,label\n1,2,0\n", &["d.csv", "`a` appears twice (columns 1 and 2)"]),
        (b"label\n0\n1\n", &["d.csv", "at least one feature column"]),
        (b"a,b,label\n1,2,0\n\xff\xfe,1,1\n", &["d.csv", "line 3"]),
        (b"\x00\x01\x02\x03\x04", &["d.csv"]),
        (b"a,b,label\n\"1,2,0\n", &["d.csv"]),
        (b"a,b,label\n1 2,3,0\n", &["column `a`", "`1 2`"]),
        (b"a;b;label\n1;2;0\n", &["d.csv", "at least one feature column"]),
    ];
    for (text, expect) in cases {
        refused(&train("d.csv"), &[("d.csv", text)], expect);
    }
    let as_classes = [&train("d.csv")[..], &["--task", "classify"]].concat();
    refused(
        &as_classes,
        &[("d.csv", b"a,b,label\n1,2,0.5\n")],
        &["column `label`", "`0.5` is not a non-negative integer"],
    );
    let as_binary = [&train("d.csv")[..], &["--task", "binary"]].concat();
    refused(&as_binary, &[("d.csv", GOOD3.as_bytes())], &["--task binary needs labels 0 and 1", "up to 2"]);
    let as_regression = [&train("d.csv")[..], &["--task", "regress", "--label-column", "none"]].concat();
    refused(&as_regression, &[("d.csv", GOOD.as_bytes())], &["no label column named `none`"]);
    refused(
        &[&train("d.csv")[..], &["--task", "guess"]].concat(),
        &[("d.csv", GOOD.as_bytes())],
        &["--task", "classify, binary, regress, autoencode"],
    );
    refused(&train("missing.csv"), &[], &["cannot read missing.csv"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d.csv")).unwrap();
    refused_in(dir.path(), &train("d.csv"), &["cannot read d.csv"]);
    let named = ["train", "--data", "d.csv", "--label-column", "y", "--epochs", "1", "--out", "run"];
    refused(&named, &[("d.csv", GOOD.as_bytes())], &["no label column named `y`", "a, b, label"]);
    // predict: the CSV must fit the model
    let artifact = sample_artifact();
    let predict = ["predict", "m.dsm", "d.csv"];
    refused(
        &predict,
        &[("m.dsm", &artifact), ("d.csv", b"a,b,c,d,e\n1,2,3,4,5\n")],
        &["d.csv", "5 feature columns", "takes 2"],
    );
    refused(&predict, &[("m.dsm", &artifact), ("d.csv", b"a,b\n1,zz\n")], &["d.csv", "line 2", "`zz`"]);
}

/// A valid artifact: 2 inputs, standardized, Dense(2 -> 3) ReLU, Dense(3 -> 2).
fn sample_artifact() -> Vec<u8> {
    let layer = |input: usize, output: usize, activation| {
        Layer::dense(
            input,
            (0..input * output).map(|i| i as f32 * 0.25 - 0.5).collect(),
            vec![0.125; output],
            activation,
        )
    };
    let layers = vec![layer(2, 3, Activation::Relu), layer(3, 2, Activation::Linear)];
    let net = HostNetwork::f32(2, layers, Some((vec![0.5, 1.0], vec![2.0, 4.0]))).unwrap();
    net.to_artifact("", "q").unwrap()
}

/// [`sample_artifact`] quantized to int8 (calibrated on four rows).
fn sample_int8_artifact() -> Vec<u8> {
    let net = HostNetwork::from_artifact(&dropship_shared::Artifact::parse(&sample_artifact()).unwrap());
    let rows: [&[f32]; 4] = [&[1.0, 2.0], &[3.0, -1.0], &[0.0, 0.5], &[2.0, 2.0]];
    let int8 =
        dropship::deploy::quantize::quantize(&net, &dropship::deploy::quantize::calibrate(&net, rows.into_iter()))
            .unwrap();
    int8.to_artifact("", "q").unwrap()
}

/// Recomputes the CRC-32 at the end, so the corruption before it is what the parser meets.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len();
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn bad_artifacts_are_refused_by_every_command_that_reads_one() {
    let good = sample_artifact();
    // Layout (format version 3): magic 0, version 4, flags 8, input 12, layer count 16,
    // class-name length 20, provenance length 24, "q" 28, mean 29..37, scale 37..45, layer 0
    // (kind 45, activation 49, precision 53, width 57, weights from 61), CRC in the last 4 bytes.
    let with = |offset: usize, bytes: &[u8], seal: bool| {
        let mut b = good.clone();
        b[offset..offset + bytes.len()].copy_from_slice(bytes);
        if seal {
            reseal(&mut b);
        }
        b
    };
    let u32le = |v: u32| v.to_le_bytes();
    let mut longer = good.clone();
    longer.push(0);
    let mut longer_sealed = longer.clone();
    reseal(&mut longer_sealed);
    let mut shorter_sealed = good[..good.len() - 8].to_vec();
    reseal(&mut shorter_sealed);
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        (Vec::new(), &["m.dsm", "bad magic"]),
        (b"not a model".to_vec(), &["m.dsm", "bad magic"]),
        (b"DSHP".to_vec(), &["m.dsm", "truncated"]),
        (b"DSVE\x01\0\0\0\0\0\0\0".to_vec(), &["m.dsm", "bad magic"]),
        (with(4, &u32le(4), false), &["m.dsm", "unsupported format version 4 (this build reads 1 to 3)"]),
        (with(4, &u32le(2), false), &["m.dsm", "checksum mismatch"]),
        // a version-3 file that says it is version 2: the older layout's shapes are its texts
        (with(4, &u32le(2), true), &["m.dsm", "layer width is 0"]),
        (good[..good.len() - 5].to_vec(), &["m.dsm", "corrupt or truncated"]),
        (with(12, &[3], false), &["m.dsm", "checksum mismatch"]),
        (with(70, &[0x55], false), &["m.dsm", "checksum mismatch"]),
        (longer, &["m.dsm", "checksum mismatch"]),
        (longer_sealed, &["m.dsm", "where the structure ends"]),
        (shorter_sealed, &["m.dsm", "truncated"]),
        (with(61, &f32::NAN.to_le_bytes(), true), &["m.dsm", "non-finite value in layer 0 weights at index 0"]),
        (with(37, &0f32.to_le_bytes(), true), &["m.dsm", "standardization scale 0 is not positive"]),
        (with(12, &u32le(0), true), &["m.dsm", "input width is 0"]),
        (with(12, &u32le(1 << 30), true), &["m.dsm", "input width 1073741824 is above the limit"]),
        (with(16, &u32le(33), true), &["m.dsm", "layer count 33 is above the limit"]),
        (with(49, &u32le(7), true), &["m.dsm", "layer 0 has activation code 7", "a newer dropship wrote it"]),
        (with(45, &u32le(9), true), &["m.dsm", "layer 0 has layer kind code 9", "a newer dropship wrote it"]),
        (with(4, &u32le(9), true), &["m.dsm", "unsupported format version 9", "a newer dropship wrote it"]),
        (with(53, &u32le(1), true), &["m.dsm", "layer 0 is int8 in an f32 network"]),
        (with(8, &u32le(17), true), &["m.dsm", "unknown flag bits 0x11", "a newer dropship wrote it"]),
        (with(28, &[0xff], true), &["m.dsm", "provenance is not valid"]),
        (with(57, &u32le(5000), true), &["m.dsm", "layer width 5000 is above the limit"]),
    ];
    for (bytes, expect) in &cases {
        refused(&["inspect", "m.dsm"], &[("m.dsm", bytes)], expect);
        refused(&["predict", "m.dsm", "d.csv"], &[("m.dsm", bytes), ("d.csv", b"a,b\n1,2\n")], expect);
        refused(&["vectors", "m.dsm", "d.csv", "-o", "v.dsv"], &[("m.dsm", bytes), ("d.csv", b"a,b\n1,2\n")], expect);
    }
    // int8 artifacts (format version 2): corruption and out-of-range quantization parameters
    let int8 = sample_int8_artifact();
    let int8_with = |offset: usize, bytes: &[u8]| {
        let mut b = int8.clone();
        b[offset..offset + bytes.len()].copy_from_slice(bytes);
        reseal(&mut b);
        b
    };
    // after the standardization (45): input scale 45, input zero 49, layer 0: kind 53,
    // activation 57, precision 61, width 65, output scale 69, zero 73, weight scales 77..,
    // multipliers 89.., shifts 101.., bias 113.., weights 125..
    let mut flipped = int8.clone();
    flipped[130] ^= 0x10;
    let int8_cases: Vec<(Vec<u8>, &[&str])> = vec![
        (flipped, &["m.dsm", "checksum mismatch"]),
        (int8_with(49, &u32le(200)), &["m.dsm", "input zero point 0 is out of range"]),
        (int8_with(45, &0f32.to_le_bytes()), &["m.dsm", "input scale 0 is out of range"]),
        (int8_with(61, &u32le(0)), &["m.dsm", "layer 0 is f32 in an int8 network"]),
        (int8_with(89, &u32le(5)), &["m.dsm", "layer 0 requantization 0 is out of range"]),
        (int8_with(125, &[0x80]), &["m.dsm", "layer 0 weight 0 is out of range"]),
        (int8_with(113, &u32le(i32::MAX as u32)), &["m.dsm", "layer 0 bias 0 is out of range"]),
    ];
    for (bytes, expect) in &int8_cases {
        refused(&["inspect", "m.dsm"], &[("m.dsm", bytes)], expect);
        refused(&["predict", "m.dsm", "d.csv"], &[("m.dsm", bytes), ("d.csv", b"a,b\n1,2\n")], expect);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.dsm"), &int8).unwrap();
    assert!(dropship(&["inspect", "m.dsm"], dir.path()).status.success());
    std::fs::write(dir.path().join("d.csv"), b"a,b\n1,2\n").unwrap();
    refused_in(
        dir.path(),
        &["quantize", "m.dsm", "-o", "q.dsm", "--calibration", "d.csv"],
        &["m.dsm is already an int8 artifact"],
    );
    refused(&["quantize", "m.dsm", "-o", "q.dsm"], &[("m.dsm", &good)], &["needs calibration rows", "--calibration"]);
    refused(
        &["quantize", "m.dsm", "-o", "m.dsm", "--calibration", "d.csv"],
        &[("m.dsm", &good), ("d.csv", b"a,b\n1,2\n")],
        &["m.dsm is an input"],
    );
    refused(
        &["quantize", "m.dsm", "-o", "q.dsm", "--calibration", "d.csv"],
        &[("m.dsm", &good), ("d.csv", b"a,b,c,d\n1,2,3,4\n")],
        &["d.csv", "4 feature columns, the model takes 2"],
    );
    refused(&["inspect", "missing.dsm"], &[], &["cannot read missing.dsm"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m.dsm")).unwrap();
    refused_in(dir.path(), &["inspect", "m.dsm"], &["m.dsm is a directory"]);
    // the sample itself is fine
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.dsm"), &good).unwrap();
    assert!(dropship(&["inspect", "m.dsm"], dir.path()).status.success());
}

fn onnx_model(nodes: Vec<pb::NodeProto>, init: Vec<pb::TensorProto>, input: usize) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: init,
            input: vec![onnx::value_info("x", input)],
            output: vec![onnx::value_info("y", 2)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn bad_onnx_files_are_refused_by_name() {
    use onnx::{node, tensor_f32};
    let w = |name: &str, dims: &[usize]| tensor_f32(name, dims, &vec![0.5; dims.iter().product()]);
    let gemm = |inputs: &[&str], out: &str| node("Gemm", "dense", inputs, &[out]);
    let mut int64 = w("w", &[2, 2]);
    int64.data_type = 7;
    let mut huge = w("w", &[2, 2]);
    huge.dims = vec![1 << 40, 1 << 40];
    let mut nan = w("w", &[2, 2]);
    nan.float_data[1] = f32::NAN;
    let mut miscounted = w("w", &[2, 2]);
    miscounted.float_data.pop();
    let mut trans_a = gemm(&["x", "w"], "y");
    trans_a.attribute.push(pb::AttributeProto { name: "transA".into(), i: 1, r#type: 2, ..Default::default() });
    let cases: Vec<(Vec<u8>, &[&str])> = vec![
        (Vec::new(), &["m.onnx", "is empty"]),
        (b"\xff\xff\xff\xff not protobuf".to_vec(), &["m.onnx", "not an ONNX model"]),
        (pb::ModelProto { ir_version: 8, ..Default::default() }.encode_to_vec(), &["m.onnx", "no graph"]),
        (onnx_model(vec![node("Conv", "conv1", &["x", "w"], &["y"])], vec![w("w", &[2, 2])], 2), &["`conv1`", "Conv"]),
        (onnx_model(vec![gemm(&["x", "w"], "y")], vec![int64], 2), &["`w`", "element type 7"]),
        (onnx_model(vec![gemm(&["x", "w"], "y")], vec![huge], 2), &["`w`", "above the limit"]),
        (onnx_model(vec![gemm(&["x", "w"], "y")], vec![nan], 2), &["non-finite", "`w`"]),
        (onnx_model(vec![gemm(&["x", "w"], "y")], vec![miscounted], 2), &["`w`", "3 values for shape [2, 2]"]),
        (onnx_model(vec![node("MatMul", "mm", &["x", "x"], &["y"])], vec![], 2), &["`mm`", "not a constant"]),
        (onnx_model(vec![gemm(&["x", "w"], "y")], vec![w("w", &[2, 2, 1])], 2), &["`dense`", "not 2-D"]),
        (onnx_model(vec![trans_a], vec![w("w", &[2, 2])], 2), &["`dense`", "transA = 0"]),
        (
            onnx_model(
                vec![gemm(&["x", "w1"], "h"), gemm(&["h", "w2"], "y")],
                vec![w("w1", &[2, 3]), w("w2", &[4, 2])],
                2,
            ),
            &["don't chain", "takes 4", "gives 3"],
        ),
        (
            onnx_model(
                vec![node("Identity", "loop", &["x"], &["x"]), gemm(&["x", "w"], "y")],
                vec![w("w", &[2, 2])],
                2,
            ),
            &["a cycle"],
        ),
        (onnx_model(vec![node("Identity", "loop", &["x"], &["x"])], vec![], 2), &["a cycle"]),
        (
            onnx_model(
                vec![gemm(&["x", "w"], "h"), node("Add", "residual", &["h", "x"], &["y"])],
                vec![w("w", &[2, 2])],
                2,
            ),
            &["`residual`", "the graph branches"],
        ),
        (onnx_model(vec![node("Identity", "id", &["x"], &["y"])], vec![], 2), &["no layer"]),
        (
            onnx_model(vec![node("Relu", "r", &["x"], &["y"])], vec![], 2),
            &["`r`", "Relu must follow a dense or convolution layer"],
        ),
        (
            onnx_model(
                vec![node("MatMul", "mm", &["x", "w"], &["h"]), node("Add", "add", &["h", "b"], &["y"])],
                vec![w("w", &[2, 2]), w("b", &[3])],
                2,
            ),
            &["`add`", "does not broadcast to the layer's"],
        ),
        (onnx_model(vec![gemm(&["x", "w"], "y")], vec![w("w", &[2, 5000])], 2), &["`dense`", "between 1 and 4096"]),
    ];
    for (bytes, expect) in &cases {
        refused(&["import", "m.onnx", "-o", "m.dsm"], &[("m.onnx", bytes)], expect);
    }
    refused(&["import", "missing.onnx", "-o", "m.dsm"], &[], &["cannot read missing.onnx"]);
    refused(&["export", "nope"], &[], &["nope"]);
    // an OS error is told once, after the path it concerns
    let dir = tempfile::tempdir().unwrap();
    let err = String::from_utf8_lossy(&dropship(&["inspect", "nope.dsm"], dir.path()).stderr).to_string();
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn bad_flags_name_the_flag_and_its_value() {
    let d: &[(&str, &[u8])] = &[("d.csv", GOOD.as_bytes())];
    let train = |extra: &[&'static str]| [&["train", "--data", "d.csv", "--out", "run"][..], extra].concat();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--hidden", "100000000"], &["--hidden must be between 1 and 4096", "100000000"]),
        (&["--hidden", "0"], &["--hidden"]),
        (&["--hidden", "16,0"], &["--hidden must be between 1 and 4096", "got 0"]),
        (
            &["--hidden", "8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8,8"],
            &["--hidden lists 32 hidden layers", "give 1 to 31"],
        ),
        (&["--hidden", "16,8", "--dropout", "0.5,0.2,0.1"], &["--dropout gives 3 rates for 2 hidden layers"]),
        (&["--hidden", "16,8", "--dropout", "0.5,1"], &["--dropout must be in [0, 1), got 1"]),
        (&["--hidden", "16,8", "--l2", "0.1", "--l2-layers", "hidden3"], &["--l2-layers", "`hidden3`"]),
        (&["--augment", "blur=2"], &["--augment: `blur=2` is not a setting"]),
        (&["--augment", "noise=-0.1"], &["--augment noise=-0.1"]),
        (&["--augment", "shift=1"], &["--augment shift needs image-shaped rows", "--image"]),
        (&["--augment", "shift=1", "--image", "3x3"], &["--image 3x3 has 9 pixels, the data has 2 features"]),
        (&["--augment", "shift=1", "--image", "two"], &["--image two"]),
        (&["--image", "1x2"], &["--image applies only with --augment"]),
        (&["--epochs", "18446744073709551615"], &["--epochs must be between 1 and 1000000"]),
        (&["--epochs", "0"], &["--epochs"]),
        (&["--epochs", "zero"], &["--epochs"]),
        (&["--batch-size", "0"], &["--batch-size"]),
        (&["--batch-size", "-1"], &["--batch-size"]),
        (&["--lr", "0"], &["--lr"]),
        (&["--lr", "nan"], &["--lr"]),
        (&["--lr", "-0.1"], &["--lr"]),
        (&["--dropout", "-0.5"], &["--dropout"]),
        (&["--dropout", "1"], &["--dropout must be in [0, 1), got 1"]),
        (&["--l2", "-1"], &["--l2"]),
        (&["--l2", "0.1", "--l2-layers", "bias"], &["--l2-layers", "`bias`"]),
        (&["--l2-layers", "hidden"], &["--l2-layers applies only with --l2"]),
        (&["--l2", "0.1", "--dropout", "0.5"], &["separate models"]),
        (&["--early-stopping", "0"], &["--early-stopping"]),
        (&["--val-fraction", "-0.1"], &["--val-fraction and --test-fraction", "-0.1"]),
        (&["--val-fraction", "0.5", "--test-fraction", "0.5"], &["--val-fraction and --test-fraction"]),
        (&["--weight-decay", "-1"], &["--weight-decay"]),
    ];
    for (extra, expect) in cases {
        refused(&train(extra), d, expect);
    }
    let compare = |extra: &[&'static str]| [&["compare", "--data", "d.csv", "--out", "run"][..], extra].concat();
    refused(&compare(&["--early-stopping", "0"]), d, &["--early-stopping"]);
    refused(&compare(&["--seeds", "1,1"]), d, &["--seeds: seed 1 is given twice"]);
    refused(&compare(&["--dropout", "1.5"]), d, &["--dropout"]);
    let sweep = |extra: &[&'static str]| [&["sweep", "--data", "d.csv", "--out", "run"][..], extra].concat();
    refused(&sweep(&["--dropout-rates", "0,1.0"]), d, &["--dropout-rates: 1 is not in [0, 1)"]);
    refused(&sweep(&["--l2-strengths", "0.1,-1"]), d, &["--l2-strengths: -1"]);
    refused(&sweep(&["--noise-levels", "0.1,-1"]), d, &["--noise-levels: -1"]);
    refused(&["train", "--data", "d.csv", "--lr", "1e30", "--epochs", "5", "--out", "run"], d, &["epoch 1", "--lr"]);
}

#[test]
fn bad_validate_input_is_refused_before_a_device_is_touched() {
    let artifact = sample_artifact();
    let rows: &[u8] = b"a,b,label\n1,2,0\n3,4,1\n";
    let files: &[(&str, &[u8])] = &[("m.dsm", &artifact), ("d.csv", rows), ("old.json", b"{}")];
    let validate = |extra: &[&'static str]| [&["validate", "m.dsm", "d.csv"][..], extra].concat();
    let port: &[&str] = &["--port", "/nonexistent/ttyACM9"];
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (validate(&[]), &["--device", "--port"]),
        (validate(&["--device", "qemu", "--port", "/dev/null"]), &["--device", "--port", "cannot be used with"]),
        (validate(&["--device", "board"]), &["--device", "board"]),
        ([validate(port), vec!["--timeout", "0"]].concat(), &["--timeout", "\"0\""]),
        ([validate(port), vec!["--timeout", "nan"]].concat(), &["--timeout"]),
        ([validate(port), vec!["--baud", "5"]].concat(), &["--baud", "5"]),
        (validate(port), &["cannot open the serial port /nonexistent/ttyACM9"]),
        ([validate(port), vec!["--json", "old.json"]].concat(), &["old.json already exists", "--overwrite"]),
        ([validate(port), vec!["--json", "d.csv", "--overwrite"]].concat(), &["d.csv is an input"]),
        (
            vec!["validate", "d.csv", "d.csv", "--port", "/nonexistent/ttyACM9"],
            &["d.csv is not a valid dropship artifact"],
        ),
    ];
    for (args, expect) in &cases {
        refused(args, files, expect);
    }
    let wide: &[u8] = b"a,b,c,d,label\n1,2,3,4,0\n";
    refused(
        &validate(port),
        &[("m.dsm", &artifact), ("d.csv", wide)],
        &["d.csv", "5 feature columns, the model takes 2"],
    );
    refused(
        &validate(port),
        &[("m.dsm", &artifact), ("d.csv", b"a,b,label\n")],
        &["d.csv: only a header, no data rows"],
    );
}

const PARTS: &str = "a,b,part,label\n1,2,train,0\n3,4,train,1\n5,6,train,0\n7,8,train,1\n9,1,val,0\n2,3,val,1\n4,4,test,0\n5,5,test,1\n";

#[test]
fn a_bad_user_split_is_refused_naming_the_row_or_the_file() {
    let split = ["train", "--data", "d.csv", "--split-column", "part", "--epochs", "1", "--out", "run"];
    let dev = PARTS.replace("9,1,val,0", "9,1,dev,0");
    refused(&split, &[("d.csv", dev.as_bytes())], &["d.csv, line 6, column `part`: `dev` is not a part"]);
    let no_val = PARTS.replace(",val,", ",train,");
    refused(&split, &[("d.csv", no_val.as_bytes())], &["d.csv: the user's split has no val rows"]);
    refused(&split, &[("d.csv", GOOD.as_bytes())], &["no split column named `part`"]);
    let as_label = ["train", "--data", "d.csv", "--split-column", "label", "--epochs", "1", "--out", "run"];
    refused(&as_label, &[("d.csv", PARTS.as_bytes())], &["split column and the label column are both `label`"]);
    let files =
        |extra: &[&'static str]| [&["train", "--data", "d.csv", "--epochs", "1", "--out", "run"][..], extra].concat();
    let other = "a,c,label\n1,2,0\n3,4,1\n";
    let d: &[(&str, &[u8])] = &[("d.csv", GOOD.as_bytes()), ("v.csv", GOOD.as_bytes()), ("t.csv", other.as_bytes())];
    refused(&files(&["--val-data", "v.csv", "--test-data", "t.csv"]), d, &["t.csv: columns a, c", "differ from d.csv"]);
    refused(&files(&["--val-data", "v.csv"]), d, &["--val-data and --test-data go together"]);
    refused(
        &files(&["--val-data", "v.csv", "--test-data", "v.csv", "--split-column", "label"]),
        d,
        &["two ways to give your own split"],
    );
    refused(&files(&["--val-data", "v.csv", "--test-data", "missing.csv"]), d, &["cannot read missing.csv"]);
}

#[test]
fn a_loss_that_explodes_without_becoming_nan_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let out = dropship(&["train", "--lr", "50", "--epochs", "3", "--quiet", "--out", "r"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: model base (seed 0): the training loss reached"), "{err}");
    assert!(err.contains("try a lower --lr"), "{err}");
    let out = dropship(&["train", "--epochs", "3", "--quiet", "--out", "s"], dir.path());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "a sane run is not warned about");
}

#[test]
fn sizes_beyond_the_rows_are_clamped_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), GOOD).unwrap();
    for batch in ["4294967296", "18446744073709551615"] {
        // under a 2 GB address-space limit: a batch buffer of that many rows could not be made
        let out = Command::new("prlimit")
            .args(["--as=2000000000", "--", env!("CARGO_BIN_EXE_dropship")])
            .args(["train", "--data", "d.csv", "--epochs", "1", "--batch-size", batch, "--quiet", "--out", batch])
            .current_dir(dir.path())
            .env("RAYON_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "--batch-size {batch}: {}", String::from_utf8_lossy(&out.stderr));
        // and the run is whole
        let history = std::fs::read_to_string(dir.path().join(batch).join("base/history.csv")).unwrap();
        assert_eq!(history.lines().count(), 2, "{history}");
    }
}

/// A directory with the tiny CSV and a trained run `run/base`.
fn with_a_run() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), GOOD).unwrap();
    let out = dropship(&["train", "--data", "d.csv", "--epochs", "2", "--quiet", "--out", "run"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[test]
fn no_command_replaces_overwrites_or_destroys_a_users_file_by_accident() {
    let dir = with_a_run();
    let d = dir.path();
    std::fs::write(d.join("s.dsm"), b"the user's file").unwrap();
    refused_in(d, &["export", "run/base", "-o", "s.dsm"], &["s.dsm already exists", "--overwrite"]);
    refused_in(d, &["export", "run/base", "-o", "t.dsm", "--onnx", "t.dsm"], &["t.dsm and t.dsm are the same file"]);
    refused_in(d, &["export", "run/base", "-o", "run/base/model.safetensors", "--overwrite"], &["is an input"]);
    std::fs::create_dir(d.join("adir")).unwrap();
    refused_in(d, &["export", "run/base", "-o", "adir", "--overwrite"], &["adir is a directory"]);
    let ok = dropship(&["export", "run/base", "-o", "c.dsm"], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    refused_in(d, &["vectors", "c.dsm", "d.csv", "-o", "c.dsm", "--overwrite"], &["c.dsm is an input"]);
    refused_in(d, &["vectors", "c.dsm", "d.csv", "-o", "s.dsm"], &["s.dsm already exists"]);
    refused_in(
        d,
        &["train", "--data", "d.csv", "--epochs", "1", "--out", "s.dsm", "--overwrite"],
        &["s.dsm is a file"],
    );
    refused_in(d, &["train", "--data", "d.csv", "--epochs", "1", "--out", "run"], &["run already exists"]);
    refused_in(
        d,
        &["compare", "--data", "d.csv", "--epochs", "1", "--out", ".", "--overwrite"],
        &["an input of this command"],
    );
    std::fs::create_dir(d.join("keep")).unwrap();
    std::fs::copy(d.join("d.csv"), d.join("keep/d.csv")).unwrap();
    refused_in(
        d,
        &["train", "--data", "keep/d.csv", "--epochs", "1", "--out", "keep", "--overwrite"],
        &["keep holds keep/d.csv, an input of this command"],
    );
    // an intended overwrite keeps the file's mode
    std::fs::set_permissions(d.join("s.dsm"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let ok = dropship(&["export", "run/base", "-o", "s.dsm", "--overwrite"], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_ne!(std::fs::read(d.join("s.dsm")).unwrap(), b"the user's file");
    assert_eq!(std::fs::metadata(d.join("s.dsm")).unwrap().permissions().mode() & 0o777, 0o640);
}

#[test]
fn a_signal_mid_run_leaves_the_directory_as_it_was_and_exits_128_plus_the_signal() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("keep.txt"), b"the user's file").unwrap();
        let before = snapshot(d);
        let mut child = Command::new(env!("CARGO_BIN_EXE_dropship"))
            .args(["compare", "--epochs", "100000", "--quiet", "--out", "runs"])
            .current_dir(d)
            .env("RAYON_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // wait until the partial run directory exists: the run is under way
        let started = std::time::Instant::now();
        while !std::fs::read_dir(d).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".partial-")) {
            assert!(started.elapsed().as_secs() < 60, "the run never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let killed = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert!(snapshot(d) == before, "SIG{signal} left the partial run behind");
    }
}

/// The second hostile probe's cases (other values than its report): devices, FIFOs, lines without
/// end, sizes that overflow, a damaged run, limits only found after minutes, negative numbers,
/// a blank first line, calibration and noise beyond f32.
#[test]
fn the_second_probe_crashes_hangs_and_silent_acceptances_are_refused() {
    let dir = with_a_run();
    let d = dir.path();
    let train =
        |extra: &[&'static str]| [&["train", "--data", "d.csv", "--epochs", "1", "--out", "r2"][..], extra].concat();
    // a device and a FIFO with no writer: refused at once, never read or waited on
    let fifo = d.join("pipe.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refused_in(d, &["train", "--data", "/dev/zero", "--out", "r2"], &["/dev/zero", "not a regular file"]);
    refused_in(
        d,
        &train(&["--val-data", "d.csv", "--test-data", "/dev/urandom"]),
        &["/dev/urandom", "not a regular file"],
    );
    refused_in(d, &["train", "--data", "pipe.csv", "--out", "r2"], &["pipe.csv", "not a regular file"]);
    refused_in(d, &["inspect", "pipe.csv"], &["pipe.csv", "not a regular file"]);
    std::fs::remove_file(&fifo).unwrap();
    // a line without end is refused at its bound, not read whole
    std::fs::write(d.join("long.csv"), vec![b'7'; 3 << 20]).unwrap();
    refused_in(d, &["train", "--data", "long.csv", "--out", "r2"], &["long.csv", "line 1 is longer than 1 MiB"]);
    std::fs::remove_file(d.join("long.csv")).unwrap();
    // sizes that overflow or exceed what an artifact holds, found before any training
    for image in ["99999999999x99999999999", "4611686018427387905x2", "65x65"] {
        refused_in(d, &train(&["--augment", "shift=1", "--image", image]), &[&format!("--image {image}"), "pixels"]);
    }
    refused_in(d, &train(&["--hidden", "3000,3000"]), &["2-3000-3000-1 model", "more than an artifact holds"]);
    refused_in(d, &train(&["--augment", "noise=1e30"]), &["--augment noise=1e30", "from 0 to 100"]);
    // a convolutional layer list that cannot be built names the layer or the flag it needs
    let cnn = |layers: &'static str, image: &'static str| train(&["--layers", layers, "--image", image]);
    refused_in(d, &cnn("conv4k3,maxpool2,flatten,dense1", "2x1"), &["--layers", "`conv4k3` cannot take a 1x2x1 map"]);
    refused_in(d, &cnn("conv4k1,dense1", "2x1"), &["--layers", "put flatten or gap before the first dense"]);
    refused_in(d, &cnn("conv4k1,flatten,dense3", "2x1"), &["dense1 for this task, not dense3"]);
    refused_in(d, &cnn("conv4k1,lstm8,flatten,dense1", "2x1"), &["`lstm8` is not a layer"]);
    refused_in(d, &cnn("conv4k1,flatten,dense1", "3x1"), &["--image", "3", "the rows have 2"]);
    refused_in(d, &train(&["--layers", "conv4k1,flatten,dense1"]), &["--layers needs --image"]);
    refused_in(
        d,
        &[&cnn("conv4k1,flatten,dense1", "2x1")[..], &["--dropout", "0.5"]].concat(),
        &["--dropout goes after a hidden Dense"],
    );
    refused_in(d, &[&cnn("conv4k1,flatten,dense1", "2x1")[..], &["--hidden", "8"]].concat(), &["--layers", "--hidden"]);
    // negative numbers name their flag
    for (flag, value) in [("--seed", "-2"), ("--early-stopping", "-2"), ("--image", "-2x-2")] {
        refused_in(d, &train(&[flag, value]), &[flag, value]);
    }
    refused_in(d, &["compare", "--data", "d.csv", "--seeds", "-3", "--out", "r2"], &["--seeds", "-3"]);
    let ok = dropship(&["export", "run/base", "-o", "m.dsm"], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    refused_in(d, &["vectors", "m.dsm", "d.csv", "-o", "v.dsv", "--rows", "-5"], &["--rows", "-5"]);
    refused_in(d, &["vectors", "m.dsm", "d.csv", "-o", "v.dsv", "--rows", "0"], &["--rows", "0"]);
    refused_in(
        d,
        &["validate", "m.dsm", "d.csv", "--port", "/nonexistent/tty", "--timeout", "-3"],
        &["--timeout", "-3"],
    );
    refused_in(d, &["bench", "--repeats", "0"], &["--repeats 0"]);
    // more vectors than a vectors file holds: refused, not written for its own parser to reject
    let many: String = std::iter::once("a,b,label\n".to_string())
        .chain((0..66_000).map(|i| format!("{},1,{}\n", i % 7, i % 2)))
        .collect();
    std::fs::write(d.join("many.csv"), many).unwrap();
    refused_in(d, &["vectors", "m.dsm", "many.csv", "-o", "v.dsv"], &["66000 rows", "65536"]);
    // a blank first line is said to be one
    std::fs::write(d.join("blank.csv"), format!("\n{GOOD}")).unwrap();
    refused_in(d, &["train", "--data", "blank.csv", "--out", "r2"], &["blank.csv", "line 1 is blank"]);
    // calibration rows that overflow f32 name their file: a run on features of small spread,
    // whose standardization turns 3e38 into infinity
    std::fs::write(d.join("big.csv"), "a,b,label\n3e38,-3e38,0\n1,2,1\n").unwrap();
    let small: String = GOOD
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                let f: Vec<&str> = l.split(',').collect();
                format!("{}e-3,{}e-3,{}\n", f[0], f[1], f[2])
            }
        })
        .collect();
    std::fs::write(d.join("small.csv"), small).unwrap();
    let ok = dropship(&["train", "--data", "small.csv", "--epochs", "1", "--quiet", "--out", "srun"], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    refused_in(
        d,
        &["quantize", "srun/base", "-o", "m8.dsm", "--calibration", "big.csv"],
        &["calibration rows (big.csv) overflow f32 in the standardized input"],
    );
    // inputs beyond f32 inside the model are warned about, not printed as normal classes
    let ok = dropship(&["export", "srun/base", "-o", "s.dsm"], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = dropship(&["predict", "s.dsm", "big.csv"], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("1 row(s) of big.csv") && err.contains("data row 1"), "{err}");
    // a run directory is input too: a config.json that claims absurd classes is refused
    let config = d.join("run/base/config.json");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"classes\": 2", "\"classes\": 9999999999");
    std::fs::write(&config, text).unwrap();
    refused_in(d, &["export", "run/base", "-o", "n.dsm"], &["config.json", "9999999999 classes", "damaged"]);
}

/// The ways the first probe lost or overwrote a user's file (other spellings than its report).
#[test]
fn no_spelling_of_an_input_or_an_existing_file_loses_it() {
    let dir = with_a_run();
    let d = dir.path();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::copy(d.join("d.csv"), d.join("data/in.csv")).unwrap();
    std::os::unix::fs::symlink(d.join("data"), d.join("link")).unwrap();
    let train = |data: &'static str, out: &'static str| {
        ["train", "--data", data, "--epochs", "1", "--quiet", "--out", out, "--overwrite"]
    };
    refused_in(d, &train("data/in.csv", "data/./../data"), &["an input of this command"]);
    refused_in(d, &train("link/in.csv", "data"), &["an input of this command"]);
    refused_in(
        d,
        &[
            "train",
            "--data",
            "d.csv",
            "--val-data",
            "data/in.csv",
            "--test-data",
            "d.csv",
            "--epochs",
            "1",
            "--out",
            "data",
            "--overwrite",
        ],
        &["an input of this command"],
    );
    // a command's own inputs, reached through `..`, a hard link or a symbolic link
    std::fs::hard_link(d.join("run/base/model.safetensors"), d.join("hard.safetensors")).unwrap();
    std::os::unix::fs::symlink(d.join("run/base/config.json"), d.join("soft.json")).unwrap();
    for (args, words) in [
        (vec!["quantize", "run/base", "-o", "run/x/../base/model.safetensors", "--overwrite"], vec!["is an input"]),
        (vec!["quantize", "run/base", "-o", "hard.safetensors", "--overwrite"], vec!["is an input"]),
        (vec!["export", "run/base", "-o", "soft.json", "--overwrite"], vec!["is an input"]),
        (vec!["export", "run/base", "-o", "run/base/config.json", "--overwrite"], vec!["is an input"]),
        (vec!["export", "run/base", "-o", "e.dsm", "--onnx", "run/test.csv", "--overwrite"], vec!["is an input"]),
        // every output is checked before any is written
        (vec!["export", "run/base", "-o", "e.dsm", "--onnx", "d.csv/x.onnx", "--overwrite"], vec!["not a directory"]),
        (vec!["export", "run/base", "-o", "data/../e.dsm", "--onnx", "e.dsm"], vec!["are the same file"]),
        (vec!["export", "run/base", "-o", "/dev/null", "--overwrite"], vec!["not a regular file"]),
    ] {
        refused_in(d, &args, &words);
    }
    let ok = dropship(&["export", "run/base", "-o", "m.onnx.dsm", "--onnx", "m.onnx"], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    refused_in(
        d,
        &["import", "m.onnx", "-o", "run/base/model.safetensors", "--standardize-from", "run/base", "--overwrite"],
        &["is an input"],
    );
    // a symbolic link to nothing at an output path is not replaced, with or without --overwrite
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.dsm")).unwrap();
    refused_in(d, &["export", "run/base", "-o", "dangling.dsm"], &["symbolic link to nothing"]);
    refused_in(d, &["export", "run/base", "-o", "dangling.dsm", "--overwrite"], &["symbolic link to nothing"]);
    // a failed run leaves no parent directories it made
    refused_in(d, &["train", "--data", "d.csv", "--lr", "1e30", "--epochs", "5", "--out", "new1/new2/run"], &["--lr"]);
    // the longest file name the file system takes is written
    let long = format!("{}.dsm", "m".repeat(250));
    let ok = dropship(&["export", "run/base", "-o", &long], d);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

/// SIGINT at any moment of `train --overwrite`, the last milliseconds included: the previous run
/// or the new one is in place, whole, and nothing partial is left.
#[test]
fn an_interrupted_overwrite_keeps_the_old_run_or_the_new_one_whole() {
    let dir = with_a_run();
    let d = dir.path();
    let args = ["train", "--data", "d.csv", "--epochs", "2", "--quiet", "--out", "run", "--overwrite"];
    // the run's length: the median of three (a first, cold run can be much slower)
    let mut lengths: Vec<std::time::Duration> = (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            assert!(dropship(&args, d).status.success());
            start.elapsed()
        })
        .collect();
    lengths.sort();
    let duration = lengths[1];
    let (mut old, mut new) = (0, 0);
    // at least 24 moments, until both outcomes were seen (at most 96), sweeping 0.1 to 3 lengths
    for k in 0..96u32 {
        if k >= 24 && old > 0 && new > 0 {
            break;
        }
        // the same seed trains the same weights: a new run is told apart by its directory's inode
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&d.join("run"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_dropship"))
            .args(args)
            .current_dir(d)
            .env("RAYON_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // spread from inside the run to past its end, so the moment the new run moves into place
        // is crossed whatever the machine's load
        std::thread::sleep(duration.mul_f64(0.1 + 2.9 * (k % 24) as f64 / 23.0));
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        // done (0), interrupted (130), or killed by the signal before its handler was installed
        let early = std::os::unix::process::ExitStatusExt::signal(&status) == Some(2);
        assert!(matches!(status.code(), Some(0 | 130)) || early, "trial {k}: {status:?}");
        for file in ["run/base/model.safetensors", "run/base/config.json", "run/base/metrics.json", "run/report.md"] {
            assert!(d.join(file).is_file(), "trial {k} ({status:?}): {file} is missing");
        }
        if inode(&d.join("run")) == before {
            old += 1
        } else {
            new += 1
        }
        let partials: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".partial-"))
            .collect();
        assert!(partials.is_empty(), "trial {k}: {partials:?} left behind");
    }
    eprintln!("interrupted overwrites: the old run kept {old} times, the new one in place {new} times");
    assert!(old > 0 && new > 0, "the trials never crossed the commit ({old} old, {new} new)");
}

/// SIGINT or SIGTERM while `validate --device qemu` streams rows: exit 130/143, QEMU killed, its
/// temporary directory gone (QEMU used to run on at 65 % CPU).
#[test]
fn an_interrupted_validation_leaves_no_qemu_and_no_temporary_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("m.dsm"), sample_artifact()).unwrap();
    let rows: String = std::iter::once("a,b,label\n".to_string())
        .chain((0..200_000).map(|i| format!("{}.5,{},{}\n", i % 13, i % 7, i % 2)))
        .collect();
    std::fs::write(d.join("d.csv"), rows).unwrap();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let tmp = d.join(format!("tmp-{signal}"));
        std::fs::create_dir(&tmp).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dropship"))
            .args(["validate", "m.dsm", "d.csv", "--device", "qemu"])
            .current_dir(d)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // wait until QEMU runs: its UART socket exists in the session's temporary directory
        let started = std::time::Instant::now();
        let session = loop {
            let found = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).find(|p| p.join("uart0").exists());
            if let Some(path) = found {
                break path;
            }
            assert!(child.try_wait().unwrap().is_none(), "validate stopped before QEMU started");
            assert!(started.elapsed().as_secs() < 600, "QEMU never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        let qemu_running = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
                .any(|cmdline| {
                    let text = String::from_utf8_lossy(&cmdline).into_owned();
                    text.contains("qemu-system-arm") && text.contains(&*session.to_string_lossy())
                })
        };
        assert!(qemu_running(), "QEMU was not found running");
        assert!(Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        assert_eq!(child.wait().unwrap().code(), Some(code), "SIG{signal}");
        // QEMU is killed, not merely orphaned: give the kernel a moment to reap it
        let stopped = std::time::Instant::now();
        while qemu_running() && stopped.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(!qemu_running(), "SIG{signal}: QEMU still runs");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "SIG{signal}: the temporary directory is left");
    }
}
