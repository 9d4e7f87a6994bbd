//! What a model learns: classes (`classify`), one probability (`binary`), values (`regress`) or
//! its own input (`autoencode`, whose reconstruction error is an anomaly score). The task decides
//! the output layer, the loss (Keras's: categorical cross-entropy from logits, binary
//! cross-entropy from logits, mean squared error), the score recorded every epoch (accuracy, or
//! R² for the real-valued tasks) and how the data's label column is read.

use anyhow::{bail, Result};
use candle_core::Tensor;
use dropship_shared::{Activation, LayerShape};

pub use dropship_shared::Task;

use crate::data::{self, Dataset};
use crate::train::model::softmax_cross_entropy;

/// Most distinct integer labels a column may have for the task to be inferred as classes; more
/// are read as a regression's values.
pub const MAX_INFERRED_CLASSES: usize = 64;

/// The task a data set's label column implies, with the reason in words (stated to the user).
pub fn infer(data: &Dataset) -> (Task, String) {
    let column = &data.label_name;
    if data.targets.is_empty() {
        return (Task::Autoencode, "there is no label column: the model reconstructs its input".into());
    }
    if let Some((line, value)) = &data.label_issue {
        // a fractional value is a regression's; a negative or too large integer is a class error
        if value.parse::<f64>().is_ok_and(|v| v.fract() != 0.0) {
            let why = format!("column `{column}` holds values that are not classes (`{value}` on line {line})");
            return (Task::Regress, why);
        }
        return (Task::Classify, format!("column `{column}` holds integers"));
    }
    let distinct = data.labels.iter().collect::<std::collections::BTreeSet<_>>();
    match distinct.len() {
        2 if data.classes == 2 => (Task::Binary, format!("column `{column}` holds 0 and 1 (--task classify for two softmax outputs)")),
        n if n > MAX_INFERRED_CLASSES => (
            Task::Regress,
            format!("column `{column}` holds {n} distinct values, more than {MAX_INFERRED_CLASSES} classes (--task classify to treat them as classes)"),
        ),
        n => (Task::Classify, format!("column `{column}` holds {n} classes")),
    }
}

/// Checks that `data` can be trained for `task`.
pub fn check(task: Task, data: &Dataset) -> Result<()> {
    match task {
        Task::Classify => {
            data::training_data(data.clone())?;
        }
        Task::Binary => {
            data::training_data(data.clone())?;
            if data.classes != 2 {
                bail!(
                    "{}: --task binary needs labels 0 and 1 in column `{}`, found labels up to {}",
                    data.source.display(),
                    data.label_name,
                    data.classes.saturating_sub(1)
                );
            }
        }
        Task::Regress if data.targets.is_empty() => {
            bail!("{}: --task regress needs a label column of target values", data.source.display())
        }
        Task::Regress | Task::Autoencode => {}
    }
    Ok(())
}

/// The output layer `task` ends in for `data`.
pub fn output_layer(task: Task, data: &Dataset) -> LayerShape {
    match task {
        Task::Classify => LayerShape::dense(data.classes, Activation::Linear),
        Task::Binary => LayerShape::dense(1, Activation::Sigmoid),
        Task::Regress => LayerShape::dense(1, Activation::Linear),
        Task::Autoencode => LayerShape::dense(data.width(), Activation::Linear),
    }
}

/// What the score recorded every epoch is.
pub fn score_name(task: Task) -> &'static str {
    match task {
        Task::Classify | Task::Binary => "accuracy",
        Task::Regress | Task::Autoencode => "R²",
    }
}

/// What the loss is.
pub fn loss_name(task: Task) -> &'static str {
    match task {
        Task::Classify => "cross-entropy",
        Task::Binary => "binary cross-entropy",
        Task::Regress | Task::Autoencode => "mean squared error",
    }
}

/// What a task adds to a run's test figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskMetrics {
    /// A probability against a threshold.
    Binary {
        /// Area under the ROC curve on the test rows.
        roc_auc: Option<f64>,
        /// The threshold chosen on the validation rows (most rows right).
        threshold: f32,
        /// Test accuracy at that threshold.
        accuracy_at_threshold: f64,
    },
    /// Values, in the targets' units.
    Regress {
        /// Mean absolute error.
        mae: f64,
        /// Root mean squared error.
        rmse: f64,
        /// Coefficient of determination.
        r2: f64,
    },
    /// Anomaly scores (the reconstruction's mean squared error of standardized values).
    Autoencode {
        /// The threshold chosen on the validation rows: the 99th percentile of their normal rows'
        /// scores (1% false alarms on normal data).
        threshold: f32,
        /// Test scores: median, 90th, 99th percentile and largest.
        quantiles: [f32; 4],
        /// Share of test rows above the threshold.
        flagged: f64,
        /// Area under the ROC curve of the score against the test rows' anomaly labels, when the
        /// data has them.
        roc_auc: Option<f64>,
    },
}

