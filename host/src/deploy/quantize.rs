//! `dropship quantize`: post-training int8 quantization of an f32 model, calibrated on rows, and
//! what it costs in accuracy.
//!
//! - Weights: int8, symmetric per output channel (zero point 0, range -127..=127, scale
//!   `max|w| / 127`), stored output-major.
//! - Activations: int8, asymmetric per tensor; the range of the standardized input and of every
//!   layer's output (after its ReLU) comes from the calibration rows, widened to include 0. A
//!   layer with sigmoid, tanh, hard-sigmoid or softmax is calibrated before its activation, which
//!   then runs as a table to TFLite's fixed output quantization
//!   (`dropship_shared::ops::activation::int8`).
//! - Biases: int32 at `input_scale * weight_scale`, with the input zero point folded in.
//! - Requantization: integer only, TFLite's single rounding (see `dropship_shared::ops::dense::int8`).
//! - The standardization stays explicit, in f32, before the input is quantized.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dropship_shared::network::graph::GraphLayer;
use dropship_shared::ops::activation::int8 as activation_int8;
use dropship_shared::ops::conv::int8::MAX_COLUMN;
use dropship_shared::ops::dense::int8::Requant;
use dropship_shared::ops::output::argmax;
use dropship_shared::ops::standardize;
use dropship_shared::Precision;
use dropship_shared::{Activation, LayerKind, LayerShape, Task};

use crate::data::{self, Header, LabelColumn};
use crate::network::{HostNetwork, InputForm, Int8Table, Int8Weights, Layer, TableEntries};
use crate::output::{self, write_file};
use crate::train::run::{self, RunConfig};

/// `(scale, zero point)` of an asymmetric int8 tensor covering `[min, max]` (widened to hold 0).
pub fn asymmetric(min: f32, max: f32) -> (f32, i8) {
    let (min, max) = (min.min(0.0) as f64, max.max(0.0) as f64);
    let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
    let zero = (-128.0 - min / scale).round().clamp(-128.0, 127.0);
    (scale as f32, zero as i8)
}

/// The range of the standardized input and of what every layer requantizes to over `rows`: its
/// output, or for an activation that runs as a table, the values before it. A pooling or Flatten
/// layer's range is its input's (its int8 output keeps the input's quantization).
pub fn calibrate<'r>(net: &HostNetwork, rows: impl Iterator<Item = &'r [f32]>) -> Vec<(f32, f32)> {
    let layers = net.graph_layers();
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); layers.len() + 1];
    let widen = |range: &mut (f32, f32), values: &[f32]| {
        for v in values {
            range.0 = range.0.min(*v);
            range.1 = range.1.max(*v);
        }
    };
    for row in rows {
        let mut x = row.to_vec();
        if let Some((mean, scale)) = net.standardization() {
            standardize::standardize(row, mean, scale, &mut x);
        }
        widen(&mut ranges[0], &x);
        for (l, layer) in layers.iter().enumerate() {
            let mut y = vec![0.0; layer.output.len()];
            if layer.shape.activation.int8_output().is_some() {
                let linear =
                    GraphLayer { shape: LayerShape { activation: Activation::Linear, ..layer.shape }, ..*layer };
                linear.forward(&x, &mut y);
                widen(&mut ranges[l + 1], &y);
                layer.shape.activation.apply_layer(&mut y);
            } else {
                layer.forward(&x, &mut y);
                widen(&mut ranges[l + 1], &y);
            }
            x = y;
        }
    }
    ranges.into_iter().map(|(lo, hi)| if lo <= hi { (lo, hi) } else { (0.0, 0.0) }).collect()
}

