//! A run directory: config, metrics history (CSV, JSON), weights with standardization
//! (safetensors), learning-curve plots. Written inside a [`crate::output::Staging`] directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use dropship_shared::artifact::Activation;

use crate::infer::{HostNetwork, Layer};
use crate::model::Weights;
use crate::plot::{self, Chart, Series};
use crate::split::Standardization;
use crate::train::{EpochRecord, TrainConfig, Trained};

/// File names inside a run directory.
pub const CONFIG: &str = "config.json";
/// Weights and standardization.
pub const WEIGHTS: &str = "model.safetensors";
/// Final metrics.
pub const METRICS: &str = "metrics.json";

/// What a run records about itself (config.json).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// Model name (base, l2, dropout, ...).
    pub name: String,
    /// The data file.
    pub data: PathBuf,
    /// The label column.
    pub label: String,
    /// Feature names.
    pub features: Vec<String>,
    /// Class count.
    pub classes: usize,
    /// Rows in train / val / test.
    pub split_rows: [usize; 3],
    /// The training configuration.
    pub train: TrainConfig,
}

/// Final figures of a run (metrics.json).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunMetrics {
    /// Test accuracy, inference mode.
    pub test_accuracy: f64,
    /// Test cross-entropy, inference mode.
    pub test_cross_entropy: f64,
    /// Epoch with the lowest validation loss.
    pub best_epoch: usize,
    /// Epochs actually run.
    pub epochs_run: usize,
    /// Training wall time in seconds.
    pub seconds: f64,
}

fn json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

/// Writes everything a run records into `dir`.
pub fn write_run(
    dir: &Path,
    config: &RunConfig,
    standardization: &Standardization,
    trained: &Trained,
    metrics: &RunMetrics,
) -> Result<()> {
    json(&dir.join(CONFIG), config)?;
    json(&dir.join(METRICS), metrics)?;
    json(&dir.join("history.json"), &trained.history)?;
    let mut csv = csv::Writer::from_path(dir.join("history.csv"))?;
    for record in &trained.history {
        csv.serialize(record)?;
    }
    csv.flush()?;
    let provenance =
        format!("run {} ({}), trained with {}", config.name, config.data.display(), config.train.regularizer);
    save_weights(&dir.join(WEIGHTS), &trained.weights, standardization, &provenance)?;
    learning_curves(dir, &config.name, &trained.history)
}

fn learning_curves(dir: &Path, name: &str, history: &[EpochRecord]) -> Result<()> {
    let line = |name, dashed, f: fn(&EpochRecord) -> f64| Series {
        name,
        dashed,
        points: history.iter().map(|r| (r.epoch as f64, f(r))).collect(),
    };
    let loss_title = format!("{name}: loss");
    plot::write(
        &Chart {
            title: &loss_title,
            x_label: "epoch",
            y_label: "cross-entropy",
            series: vec![line("train", false, |r| r.train_cross_entropy), line("val", false, |r| r.val_loss)],
            log_x: false,
        },
        &dir.join("loss"),
    )?;
    let acc_title = format!("{name}: accuracy");
    plot::write(
        &Chart {
            title: &acc_title,
            x_label: "epoch",
            y_label: "accuracy",
            series: vec![
                line("train (inference mode)", false, |r| r.train_accuracy),
                line("train (as trained)", true, |r| r.train_accuracy_running),
                line("val", false, |r| r.val_accuracy),
            ],
            log_x: false,
        },
        &dir.join("accuracy"),
    )
}

/// Saves weights and standardization as safetensors, with provenance in the metadata.
pub fn save_weights(path: &Path, w: &Weights, s: &Standardization, provenance: &str) -> Result<()> {
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let tensors = [
        ("dense_hidden.kernel", vec![w.input, w.hidden], bytes(&w.w1)),
        ("dense_hidden.bias", vec![w.hidden], bytes(&w.b1)),
        ("dense_output.kernel", vec![w.hidden, w.classes], bytes(&w.w2)),
        ("dense_output.bias", vec![w.classes], bytes(&w.b2)),
        ("standardization.mean", vec![w.input], bytes(&s.mean)),
        ("standardization.scale", vec![w.input], bytes(&s.scale)),
    ];
    let views = tensors
        .iter()
        .map(|(name, shape, data)| Ok((name.to_string(), TensorView::new(Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let metadata = HashMap::from([("provenance".to_string(), provenance.to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A trained model read back from a run directory.
#[derive(Clone, Debug)]
pub struct SavedModel {
    /// Parameters.
    pub weights: Weights,
    /// Input standardization.
    pub standardization: Standardization,
    /// Where it came from.
    pub provenance: String,
}

impl SavedModel {
    /// The model as `standardize → Dense → ReLU → Dense`. Dropout has nothing to carry over:
    /// inverted dropout already scaled during training, so the weights are used as they are.
    pub fn network(&self) -> HostNetwork {
        let w = &self.weights;
        HostNetwork {
            input: w.input,
            layers: vec![
                Layer { input: w.input, weights: w.w1.clone(), bias: w.b1.clone(), activation: Activation::Relu },
                Layer { input: w.hidden, weights: w.w2.clone(), bias: w.b2.clone(), activation: Activation::Linear },
            ],
            standardization: Some((self.standardization.mean.clone(), self.standardization.scale.clone())),
        }
    }
}

/// The weights file of a run: `model.safetensors` inside a run directory, or the path itself.
pub fn weights_path(run: &Path) -> PathBuf {
    if run.is_dir() {
        run.join(WEIGHTS)
    } else {
        run.to_path_buf()
    }
}

/// Reads `model.safetensors` of a run directory (or the file itself).
pub fn load_weights(run: &Path) -> Result<SavedModel> {
    let path = weights_path(run);
    if run.is_dir() && !path.exists() {
        if let Ok(index) = std::fs::read(run.join("report.json")) {
            let chosen = serde_json::from_slice::<serde_json::Value>(&index)
                .ok()
                .and_then(|v| v["chosen_run"].as_str().map(str::to_string))
                .unwrap_or_default();
            bail!(
                "{} holds a comparison, not one model: export one of its runs, e.g. {}",
                run.display(),
                run.join(chosen).display()
            );
        }
    }
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let tensor = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = st.tensor(name).with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
        if t.dtype() != Dtype::F32 {
            bail!("{}: tensor `{name}` is {:?}, expected F32", path.display(), t.dtype());
        }
        let data = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok((t.shape().to_vec(), data))
    };
    let (s1, w1) = tensor("dense_hidden.kernel")?;
    let (_, b1) = tensor("dense_hidden.bias")?;
    let (s2, w2) = tensor("dense_output.kernel")?;
    let (_, b2) = tensor("dense_output.bias")?;
    let (_, mean) = tensor("standardization.mean")?;
    let (_, scale) = tensor("standardization.scale")?;
    let (&[input, hidden], &[hidden2, classes]) = (s1.as_slice(), s2.as_slice()) else {
        bail!("{}: kernels must be 2-D", path.display());
    };
    if hidden != hidden2 || b1.len() != hidden || b2.len() != classes || mean.len() != input || scale.len() != input {
        bail!("{}: tensor shapes do not chain", path.display());
    }
    let provenance = meta.metadata().as_ref().and_then(|m| m.get("provenance").cloned()).unwrap_or_default();
    Ok(SavedModel {
        weights: Weights { input, hidden, classes, w1, b1, w2, b2 },
        standardization: Standardization { mean, scale },
        provenance,
    })
}
