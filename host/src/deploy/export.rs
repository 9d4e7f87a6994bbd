//! `dropship export`: a trained run becomes an artifact, dropout gone, nothing rescaled, no L2 trace.
//!
//! Inverted dropout scales the kept units by `1/(1-p)` during training, so the trained weights
//! are already the inference weights: export copies them as they are. The artifact format has no
//! field for dropout or for a regularizer; the run's regularizer survives only as provenance text.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dropship_shared::Artifact;

use crate::data;
use crate::network::HostNetwork;
use crate::output::{self, write_file};
use crate::train::run::{self, RunConfig, SavedModel};

/// Encodes a saved model (with its standardization) as an artifact.
pub fn artifact_bytes(saved: &SavedModel, class_names: &str, provenance: &str) -> Result<Vec<u8>> {
    saved.network().to_artifact(class_names, provenance)
}

/// The ONNX file an export wrote, and how it was checked.
#[derive(Clone, Debug)]
pub struct OnnxExport {
    /// Where it was written.
    pub path: PathBuf,
    /// Rows tract-onnx ran it on.
    pub rows: usize,
    /// Largest difference between tract's outputs and the artifact's logits.
    pub max_diff: f32,
}

/// What [`export_run`] wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The artifact's path.
    pub artifact: PathBuf,
    /// Its size.
    pub bytes: usize,
    /// Weights and biases in it.
    pub parameters: usize,
    /// The ONNX file, when one was asked for.
    pub onnx: Option<OnnxExport>,
}

/// Exports the run at `run` (a run directory, or its `model.safetensors`) to `output` (default
/// `<run>/model.dsm`) and, if asked, to an ONNX file checked with tract-onnx. Existing outputs are
/// replaced only with `overwrite`; nothing is written unless every part succeeded.
pub fn export_run(run: &Path, output: Option<&Path>, onnx: Option<&Path>, overwrite: bool) -> Result<Exported> {
    let output = output.map_or_else(|| run.join("model.dsm"), Path::to_path_buf);
    let outputs: Vec<&Path> = std::iter::once(output.as_path()).chain(onnx).collect();
    let read = run::files_read(run);
    let inputs: Vec<&Path> = read.iter().map(PathBuf::as_path).collect();
    output::check_outputs(&outputs, &inputs, overwrite)?;
    let saved = run::load_weights(run)?;
    let provenance = format!(
        "{}; exported by dropship {} from {}; dropout and L2 are training-only and have no representation here",
        saved.provenance,
        env!("CARGO_PKG_VERSION"),
        run.display()
    );
    let bytes = artifact_bytes(&saved, &class_names(run, saved.weights.classes())?, &provenance)?;
    let onnx = match onnx {
        Some(path) => {
            let net = HostNetwork::from_artifact(&Artifact::parse(&bytes)?);
            let rows = check_rows(&net, run)?;
            let (encoded, max_diff) = crate::deploy::onnx::export_checked(&net, &rows)?;
            Some((path, encoded, max_diff, rows.len() / net.input()))
        }
        None => None,
    };
    write_file(&output, &bytes)?;
    let onnx = match onnx {
        Some((path, encoded, max_diff, rows)) => {
            write_file(path, &encoded)?;
            Some(OnnxExport { path: path.to_path_buf(), rows, max_diff })
        }
        None => None,
    };
    Ok(Exported { artifact: output, bytes: bytes.len(), parameters: saved.weights.parameters(), onnx })
}

/// The class names of a run (one per line), from its `config.json`, which must agree with the
/// `classes` outputs of its weights (none for the other tasks). A run directory must have a readable one; a bare
/// `model.safetensors` without one beside it has no names.
fn class_names(run: &Path, classes: usize) -> Result<String> {
    let config_path = if run.is_dir() { run.join(run::CONFIG) } else { run.with_file_name(run::CONFIG) };
    if !run.is_dir() && !config_path.exists() {
        return Ok(String::new());
    }
    let text = crate::input::read(&config_path)?;
    let config: RunConfig = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a run configuration", config_path.display()))?;
    use dropship_shared::Task;
    let outputs = match config.train.task {
        Task::Classify => config.classes,
        Task::Binary if config.classes == 2 => 1,
        Task::Binary => usize::MAX,
        Task::Regress => 1,
        Task::Autoencode => config.features.len(),
    };
    if outputs != classes {
        anyhow::bail!(
            "{}: {} classes, but the model's weights have {classes} outputs: the run is damaged",
            config_path.display(),
            config.classes
        );
    }
    if config.train.task != Task::Classify {
        return Ok(String::new());
    }
    Ok((0..classes).map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))
}

/// Rows to check an ONNX export on: the run's test rows when it has them, else generated ones.
fn check_rows(net: &HostNetwork, run_dir: &Path) -> Result<Vec<f32>> {
    let test = run_dir.parent().map(|p| p.join("test.csv"));
    if let Some(path) = test.filter(|p| p.is_file()) {
        let rows = data::load_csv_for_model(&path, net.input(), None, data::Header::Present)?;
        return Ok(rows.features);
    }
    Ok(crate::deploy::onnx::probe_rows(net, 64))
}
