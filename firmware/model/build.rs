//! Generates the network (shapes as const generics, weights as flash constants) and the test
//! vectors from the files `dropship export` and `dropship vectors` wrote; validates both first.

use std::fmt::Write as _;
use std::path::PathBuf;

use dropship_shared::artifact::Artifact;
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

fn f32s(out: &mut String, values: impl Iterator<Item = f32>) {
    out.push('[');
    for v in values {
        let _ = write!(out, "f32::from_bits({:#010x}),", v.to_bits());
    }
    out.push(']');
}

fn main() {
    let (artifact_path, artifact_bytes) = input("DROPSHIP_ARTIFACT", "model.dsm");
    let (vectors_path, vectors_bytes) = input("DROPSHIP_VECTORS", "vectors.dsv");
    let artifact = Artifact::parse(&artifact_bytes)
        .unwrap_or_else(|e| fail(&format!("{} is not a valid artifact: {e}", artifact_path.display())));
    let vectors = Vectors::parse(&vectors_bytes)
        .unwrap_or_else(|e| fail(&format!("{} is not a valid vector file: {e}", vectors_path.display())));
    let layers: Vec<_> = artifact.layers().collect();
    if layers.len() != 2 {
        fail(&format!(
            "{}: the firmware runs input → Dense → ReLU → Dense; this artifact has {} layers",
            artifact_path.display(),
            layers.len()
        ));
    }
    let (hidden, output) = (layers[0], layers[1]);
    if vectors.input() != artifact.input() || vectors.classes() != artifact.classes() {
        fail(&format!(
            "{} is for a {}-input {}-class model, {} is {}-input {}-class: regenerate the vectors",
            vectors_path.display(),
            vectors.input(),
            vectors.classes(),
            artifact_path.display(),
            artifact.input(),
            artifact.classes()
        ));
    }
    let mut code = String::new();
    let _ = writeln!(code, "pub const INPUT: usize = {};", artifact.input());
    let _ = writeln!(code, "pub const HIDDEN: usize = {};", hidden.output);
    let _ = writeln!(code, "pub const CLASSES: usize = {};", output.output);
    code.push_str("pub static NETWORK: Network<INPUT, HIDDEN, CLASSES> = Network {\n    standardization: ");
    match artifact.standardization() {
        Some((mean, scale)) => {
            code.push_str("Some(Standardization { mean: ");
            f32s(&mut code, mean.iter());
            code.push_str(", scale: ");
            f32s(&mut code, scale.iter());
            code.push_str(" }),\n");
        }
        None => code.push_str("None,\n"),
    }
    for (name, layer) in [("hidden", hidden), ("output", output)] {
        let _ = write!(code, "    {name}: Dense {{ weights: [");
        let w: Vec<f32> = layer.weights.iter().collect();
        for row in w.chunks(layer.output) {
            f32s(&mut code, row.iter().copied());
            code.push(',');
        }
        code.push_str("], bias: ");
        f32s(&mut code, layer.bias.iter());
        code.push_str(" },\n");
    }
    code.push_str("};\n");

    // Inputs that are all small non-negative integers (the digits' pixel counts) are stored as u8,
    // which converts to exactly the same f32; anything else is stored as f32.
    let compact = vectors.iter().all(|v| v.input.iter().all(|x| x >= 0.0 && x <= 255.0 && x.fract() == 0.0));
    let elem = if compact { "u8" } else { "f32" };
    let _ = writeln!(code, "pub type InputElement = {elem};");
    let _ = writeln!(code, "pub static VECTORS: [TestVector<InputElement, INPUT>; {}] = [", vectors.len());
    for v in vectors.iter() {
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
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("model.rs");
    std::fs::write(&out, code).expect("OUT_DIR is writable");
}
