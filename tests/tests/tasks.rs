//! Binary, regression and autoencoder models end to end: trained, exported with their task,
//! quantized, and validated bit for bit under QEMU in f32 and int8 (N/N rows); MLPerf Tiny's
//! anomaly detector at its real width (640 inputs: the paired form beyond 344) within its
//! instruction target; the graph tf2onnx writes for it imported, quantized and validated too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dropship::data::Header;
use dropship::deploy::validate::{self, Options, Report, Target};
use dropship::deploy::{onnx, quantize};
use dropship::network::{HostNetwork, InputForm};
use dropship::train::task::Task;
use dropship::train::TrainConfig;
use dropship_shared::ops::dense::int8::paired;
use dropship_tests::{int8_of, task_fixture, Fixture};
use prost::Message;
use tract_onnx::pb;
use xtask::firmware::Board;

fn options(label: Option<&str>) -> Options {
    Options {
        label_column: label.map(String::from),
        header: Header::Auto,
        timeout: Duration::from_secs(20),
        progress: false,
    }
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data").join(name)
}

/// The first `rows` rows of a CSV, beside it.
fn first_rows(csv: &Path, rows: usize) -> PathBuf {
    let text = std::fs::read_to_string(csv).unwrap();
    let out = csv.with_file_name(format!("first-{rows}.csv"));
    std::fs::write(&out, text.lines().take(rows + 1).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    out
}

/// Validates `artifact` on `rows` under QEMU; every row's outputs must be the host's, bit for bit.
fn validated(artifact: &Path, rows: &Path, label: Option<&str>, expected_rows: usize) -> Report {
    let report = validate::validate(artifact, rows, &Target::Qemu(Board::qemu()), &options(label)).unwrap();
    eprint!("{}: {}", artifact.display(), report.summary());
    assert_eq!(report.rows, expected_rows);
    assert!(report.all_identical() && report.max_ulp == 0, "{}", report.summary());
    report
}

/// f32 and int8, both validated N/N on the fixture's test rows; returns the two reports.
fn validated_in_both_precisions(f: &Fixture, label: Option<&str>) -> (Report, Report) {
    let rows = f.prepared.split.test.len();
    let (int8_path, _) = int8_of(f).unwrap();
    (validated(&f.artifact_path, &f.test_csv_path, label, rows), validated(&int8_path, &f.test_csv_path, label, rows))
}

#[test]
fn a_binary_classifier_of_the_breast_cancer_data_validates_with_its_threshold() {
    let config = TrainConfig { hidden: vec![16], task: Task::Binary, epochs: 60, ..TrainConfig::default() };
    let f = task_fixture(&data("breast_cancer.csv"), Some("malignant"), config, "binary").unwrap();
    let net = HostNetwork::parse(&f.artifact).unwrap();
    let (task, threshold) = net.task().unwrap();
    assert_eq!(task, Task::Binary);
    assert!(threshold > 0.0 && threshold < 1.0, "the threshold chosen on the validation rows: {threshold}");
    assert_eq!(net.classes(), 1, "one sigmoid output");
    let (f32_report, int8_report) = validated_in_both_precisions(&f, None);
    // accuracy at the model's threshold, the same on the device as on the host
    for r in [&f32_report, &int8_report] {
        assert_eq!(r.device_accuracy, r.host_accuracy);
        assert!(r.device_accuracy.unwrap() > 0.92, "{}", r.summary());
    }
}

#[test]
fn a_regression_of_the_diabetes_data_outputs_its_targets_units_on_the_device() {
    let config = TrainConfig { hidden: vec![32], task: Task::Regress, epochs: 100, ..TrainConfig::default() };
    let f = task_fixture(&data("diabetes.csv"), Some("progression"), config, "regress").unwrap();
    let net = HostNetwork::parse(&f.artifact).unwrap();
    assert_eq!(net.task().map(|t| t.0), Some(Task::Regress));
    // the artifact's outputs are in the targets' units: its error is the run's, not a standardized one
    let errors: Vec<f64> = f
        .prepared
        .split
        .test
        .iter()
        .map(|r| (net.logits(f.data.row(*r), InputForm::Raw)[0] as f64 - f.data.targets[*r] as f64).abs())
        .collect();
    let mae = errors.iter().sum::<f64>() / errors.len() as f64;
    assert!(mae < 55.0, "MAE {mae} (predicting the mean gives about 59)");
    validated_in_both_precisions(&f, None);
}

/// MLPerf Tiny's anomaly detector (640 → 4 × 128 → 8 → 4 × 128 → 640, BatchNorm and ReLU) on
/// synthetic machine-sound frames: its int8 first layer, 640 inputs wide, takes the paired form,
/// every row's reconstruction is the host's on the device, and one inference costs at most 1.2
/// instructions per multiply-accumulate under QEMU (the target: 320k per inference).
#[test]
fn the_mlperf_anomaly_detector_validates_on_the_device_within_its_instruction_target() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dropship-tests/anomaly-data");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("frames.csv");
    std::fs::write(&csv, dropship::data::synthetic::machine_frames_csv(900, 30, 1)).unwrap();
    let config = TrainConfig {
        hidden: dropship::study::bench::ANOMALY_HIDDEN.to_vec(),
        batch_norm: true,
        task: Task::Autoencode,
        epochs: 8,
        batch_size: 128,
        ..TrainConfig::default()
    };
    let f = task_fixture(&csv, Some("anomaly"), config, "anomaly").unwrap();
    let net = HostNetwork::parse(&f.artifact).unwrap();
    assert_eq!((net.input(), net.layers().len(), net.classes()), (640, 10, 640));
    assert_eq!(net.task().map(|t| t.0), Some(Task::Autoencode));
    let (int8_path, int8) = int8_of(&f).unwrap();
    let first = int8.layers()[0].int8().unwrap();
    let shifts: Vec<i8> = first.requant.iter().map(|r| r.shift as i8).collect();
    assert!(paired::fits(640, &shifts, &first.weights), "the 640-wide layer takes the paired form");
    let rows = first_rows(&f.test_csv_path, 24);
    let report = validated(&int8_path, &rows, None, 24);
    assert_eq!(report.device.macs, 264_192);
    assert!(report.cost_per_mac <= 1.2, "{} instructions per MAC", report.cost_per_mac);
    validated(&f.artifact_path, &first_rows(&f.test_csv_path, 8), None, 8);
}

