//! The commands that read an artifact (f32 or int8) and run it on the host: `predict`, `inspect`,
//! `vectors`.

use std::path::Path;

use anyhow::{Context, Result};
use dropship_shared::artifact::Params;
use dropship_shared::footprint::Footprint;
use dropship_shared::{Artifact, Precision, Task};

use crate::data::{self, Header};
use crate::network::{HostNetwork, InputForm};
use crate::output::{check_outputs, write_file};

/// What `predict` prints per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictOutput {
    /// The class.
    Class,
    /// The logits, as CSV.
    Logits,
}

/// `dropship predict`: per row the class (classify), the probability and the class at the
/// model's threshold (binary), the value (regress), the anomaly score and its flag (autoencode), or
/// with `--logits` every output as CSV; on stderr the accuracy, the errors or the ROC AUC when the
/// CSV has labels.
pub fn predict(
    artifact: &Path,
    csv_path: &Path,
    label_column: Option<&String>,
    output: PredictOutput,
    form: InputForm,
    header: Header,
) -> Result<()> {
    let (net, _) = HostNetwork::load(artifact)?;
    let data = data::load_csv_for_model(csv_path, net.input(), label_column, header)?;
    if let Some(note) = data::header_note(&data, header) {
        eprintln!("{note}");
    }
    let logits = output == PredictOutput::Logits;
    let (task, threshold) = net.task_or_classify();
    let mut out = String::new();
    let header = match (task, logits) {
        (_, true) => (0..net.classes()).map(|c| format!("output_{c}")).collect::<Vec<_>>().join(","),
        (Task::Classify, false) => String::new(),
        (Task::Binary, false) => "probability,class".into(),
        (Task::Regress, false) => "value".into(),
        (Task::Autoencode, false) => "score,anomaly".into(),
    };
    if !header.is_empty() {
        out.push_str(&header);
        out.push('\n');
    }
    let mut overflowing = Vec::new();
    let (mut decided, mut values, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..data.rows() {
        let row = data.row(i);
        let outputs = net.logits(row, form);
        if net.overflows(row, form) {
            overflowing.push(i + 1);
        }
        let line = match (task, logits) {
            (_, true) => outputs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
            (Task::Classify, false) => {
                let class = dropship_shared::ops::output::argmax(&outputs);
                decided.push(class);
                class.to_string()
            }
            (Task::Binary, false) => {
                let class = usize::from(outputs[0] > threshold);
                decided.push(class);
                format!("{},{class}", outputs[0])
            }
            (Task::Regress, false) => {
                values.push(outputs[0]);
                outputs[0].to_string()
            }
            (Task::Autoencode, false) => {
                let score = anomaly_score(&net, row, &outputs, form);
                scores.push(score);
                format!("{score},{}", u8::from(score > threshold))
            }
        };
        out.push_str(&line);
        out.push('\n');
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
    let rows = data.rows();
    if !data.labels.is_empty() && !decided.is_empty() {
        let correct = decided.iter().zip(&data.labels).filter(|(c, l)| **c == **l as usize).count();
        eprintln!("accuracy {:.4} ({correct}/{rows} rows)", correct as f64 / rows as f64);
    }
    if !data.targets.is_empty() && !values.is_empty() {
        let n = rows as f64;
        let mae = values.iter().zip(&data.targets).map(|(v, t)| (*v as f64 - *t as f64).abs()).sum::<f64>() / n;
        let mse = values.iter().zip(&data.targets).map(|(v, t)| (*v as f64 - *t as f64).powi(2)).sum::<f64>() / n;
        let r2 = crate::train::task::r_squared(&values, &data.targets);
        eprintln!("MAE {mae:.4}, RMSE {:.4}, R² {r2:.4} ({rows} rows)", mse.sqrt());
    }
    if !scores.is_empty() {
        let flagged = scores.iter().filter(|s| **s > threshold).count();
        let mut line = format!("{flagged}/{rows} rows above the anomaly threshold {threshold}");
        if !data.labels.is_empty() {
            let truth: Vec<bool> = data.labels.iter().map(|l| *l != 0).collect();
            if let Some(auc) = crate::train::task::roc_auc(&scores, &truth) {
                line.push_str(&format!("; ROC AUC {auc:.4} against column `{}`", data.label_name));
            }
        }
        eprintln!("{line}");
    }
    Ok(())
}

/// An autoencoder's anomaly score of `row`: the mean squared error of its reconstruction
/// `outputs` against the row as the network's first layer takes it (standardized).
fn anomaly_score(net: &HostNetwork, row: &[f32], outputs: &[f32], form: InputForm) -> f32 {
    let standardized: Vec<f32> = match (net.standardization(), form) {
        (Some((mean, scale)), InputForm::Raw) => {
            let mut z = vec![0.0; row.len()];
            dropship_shared::ops::standardize::standardize(row, mean, scale, &mut z);
            z
        }
        _ => row.to_vec(),
    };
    crate::train::task::anomaly_scores(outputs, &standardized, outputs.len())[0]
}

/// `dropship generate`: the Rust module `dropship-build` writes for a user's `build.rs`, as a file
/// to commit (`serving`: with `Server` and `Model::served`).
pub fn generate(artifact: &Path, output: &Path, serving: bool, portable: bool, overwrite: bool) -> Result<()> {
    check_outputs(&[output], &[artifact], overwrite)?;
    let bytes = crate::input::read(artifact)?;
    let name = artifact.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let kernels = if portable { dropship_build::Kernels::Portable } else { dropship_build::Kernels::Dsp };
    let code = dropship_build::code_for(&bytes, &name, serving, kernels)
        .map_err(|e| anyhow::anyhow!("{}: {e}", artifact.display()))?;
    write_file(output, code.as_bytes())?;
    println!(
        "wrote {} ({} bytes of Rust; include it as a module of a crate that depends on dropship-shared{})",
        output.display(),
        code.len(),
        if serving { " and dropship-link" } else { "" }
    );
    Ok(())
}

/// `dropship inspect`: what is inside an artifact of any version and precision.
pub fn inspect(path: &Path) -> Result<()> {
    let bytes = crate::input::read(path)?;
    let a = Artifact::parse(&bytes).with_context(|| format!("{} is not a valid dropship artifact", path.display()))?;
    let precision = a.precision();
    println!(
        "artifact:        {} ({} bytes, format v{}, {precision})",
        path.display(),
        a.len_bytes(),
        a.format_version()
    );
    println!("input:           {}", a.input());
    if let Some((scale, zero)) = a.input_quantization() {
        println!("input int8:      scale {scale:e}, zero point {zero} (after the f32 standardization)");
    }
    for (i, l) in a.layers().enumerate() {
        let layer = format!("{} + {}", l.shape().describe(l.input_dims), l.activation);
        match l.params {
            Params::F32 { .. } => println!("layer {i}:         {layer}, {} parameters", l.parameters()),
            Params::Int8(p) => {
                let scales: Vec<f32> = p.weight_scales.iter().collect();
                let (lo, hi) = scales.iter().fold((f32::INFINITY, 0f32), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
                let how = if p.lookup.is_some() { "table" } else { "fused" };
                println!(
                    "layer {i}:         {layer} ({how}), {} int8 weights, {} int32 biases, {} bytes in flash",
                    l.input * l.output,
                    l.output,
                    Footprint::new(precision, &[l.input, l.output], false)
                        .with_tables(precision, std::iter::once(l.activation))
                        .weight_bytes
                );
                println!(
                    "                 weight scales per channel {lo:e} to {hi:e}; output scale {:e}, zero point {}",
                    p.output_scale, p.output_zero
                );
                if let Some(t) = p.lookup {
                    println!(
                        "                 {} table after requantizing to scale {:e}, zero point {}",
                        l.activation, t.pre_scale, t.pre_zero
                    );
                }
            }
        }
    }
    match a.task() {
        None | Some((Task::Classify, _)) => println!("classes:         {}", a.classes()),
        Some((Task::Binary, threshold)) => {
            println!("task:            binary (one probability; class 1 above {threshold})")
        }
        Some((Task::Regress, _)) => {
            println!("task:            regress ({} value(s), in the targets' units)", a.classes())
        }
        Some((Task::Autoencode, threshold)) => println!(
            "task:            autoencode ({} reconstructed values; anomaly above a score of {threshold})",
            a.classes()
        ),
    }
    println!("parameters:      {} ({precision})", a.parameters());
    println!(
        "standardization: {}",
        if a.standardization().is_some() { "present" } else { "absent (inputs must be standardized already)" }
    );
    let footprint = Footprint::of(&a);
    let widths: Vec<usize> = a.widths().collect();
    println!("flash:           {} bytes of parameters on the device", footprint.weight_bytes);
    let buffers = match precision {
        Precision::F32 => {
            let (buffer_a, buffer_b) = dropship_shared::network::scratch_widths(&widths);
            format!("two buffers of {buffer_a} and {buffer_b} values, {} logits", a.classes())
        }
        Precision::Int8 => {
            format!("{} f32 standardized inputs, two int8 buffers of {}", a.input(), widths.iter().max().unwrap_or(&0))
        }
    };
    println!("inference RAM:   {} bytes of activations ({buffers})", footprint.activation_bytes);
    println!("dropout:         none (the format cannot express it)");
    println!("provenance:      {}", a.provenance());
    Ok(())
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
    let (net, _) = HostNetwork::load(artifact)?;
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
