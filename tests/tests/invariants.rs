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
            // a name, not a part of one: `l2` is not in `MaxPool2d`
            let starts_a_word = code
                .match_indices(needle)
                .any(|(at, _)| !code[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric()));
            if starts_a_word {
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
    let artifact = std::fs::read_to_string(root().join("shared/src/artifact/mod.rs")).unwrap();
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

/// The modules of the host library (`host/src`), as `stage::file` paths (`data::split`, `train`
/// for `train/mod.rs`), with the `crate::` paths each one's code names.
fn host_modules() -> Vec<(String, Vec<String>)> {
    let src = root().join("host/src");
    let mut modules = Vec::new();
    for (path, text) in sources("host/src") {
        let relative = path.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        let name = parts.join("::");
        if name == "lib" || name == "main" {
            continue; // the crate root and the command line: they may name every stage
        }
        let mut named = Vec::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                let head = rest[..end].trim_end_matches(':');
                match rest[end..].strip_prefix('{').and_then(|group| group.split_once('}')) {
                    Some((group, _)) if rest[..end].ends_with("::") => {
                        named.extend(group.split(',').map(|item| format!("{head}::{}", item.trim())))
                    }
                    _ => named.push(head.to_string()),
                }
            }
        }
        modules.push((name, named));
    }
    modules
}

/// `(module, submodule)` for every `pub use submodule::*;` of a module in `host/src` (the stage
/// `train` re-exports `train::fit`'s items).
fn glob_reexports(modules: &[String]) -> Vec<(String, String)> {
    let src = root().join("host/src");
    let mut found = Vec::new();
    for module in modules {
        let path = src.join(module.replace("::", "/")).join("mod.rs");
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            if let Some(child) = line.trim().strip_prefix("pub use ").and_then(|l| l.strip_suffix("::*;")) {
                found.push((module.clone(), format!("{module}::{child}")));
            }
        }
    }
    found
}

/// The module a `crate::` path names: its longest prefix that is a module; an item of a module
/// that re-exports a submodule's items (`pub use fit::*`) is that submodule's.
fn module_of(path: &str, modules: &[String], globs: &[(String, String)]) -> Option<String> {
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty() && *s != "self").collect();
    let found = (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|m| modules.contains(m))?;
    let names_an_item = segments.len() > found.split("::").count();
    match globs.iter().find(|(module, _)| *module == found) {
        Some((_, child)) if names_an_item => Some(child.clone()),
        _ => Some(found),
    }
}

/// Architecture invariant: the host library is grouped by stage, and each stage depends only on
/// earlier ones (foundation ← data ← train ← deploy ← study); no modules depend on each other in a
/// circle.
#[test]
fn host_stages_depend_only_on_earlier_stages_and_no_module_circle() {
    const STAGES: [&str; 4] = ["data", "train", "deploy", "study"];
    let rank = |module: &str| STAGES.iter().position(|s| module.split("::").next() == Some(s)).map_or(0, |i| i + 1);
    let modules = host_modules();
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    let globs = glob_reexports(&names);
    assert!(globs.contains(&("train".into(), "train::fit".into())), "{globs:?}");
    for stage in STAGES {
        assert!(names.iter().any(|n| n == stage), "the stage module `{stage}` exists: {names:?}");
    }
    let mut edges: Vec<(String, String)> = Vec::new();
    let mut violations = Vec::new();
    for (module, named) in &modules {
        for path in named {
            let Some(target) = module_of(path, &names, &globs) else { continue };
            if target == *module || module.starts_with(&format!("{target}::")) {
                continue;
            }
            if rank(&target) > rank(module) {
                violations.push(format!("{module} uses crate::{path} (a later stage)"));
            }
            edges.push((module.clone(), target));
        }
    }
    assert!(violations.is_empty(), "stages depend only on earlier ones: {violations:#?}");
    // no circle: every module can be ordered after what it uses
    let mut done: Vec<String> = Vec::new();
    while done.len() < names.len() {
        let ready: Vec<String> = names
            .iter()
            .filter(|n| !done.contains(n))
            .filter(|n| {
                edges.iter().filter(|(from, _)| from == *n).all(|(_, to)| done.contains(to) || !names.contains(to))
            })
            .cloned()
            .collect();
        assert!(
            !ready.is_empty(),
            "a circle among {:?}",
            names.iter().filter(|n| !done.contains(n)).collect::<Vec<_>>()
        );
        done.extend(ready);
    }
    // the test sees what it claims to: a later-stage use and a circle would be caught
    assert!(edges.iter().any(|(from, to)| from == "study::compare" && to == "deploy::quantize"));
    assert!(edges.iter().any(|(from, to)| from == "train::run" && to == "train::model"));
}
