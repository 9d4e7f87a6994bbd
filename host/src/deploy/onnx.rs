//! ONNX out and in, checked by tract-onnx running the graph.
//!
//! The graph codec (export, import, Dropout stripping) is `dropship_formats::onnx_graph`; here an
//! export is run by tract against the artifact before it is reported as written, and an import is
//! run against the original graph before the artifact is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use prost::Message;
use rand::Rng;
use tract_onnx::prelude::*;

pub use dropship_formats::onnx_graph::{
    export_model, import_bytes, import_from_file, import_model, node, tensor_f32, value_info, ImportError, Imported,
    OPSET,
};

use crate::network::{HostNetwork, InputForm};
use crate::output::write_file;
use crate::train::run;

/// Runs an ONNX model with tract on `rows` (row-major, `width` values each, given to the graph
/// as `[rows, shape...]`), one output row per input row. `dir` is the model's directory, where
/// tract finds tensors kept in external files.
pub fn run_with_tract(onnx: &[u8], shape: &[usize], rows: &[f32], dir: Option<&Path>) -> Result<Vec<Vec<f32>>> {
    let width: usize = shape.iter().product();
    let n = rows.len() / width.max(1);
    let proto = tract_onnx::pb::ModelProto::decode(onnx).context("tract cannot read the ONNX model")?;
    let dir = dir.map(|d| d.to_string_lossy().into_owned());
    let parsed = tract_onnx::onnx().parse(&proto, dir.as_deref()).context("tract cannot read the ONNX model")?;
    let dims: Vec<usize> = std::iter::once(n).chain(shape.iter().copied()).collect();
    let model = parsed.model.with_input_fact(0, f32::fact(&dims).into())?.into_optimized()?.into_runnable()?;
    let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(dims, rows.to_vec())?.into();
    let out = model.run(tvec!(input.into()))?;
    let view = out[0].to_plain_array_view::<f32>()?;
    Ok(view.outer_iter().map(|r| r.iter().copied().collect()).collect())
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The largest difference two runs of the same network may show: `relative` times the outputs'
/// largest magnitude (at least 1). Two summation orders differ by a few ULPs of the largest
/// values, so a fixed limit would refuse a long-trained model's large logits.
fn tolerance(outputs: &[Vec<f32>], relative: f32) -> f32 {
    relative * outputs.iter().flatten().fold(1.0f32, |m, v| m.max(v.abs()))
}

/// The ONNX model `bytes` with its output moved to the value `logits`, dropping the nodes after
/// it (a final Softmax): what tract runs to compare raw logits.
fn truncated_at(bytes: &[u8], logits: &str) -> Result<Vec<u8>> {
    let mut model = tract_onnx::pb::ModelProto::decode(bytes).context("not an ONNX model")?;
    let graph = model.graph.as_mut().context("no graph")?;
    let output = graph.output.first_mut().context("no output")?;
    let old = std::mem::replace(&mut output.name, logits.to_string());
    graph.node.retain(|n| !n.output.contains(&old));
    Ok(model.encode_to_vec())
}

/// Encodes the artifact's network as ONNX and checks it with tract on `rows` (raw inputs):
/// returns the bytes and the largest difference from the artifact's logits (at most 1e-5).
pub fn export_checked(net: &HostNetwork, rows: &[f32]) -> Result<(Vec<u8>, f32)> {
    let bytes = export_model(net)?.encode_to_vec();
    let from_tract = run_with_tract(&bytes, &[net.input()], rows, None)?;
    let ours: Vec<Vec<f32>> = rows.chunks_exact(net.input()).map(|r| net.logits(r, InputForm::Raw)).collect();
    let (diff, limit) = (max_abs_diff(&from_tract, &ours), tolerance(&ours, 1e-5));
    if diff.is_nan() || diff > limit || from_tract.len() != ours.len() {
        bail!(
            "tract's outputs differ from the artifact's by {diff} (limit {limit:e}, 1e-5 of the largest logit): \
             the ONNX export is not written"
        );
    }
    Ok((bytes, diff))
}

/// `count` seeded raw inputs whose standardized values fall in [-2, 2): what an ONNX check runs
/// when no real rows are at hand.
pub fn probe_rows(net: &HostNetwork, count: usize) -> Vec<f32> {
    let mut rng = crate::rng::stream(0, crate::rng::Stream::Init);
    let (mean, scale) =
        net.standardization().cloned().unwrap_or_else(|| (vec![0.0; net.input()], vec![1.0; net.input()]));
    (0..count)
        .flat_map(|_| (0..net.input()).map(|j| mean[j] + rng.random_range(-2.0f32..2.0) * scale[j]).collect::<Vec<_>>())
        .collect()
}

/// Reads an ONNX file, imports it and checks the result against tract running the original on
/// 64 generated inputs; returns the import and the largest difference seen.
pub fn import_checked(path: &Path) -> Result<(Imported, f32)> {
    let bytes = crate::input::read(path)?;
    if bytes.is_empty() {
        bail!("{} is empty, not an ONNX model", path.display());
    }
    let imported = import_from_file(path, &bytes).with_context(|| format!("{} cannot be imported", path.display()))?;
    let net = &imported.network;
    let rows = probe_rows(net, 64);
    let check = |onnx: &[u8], net: &HostNetwork| check_against_tract(onnx, net, &imported.input_shape, &rows, path);
    let mut max_diff = check(&bytes, net)?;
    // a final Softmax hides a shift common to every logit: check the values before it too
    if let Some(logits) = &imported.pre_softmax {
        let mut layers = net.layers().to_vec();
        if let Some(last) = layers.last_mut() {
            last.activation = dropship_shared::Activation::Linear;
        }
        let before = HostNetwork::new(net.input(), layers, net.standardization().cloned(), None)?;
        max_diff = max_diff.max(check(&truncated_at(&bytes, logits)?, &before)?);
    }
    Ok((imported, max_diff))
}

/// Runs `onnx` with tract and `net` on `rows`; the largest difference of their raw outputs, or an
/// error when it is above 1e-4 of the outputs' largest magnitude.
fn check_against_tract(onnx: &[u8], net: &HostNetwork, shape: &[usize], rows: &[f32], path: &Path) -> Result<f32> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let original =
        run_with_tract(onnx, shape, rows, Some(dir)).with_context(|| format!("tract cannot run {}", path.display()))?;
    let ours: Vec<Vec<f32>> = rows.chunks_exact(net.input()).map(|r| net.logits(r, InputForm::Raw)).collect();
    let (diff, limit) = (max_abs_diff(&original, &ours), tolerance(&original, 1e-4));
    if diff.is_nan() || diff > limit || original.len() != ours.len() {
        bail!(
            "the imported network's outputs differ from tract running {} by {diff} (limit {limit:e}): not written",
            path.display()
        );
    }
    Ok(diff)
}

