//! The commands that read an artifact (f32 or int8) and run it on the host: `predict`, `inspect`,
//! `vectors`.

use std::path::Path;

use anyhow::{Context, Result};
use dropship_shared::quant_artifact::{self, QuantArtifact};
use dropship_shared::Artifact;

use crate::data::{self, Header};
use crate::infer::{AnyNetwork, InputForm};
use crate::output::{check_outputs, write_file};

/// What `predict` prints per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictOutput {
    /// The class.
    Class,
    /// The logits, as CSV.
    Logits,
}

/// `dropship predict`: one class per row (or the logits as CSV), and the accuracy on stderr when
/// the CSV has labels.
pub fn predict(
    artifact: &Path,
    csv_path: &Path,
    label_column: Option<&String>,
    output: PredictOutput,
    form: InputForm,
    header: Header,
) -> Result<()> {
    let (net, _) = AnyNetwork::load(artifact)?;
    let data = data::load_csv_for_model(csv_path, net.input(), label_column, header)?;
    if let Some(note) = data::header_note(&data, header) {
        eprintln!("{note}");
    }
    let logits = output == PredictOutput::Logits;
    let mut correct = 0;
    let mut out = String::new();
    if logits {
        out.push_str(&(0..net.classes()).map(|c| format!("logit_{c}")).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    let mut overflowing = Vec::new();
    for i in 0..data.rows() {
        let row_logits = net.logits(data.row(i), form);
        if net.overflows(data.row(i), form) {
            overflowing.push(i + 1);
        }
        let class = dropship_shared::kernel::argmax(&row_logits);
        if logits {
            out.push_str(&row_logits.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
        } else {
            out.push_str(&class.to_string());
        }
        out.push('\n');
        correct += usize::from(data.labels.get(i).is_some_and(|l| *l as usize == class));
    }
    print!("{out}");
    if let Some(first) = overflowing.first() {
        eprintln!(
            "warning: {} row(s) of {} (the first: data row {first}) overflow f32 inside the model (inputs far \
             outside the training data): their outputs are not meaningful",
            overflowing.len(),
            csv_path.display()
        );
    }
    if !data.labels.is_empty() {
        eprintln!("accuracy {:.4} ({correct}/{} rows)", correct as f64 / data.rows() as f64, data.rows());
    }
    Ok(())
}

/// `dropship inspect`: what is inside an artifact.
pub fn inspect(path: &Path) -> Result<()> {
    let bytes = crate::input::read(path)?;
    if let Some(found) = dropship_shared::artifact::version(&bytes).filter(|v| *v > quant_artifact::VERSION) {
        let e = dropship_shared::FormatError::UnsupportedVersion { found, supported: quant_artifact::VERSION };
        return Err(e).with_context(|| format!("{} is not a valid dropship artifact", path.display()));
    }
    if dropship_shared::artifact::version(&bytes) == Some(quant_artifact::VERSION) {
        let a = QuantArtifact::parse(&bytes)
            .with_context(|| format!("{} is not a valid dropship artifact", path.display()))?;
        inspect_int8(path, &a);
        return Ok(());
    }
    let a = Artifact::parse(&bytes).with_context(|| format!("{} is not a valid dropship artifact", path.display()))?;
    println!(
        "artifact:        {} ({} bytes, format v{})",
        path.display(),
        a.len_bytes(),
        dropship_shared::artifact::VERSION
    );
    println!("input:           {}", a.input());
    for (i, l) in a.layers().enumerate() {
        println!(
            "layer {i}:         Dense({} -> {}) + {:?}, {} parameters",
            l.input,
            l.output,
            l.activation,
            l.input * l.output + l.output
        );
    }
    println!("classes:         {}", a.classes());
    println!("parameters:      {} ({} bytes of f32)", a.parameters(), 4 * a.parameters());
    println!(
        "standardization: {}",
        if a.standardization().is_some() { "present" } else { "absent (inputs must be standardized already)" }
    );
    let widths: Vec<usize> = a.widths().collect();
    let (buffer_a, buffer_b) = dropship_shared::network::scratch_widths(&widths);
    println!(
        "inference RAM:   {} bytes of activations (two buffers of {buffer_a} and {buffer_b} values, {} logits)",
        dropship_shared::network::activation_bytes(&widths),
        a.classes()
    );
    println!("dropout:         none (the format cannot express it)");
    println!("provenance:      {}", a.provenance());
    Ok(())
}

fn inspect_int8(path: &Path, a: &QuantArtifact<'_>) {
    println!(
        "artifact:        {} ({} bytes, format v{}, int8)",
        path.display(),
        a.len_bytes(),
        quant_artifact::VERSION
    );
    println!("input:           {}", a.input());
    let (scale, zero) = a.input_quantization();
    println!("input int8:      scale {scale:e}, zero point {zero} (after the f32 standardization)");
    let mut weight_bytes = 0;
    for (i, l) in a.layers().enumerate() {
        let scales: Vec<f32> = l.weight_scales.iter().collect();
        let (lo, hi) = scales.iter().fold((f32::INFINITY, 0f32), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        let bytes = l.input * l.output + 9 * l.output;
        weight_bytes += bytes;
        println!(
            "layer {i}:         Dense({} -> {}) + {:?} (fused), {} int8 weights, {} int32 biases, {bytes} bytes in flash",
            l.input,
            l.output,
            l.activation,
            l.input * l.output,
            l.output
        );
        println!(
            "                 weight scales per channel {lo:e} to {hi:e}; output scale {:e}, zero point {}",
            l.output_scale, l.output_zero
        );
    }
    println!("classes:         {}", a.classes());
    let std_bytes = a.standardization().map_or(0, |(m, s)| 4 * (m.len() + s.len()));
    println!(
        "flash:           {} bytes (int8 weights, int32 biases, requantization; standardization {std_bytes})",
        weight_bytes + std_bytes
    );
    let widest = a.widths().max().unwrap_or(0);
    println!(
        "inference RAM:   {} bytes ({} f32 standardized inputs, two int8 buffers of {widest})",
        4 * a.input() + 2 * widest,
        a.input()
    );
    println!("dropout:         none (the format cannot express it)");
    println!("provenance:      {}", a.provenance());
}

/// `dropship vectors`: test vectors (raw input, host logits, class) of the first `rows` rows.
pub fn vectors(
    artifact: &Path,
    csv_path: &Path,
    output: &Path,
    rows: Option<u64>,
    overwrite: bool,
    header: Header,
) -> Result<()> {
    check_outputs(&[output], &[artifact, csv_path], overwrite)?;
    if rows == Some(0) {
        anyhow::bail!("--rows 0: a vectors file needs at least one row");
    }
    let (net, _) = AnyNetwork::load(artifact)?;
    let data = data::load_csv_for_model(csv_path, net.input(), None, header)?;
    if let Some(note) = data::header_note(&data, header) {
        eprintln!("{note}");
    }
    let n = rows.map_or(data.rows(), |r| usize::try_from(r).unwrap_or(usize::MAX)).min(data.rows());
    let max = dropship_shared::vectors::MAX_VECTORS;
    if n > max {
        anyhow::bail!(
            "{}: {n} rows, more than a vectors file holds ({max}): pass --rows {max} or fewer",
            csv_path.display()
        );
    }
    write_file(output, &net.vectors((0..n).map(|i| data.row(i)))?)?;
    println!("wrote {} ({n} vectors)", output.display());
    Ok(())
}
