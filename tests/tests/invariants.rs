//! The architecture invariants of ARCHITECTURE.md that a search of the sources can hold.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // build output (probes of dependencies' build scripts) is not the project's source
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path, text));
            }
        }
    }
    assert!(!found.is_empty(), "no sources under {dir}");
    found
}

/// Lines of code (comments left out) containing `needle`, as `file:line: text`.
fn code_lines_with(files: &[(PathBuf, String)], needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for (path, text) in files {
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(needle) {
                hits.push(format!(
                    "{}:{}: {}",
                    path.strip_prefix(root()).unwrap_or(path).display(),
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    hits
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[test]
fn one_arithmetic_no_fused_multiply_add_in_shared() {
    let shared = sources("shared/src");
    for needle in ["mul_add", "fmadd", "fma("] {
        let hits = code_lines_with(&shared, needle);
        assert!(hits.is_empty(), "a fused multiply-add changes the bits: {hits:#?}");
    }
}

#[test]
fn candles_random_generator_is_never_called() {
    let mut files = sources("host/src");
    files.extend(sources("tests"));
    files.retain(|(path, _)| !path.ends_with("invariants.rs")); // the needles below
    for needle in ["Tensor::rand", "Tensor::randn", "rand_like(", "randn_like(", "set_seed("] {
        let hits = code_lines_with(&files, needle);
        assert!(hits.is_empty(), "every random draw comes from rng::stream: {hits:#?}");
    }
}

#[test]
fn shared_is_no_std_without_alloc_and_uses_std_only_behind_its_feature() {
    let shared = sources("shared/src");
    let lib = shared.iter().find(|(p, _)| p.ends_with("lib.rs")).expect("shared/src/lib.rs");
    assert!(lib.1.contains("#![cfg_attr(not(any(test, feature = \"std\")), no_std)]"), "shared is no_std");
    let alloc = code_lines_with(&shared, "alloc");
    assert!(alloc.is_empty(), "shared never allocates: {alloc:#?}");
    for (path, text) in &shared {
        // the unit tests at the end of a file run on the host with std
        let library = text.split("#[cfg(test)]").next().unwrap_or("");
        let lines: Vec<&str> = library.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("std::") {
                let gated = lines[i.saturating_sub(4)..i].iter().any(|l| l.contains("feature = \"std\""));
                assert!(gated, "{}:{}: std used without the `std` feature: {}", rel(path), i + 1, line.trim());
            }
        }
    }
}

#[test]
fn the_artifact_format_has_no_field_for_dropout_or_a_regularizer() {
    let artifact = std::fs::read_to_string(root().join("shared/src/artifact.rs")).unwrap();
    let shared = sources("shared/src");
    for needle in ["dropout", "Dropout", "l2", "lambda", "regulariz"] {
        let hits = code_lines_with(&shared, needle);
        assert!(hits.is_empty(), "`{needle}` in the shared core's code: {hits:#?}");
    }
    assert!(artifact.contains("no field for dropout"), "the format's documentation says so");
}

/// No floating-point mode change anywhere (writing MXCSR or FPCR is undefined behaviour in Rust:
/// LLVM assumes the default mode), and no deprecation silenced to reach one.
#[test]
fn the_floating_point_mode_is_never_changed() {
    let all: Vec<(PathBuf, String)> =
        ["shared", "host", "firmware", "tests", "xtask"].iter().flat_map(|d| sources(d)).collect();
    // spelled in pieces so this file does not match itself
    let needles = [
        concat!("_mm_set", "csr"),
        concat!("msr ", "fpcr"),
        concat!("vmsr ", "fpscr"),
        concat!("allow(", "deprecated)"),
    ];
    for needle in needles {
        let hits = code_lines_with(&all, needle);
        assert!(hits.is_empty(), "`{needle}`:\n{}", hits.join("\n"));
    }
}

/// Every `unsafe fn` (outside a trait impl, whose contract is the trait's) says what its caller
/// must guarantee in a `# Safety` section of its doc comment, and `shared` denies unsafe
/// operations in an unsafe fn's body outside an `unsafe` block.
#[test]
fn every_unsafe_fn_states_its_safety_contract() {
    let all: Vec<(PathBuf, String)> = ["shared", "host", "firmware", "xtask"].iter().flat_map(|d| sources(d)).collect();
    let mut missing = Vec::new();
    for (path, text) in &all {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("").trim_start();
            let declares = code.starts_with("unsafe fn ")
                || code.starts_with("pub(super) unsafe fn ")
                || code.starts_with("pub unsafe fn ")
                || code.starts_with("pub(crate) unsafe fn ");
            if !declares {
                continue;
            }
            // the doc comment and attributes right above it (macros put the docs first)
            let docs: Vec<&str> = lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("///") || t.starts_with("#[") || t.starts_with("$(#[") || t.starts_with("//")
                })
                .copied()
                .collect();
            // a macro's `$(#[$doc])*` takes the docs, `# Safety` included, from each invocation,
            // which this test reads as well: `block_loop!(/// ... /// # Safety ...)`
            let from_invocation = docs.iter().any(|l| l.contains("$(#[$doc])*"))
                && text.matches("# Safety").count() >= text.matches("unsafe fn ").count();
            if !docs.iter().any(|l| l.contains("# Safety")) && !from_invocation {
                missing.push(format!("{}:{}: {}", rel(path), i + 1, line.trim()));
            }
        }
    }
    assert!(missing.is_empty(), "unsafe fn without a `# Safety` section:\n{}", missing.join("\n"));
    let lib = std::fs::read_to_string(root().join("shared/src/lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_op_in_unsafe_fn)]"));
}