/// Where an imported network's input standardization came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StandardizationSource {
    /// The graph's leading `Sub`/`Div`.
    Graph,
    /// A run's `model.safetensors` (`--standardize-from`).
    Run(std::path::PathBuf),
    /// None: the model takes inputs as they are.
    None,
}

/// What [`import_file`] wrote.
#[derive(Debug)]
pub struct ImportReport {
    /// The import (its network carries the standardization that was written).
    pub imported: Imported,
    /// Where the standardization came from.
    pub standardization: StandardizationSource,
    /// Largest difference from tract running the original.
    pub max_diff: f32,
}

/// `dropship import`: reads an ONNX file, checks the import against tract, takes the input
/// standardization from the graph or from `standardize_from` (never both) and writes the artifact.
pub fn import_file(
    model: &Path,
    output: &Path,
    standardize_from: Option<&Path>,
    overwrite: bool,
) -> Result<ImportReport> {
    let read = standardize_from.map(run::files_read).unwrap_or_default();
    let inputs: Vec<&Path> = std::iter::once(model).chain(read.iter().map(PathBuf::as_path)).collect();
    crate::output::check_outputs(&[output], &inputs, overwrite)?;
    let (mut imported, max_diff) = import_checked(model)?;
    let mut provenance = format!("imported from {}", model.display());
    let standardization = match (standardize_from, imported.network.standardization().is_some()) {
        (Some(run), true) => {
            bail!("--standardize-from {}: the ONNX graph already standardizes its input", run.display())
        }
        (None, true) => StandardizationSource::Graph,
        (Some(run), false) => {
            let saved = run::load_weights(run)?;
            if saved.standardization.mean.len() != imported.network.input() {
                bail!(
                    "--standardize-from {}: {} features, the model takes {}",
                    run.display(),
                    saved.standardization.mean.len(),
                    imported.network.input()
                );
            }
            imported.network.set_standardization(Some((saved.standardization.mean, saved.standardization.scale)));
            provenance.push_str(&format!("; standardization from {}", run.display()));
            StandardizationSource::Run(run.to_path_buf())
        }
        (None, false) => StandardizationSource::None,
    };
    let bytes = imported.network.to_artifact("", &provenance)?;
    write_file(output, &bytes)?;
    Ok(ImportReport { imported, standardization, max_diff })
}