/// Quantizes the f32 `net` with the activation `ranges` from [`calibrate`].
pub fn quantize(net: &HostNetwork, ranges: &[(f32, f32)]) -> Result<HostNetwork> {
    let (input_scale, input_zero) = asymmetric(ranges[0].0, ranges[0].1);
    let (mut in_scale, mut in_zero) = (input_scale as f64, input_zero as i64);
    let mut layers = Vec::with_capacity(net.layers().len());
    for (l, layer) in net.layers().iter().enumerate() {
        let Some((kernel, layer_bias)) = layer.f32() else {
            bail!("layer {l} is already {}: quantize an f32 model", layer.precision());
        };
        let shape = layer.shape();
        if !LayerShape::has_weights(layer.kind) {
            // pooling and Flatten keep their input's quantization
            let weights = Int8Weights {
                weights: Vec::new(),
                bias: Vec::new(),
                requant: Vec::new(),
                weight_scales: Vec::new(),
                output_scale: in_scale as f32,
                output_zero: in_zero as i8,
                table: None,
            };
            layers.push(Layer::int8_of(shape, layer.input_dims, weights));
            continue;
        }
        // each output channel's weights: a Dense row, a convolution's window; every kernel is
        // input-major over them (Keras's layouts), and int8 stores them output-major except
        // depthwise, which keeps `(rows, cols, channels)` (see `dropship_shared::ops::conv::int8`)
        let n_out = layer_bias.len();
        let n_in = kernel.len() / n_out.max(1);
        if layer.kind == LayerKind::Conv2d && n_in > MAX_COLUMN {
            bail!(
                "layer {l}: an int8 {} window of {n_in} values (rows × cols × channels) is more than the {MAX_COLUMN} its kernel takes",
                layer.kind
            );
        }
        let slot =
            |o: usize, i: usize| if layer.kind == LayerKind::DepthwiseConv2d { i * n_out + o } else { o * n_in + i };
        // what the sums requantize to: the output, or the input of the activation's table
        let (target_scale, target_zero) = asymmetric(ranges[l + 1].0, ranges[l + 1].1);
        let mut weights = vec![0i8; n_in * n_out];
        let (mut bias, mut requant, mut weight_scales) = (Vec::new(), Vec::new(), Vec::new());
        for o in 0..n_out {
            let column = (0..n_in).map(|i| kernel[i * n_out + o]);
            let max_abs = column.clone().fold(0f32, |m, w| m.max(w.abs()));
            // a channel whose weights are all 0: any scale quantizes them exactly, so the one that
            // makes the multiplier 2^-8 keeps its bias at 8 bits below the output's step and the
            // layer in the Cortex-M4's paired form (a scale of 1 could make it a large multiplier)
            let w_scale = if max_abs > 0.0 { max_abs as f64 / 127.0 } else { target_scale as f64 / 256.0 / in_scale };
            // and, as TensorFlow Lite's converter adjusts it (`AdjustWeightsForBiasScale`), at
            // least what keeps the bias (at `in_scale * w_scale`) and the folded zero point within
            // int32: a channel of tiny weights (L2 drives some to nearly 0) beside a real bias
            let bias_room = i32::MAX as f64 - 2.0 * 128.0 * 127.0 * n_in as f64 - 1.0;
            let w_scale = w_scale.max(layer_bias[o].abs() as f64 / (in_scale * bias_room));
            let mut sum = 0i64;
            for (i, w) in column.enumerate() {
                let q = (w as f64 / w_scale).round().clamp(-127.0, 127.0) as i8;
                weights[slot(o, i)] = q;
                sum += q as i64;
            }
            let folded = (layer_bias[o] as f64 / (in_scale * w_scale)).round() as i64 - in_zero * sum;
            let folded = i32::try_from(folded)
                .ok()
                .filter(|b| (b.unsigned_abs() as u64) < (i32::MAX as u64).saturating_sub(128 * 127 * n_in as u64))
                .with_context(|| format!("layer {l} output {o}: its bias does not fit int32 at these scales"))?;
            let real = in_scale * w_scale / target_scale as f64;
            let r = Requant::from_real(real)
                .with_context(|| format!("layer {l} output {o}: multiplier {real:e} cannot be represented"))?;
            bias.push(folded);
            requant.push(r);
            weight_scales.push(w_scale as f32);
        }
        let pre = (target_scale, target_zero);
        let (table, (output_scale, output_zero)) = match layer.activation.int8_output() {
            None => (None, pre),
            Some(fixed) => {
                let entries = match activation_int8::table(layer.activation, pre) {
                    Some(values) => TableEntries::Values(Box::new(values)),
                    None => TableEntries::Exponentials(Box::new(activation_int8::softmax_table(target_scale))),
                };
                (Some(Int8Table { pre_scale: target_scale, pre_zero: target_zero, entries }), fixed)
            }
        };
        let weights = Int8Weights { weights, bias, requant, weight_scales, output_scale, output_zero, table };
        layers.push(Layer::int8_of(shape, layer.input_dims, weights));
        (in_scale, in_zero) = (output_scale as f64, output_zero as i64);
    }
    let mut int8 =
        HostNetwork::new(net.input(), layers, net.standardization().cloned(), Some((input_scale, input_zero)))?;
    int8.set_task(net.task());
    Ok(int8)
}