/// The task's score of a deployed model's final `outputs` (row-major, `width` wide: logits or
/// probabilities, a probability, values in the targets' units, a reconstruction) against
/// `labels` (classify, binary) or `truth` (regress: the targets; autoencode: the standardized
/// inputs): accuracy, or R².
pub fn output_score(task: Task, outputs: &[f32], width: usize, labels: &[u32], truth: &[f32]) -> f64 {
    let n = labels.len().max(1) as f64;
    match task {
        Task::Classify => {
            let right = outputs
                .chunks_exact(width.max(1))
                .zip(labels)
                .filter(|(o, l)| dropship_shared::ops::output::argmax(o) == **l as usize);
            right.count() as f64 / n
        }
        Task::Binary => outputs.iter().zip(labels).filter(|(p, l)| (**p > 0.5) == (**l == 1)).count() as f64 / n,
        Task::Regress | Task::Autoencode => r_squared(outputs, truth),
    }
}

/// Each row's anomaly score: the mean squared error of its reconstruction `outputs` against its
/// standardized input `inputs` (both row-major, `width` wide).
pub fn anomaly_scores(outputs: &[f32], inputs: &[f32], width: usize) -> Vec<f32> {
    outputs
        .chunks_exact(width.max(1))
        .zip(inputs.chunks_exact(width.max(1)))
        .map(|(o, x)| {
            (o.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>() / width as f64) as f32
        })
        .collect()
}

/// The targets of a batch: class labels, or real values `(rows, outputs)`.
pub enum BatchTargets<'a> {
    /// Class labels, u32 `(rows)`.
    Classes(&'a Tensor),
    /// Values `(rows, outputs)`: 0/1 for binary, standardized targets, the standardized input.
    Values(&'a Tensor),
}

/// The batch-mean loss of `raw` outputs (before the last layer's activation) against `targets`,
/// as a candle expression the gradient flows through.
pub fn loss(task: Task, raw: &Tensor, targets: BatchTargets<'_>) -> candle_core::Result<Tensor> {
    match (task, targets) {
        (_, BatchTargets::Classes(labels)) => softmax_cross_entropy(raw, labels),
        (Task::Binary, BatchTargets::Values(y)) => {
            // Keras's binary cross-entropy of a sigmoid output, from its logit z, stably:
            // max(z, 0) - z y + ln(1 + e^-|z|)
            let softplus = (raw.abs()?.neg()?.exp()? + 1.0)?.log()?;
            ((raw.relu()? - (raw * y)?)? + softplus)?.mean_all()
        }
        (_, BatchTargets::Values(t)) => (raw - t)?.sqr()?.mean_all(),
    }
}

/// The loss and the score of `raw` outputs (row-major, `outputs` wide) against `labels` (classify,
/// binary) or `targets` (row-major values, the others), computed on the host in f64.
pub fn loss_and_score(task: Task, raw: &[f32], outputs: usize, labels: &[u32], targets: &[f32]) -> (f64, f64) {
    match task {
        Task::Classify => crate::train::model::cross_entropy_and_accuracy(raw, labels, outputs),
        Task::Binary => {
            let (mut loss, mut correct) = (0.0, 0usize);
            for (z, y) in raw.iter().zip(labels) {
                let (z, y) = (*z as f64, *y as f64);
                loss += z.max(0.0) - z * y + (-z.abs()).exp().ln_1p();
                correct += usize::from((z > 0.0) == (y > 0.5));
            }
            let n = labels.len().max(1) as f64;
            (loss / n, correct as f64 / n)
        }
        Task::Regress | Task::Autoencode => {
            let n = targets.len().max(1) as f64;
            let sse: f64 = raw.iter().zip(targets).map(|(z, t)| (*z as f64 - *t as f64).powi(2)).sum();
            (sse / n, r_squared(raw, targets))
        }
    }
}

/// `1 - SSE / SST`, the sum of squares around the targets' mean; 0 for constant targets.
pub fn r_squared(predicted: &[f32], targets: &[f32]) -> f64 {
    let n = targets.len().max(1) as f64;
    let mean = targets.iter().map(|t| *t as f64).sum::<f64>() / n;
    let sst: f64 = targets.iter().map(|t| (*t as f64 - mean).powi(2)).sum();
    let sse: f64 = predicted.iter().zip(targets).map(|(p, t)| (*p as f64 - *t as f64).powi(2)).sum();
    if sst > 0.0 {
        1.0 - sse / sst
    } else {
        0.0
    }
}

/// The area under the ROC curve of `scores` for `positive` rows (the probability that a random
/// positive row scores above a random negative one, ties counting a half); `None` without both.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (pos, neg) = positive.iter().fold((0f64, 0f64), |(p, n), y| if *y { (p + 1.0, n) } else { (p, n + 1.0) });
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    // the rank sum of the positives, ties given their mean rank
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|r| positive[**r]).count() as f64 * mean_rank;
        i = j + 1;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// The threshold on `scores` that classifies `positive` rows best (the most rows right; the
