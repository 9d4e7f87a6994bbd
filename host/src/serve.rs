//! Using an artifact on the host: `predict`, `inspect`, `vectors`, and the rows an ONNX export is checked on.

use std::path::Path;

use anyhow::{bail, Context, Result};
use dropship_shared::Artifact;

use crate::data::{self, LabelColumn};
use crate::export;
use crate::infer::HostNetwork;

/// Loads a CSV for an artifact: every column is a feature, except a label column when the CSV has
/// one more column than the model has inputs (the last, or the one named).
pub fn rows_for(net: &HostNetwork, path: &Path, label_column: Option<&String>) -> Result<data::Dataset> {
    let label = match label_column {
        Some(name) => LabelColumn::Named(name.clone()),
        None => {
            let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
            let columns = reader.headers().with_context(|| format!("{}: no header row", path.display()))?.len();
            if columns == net.input + 1 {
                LabelColumn::Last
            } else {
                LabelColumn::None
            }
        }
    };
    let data = data::load_csv(path, &label)?;
    if data.width() != net.input {
        bail!("{}: {} feature columns, the model takes {}", path.display(), data.width(), net.input);
    }
    Ok(data)
}

/// Rows to check an ONNX export on: the run's test rows when it has them, else generated ones.
pub fn check_rows(net: &HostNetwork, run_dir: &Path) -> Result<Vec<f32>> {
    let test = run_dir.parent().map(|p| p.join("test.csv"));
    if let Some(path) = test.filter(|p| p.is_file()) {
        let data = rows_for(net, &path, None)?;
        return Ok(data.features);
    }
    Ok(crate::onnx::probe_rows(net, 64))
}

/// `dropship predict`: one class per row (or the logits as CSV), and the accuracy on stderr when
/// the CSV has labels.
pub fn predict(artifact: &Path, csv_path: &Path, label_column: Option<&String>, logits: bool, raw: bool) -> Result<()> {
    let (net, _) = HostNetwork::load(artifact)?;
    let data = rows_for(&net, csv_path, label_column)?;
    let mut correct = 0;
    let mut out = String::new();
    if logits {
        out.push_str(&(0..net.classes()).map(|c| format!("logit_{c}")).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    for i in 0..data.rows() {
        let row_logits = net.logits(data.row(i), raw);
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
    let activations: usize = a.input() + a.layers().map(|l| l.output).sum::<usize>();
    println!("inference RAM:   {} bytes of activations", 4 * activations);
    println!("dropout:         none (the format cannot express it)");
    println!("provenance:      {}", a.provenance());
    Ok(())
}

/// `dropship vectors`: test vectors (raw input, host logits, class) of the first `rows` rows.
pub fn vectors(artifact: &Path, csv_path: &Path, output: &Path, rows: Option<usize>) -> Result<()> {
    let (net, _) = HostNetwork::load(artifact)?;
    let data = rows_for(&net, csv_path, None)?;
    let n = rows.unwrap_or(data.rows()).min(data.rows());
    let logits: Vec<Vec<f32>> = (0..n).map(|i| net.logits(data.row(i), false)).collect();
    let records = (0..n).map(|i| (data.row(i), dropship_shared::kernel::argmax(&logits[i]), &logits[i][..]));
    let mut out = vec![0; dropship_shared::vectors::Vectors::encoded_len(n, net.input, net.classes())];
    dropship_shared::vectors::Vectors::write(&mut out, net.input, net.classes(), records)?;
    export::write_atomic(output, &out)?;
    println!("wrote {} ({n} vectors)", output.display());
    Ok(())
}