/// What quantization did to a model, on evaluation rows.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Rows evaluated.
    pub rows: usize,
    /// f32 accuracy (when the rows have labels).
    pub f32_accuracy: Option<f64>,
    /// int8 accuracy (when the rows have labels).
    pub int8_accuracy: Option<f64>,
    /// Share of rows where both give the same class.
    pub class_agreement: f64,
    /// Largest |int8 logit (dequantized) - f32 logit|.
    pub max_logit_error: f32,
}

/// Compares `f32` and `int8` on `rows` (raw features) with optional `labels`. Classes are the
/// largest output (classify), the probability against the model's threshold (binary); a
/// regression's or an autoencoder's outputs have no class, and their labels are not counted.
pub fn agreement(f32: &HostNetwork, int8: &HostNetwork, rows: &[&[f32]], labels: &[u32]) -> Agreement {
    let (task, threshold) = f32.task_or_classify();
    let decide = |outputs: &[f32]| match task {
        Task::Binary => usize::from(outputs[0] > threshold),
        _ => argmax(outputs),
    };
    let labels = if matches!(task, Task::Classify | Task::Binary) { labels } else { &[] };
    let (mut f32_correct, mut int8_correct, mut same, mut max_err) = (0, 0, 0, 0f32);
    for (i, row) in rows.iter().enumerate() {
        let (a, b) = (f32.logits(row, InputForm::Raw), int8.logits(row, InputForm::Raw));
        let (ca, cb) = (decide(&a), decide(&b));
        same += usize::from(ca == cb);
        max_err = a.iter().zip(&b).fold(max_err, |m, (x, y)| m.max((x - y).abs()));
        if let Some(label) = labels.get(i) {
            f32_correct += usize::from(*label as usize == ca);
            int8_correct += usize::from(*label as usize == cb);
        }
    }
    let n = rows.len().max(1) as f64;
    let labelled = !labels.is_empty();
    Agreement {
        rows: rows.len(),
        f32_accuracy: labelled.then(|| f32_correct as f64 / n),
        int8_accuracy: labelled.then(|| int8_correct as f64 / n),
        class_agreement: same as f64 / n,
        max_logit_error: max_err,
    }
}

/// What `dropship quantize` did.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// The artifact written.
    pub output: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
    /// Where the calibration rows came from, and how many.
    pub calibration: (String, usize),
    /// Where the evaluation rows came from.
    pub evaluation: String,
    /// The comparison on them.
    pub agreement: Agreement,
    /// The int8 network.
    pub network: HostNetwork,
}

/// Rows of a CSV (label optional) for a model of `width` inputs.
fn csv_rows(path: &Path, width: usize) -> Result<data::Dataset> {
    let data = data::load_csv_for_model(path, width, None, Header::Auto)?;
    if data.rows() == 0 {
        bail!("{} has no rows", path.display());
    }
    Ok(data)
}

