//! Generates the network with `dropship-build` (the generator users' crates call: shapes as const
//! generics, weights as flash constants, `Model`, the serving items) and the test vectors from the
//! files `dropship export` and `dropship vectors` wrote (`DROPSHIP_VECTORS=none`: no vectors, for
//! the serving firmware); validates both first.

use std::fmt::Write as _;
use std::path::PathBuf;

use dropship_shared::artifact::{Artifact, FormatError};
use dropship_shared::footprint::Footprint;
use dropship_shared::vectors::Vectors;

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    eprintln!("The firmware embeds a trained model and test vectors. Make them with:");
    eprintln!("    cargo xtask demo                      trains, exports and runs everything; then");
    eprintln!("    cargo xtask firmware --board <board>  builds with runs/demo/model.dsm and runs/demo/vectors.dsv");
    eprintln!("or make your own and point the build at them:");
    eprintln!("    dropship export <run> -o model.dsm && dropship vectors model.dsm <rows.csv> -o vectors.dsv");
    eprintln!("    DROPSHIP_ARTIFACT=$PWD/model.dsm DROPSHIP_VECTORS=$PWD/vectors.dsv cargo build --release");
    eprintln!("(without those variables the build reads firmware/model/model.dsm and firmware/model/vectors.dsv)\n");
    std::process::exit(1);
}

fn input(var: &str, default: &str) -> (PathBuf, Vec<u8>) {
    println!("cargo:rerun-if-env-changed={var}");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| manifest.join(default));
    println!("cargo:rerun-if-changed={}", path.display());
    match std::fs::read(&path) {
        Ok(bytes) => (path, bytes),
        Err(e) => fail(&format!("cannot read {} ({e})", path.display())),
    }
}

/// Reports the model's footprint to the board crates' build scripts (`DEP_DROPSHIP_MODEL_*`),
/// which check it against the board's memory (`dropship_board_list::configure_board`).
fn report_footprint(footprint: &Footprint, vectors: usize, widths: &[usize], artifact: &std::path::Path) {
    println!("cargo:weights={}", footprint.weight_bytes);
    println!("cargo:vectors={vectors}");
    println!("cargo:activations={}", footprint.activation_bytes);
    let widths: Vec<String> = widths.iter().map(usize::to_string).collect();
    println!("cargo:widths={}", widths.join(", "));
    println!("cargo:artifact={}", artifact.display());
}

/// `DROPSHIP_VECTORS=none` builds without test vectors (the serving firmware gets its rows over a
/// serial link); the vector file's bytes otherwise.
fn vectors_input() -> Option<(PathBuf, Vec<u8>)> {
    if std::env::var_os("DROPSHIP_VECTORS").is_some_and(|v| v == "none") {
        println!("cargo:rerun-if-env-changed=DROPSHIP_VECTORS");
        return None;
    }
    Some(input("DROPSHIP_VECTORS", "vectors.dsv"))
}

/// Refuses vectors made for another shape of model (`(input, classes)` of the artifact).
fn check_vectors_match(
    vectors_path: &std::path::Path,
    vectors: &Vectors<'_>,
    (input, classes): (usize, usize),
    artifact_path: &std::path::Path,
) {
    if vectors.input() != input || vectors.classes() != classes {
        fail(&format!(
            "{} is for a {}-input {}-class model, {} is {}-input {}-class: regenerate the vectors",
            vectors_path.display(),
            vectors.input(),
            vectors.classes(),
            artifact_path.display(),
            input,
            classes
        ));
    }
}

/// The test vectors (none for a serving firmware); returns the bytes of flash they take.
fn vectors_code(code: &mut String, vectors: Option<&Vectors<'_>>, input: usize) -> usize {
    let rows: Vec<_> = vectors.map(|v| v.iter().collect()).unwrap_or_default();
    // Inputs that are all small non-negative integers (the digits' pixel counts) are stored as u8,
    // which converts to exactly the same f32 (the link's rule: -0.0 is not one); anything else is
    // stored as f32.
    let compact = rows.iter().all(|v| v.input.iter().all(dropship_shared::vectors::exact_as_byte));
    let elem = if compact { "u8" } else { "f32" };
    let _ = writeln!(code, "pub type InputElement = {elem};");
    let _ = writeln!(code, "pub static VECTORS: [TestVector<InputElement, INPUT>; {}] = [", rows.len());
    for v in &rows {
        let logits: Vec<f32> = v.logits.iter().collect();
        code.push_str("    TestVector { input: [");
        for x in v.input.iter() {
            if compact {
                let _ = write!(code, "{},", x as u8);
            } else {
                let _ = write!(code, "f32::from_bits({:#010x}),", x.to_bits());
            }
        }
        let _ =
            writeln!(code, "], class: {}, logits_digest: {:#010x} }},", v.class, dropship_app::logits_digest(&logits));
    }
    code.push_str("];\n");
    let element_bytes = if compact { 1 } else { 4 };
    rows.len() * (input * element_bytes + 8)
}

fn main() {
    let (artifact_path, artifact_bytes) = input("DROPSHIP_ARTIFACT", "model.dsm");
    let invalid = |e: FormatError| -> ! { fail(&format!("{} is not a valid artifact: {e}", artifact_path.display())) };
    let artifact = Artifact::parse(&artifact_bytes).unwrap_or_else(|e| invalid(e));
    // The network, its shape and `Model`: the one generator users' crates call too.
    let model = dropship_build::Model::from_artifact(&artifact_path).serving(true);
    let mut code = model.code().unwrap_or_else(|e| fail(&e.to_string()));
    let footprint = Footprint::of(&artifact);
    let (input, classes) = (artifact.input(), artifact.classes());
    let vectors_file = vectors_input();
    let vectors = vectors_file.as_ref().map(|(path, bytes)| {
        let vectors = Vectors::parse(bytes)
            .unwrap_or_else(|e| fail(&format!("{} is not a valid vector file: {e}", path.display())));
        check_vectors_match(path, &vectors, (input, classes), &artifact_path);
        vectors
    });
    let vector_bytes = vectors_code(&mut code, vectors.as_ref(), input);
    let widths: Vec<usize> = artifact.widths().collect();
    report_footprint(&footprint, vector_bytes, &widths, &artifact_path);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("model.rs");
    std::fs::write(&out, code).expect("OUT_DIR is writable");
}
