//! Generates the network (shapes as const generics, weights as flash constants) and the test
//! vectors from the files `dropship export` and `dropship vectors` wrote (`DROPSHIP_VECTORS=none`:
//! no vectors, for the serving firmware); validates both first.

use std::fmt::Write as _;
use std::path::PathBuf;

use dropship_shared::artifact::{Artifact, FormatError, Int8Table, LayerView};
use dropship_shared::footprint::Footprint;
use dropship_shared::ops::dense::int8::{self as quant, paired, WeightForm};
use dropship_shared::vectors::Vectors;
use dropship_shared::Precision;

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

/// `Dense<IN, OUT>` for one layer, `Chain<Dense<..>, rest>` for more; a linear or ReLU layer is
/// `Dense<IN, OUT, false>`, whose code links no other activation's.
fn chain_type(layers: &[LayerView<'_>]) -> String {
    let dense = |l: &LayerView<'_>| {
        let fused = matches!(l.activation, dropship_shared::Activation::Linear | dropship_shared::Activation::Relu);
        format!("Dense<{}, {}{}>", l.input, l.output, if fused { ", false" } else { "" })
    };
    match layers {
        [] => String::new(),
        [last] => dense(last),
        [head, rest @ ..] => format!("Chain<{}, {}>", dense(head), chain_type(rest)),
    }
}

fn dense_value(code: &mut String, layer: &LayerView<'_>) {
    let Some((weights, bias)) = layer.f32_params() else { fail("an f32 network with an int8 layer") };
    code.push_str("Dense { weights: [");
    let w: Vec<f32> = weights.iter().collect();
    for row in w.chunks(layer.output) {
        f32s(code, row.iter().copied());
        code.push(',');
    }
    code.push_str("], bias: ");
    f32s(code, bias.iter());
    let _ = write!(code, ", activation: {} }}", activation(layer));
}

