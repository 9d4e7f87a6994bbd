//! A run directory: config, metrics history (CSV, JSON), weights with standardization
//! (safetensors), learning-curve plots. Written inside a [`crate::output::Staging`] directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use dropship_shared::{Activation, Dims, LayerKind, LayerShape, Padding, Task, Window};

use crate::data::split::Standardization;
use crate::network::{HostNetwork, Layer};
use crate::train::batch_norm::BatchNormWeights;
use crate::train::features::FeatureWeights;
use crate::train::model::{DenseWeights, Weights};
use crate::train::{TrainConfig, Trained};

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
    /// Which rows of the data file were the training rows (the default calibration rows of
    /// `dropship quantize`; empty in runs written before it existed).
    #[serde(default)]
    pub train_rows: Vec<u32>,
}

/// Final figures of a run (metrics.json).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunMetrics {
    /// The task's score on the test rows (accuracy, or R²), inference mode.
    #[serde(alias = "test_accuracy")]
    pub test_score: f64,
    /// The task's loss on the test rows (cross-entropy, binary cross-entropy, mean squared error
    /// of standardized values), inference mode.
    #[serde(alias = "test_cross_entropy")]
    pub test_loss: f64,
    /// Epoch with the lowest validation loss.
    pub best_epoch: usize,
    /// Epochs actually run.
    pub epochs_run: usize,
    /// Training wall time in seconds.
    pub seconds: f64,
    /// The test score of the model quantized to int8 (calibrated on the training rows), when asked
    /// for (`compare --int8`).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "int8_test_accuracy")]
    pub int8_test_score: Option<f64>,
    /// What the task adds (binary: ROC AUC and threshold; regress: MAE, RMSE, R² in the targets'
    /// units; autoencode: the anomaly threshold and the score distribution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::train::task::TaskMetrics>,
}

fn json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

/// Writes everything a run records into `dir` (its plots are the study stage's:
/// `study::report::learning_curves`).
pub fn write_run(
    dir: &Path,
    config: &RunConfig,
    standardization: &Standardization,
    trained: &Trained,
    metrics: &RunMetrics,
    head: &OutputHead,
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
        format!("run {} ({}), trained with {}", config.name, config.data.display(), config.train.regularization());
    save_model(&dir.join(WEIGHTS), &trained.weights, standardization, &provenance, head)
}

/// The tensor name of layer `index` of `depth` (Keras's layer names): `dense_output` for the last,
/// `dense_hidden` for the one hidden layer of the course's model, `dense_hidden1`, `dense_hidden2`, …
/// when there are several.
pub fn layer_name(index: usize, depth: usize) -> String {
    match (index + 1 == depth, depth) {
        (true, _) => "dense_output".into(),
        (false, 2) => "dense_hidden".into(),
        (false, _) => format!("dense_hidden{}", index + 1),
    }
}

/// How a model's outputs are read: its task, the task's threshold (binary: the probability's,
/// autoencode: the anomaly score's; chosen on validation rows), and a regression's target units.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputHead {
    /// What the outputs are.
    pub task: Task,
    /// The threshold they are compared with (0 where the task has none).
    pub threshold: f32,
    /// `(mean, scale)` of a regression's targets: the outputs are `(t - mean) / scale`.
    pub target: Option<(f32, f32)>,
}

impl Default for OutputHead {
    /// A classifier's.
    fn default() -> Self {
        Self { task: Task::Classify, threshold: 0.0, target: None }
    }
}

impl OutputHead {
    /// The head of a model trained on `prepared` whose task figures are `figures` (the threshold
    /// comes from them).
    pub fn of(prepared: &crate::train::prepare::Prepared, figures: Option<&crate::train::task::TaskMetrics>) -> Self {
        use crate::train::task::TaskMetrics;
        let threshold = match figures {
            Some(TaskMetrics::Binary { threshold, .. } | TaskMetrics::Autoencode { threshold, .. }) => *threshold,
            _ => 0.0,
        };
        Self { task: prepared.task, threshold, target: prepared.target_standardization }
    }
}

/// Saves weights and standardization as safetensors, with provenance in the metadata.
pub fn save_weights(path: &Path, w: &Weights, s: &Standardization, provenance: &str) -> Result<()> {
    save_model(path, w, s, provenance, &OutputHead::default())
}

