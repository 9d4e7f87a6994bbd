//! Generates the network (shapes as const generics, weights as flash constants) and the test
//! vectors from the files `dropship export` and `dropship vectors` wrote (`DROPSHIP_VECTORS=none`:
//! no vectors, for the serving firmware); validates both first.

use std::fmt::Write as _;
use std::path::PathBuf;

use dropship_shared::artifact::{version, Activation, Artifact, FormatError, LayerView};
use dropship_shared::quant::{self, paired, WeightForm};
use dropship_shared::quant_artifact::{self, QuantArtifact};
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

/// `Dense<IN, OUT>` for one layer, `Chain<Dense<..>, rest>` for more.
fn chain_type(layers: &[LayerView<'_>]) -> String {
    match layers {
        [] => String::new(),
        [last] => format!("Dense<{}, {}>", last.input, last.output),
        [head, rest @ ..] => format!("Chain<Dense<{}, {}>, {}>", head.input, head.output, chain_type(rest)),
    }
}

fn dense_value(code: &mut String, layer: &LayerView<'_>) {
    code.push_str("Dense { weights: [");
    let w: Vec<f32> = layer.weights.iter().collect();
    for row in w.chunks(layer.output) {
        f32s(code, row.iter().copied());
        code.push(',');
    }
    code.push_str("], bias: ");
    f32s(code, layer.bias.iter());
    let activation = if layer.activation == Activation::Relu { "Relu" } else { "Linear" };
    let _ = write!(code, ", activation: Activation::{activation} }}");
}

/// The value of [`chain_type`]'s type.
fn chain_value(code: &mut String, layers: &[LayerView<'_>]) {
    match layers {
        [] => {}
        [last] => dense_value(code, last),
        [head, rest @ ..] => {
            code.push_str("Chain { head: ");
            dense_value(code, head);
            code.push_str(", tail: ");
            chain_value(code, rest);
            code.push_str(" }");
        }
    }
}

/// What the model takes on the device, in bytes.
struct Footprint {
    /// Weights, biases and standardization (flash).
    weights: usize,
    /// The embedded test vectors (flash).
    vectors: usize,
    /// Activations of one inference (RAM).
    activations: usize,
}

/// Flash the firmware's code, vector table and log strings take besides the model (measured: 8 to
/// 10 KiB), rounded up.
const CODE_FLASH: usize = 16 * 1024;
/// RAM the firmware needs besides the activations: stack, defmt and peripheral state.
const BASE_RAM: usize = 8 * 1024;

/// `(flash, ram)` lengths of the board's `memory.x`.
fn board_memory(board: &str) -> (usize, usize) {
    let path =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join(format!("../{board}/memory.x"));
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let length = |region: &str| {
        let line = text.lines().find(|l| l.trim_start().starts_with(region))?;
        let value = line.split("LENGTH").nth(1)?.trim_start_matches([' ', '=']).trim();
        let (digits, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len()));
        let n: usize = digits.parse().ok()?;
        Some(
            n * match unit.trim() {
                "K" => 1024,
                "M" => 1024 * 1024,
                _ => 1,
            },
        )
    };
    match (length("FLASH"), length("RAM")) {
        (Some(flash), Some(ram)) => (flash, ram),
        _ => fail(&format!("cannot read the FLASH and RAM lengths from {}", path.display())),
    }
}

/// Refuses a model that does not fit the board being built (feature `board-<name>`), with the
/// numbers and what to change.
fn check_fit(footprint: &Footprint, widths: &[usize], artifact: &std::path::Path) {
    for board in ["qemu", "nrf52840dk"] {
        let feature = format!("CARGO_FEATURE_BOARD_{}", board.to_uppercase());
        if std::env::var_os(&feature).is_none() {
            continue;
        }
        let (flash, ram) = board_memory(board);
        let flash_needed = footprint.weights + footprint.vectors + CODE_FLASH;
        let ram_needed = footprint.activations + BASE_RAM;
        if flash_needed > flash || ram_needed > ram {
            eprintln!("\nerror: the model in {} does not fit the {board} board", artifact.display());
            eprintln!("  layers {widths:?}");
            eprintln!(
                "  flash: {flash_needed} bytes needed ({} weights + {} test vectors + about {CODE_FLASH} of code), {flash} available",
                footprint.weights, footprint.vectors
            );
            eprintln!(
                "  RAM:   {ram_needed} bytes needed ({} activations + about {BASE_RAM} of stack and state), {ram} available",
                footprint.activations
            );
            eprintln!("Make the hidden layers fewer or narrower (`dropship train --hidden ...`), or embed fewer test");
            eprintln!("vectors (`dropship vectors <artifact> <csv with fewer rows>`).\n");
            std::process::exit(1);
        }
    }
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

/// The network: its type, its widths, and the weights as flash constants.
fn network_code(code: &mut String, artifact: &Artifact<'_>, layers: &[LayerView<'_>]) {
    let _ = writeln!(code, "/// The layers, `Chain<Dense<..>, Chain<..>>`, as the artifact has them.");
    let _ = writeln!(code, "pub type ModelLayers = {};", chain_type(layers));
    code.push_str("pub static NETWORK: Network<ModelLayers, INPUT, CLASSES> = Network {\n    standardization: ");
    match artifact.standardization() {
        Some((mean, scale)) => {
            code.push_str("Some(Standardization { mean: ");
            f32s(code, mean.iter());
            code.push_str(", scale: ");
            f32s(code, scale.iter());
            code.push_str(" }),\n");
        }
        None => code.push_str("None,\n"),
    }
    code.push_str("    layers: ");
    chain_value(code, layers);
    code.push_str(",\n};\n");
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

/// `ModelScratch` and `SHAPE` of an f32 network (`Model`).
fn f32_items(code: &mut String) {
    code.push_str(
        "/// The deployed network's type.
pub type Model = Network<ModelLayers, INPUT, CLASSES>;
/// Working memory for one inference of [`NETWORK`], sized by its widest layers.
pub type ModelScratch = Scratch<{ <ModelLayers as Layers>::BUFFER_A }, { <ModelLayers as Layers>::BUFFER_B }>;
/// The deployed network's shape and footprint.
pub const SHAPE: ModelShape = ModelShape {
    widths: &WIDTHS,
    relu: &RELU,
    parameters: Model::PARAMETERS,
    macs: Model::MACS,
    weight_bytes: core::mem::size_of::<Model>(),
    activation_bytes: Model::ACTIVATION_BYTES,
};
",
    );
}

fn list<T: std::fmt::Display>(code: &mut String, values: impl Iterator<Item = T>) {
    code.push('[');
    for v in values {
        let _ = write!(code, "{v},");
    }
    code.push(']');
}

/// An int8 network: per layer, int8 weights, int32 biases, multipliers and one-byte shifts as flash
/// constants, run by `dropship_shared::quant::QuantNetwork`; returns the flash its parameters take.
fn int8_code(code: &mut String, a: &QuantArtifact<'_>) -> usize {
    let layers: Vec<_> = a.layers().collect();
    let mut flash = 0;
    let mut forms = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let _ = write!(code, "static L{i}_WEIGHTS: Aligned<[i8; {}]> = Aligned(", l.input * l.output);
        let plain: Vec<i8> = l.weights_i8().collect();
        let mut blocked = vec![0i8; plain.len()];
        quant::block_weights(&plain, l.input, l.output, &mut blocked);
        let mut bias: Vec<i32> = l.bias.iter().collect();
        let mut shifts: Vec<i8> = l.shifts.iter().map(|s| s as i8).collect();
        let form = if paired::fits(l.input, &shifts) { WeightForm::Paired } else { WeightForm::Blocked };
        if form == WeightForm::Paired {
            paired::pair_weights(&blocked.clone(), &mut blocked);
            paired::pair_biases(&plain, &bias.clone(), l.input, &mut bias);
            paired::pair_shifts(&shifts.clone(), &mut shifts);
        }
        forms.push(form);
        list(code, blocked.iter());
        let _ = write!(code, ");\nstatic L{i}_BIAS: [i32; {}] = ", l.output);
        list(code, bias.iter());
        let _ = write!(code, ";\nstatic L{i}_MULTIPLIERS: [i32; {}] = ", l.output);
        list(code, l.multipliers.iter());
        let _ = write!(code, ";\nstatic L{i}_SHIFTS: [i8; {}] = ", l.output);
        list(code, shifts.iter());
        code.push_str(";\n");
        flash += l.input * l.output + 9 * l.output;
    }
    let _ = write!(code, "static LAYERS: [QuantLayer<'static>; {}] = [", layers.len());
    for (i, (l, form)) in layers.iter().zip(&forms).enumerate() {
        let _ = write!(
            code,
            "QuantLayer {{ weights: &L{i}_WEIGHTS.0, bias: &L{i}_BIAS, multipliers: &L{i}_MULTIPLIERS, shifts: &L{i}_SHIFTS, output_zero: {}, relu: {}, form: WeightForm::{:?} }},",
            l.output_zero,
            l.activation == Activation::Relu,
            form,
        );
    }
    code.push_str("];\n");
    let standardization = match a.standardization() {
        Some((mean, scale)) => {
            code.push_str("static MEAN: [f32; INPUT] = ");
            f32s(code, mean.iter());
            code.push_str(";\nstatic SCALE: [f32; INPUT] = ");
            f32s(code, scale.iter());
            code.push_str(";\n");
            flash += 8 * a.input();
            "Some((&MEAN, &SCALE))"
        }
        None => "None",
    };
    let (input_scale, input_zero) = a.input_quantization();
    let output_scale = layers.last().map_or(1.0, |l| l.output_scale);
    let _ = writeln!(
        code,
        "/// The deployed int8 network.\npub static NETWORK: QuantNetwork<'static> = QuantNetwork {{ standardization: {standardization}, input_scale: f32::from_bits({:#010x}), input_zero: {input_zero}, layers: &LAYERS, output_scale: f32::from_bits({:#010x}) }};",
        input_scale.to_bits(),
        output_scale.to_bits()
    );
    let widths: Vec<usize> = a.widths().collect();
    let widest = widths.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        code,
        "/// Working memory of one int8 inference.\npub type ModelScratch = QuantScratch<INPUT, {widest}>;"
    );
    let macs: usize = widths.windows(2).map(|w| w[0] * w[1]).sum();
    let _ = writeln!(
        code,
        "/// The deployed network's shape and footprint.\npub const SHAPE: ModelShape = ModelShape {{ widths: &WIDTHS, relu: &RELU, parameters: {}, macs: {macs}, weight_bytes: {flash}, activation_bytes: {} }};",
        a.parameters(),
        4 * a.input() + 2 * widest
    );
    flash
}