/// The training rows a run recorded, read back from its data file.
fn run_training_rows(run_dir: &Path, width: usize) -> Result<(String, data::Dataset)> {
    let config_path = run_dir.join(run::CONFIG);
    let config: RunConfig = serde_json::from_slice(&crate::input::read(&config_path)?)
        .with_context(|| format!("{} is not a run configuration", config_path.display()))?;
    if config.train_rows.is_empty() {
        bail!("{} does not list its training rows (an older run): pass --calibration <csv>", run_dir.display());
    }
    let path = if config.data.to_string_lossy().ends_with(" (bundled)") {
        data::bundled_digits()?
    } else {
        config.data.clone()
    };
    let label = if config.label.is_empty() { LabelColumn::None } else { LabelColumn::Named(config.label.clone()) };
    let all = data::load_csv(&path, &label, Header::Auto).with_context(|| {
        format!("reading the run's training rows from {} (or pass --calibration <csv>)", path.display())
    })?;
    if all.width() != width || config.train_rows.iter().any(|r| *r as usize >= all.rows()) {
        bail!("{} no longer matches the run's training rows: pass --calibration <csv>", path.display());
    }
    let mut features = Vec::with_capacity(config.train_rows.len() * width);
    let mut labels = Vec::with_capacity(config.train_rows.len());
    for r in &config.train_rows {
        features.extend_from_slice(all.row(*r as usize));
        if let Some(label) = all.labels.get(*r as usize) {
            labels.push(*label);
        }
    }
    let rows = data::Dataset { features, labels, targets: Vec::new(), parts: Vec::new(), ..all };
    Ok((format!("the run's {} training rows ({})", rows.rows(), config.data.display()), rows))
}

/// `dropship quantize <run|artifact> -o <output> [--calibration <csv>] [--test <csv>]`.
pub fn quantize_command(
    source: &Path,
    output_path: &Path,
    calibration: Option<&Path>,
    test: Option<&Path>,
    overwrite: bool,
) -> Result<Quantized> {
    let read = if source.is_dir() { run::files_read(source) } else { vec![source.to_path_buf()] };
    let inputs: Vec<&Path> = read.iter().map(PathBuf::as_path).chain(calibration).chain(test).collect();
    output::check_outputs(&[output_path], &inputs, overwrite)?;
    let (net, class_names, provenance, run_dir) = if source.is_dir() {
        let saved = run::load_weights(source)?;
        (saved.network(), String::new(), saved.provenance.clone(), Some(source.to_path_buf()))
    } else {
        let bytes = crate::input::read(source)?;
        let a = dropship_shared::Artifact::parse(&bytes)
            .with_context(|| format!("{} is not a valid dropship artifact", source.display()))?;
        if a.precision() == Precision::Int8 {
            bail!("{} is already an int8 artifact", source.display());
        }
        (HostNetwork::from_artifact(&a), a.class_names().to_string(), a.provenance().to_string(), None)
    };
    let (calibration_from, calibration_rows) = match (calibration, &run_dir) {
        (Some(path), _) => (path.display().to_string(), csv_rows(path, net.input())?),
        (None, Some(dir)) => run_training_rows(dir, net.input())?,
        (None, None) => bail!("quantizing an artifact needs calibration rows: pass --calibration <csv>"),
    };
    let calibration_count = calibration_rows.rows();
    let ranges = calibrate(&net, (0..calibration_count).map(|r| calibration_rows.row(r)));
    if let Some(at) = ranges.iter().position(|(lo, hi)| !(lo.is_finite() && hi.is_finite())) {
        let place = if at == 0 { "the standardized input".to_string() } else { format!("layer {}'s output", at - 1) };
        bail!(
            "the calibration rows ({calibration_from}) overflow f32 in {place}: calibrate with rows like the \
             training data"
        );
    }
    let int8 = quantize(&net, &ranges).with_context(|| format!("calibrated on {calibration_from}"))?;
    let sibling_test = run_dir.as_ref().and_then(|d| d.parent()).map(|p| p.join("test.csv")).filter(|p| p.is_file());
    let (evaluation, eval) = match test.map(Path::to_path_buf).or(sibling_test) {
        Some(path) => (path.display().to_string(), csv_rows(&path, net.input())?),
        None => (format!("{calibration_from} (no test rows given)"), calibration_rows),
    };
    let rows: Vec<&[f32]> = (0..eval.rows()).map(|r| eval.row(r)).collect();
    let agreement = agreement(&net, &int8, &rows, &eval.labels);
    let provenance = format!(
        "{provenance}; quantized to int8 by dropship {} (calibration: {calibration_from})",
        env!("CARGO_PKG_VERSION")
    );
    let bytes = int8.to_artifact(&class_names, &provenance)?;
    write_file(output_path, &bytes)?;
    Ok(Quantized {
        output: output_path.to_path_buf(),
        bytes: bytes.len(),
        calibration: (calibration_from, calibration_count),
        evaluation,
        agreement,
        network: int8,
    })
}

