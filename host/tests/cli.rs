//! The `dropship` command as a user runs it: training end to end, determinism, and bad input that
//! fails clearly, exits non-zero, never panics and leaves no partial output.

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

/// Runs a command that must fail: non-zero exit, no panic, a message containing `expect`, and
/// nothing left in the directory but the inputs.
fn fails(args: &[&str], files: &[(&str, &str)], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let out = dropship(args, dir.path());
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?} (1: error, 2: usage): {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(err.contains(expect), "{args:?}: expected `{expect}` in: {err}");
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    left.sort();
    let mut inputs: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    inputs.sort();
    assert_eq!(left, inputs, "{args:?} left output behind");
}

const GOOD: &str = "a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n2,3,1\n4,4,0\n5,5,1\n6,1,0\n1,1,1\n";

#[test]
fn bad_data_files_name_the_file_line_and_column() {
    fn train(f: &str) -> Vec<&str> {
        vec!["train", "--data", f, "--epochs", "1", "--out", "run"]
    }
    fails(&train("missing.csv"), &[], "missing.csv");
    fails(&train("d.csv"), &[("d.csv", "")], "empty");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n")], "only a header");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,2,0\n1,2\n")], "line 3");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,x,0\n")], "column `b`");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,nan,0\n")], "not finite");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,inf,0\n")], "not finite");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,2,-1\n")], "non-negative integer");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,2,0.5\n")], "non-negative integer");
    fails(&train("d.csv"), &[("d.csv", "a,b,label\n1,2,0\n3,4,0\n")], "at least two");
    fails(
        &train("d.csv"),
        &[("d.csv", "a,b,label\n1,2,0\n3,4,0\n5,6,0\n1,1,1\n")],
        "d.csv: class 1 (column `label`) has 1 row(s)",
    );
}

#[test]
fn bad_flags_name_the_flag() {
    let d = [("d.csv", GOOD)];
    let train = |extra: &[&'static str]| [&["train", "--data", "d.csv", "--out", "run"][..], extra].concat();
    fails(&train(&["--epochs", "0"]), &d, "--epochs");
    fails(&train(&["--lr", "0"]), &d, "--lr");
    fails(&train(&["--lr", "-0.1"]), &d, "--lr");
    fails(&train(&["--dropout", "1"]), &d, "--dropout");
    fails(&train(&["--dropout", "-0.5"]), &d, "--dropout");
    fails(&train(&["--l2", "-1"]), &d, "--l2");
    fails(&train(&["--batch-size", "0"]), &d, "--batch-size");
    fails(&train(&["--l2", "0.1", "--l2-layers", "bias"]), &d, "--l2-layers");
    fails(&["compare", "--data", "d.csv", "--dropout", "1.5", "--out", "run"], &d, "--dropout");
    fails(&["train", "--data", "d.csv", "--epochs", "zero"], &d, "--epochs");
}

#[test]
fn a_diverging_run_fails_naming_the_epoch_and_writes_nothing() {
    fails(
        &["train", "--data", "d.csv", "--lr", "1e30", "--epochs", "5", "--out", "run"],
        &[("d.csv", GOOD)],
        "epoch 1",
    );
}

#[test]
fn bad_artifacts_are_refused_by_every_command() {
    fails(&["inspect", "m.dsm"], &[("m.dsm", "not a model")], "bad magic");
    fails(&["predict", "m.dsm", "d.csv"], &[("m.dsm", "DSHP\x01\0\0\0"), ("d.csv", GOOD)], "truncated");
    fails(&["export", "nope"], &[], "nope");
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
    let accuracy = metrics["test_accuracy"].as_f64().unwrap();
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

    // an existing run is never overwritten by accident
    let out = dropship(&["train", "--epochs", "1", "--out", "a"], dir.path());
    assert!(stderr(&out).contains("already exists"));
    assert_eq!(weights(&a), weights(&b));
}