/// The graph tf2onnx writes for the detector's Keras model (`data/keras_reference.py
/// anomaly-onnx`): per hidden layer `MatMul`, then the BatchNorm folded with the bias as `Mul` and
/// `Add`, then `Relu`; `MatMul` + `Add` last. Imported (checked against tract), quantized on
/// synthetic frames and validated on the device.
#[test]
fn the_detectors_tf2onnx_graph_imports_quantizes_and_validates() {
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut uniform = move |limit: f32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * limit
    };
    let widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640];
    let (mut nodes, mut init) = (Vec::new(), Vec::new());
    let mut current = "input".to_string();
    for (i, w) in widths.windows(2).enumerate() {
        let (n_in, n_out) = (w[0], w[1]);
        let limit = (6.0 / (n_in + n_out) as f32).sqrt();
        let kernel: Vec<f32> = (0..n_in * n_out).map(|_| uniform(limit)).collect();
        init.push(onnx::tensor_f32(&format!("w{i}"), &[n_in, n_out], &kernel));
        nodes.push(onnx::node(
            "MatMul",
            &format!("dense_{i}/MatMul"),
            &[&current, &format!("w{i}")],
            &[&format!("mm{i}")],
        ));
        if i + 2 < widths.len() {
            let scale: Vec<f32> = (0..n_out).map(|_| 1.0 + uniform(0.5)).collect();
            let shift: Vec<f32> = (0..n_out).map(|_| uniform(0.2)).collect();
            init.push(onnx::tensor_f32(&format!("s{i}"), &[n_out], &scale));
            init.push(onnx::tensor_f32(&format!("t{i}"), &[n_out], &shift));
            nodes.push(onnx::node(
                "Mul",
                &format!("bn_{i}/mul_1"),
                &[&format!("mm{i}"), &format!("s{i}")],
                &[&format!("m{i}")],
            ));
            nodes.push(onnx::node(
                "Add",
                &format!("bn_{i}/add_1"),
                &[&format!("m{i}"), &format!("t{i}")],
                &[&format!("a{i}")],
            ));
            nodes.push(onnx::node("Relu", &format!("re_lu_{i}/Relu"), &[&format!("a{i}")], &[&format!("r{i}")]));
            current = format!("r{i}");
        } else {
            init.push(onnx::tensor_f32("b_out", &[n_out], &vec![0.01; n_out]));
            nodes.push(onnx::node("Add", "dense_out/BiasAdd", &[&format!("mm{i}"), "b_out"], &["output"]));
        }
    }
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: init,
            input: vec![onnx::value_info("input", 640)],
            output: vec![onnx::value_info("output", 640)],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dropship-tests/anomaly-import");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("detector.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let (imported, diff) = onnx::import_checked(&path).unwrap();
    assert!(diff <= 1e-4, "{diff}");
    let net = imported.network;
    assert_eq!(net.layers().len(), 10, "the Mul and Add of each BatchNorm are folded, not layers");
    let frames = dir.join("frames.csv");
    std::fs::write(&frames, dropship::data::synthetic::machine_frames_csv(200, 0, 3)).unwrap();
    let rows =
        dropship::data::load_csv(&frames, &dropship::data::LabelColumn::Named("anomaly".into()), Header::Auto).unwrap();
    let ranges = quantize::calibrate(&net, (0..rows.rows()).map(|r| rows.row(r)));
    let int8 = quantize::quantize(&net, &ranges).unwrap();
    let int8_path = dir.join("detector-int8.dsm");
    std::fs::write(&int8_path, int8.to_artifact("", "tf2onnx-shaped detector").unwrap()).unwrap();
    validated(&int8_path, &first_rows(&frames, 12), Some("anomaly"), 12);
}