/// The layer's activation as a Rust path: every activation of the vocabulary is one.
fn activation(layer: &LayerView<'_>) -> String {
    format!("Activation::{:?}", layer.activation)
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

/// `Model` and `ModelScratch` of an f32 network.
fn f32_items(code: &mut String) {
    code.push_str(
        "/// The deployed network's type.
pub type Model = Network<ModelLayers, INPUT, CLASSES>;
/// Working memory for one inference of [`NETWORK`], sized by its widest layers.
pub type ModelScratch = Scratch<{ <ModelLayers as Layers>::BUFFER_A }, { <ModelLayers as Layers>::BUFFER_B }>;
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
/// constants, run by `dropship_shared::network::int8::QuantNetwork`.
fn int8_code(code: &mut String, a: &Artifact<'_>) {
    let layers: Vec<_> = a.layers().collect();
    let mut forms = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let Some(p) = l.int8_params() else { fail("an int8 network with an f32 layer") };
        let _ = write!(code, "static L{i}_WEIGHTS: Aligned<[i8; {}]> = Aligned(", l.input * l.output);
        let plain: Vec<i8> = p.weights_i8().collect();
        let mut blocked = vec![0i8; plain.len()];
        quant::block_weights(&plain, l.input, l.output, &mut blocked);
        let mut bias: Vec<i32> = p.bias.iter().collect();
        let mut shifts: Vec<i8> = p.shifts.iter().map(|s| s as i8).collect();
        let form = if paired::fits(l.input, &shifts, &plain) { WeightForm::Paired } else { WeightForm::Blocked };
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
        list(code, p.multipliers.iter());
        let _ = write!(code, ";\nstatic L{i}_SHIFTS: [i8; {}] = ", l.output);
        list(code, shifts.iter());
        code.push_str(";\n");
        match p.lookup.map(|t| t.table) {
            None => {}
            Some(Int8Table::Values(values)) => {
                let _ = write!(code, "static L{i}_TABLE: [i8; 256] = ");
                list(code, values.iter().map(|b| *b as i8));
                code.push_str(";\n");
            }
            Some(Int8Table::Exponentials(exp)) => {
                let _ = write!(code, "static L{i}_TABLE: [u16; 256] = ");
                list(code, exp.iter());
                code.push_str(";\n");
            }
        }
    }
    let _ = write!(code, "static LAYERS: [QuantLayer<'static>; {}] = [", layers.len());
    for (i, (l, form)) in layers.iter().zip(&forms).enumerate() {
        let p = l.int8_params();
        // a layer with a table requantizes to its pre-activation's zero point
        let zero = p.map_or(0, |p| p.lookup.map_or(p.output_zero, |t| t.pre_zero));
        let lookup = match p.and_then(|p| p.lookup).map(|t| t.table) {
            None => "Lookup::Fused".to_string(),
            Some(Int8Table::Values(_)) => format!("Lookup::Table(&L{i}_TABLE)"),
            Some(Int8Table::Exponentials(_)) => format!("Lookup::Softmax(&L{i}_TABLE)"),
        };
        let _ = write!(
            code,
            "QuantLayer {{ weights: &L{i}_WEIGHTS.0, bias: &L{i}_BIAS, multipliers: &L{i}_MULTIPLIERS, shifts: &L{i}_SHIFTS, output_zero: {zero}, activation: {}, lookup: {lookup}, form: WeightForm::{form:?} }},",
            activation(l),
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
            "Some((&MEAN, &SCALE))"
        }
        None => "None",
    };
    let (input_scale, input_zero) = a.input_quantization().unwrap_or((1.0, 0));
    let output_scale = layers.last().and_then(|l| l.int8_params()).map_or(1.0, |p| p.output_scale);
    let _ = writeln!(
        code,
        "/// The deployed int8 network.\npub static NETWORK: QuantNetwork<'static> = QuantNetwork {{ standardization: {standardization}, input_scale: f32::from_bits({:#010x}), input_zero: {input_zero}, layers: &LAYERS, output_scale: f32::from_bits({:#010x}) }};",
        input_scale.to_bits(),
        output_scale.to_bits()
    );
    let widest = a.widths().max().unwrap_or(0);
    let _ = writeln!(
        code,
        "/// Working memory of one int8 inference.\npub type ModelScratch = QuantScratch<INPUT, {widest}>;"
    );
}

/// The model's digest, its shape (every layer as the artifact describes it) and its footprint
/// ([`Footprint`], the rule `inspect` and the board-fit check read too).
fn common_items(code: &mut String, a: &Artifact<'_>, footprint: &Footprint, bytes: &[u8]) {
    let widths: Vec<usize> = a.widths().collect();
    let _ = writeln!(code, "pub const INPUT: usize = {};", a.input());
    let _ = writeln!(code, "pub const CLASSES: usize = {};", a.classes());
    let _ =
        writeln!(code, "/// The artifact's digest (`dropship_link::model_digest`), which a serving firmware reports.");
    let _ = writeln!(code, "pub const DIGEST: u64 = {:#018x};", dropship_link::model_digest(bytes));
    let _ = writeln!(code, "pub const INT8: bool = {};", a.precision() == Precision::Int8);
    let _ = writeln!(code, "pub const WIDTHS: [usize; {}] = {widths:?};", widths.len());
    let _ = write!(code, "pub const LAYER_SHAPES: [LayerShape; {}] = [", widths.len() - 1);
    for l in a.layers() {
        let _ = write!(
            code,
            "LayerShape {{ kind: LayerKind::{:?}, units: {}, activation: {} }},",
            l.kind,
            l.output,
            activation(&l)
        );
    }
    code.push_str("];\n");
    let _ = writeln!(
        code,
        "/// The deployed network's shape and footprint.\npub const SHAPE: ModelShape = ModelShape {{ widths: &WIDTHS, layers: &LAYER_SHAPES, parameters: {}, macs: {}, weight_bytes: {}, activation_bytes: {} }};",
        a.parameters(),
        a.macs(),
        footprint.weight_bytes,
        footprint.activation_bytes
    );
}

fn main() {
    let (artifact_path, artifact_bytes) = input("DROPSHIP_ARTIFACT", "model.dsm");
    let invalid = |e: FormatError| -> ! { fail(&format!("{} is not a valid artifact: {e}", artifact_path.display())) };
    let artifact = Artifact::parse(&artifact_bytes).unwrap_or_else(|e| invalid(e));
    let footprint = Footprint::of(&artifact);
    let mut code = String::new();
    common_items(&mut code, &artifact, &footprint, &artifact_bytes);
    match artifact.precision() {
        Precision::F32 => {
            let layers: Vec<LayerView<'_>> = artifact.layers().collect();
            network_code(&mut code, &artifact, &layers);
            f32_items(&mut code);
        }
        Precision::Int8 => int8_code(&mut code, &artifact),
    }
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
