//! The commands that read an artifact and run it on the host: `predict`, `inspect`, `vectors`.

use std::path::Path;

use anyhow::{Context, Result};
use dropship_shared::Artifact;

use crate::data::{self, Header};
use crate::infer::{HostNetwork, InputForm};
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
    let (net, _) = HostNetwork::load(artifact)?;
    let data = data::load_csv_for_model(csv_path, net.input, label_column, header)?;
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
    for i in 0..data.rows() {
        let row_logits = net.logits(data.row(i), form);
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
    if !data.labels.is_empty() {
        eprintln!("accuracy {:.4} ({correct}/{} rows)", correct as f64 / data.rows() as f64, data.rows());
    }
    Ok(())
}

/// `dropship inspect`: what is inside an artifact.
pub fn inspect(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
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

/// `dropship vectors`: test vectors (raw input, host logits, class) of the first `rows` rows.
pub fn vectors(
    artifact: &Path,
    csv_path: &Path,
    output: &Path,
    rows: Option<usize>,
    overwrite: bool,
    header: Header,
) -> Result<()> {
    check_outputs(&[output], &[artifact, csv_path], overwrite)?;
    let (net, _) = HostNetwork::load(artifact)?;
    let data = data::load_csv_for_model(csv_path, net.input, None, header)?;
    if let Some(note) = data::header_note(&data, header) {
        eprintln!("{note}");
    }
    let n = rows.unwrap_or(data.rows()).min(data.rows());
    write_file(output, &net.vectors((0..n).map(|i| data.row(i)))?)?;
    println!("wrote {} ({n} vectors)", output.display());
    Ok(())
}