/// The int8 accuracy of a trained f32 network on test rows, calibrated on training rows: what
/// `compare --int8` adds to the report.
pub fn int8_accuracy(net: &HostNetwork, calibration: &[&[f32]], test: &[&[f32]], labels: &[u32]) -> Result<f64> {
    let int8 = quantize(net, &calibrate(net, calibration.iter().copied()))?;
    Ok(agreement(net, &int8, test, labels).int8_accuracy.unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropship_shared::ops::dense::int8::paired;

    /// What the quantizer produces at its edges: weights in -127..=127 (never -128, which the
    /// artifact refuses) even for a row whose most negative weight is the largest magnitude; a
    /// channel of zero weights keeps its bias and a small multiplier; a channel whose multiplier
    /// is below 2^-32 gets multiplier 0 with the smallest shift, so the layer keeps the paired form.
    #[test]
    fn the_quantizer_at_its_edges() {
        // 8 inputs, 3 outputs (input-major weights): a row with -3 as its largest magnitude, a row
        // of zeros with a bias of 0.5, a row of tiny weights
        let mut weights = vec![0.0f32; 8 * 3];
        for i in 0..8 {
            weights[i * 3] = if i == 0 { -3.0 } else { 1.0 + i as f32 * 0.1 };
            weights[i * 3 + 2] = 1e-30;
        }
        let layer = Layer::dense(8, weights, vec![0.0, 0.5, 0.0], Activation::Linear);
        let net = HostNetwork::f32(8, vec![layer], None).unwrap();
        let q = quantize(&net, &[(-1.0, 1.0), (-4.0, 4.0)]).unwrap();
        let l = q.layers()[0].int8().unwrap();
        assert!(l.weights.iter().all(|w| (-127..=127).contains(w)), "{:?}", l.weights);
        assert_eq!(l.weights[0], -127, "the largest magnitude maps to -127, not -128");
        // the zero row: weights 0, multiplier 2^-8, its bias 0.5 at the output's scale
        assert!(l.weights[8..16].iter().all(|w| *w == 0));
        assert_eq!(l.requant[1], Requant::from_real(2f64.powi(-8)).unwrap());
        let out_scale = 8.0 / 255.0;
        let y = l.output_zero as f64 + (l.bias[1] as f64 * 2f64.powi(-8)).round();
        assert_eq!(y, l.output_zero as f64 + (0.5f64 / out_scale).round());
        // a row of tiny weights beside a real bias: the weight scale grows until the bias fits
        // int32 (TFLite's adjustment), and the bias still lands on the output's scale
        let mut weights = vec![1e-12f32; 8];
        weights[3] = -2e-12;
        let tiny = HostNetwork::f32(8, vec![Layer::dense(8, weights, vec![0.75], Activation::Linear)], None).unwrap();
        let q8 = quantize(&tiny, &[(-1.0, 1.0), (-4.0, 4.0)]).unwrap();
        let t = q8.layers()[0].int8().unwrap();
        let r = t.requant[0].to_real();
        assert!(
            (t.output_zero as f64 + (t.bias[0] as f64 * r).round()
                - (t.output_zero as f64 + (0.75f64 / (8.0 / 255.0)).round()))
            .abs()
                <= 1.0
        );
        // the tiny row: its multiplier underflows to 0 with shift -31, which the paired form takes
        assert_eq!(l.requant[2], Requant { multiplier: 0, shift: -31 });
        let shifts: Vec<i8> = l.requant.iter().map(|r| r.shift as i8).collect();
        assert!(paired::fits(8, &shifts, &l.weights), "{shifts:?}");
    }
}