/// midpoint between neighbouring scores), or 0.5 without both kinds of row.
pub fn best_threshold(scores: &[f32], positive: &[bool]) -> f32 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let positives = positive.iter().filter(|p| **p).count();
    if positives == 0 || positives == scores.len() {
        return 0.5;
    }
    // a threshold below everything: every row called positive
    let lowest = scores[order[0]];
    let (mut best, mut best_right, mut right) = (lowest - lowest.abs().max(1.0) * 1e-6, positives, positives);
    for (k, r) in order.iter().enumerate() {
        right = if positive[*r] { right - 1 } else { right + 1 };
        let next = order.get(k + 1).map(|n| scores[*n]);
        if next != Some(scores[*r]) && right > best_right {
            best_right = right;
            best = next.map_or(scores[*r] + 1.0, |n| (scores[*r] + n) / 2.0);
        }
    }
    best
}

/// The `q` quantile (0..=1) of `values`, by linear interpolation between order statistics.
pub fn quantile(values: &[f32], q: f64) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    if sorted.is_empty() {
        return f32::NAN;
    }
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let frac = (at - lo as f64) as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_threshold_and_quantiles_by_hand() {
        let scores = [0.1, 0.4, 0.35, 0.8];
        let positive = [false, false, true, true];
        // pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no, 0.8>both yes: 3 of 4
        assert_eq!(roc_auc(&scores, &positive), Some(0.75));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5), "a tie counts a half");
        assert_eq!(roc_auc(&scores, &[true; 4]), None);
        // sorted 0.1-, 0.35+, 0.4-, 0.8+: cuts between 0.1 and 0.35, or between 0.4 and 0.8, get
        // 3 right; the first is kept
        assert_eq!(best_threshold(&scores, &positive), 0.225);
        assert_eq!(best_threshold(&[0.1, 0.2, 0.7, 0.9], &[false, false, true, true]), 0.45);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 1.0), 3.0);
        assert_eq!(r_squared(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(r_squared(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), 0.0);
    }

    /// The binary loss is Keras's binary cross-entropy of the sigmoid, also for large logits
    /// (where `ln(sigmoid(z))` would be `-inf`), and candle's value equals the host's.
    #[test]
    fn binary_cross_entropy_from_logits_is_stable_and_matches_the_host() {
        let z = [0.0f32, 2.0, -3.0, 100.0, -100.0];
        let y = [1u32, 0, 0, 1, 1];
        let dev = candle_core::Device::Cpu;
        let raw = Tensor::from_slice(&z, (5, 1), &dev).unwrap();
        let t = Tensor::from_slice(&y.map(|v| v as f32), (5, 1), &dev).unwrap();
        let candle = loss(Task::Binary, &raw, BatchTargets::Values(&t)).unwrap().to_scalar::<f32>().unwrap() as f64;
        let (host, accuracy) = loss_and_score(Task::Binary, &z, 1, &y, &[]);
        let exact: f64 = z
            .iter()
            .zip(y)
            .map(|(z, y)| {
                let p = 1.0 / (1.0 + (-*z as f64).exp());
                -(y as f64 * p.max(1e-300).ln() + (1.0 - y as f64) * (1.0 - p).max(1e-300).ln())
            })
            .sum::<f64>()
            / 5.0;
        assert!((host - exact).abs() < 1e-9 * exact.max(1.0), "{host} vs {exact}");
        assert!((candle - host).abs() < 1e-5 * host, "{candle} vs {host}");
        // z > 0 against y: the logit 0 (probability 0.5) is not above the threshold
        assert_eq!(accuracy, 2.0 / 5.0);
    }
}