/// The model's digest, widths and activations, whatever its version.
fn common_items(code: &mut String, input: usize, classes: usize, widths: &[usize], relu: &[bool], bytes: &[u8]) {
    let _ = writeln!(code, "pub const INPUT: usize = {input};");
    let _ = writeln!(code, "pub const CLASSES: usize = {classes};");
    let _ =
        writeln!(code, "/// The artifact's digest (`dropship_link::model_digest`), which a serving firmware reports.");
    let _ = writeln!(code, "pub const DIGEST: u64 = {:#018x};", dropship_link::model_digest(bytes));
    let _ = writeln!(code, "pub const WIDTHS: [usize; {}] = {widths:?};", widths.len());
    let _ = writeln!(code, "pub const RELU: [bool; {}] = {relu:?};", relu.len());
}

fn main() {
    let (artifact_path, artifact_bytes) = input("DROPSHIP_ARTIFACT", "model.dsm");
    let invalid = |e: FormatError| -> ! { fail(&format!("{} is not a valid artifact: {e}", artifact_path.display())) };
    let mut code = String::new();
    let (input, classes, widths, weight_bytes) = if version(&artifact_bytes) == Some(quant_artifact::VERSION) {
        let a = QuantArtifact::parse(&artifact_bytes).unwrap_or_else(|e| invalid(e));
        let widths: Vec<usize> = a.widths().collect();
        let relu: Vec<bool> = a.layers().map(|l| l.activation == Activation::Relu).collect();
        common_items(&mut code, a.input(), a.classes(), &widths, &relu, &artifact_bytes);
        let _ = writeln!(code, "pub const INT8: bool = true;");
        let flash = int8_code(&mut code, &a);
        (a.input(), a.classes(), widths, flash)
    } else {
        let artifact = Artifact::parse(&artifact_bytes).unwrap_or_else(|e| invalid(e));
        let layers: Vec<LayerView<'_>> = artifact.layers().collect();
        let widths: Vec<usize> = artifact.widths().collect();
        let relu: Vec<bool> = layers.iter().map(|l| l.activation == Activation::Relu).collect();
        common_items(&mut code, artifact.input(), artifact.classes(), &widths, &relu, &artifact_bytes);
        let _ = writeln!(code, "pub const INT8: bool = false;");
        network_code(&mut code, &artifact, &layers);
        f32_items(&mut code);
        let flash =
            4 * (artifact.parameters() + if artifact.standardization().is_some() { 2 * artifact.input() } else { 0 });
        (artifact.input(), artifact.classes(), widths, flash)
    };
    let vectors_file = vectors_input();
    let vectors = vectors_file.as_ref().map(|(path, bytes)| {
        let vectors = Vectors::parse(bytes)
            .unwrap_or_else(|e| fail(&format!("{} is not a valid vector file: {e}", path.display())));
        check_vectors_match(path, &vectors, (input, classes), &artifact_path);
        vectors
    });
    let vector_bytes = vectors_code(&mut code, vectors.as_ref(), input);
    let activations = if version(&artifact_bytes) == Some(quant_artifact::VERSION) {
        4 * input + 2 * widths.iter().copied().max().unwrap_or(0)
    } else {
        dropship_shared::network::activation_bytes(&widths)
    };
    let footprint = Footprint { weights: weight_bytes, vectors: vector_bytes, activations };
    check_fit(&footprint, &widths, &artifact_path);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("model.rs");
    std::fs::write(&out, code).expect("OUT_DIR is writable");
}