/// Saves weights, standardization and how the outputs are read as safetensors, with provenance,
/// the task and its threshold in the metadata.
pub fn save_model(path: &Path, w: &Weights, s: &Standardization, provenance: &str, head: &OutputHead) -> Result<()> {
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let depth = w.layers.len();
    let mut tensors = Vec::new();
    for (i, f) in w.front.iter().enumerate().filter(|(_, f)| !f.kernel.is_empty()) {
        let [rows, cols] = f.shape.window.size;
        let dims = match f.shape.kind {
            LayerKind::Conv2d => vec![rows, cols, f.input.channels, f.shape.units],
            _ => vec![rows, cols, f.input.channels],
        };
        tensors.push((format!("conv{i}.kernel"), dims, bytes(&f.kernel)));
        tensors.push((format!("conv{i}.bias"), vec![f.bias.len()], bytes(&f.bias)));
        if let Some(bn) = &f.batch_norm {
            for (part, values) in batch_norm_parts(bn) {
                tensors.push((format!("conv{i}.batch_norm.{part}"), vec![f.bias.len()], bytes(values)));
            }
        }
    }
    for (i, layer) in w.layers.iter().enumerate() {
        let name = layer_name(i, depth);
        tensors.push((format!("{name}.kernel"), vec![layer.input, layer.output()], bytes(&layer.kernel)));
        tensors.push((format!("{name}.bias"), vec![layer.output()], bytes(&layer.bias)));
        if let Some(bn) = &layer.batch_norm {
            for (part, values) in batch_norm_parts(bn) {
                tensors.push((format!("{name}.batch_norm.{part}"), vec![layer.output()], bytes(values)));
            }
        }
    }
    tensors.push(("standardization.mean".into(), vec![w.input()], bytes(&s.mean)));
    tensors.push(("standardization.scale".into(), vec![w.input()], bytes(&s.scale)));
    if let Some((mean, scale)) = head.target {
        tensors.push(("target.mean".into(), vec![1], bytes(&[mean])));
        tensors.push(("target.scale".into(), vec![1], bytes(&[scale])));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| Ok((name.to_string(), TensorView::new(Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let mut metadata = HashMap::from([
        ("provenance".to_string(), provenance.to_string()),
        (LAYERS_METADATA.to_string(), describe_layers(&w.shapes())),
    ]);
    if !w.front.is_empty() {
        metadata.insert(IMAGE_METADATA.to_string(), w.input_dims().to_string());
    }
    if head.task != Task::Classify {
        metadata.insert(TASK_METADATA.to_string(), head.task.name().to_string());
        metadata.insert(THRESHOLD_METADATA.to_string(), format!("{:?}", head.threshold));
    }
    let bytes = safetensors::serialize(views, Some(metadata))?;
    std::fs::write(path, with_sorted_header(&bytes)?).with_context(|| format!("writing {}", path.display()))
}

/// A BatchNorm's tensors by the name a weights file gives them.
fn batch_norm_parts(bn: &BatchNormWeights) -> [(&'static str, &Vec<f32>); 4] {
    [
        ("gamma", &bn.gamma),
        ("beta", &bn.beta),
        ("moving_mean", &bn.moving_mean),
        ("moving_variance", &bn.moving_variance),
    ]
}

/// The same safetensors bytes with the header's keys in sorted order (safetensors writes its
/// metadata from a `HashMap`, whose order changes from run to run), so one seed gives one file.
fn with_sorted_header(bytes: &[u8]) -> Result<Vec<u8>> {
    type Header = std::collections::BTreeMap<String, std::collections::BTreeMap<String, serde_json::Value>>;
    let len = u64::from_le_bytes(bytes.get(..8).context("safetensors output too short")?.try_into()?) as usize;
    let header_end = 8 + len;
    let header: Header = serde_json::from_slice(bytes.get(8..header_end).context("safetensors header")?)?;
    let mut text = serde_json::to_string(&header)?;
    // safetensors pads its header with spaces to a multiple of 8 bytes, so the data stays aligned
    text.push_str(&" ".repeat((8 - text.len() % 8) % 8));
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - header_end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[header_end..]);
    Ok(out)
}

/// The weights file's metadata key naming the task (absent: classify).
const TASK_METADATA: &str = "task";
/// The weights file's metadata key holding the task's threshold.
const THRESHOLD_METADATA: &str = "threshold";

/// The weights file's metadata key holding the network's description (see [`describe_layers`]).
pub const LAYERS_METADATA: &str = "layers";

/// A network's description as text, one `Kind units activation` per layer, `;` between them:
/// `Dense 128 ReLU; Dense 10 linear`.
pub fn describe_layers(shapes: &[LayerShape]) -> String {
    let describe = |s: &LayerShape| {
        let mut text = format!("{} {} {}", s.kind, s.units, s.activation);
        if LayerShape::has_window(s.kind) {
            let Window { size: [rows, cols], stride: [sr, sc], padding } = s.window;
            text.push_str(&format!(" {rows}x{cols}/{sr}x{sc}/{padding}"));
        }
        text
    };
    shapes.iter().map(describe).collect::<Vec<_>>().join("; ")
}

/// The image a convolutional run's rows are (`HxWxC`).
pub const IMAGE_METADATA: &str = "image";

/// A window as [`describe_layers`] writes it: `3x3/1x1/same`.
fn read_window(text: &str) -> Option<Window> {
    let mut parts = text.split('/');
    let pair = |p: Option<&str>| -> Option<[usize; 2]> {
        let (a, b) = p?.split_once('x')?;
        Some([a.parse().ok().filter(|v| (1..=64).contains(v))?, b.parse().ok().filter(|v| (1..=64).contains(v))?])
    };
    let (size, stride) = (pair(parts.next())?, pair(parts.next())?);
    let padding = Padding::from_name(parts.next()?)?;
    parts.next().is_none().then_some(Window::new(size, stride, padding))
}

/// Reads [`describe_layers`]'s text back; names a part it does not know.
pub fn read_layers(text: &str) -> Result<Vec<LayerShape>> {
    text.split(';')
        .map(|part| {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (kind, units, activation, window) = match words[..] {
                [kind, units, activation] => (kind, units, activation, None),
                [kind, units, activation, window] => (kind, units, activation, Some(window)),
                _ => bail!("`{part}` is not `Kind units activation [window]`"),
            };
            let kind = LayerKind::from_name(kind).with_context(|| {
                format!("layer kind `{kind}` is not one this dropship knows (a newer dropship wrote it)")
            })?;
            let activation = Activation::from_name(activation).with_context(|| {
                format!("activation `{activation}` is not one this dropship knows (a newer dropship wrote it)")
            })?;
            let units = units.parse().with_context(|| format!("`{units}` is not a layer width"))?;
            let window = match (LayerShape::has_window(kind), window) {
                (true, Some(text)) => read_window(text).with_context(|| format!("`{text}` is not a window"))?,
                (false, None) => Window::NONE,
                (true, None) => bail!("`{part}`: a {kind} layer without its window"),
                (false, Some(_)) => bail!("`{part}`: a {kind} layer has no window"),
            };
            Ok(LayerShape::windowed(kind, units, window, activation))
        })
        .collect()
}

/// An image as `Dims` displays it: `HxWxC`.
fn read_image(text: &str) -> Option<Dims> {
    let sides: Vec<usize> = text.split('x').map(|s| s.parse().ok().filter(|v| *v > 0)).collect::<Option<_>>()?;
    match sides[..] {
        [h, w, c] => Some(Dims::image(h, w, c)),
        _ => None,
    }
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
    /// How its outputs are read.
    pub head: OutputHead,
}

impl SavedModel {
    /// The model as `standardize → (Dense → activation)* → Dense`. Dropout has nothing to carry
    /// over: inverted dropout already scaled during training, so the weights are used as they are;
    /// a BatchNorm is folded into its Dense (its moving statistics, inference mode).
    ///
    /// A regression's outputs are restored to the targets' units by the last layer itself:
    /// `y = z · scale + mean` folded into its weights and bias, so the artifact outputs values in
    /// those units on every target without another operator. The task and its threshold are
    /// recorded for `predict`.
    pub fn network(&self) -> HostNetwork {
        let depth = self.weights.layers.len();
        let layers = (self.weights.layers.iter().enumerate())
            .map(|(i, l)| {
                let (mut kernel, mut bias) = l.inference_weights();
                if let (Some((mean, scale)), true) = (self.head.target, i + 1 == depth) {
                    kernel.iter_mut().for_each(|w| *w = (*w as f64 * scale as f64) as f32);
                    bias.iter_mut().for_each(|b| *b = (*b as f64 * scale as f64 + mean as f64) as f32);
                }
                Layer::dense(l.input, kernel, bias, l.activation)
            })
            .collect::<Vec<_>>();
        let front = self.weights.front.iter().map(|f| {
            let (kernel, bias) = f.inference_weights();
            Layer::f32_of(f.shape, f.input, kernel, bias)
        });
        let layers = front.chain(layers).collect();
        let standardization = Some((self.standardization.mean.clone(), self.standardization.scale.clone()));
        let mut net = HostNetwork::f32(self.weights.input(), layers, standardization).expect("f32 layers");
        if self.head.task != Task::Classify {
            net.set_task(Some((self.head.task, self.head.threshold)));
        }
        net
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

/// The files a command that reads the run `run` (a directory, or its weights file) may read: its
/// weights and its configuration, and the comparison's test rows beside it. Outputs are checked
/// against them ([`crate::output::check_outputs`]).
pub fn files_read(run: &Path) -> Vec<PathBuf> {
    let config = if run.is_dir() { run.join(CONFIG) } else { run.with_file_name(CONFIG) };
    let test_rows = if run.is_dir() { run.parent().map(|p| p.join("test.csv")) } else { None };
    [Some(weights_path(run)), Some(config), test_rows].into_iter().flatten().collect()
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
    let bytes = crate::input::read(&path)?;
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
    let names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    let metadata = meta.metadata().as_ref();
    let described = match metadata.and_then(|m| m.get(LAYERS_METADATA)) {
        Some(text) => {
            Some(read_layers(text).with_context(|| format!("{}: metadata `{LAYERS_METADATA}`", path.display()))?)
        }
        None => None,
    };
    let front_shapes: Vec<LayerShape> =
        described.iter().flatten().take_while(|s| s.kind != LayerKind::Dense).copied().collect();
    // the BatchNorm stored under `name`, if any, of `units` units
    let read_batch_norm = |name: &str, units: usize| -> Result<Option<BatchNormWeights>> {
        if !names.contains(&format!("{name}.batch_norm.gamma")) {
            return Ok(None);
        }
        let mut bn = BatchNormWeights::initial(units);
        for (part, values) in [
            ("gamma", &mut bn.gamma),
            ("beta", &mut bn.beta),
            ("moving_mean", &mut bn.moving_mean),
            ("moving_variance", &mut bn.moving_variance),
        ] {
            let (_, read) = tensor(&format!("{name}.batch_norm.{part}"))?;
            if read.len() != units {
                bail!("{}: `{name}.batch_norm.{part}` has {} values for {units} units", path.display(), read.len());
            }
            *values = read;
        }
        if bn.moving_variance.iter().any(|v| v.is_nan() || *v < 0.0) {
            bail!("{}: `{name}.batch_norm.moving_variance` has a negative value", path.display());
        }
        Ok(Some(bn))
    };
    let mut front = Vec::with_capacity(front_shapes.len());
    if !front_shapes.is_empty() {
        let image = metadata.and_then(|m| m.get(IMAGE_METADATA)).and_then(|t| read_image(t));
        let mut map = image.with_context(|| format!("{}: a convolutional run without its `image`", path.display()))?;
        for (i, shape) in front_shapes.iter().enumerate() {
            let (kernel, bias) = if LayerShape::has_weights(shape.kind) {
                (tensor(&format!("conv{i}.kernel"))?.1, tensor(&format!("conv{i}.bias"))?.1)
            } else {
                (Vec::new(), Vec::new())
            };
            let out = shape.output_dims(map);
            if out.is_none() || kernel.len() != shape.weights(map) || bias.len() != shape.biases() {
                bail!("{}: tensor shapes do not chain at `conv{i}` ({})", path.display(), shape.kind);
            }
            let batch_norm = read_batch_norm(&format!("conv{i}"), shape.units)?;
            front.push(FeatureWeights { shape: *shape, input: map, kernel, bias, batch_norm });
            map = out.unwrap_or(map);
        }
    }
    let depth = if names.iter().any(|n| n == "dense_hidden.kernel") {
        2
    } else {
        1 + (1..crate::limits::MAX_LAYERS).take_while(|n| names.contains(&format!("dense_hidden{n}.kernel"))).count()
    };
    let mut layers: Vec<DenseWeights> = Vec::with_capacity(depth);
    for i in 0..depth {
        let name = layer_name(i, depth);
        let (shape, kernel) = tensor(&format!("{name}.kernel"))?;
        let (_, bias) = tensor(&format!("{name}.bias"))?;
        let &[input, output] = shape.as_slice() else {
            bail!("{}: kernel `{name}` must be 2-D", path.display());
        };
        let chains = layers.last().is_none_or(|previous| previous.output() == input);
        if !chains || bias.len() != output {
            bail!("{}: tensor shapes do not chain at `{name}`", path.display());
        }
        let mut layer = DenseWeights::new(input, kernel, bias, Activation::Linear);
        layer.batch_norm = read_batch_norm(&name, output)?;
        layers.push(layer);
    }
    let shapes = match described {
        Some(shapes) => shapes[front.len()..].to_vec(),
        // runs written before the description was stored: the course's classifier
        None => crate::train::model::classifier(
            &layers[..depth - 1].iter().map(|l| l.output()).collect::<Vec<_>>(),
            layers[depth - 1].output(),
        ),
    };
    if shapes.len() != depth || shapes.iter().zip(&layers).any(|(s, l)| s.units != l.output()) {
        bail!("{}: the layer description does not match the tensors", path.display());
    }
    for (layer, shape) in layers.iter_mut().zip(&shapes) {
        layer.activation = shape.activation;
    }
    if let (Some(last), Some(first)) = (front.last(), layers.first()) {
        if last.output().len() != first.input {
            let (given, taken) = (last.output(), first.input);
            bail!("{}: the convolutions give {given} values, the first Dense takes {taken}", path.display());
        }
    }
    let weights = Weights { layers, front };
    let (_, mean) = tensor("standardization.mean")?;
    let (_, scale) = tensor("standardization.scale")?;
    if mean.len() != weights.input() || scale.len() != weights.input() {
        bail!("{}: the standardization does not match the first layer", path.display());
    }
    let provenance = metadata.and_then(|m| m.get("provenance").cloned()).unwrap_or_default();
    let task = match metadata.and_then(|m| m.get(TASK_METADATA)) {
        Some(name) => Task::from_name(name).with_context(|| {
            format!("{}: task `{name}` is not one this dropship knows (a newer dropship wrote it)", path.display())
        })?,
        None => Task::Classify,
    };
    let threshold = match metadata.and_then(|m| m.get(THRESHOLD_METADATA)) {
        Some(text) => text
            .parse::<f32>()
            .ok()
            .filter(|t| t.is_finite())
            .with_context(|| format!("{}: threshold `{text}` is not a number", path.display()))?,
        None => 0.0,
    };
    let target = if names.iter().any(|n| n == "target.mean") {
        let (_, mean) = tensor("target.mean")?;
        let (_, scale) = tensor("target.scale")?;
        match (mean.as_slice(), scale.as_slice()) {
            (&[m], &[s]) if m.is_finite() && s.is_finite() && s > 0.0 => Some((m, s)),
            _ => bail!("{}: the target standardization is not one positive scale and one mean", path.display()),
        }
    } else {
        None
    };
    let head = OutputHead { task, threshold, target };
    Ok(SavedModel { weights, standardization: Standardization { mean, scale }, provenance, head })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_description_reads_back_and_unknown_names_are_refused_by_name() {
        let shapes = [LayerShape::dense(128, Activation::Relu), LayerShape::dense(10, Activation::Linear)];
        let text = describe_layers(&shapes);
        assert_eq!(text, "Dense 128 ReLU; Dense 10 linear");
        assert_eq!(read_layers(&text).unwrap(), shapes);
        let newer = read_layers("Dense 128 swish; Dense 10 linear").unwrap_err().to_string();
        assert!(newer.contains("activation `swish`") && newer.contains("newer dropship"), "{newer}");
        assert!(read_layers("Conv9 3 ReLU").unwrap_err().to_string().contains("layer kind `Conv9`"));
        assert!(read_layers("Dense many ReLU").unwrap_err().to_string().contains("`many` is not a layer width"));
        assert!(read_layers("Dense 3").is_err());
    }

    #[test]
    fn the_weights_file_is_the_same_bytes_for_the_same_weights() {
        let dir = tempfile::tempdir().unwrap();
        let weights = Weights {
            front: Vec::new(),
            layers: vec![
                DenseWeights {
                    batch_norm: Some(BatchNormWeights {
                        gamma: vec![1.5, 0.5, 1.0],
                        beta: vec![0.25, 0.0, -0.25],
                        moving_mean: vec![0.1, 0.2, 0.3],
                        moving_variance: vec![2.0, 1.0, 0.5],
                    }),
                    ..DenseWeights::new(2, vec![0.5; 6], vec![0.0; 3], Activation::Relu)
                },
                DenseWeights::new(3, vec![0.25; 6], vec![1.0; 2], Activation::Linear),
            ],
        };
        let s = Standardization { mean: vec![0.0; 2], scale: vec![1.0; 2] };
        let files: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let path = dir.path().join(format!("{i}.safetensors"));
                save_weights(&path, &weights, &s, "test").unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        assert!(files.windows(2).all(|w| w[0] == w[1]), "metadata order must not vary");
        let back = load_weights(&dir.path().join("0.safetensors")).unwrap();
        assert_eq!(back.weights, weights);
        assert_eq!(back.provenance, "test");
    }
}
