//! The `dropship` command as a user runs it: training end to end, determinism, export, predict.
//! Bad input is `bad_input.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dropship(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dropship"))
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn train_digits(dir: &Path, name: &str, seed: &str) -> PathBuf {
    let out = dropship(&["train", "--dropout", "0.5", "--epochs", "20", "--seed", seed, "--quiet", "--out", name], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join(name)
}

#[test]
fn digits_end_to_end_is_accurate_deterministic_and_exports_a_working_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let a = train_digits(dir.path(), "a", "3");
    let b = train_digits(dir.path(), "b", "3");
    let c = train_digits(dir.path(), "c", "4");
    let weights = |run: &Path| std::fs::read(run.join("dropout/model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b), "one seed gives identical weights");
    assert_ne!(weights(&a), weights(&c), "another seed gives other weights");
    for file in [
        "config.json",
        "history.csv",
        "history.json",
        "metrics.json",
        "loss.png",
        "loss.svg",
        "accuracy.png",
        "accuracy.svg",
    ] {
        assert!(a.join("dropout").join(file).is_file(), "{file}");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("dropout/metrics.json")).unwrap()).unwrap();
    let accuracy = metrics["test_score"].as_f64().unwrap();
    assert!(accuracy > 0.93, "20 epochs on digits reach a sane test accuracy, got {accuracy}");
    let history = std::fs::read_to_string(a.join("dropout/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 21, "a header and one line per epoch");

    let out = dropship(&["export", "a", "-o", "m.dsm"], dir.path());
    assert!(stderr(&out).contains("holds a comparison") && stderr(&out).contains("a/dropout"), "{}", stderr(&out));
    let out = dropship(&["export", "a/dropout", "-o", "m.dsm"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = dropship(&["inspect", "m.dsm"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Dense(64 -> 128)") && text.contains("Dropout(0.5)") && text.contains("present"), "{text}");
    let out = dropship(&["predict", "m.dsm", "a/test.csv"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 360);
    let reported: f64 = stderr(&out).split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((reported - accuracy).abs() < 1e-4, "predict's accuracy {reported} equals training's {accuracy}");

    // the same rows without their header row (as numpy.savetxt writes them): every row predicted
    let test = std::fs::read_to_string(a.join("test.csv")).unwrap();
    let headerless: String = test.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("rows.csv"), &headerless).unwrap();
    let out = dropship(&["predict", "m.dsm", "rows.csv"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 360, "no row is dropped");
    assert!(stderr(&out).contains("the first row is all numbers"), "{}", stderr(&out));
    // --header takes the first row as names: these repeat, which is refused by name
    let out = dropship(&["predict", "m.dsm", "rows.csv", "--header"], dir.path());
    assert!(!out.status.success() && stderr(&out).contains("appears twice"), "{}", stderr(&out));

    // an existing run is never overwritten by accident
    let out = dropship(&["train", "--epochs", "1", "--out", "a"], dir.path());
    assert!(stderr(&out).contains("already exists"));
    assert_eq!(weights(&a), weights(&b));
}

#[test]
fn the_users_own_split_by_column_or_by_files_standardizes_on_train_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = ["1,2,train,0", "3,4,train,1", "5,6,train,0", "7,8,train,1", "9,1,val,0", "2,3,val,1", "40,4,test,0"];
    let with_part = format!("a,b,part,label\n{}\n{}\n", rows.join("\n"), "50,5,test,1");
    std::fs::write(d.join("parts.csv"), with_part).unwrap();
    let out = dropship(
        &["train", "--data", "parts.csv", "--split-column", "part", "--epochs", "2", "--quiet", "--out", "a"],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("a/base/config.json")).unwrap()).unwrap();
    assert_eq!(config["split_rows"], serde_json::json!([4, 2, 2]));
    assert_eq!(config["features"], serde_json::json!(["a", "b"]), "the split column is not a feature");
    let saved = dropship::train::run::load_weights(&d.join("a/base")).unwrap();
    assert_eq!(saved.standardization.mean, vec![4.0, 5.0], "the mean of the train rows only");
    let test = std::fs::read_to_string(d.join("a/test.csv")).unwrap();
    assert_eq!(test, "a,b,label\n40,4,0\n50,5,1\n", "the test rows are the user's");

    // the same split as three files
    std::fs::write(d.join("train.csv"), "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n").unwrap();
    std::fs::write(d.join("val.csv"), "a,b,label\n9,1,0\n2,3,1\n").unwrap();
    std::fs::write(d.join("test.csv"), "a,b,label\n40,4,0\n50,5,1\n").unwrap();
    let args = ["train", "--data", "train.csv", "--val-data", "val.csv", "--test-data", "test.csv"];
    let out = dropship(&[&args[..], &["--epochs", "2", "--quiet", "--out", "b"]].concat(), d);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_files = dropship::train::run::load_weights(&d.join("b/base")).unwrap();
    assert_eq!(from_files.weights, saved.weights, "the same split trains the same model");
    assert_eq!(std::fs::read_to_string(d.join("b/test.csv")).unwrap(), test);
}

#[test]
fn deeper_and_augmented_models_go_through_compare_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["compare", "--hidden", "32,16", "--dropout", "0.5,0.2", "--augment", "noise=0.1,shift=1"];
    let out = dropship(&[&args[..], &["--epochs", "3", "--quiet", "--out", "cmp"]].concat(), d);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = std::fs::read_to_string(d.join("cmp/report.md")).unwrap();
    let augment_row = report.lines().find(|l| l.starts_with("| augment")).expect("an augment row in the report");
    assert!(augment_row.contains("Gaussian noise σ=0.1, shifts up to 1 px of 8x8 images"), "{augment_row}");
    assert!(report.contains("Dropout(0.5, 0.2) after each hidden Dense"), "{report}");
    let norms = augment_row.split('|').nth(9).unwrap();
    assert_eq!(norms.split('/').count(), 3, "one kernel norm per layer: {norms}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("cmp/augment/config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["hidden"], serde_json::json!([32, 16]));
    assert_eq!(config["train"]["augment"]["shift"], 1);

    let out = dropship(&["export", "cmp/augment", "-o", "aug.dsm"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = dropship(&["inspect", "aug.dsm"], d);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("layer 2:         Dense(16 -> 10)"), "{text}");
    assert!(text.contains("augmentation: Gaussian noise"), "the provenance says it was used: {text}");
    let out = dropship(&["predict", "aug.dsm", "cmp/test.csv"], d);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn generate_writes_the_rust_of_an_artifact_and_keeps_what_the_user_had() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/expected/model.dsm");
    let artifact = artifact.to_str().unwrap();
    let out = dropship(&["generate", artifact, "-o", "model.rs"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let code = std::fs::read_to_string(dir.path().join("model.rs")).unwrap();
    assert!(code.contains("pub const INPUT: usize = 64;") && code.contains("pub fn predict"), "the module");
    assert!(!code.contains("::dropship_link"), "no serving items unless asked");
    // an existing file is kept without --overwrite; --serving adds the serving items
    let again = dropship(&["generate", artifact, "-o", "model.rs", "--serving"], dir.path());
    assert!(!again.status.success() && stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    let again = dropship(&["generate", artifact, "-o", "model.rs", "--serving", "--overwrite"], dir.path());
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(std::fs::read_to_string(dir.path().join("model.rs")).unwrap().contains("pub type Server"));
    // what is not an artifact: an error naming it, exit status 1, nothing written
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let bad = dropship(&["generate", "notes.txt", "-o", "other.rs"], dir.path());
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("notes.txt: not a valid dropship artifact"), "{}", stderr(&bad));
    assert!(!dir.path().join("other.rs").exists());
}

#[test]
fn validate_profile_prints_each_layers_cost_and_the_json_carries_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let digits = std::fs::read_to_string(root.join("data/digits.csv")).unwrap();
    let rows: String = digits.lines().take(21).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("rows.csv"), rows).unwrap();
    let artifact = root.join("firmware/expected/model.dsm");
    let args =
        ["validate", artifact.to_str().unwrap(), "rows.csv", "--device", "qemu", "--profile", "--json", "r.json"];
    let out = dropship(&args, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in ["rows: 20, bit-identical to the host: 20", "profile (instructions per inference, mean over 20 rows)"] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
    assert!(stdout.contains("layer 0: Dense(64 -> 128) ReLU") && stdout.contains("layer 1: Dense(128 -> 10) linear"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    let profile = report["profile"].as_array().unwrap();
    let stages: Vec<&str> = profile.iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["input", "layer 0: Dense(64 -> 128) ReLU", "layer 1: Dense(128 -> 10) linear", "outputs"]);
    assert_eq!(profile[1]["macs"], 8192);
    assert!(profile[1]["per_mac"].as_f64().unwrap() > 0.5, "{}", profile[1]);
}

/// `dropship bench --ds-cnn`: MLPerf Tiny's DS-CNN written as f32 and int8 artifacts with frames
/// that both run (the int8 one within the f32 one's classes), and an existing directory kept
/// unless `--overwrite`.
#[test]
fn bench_ds_cnn_writes_the_keyword_spotting_model_in_both_precisions_and_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let out = dropship(&["bench", "--ds-cnn", "kws"], dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("parameters 22604, MACs 2656768"), "{text}");
    assert!(text.contains("int8 against f32 on 32 synthetic frames: the same class on"), "{text}");
    let inspect = dropship(&["inspect", "kws/model-int8.dsm"], dir.path());
    let shown = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        shown.contains("Conv2D(49x10x1 -> 25x5x64, 10x4 window, stride 2x2, same)") && shown.contains("int8"),
        "{shown}"
    );
    let predict = dropship(&["predict", "kws/model-int8.dsm", "kws/frames.csv"], dir.path());
    assert!(predict.status.success(), "{}", stderr(&predict));
    assert_eq!(String::from_utf8_lossy(&predict.stdout).lines().count(), 32, "a class per frame");
    let before = std::fs::read(dir.path().join("kws/model.dsm")).unwrap();
    let again = dropship(&["bench", "--ds-cnn", "kws"], dir.path());
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    assert_eq!(std::fs::read(dir.path().join("kws/model.dsm")).unwrap(), before);
    assert!(dropship(&["bench", "--ds-cnn", "kws", "--overwrite"], dir.path()).status.success());
}
