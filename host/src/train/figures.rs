//! What a task adds to a run's test figures (ROC AUC and threshold, errors in the targets' units,
//! the anomaly scores' distribution), from a trained model's raw outputs on the validation and
//! test rows.

use anyhow::Result;

use crate::data::Dataset;
use crate::train::prepare::Prepared;
use crate::train::task::{anomaly_scores, best_threshold, quantile, r_squared, roc_auc, Task, TaskMetrics};

/// What `prepared`'s task adds to the test figures, from the raw outputs (before the last
/// activation) of the validation and the test rows of `data`; `None` for classes.
pub fn task_metrics(
    prepared: &Prepared,
    data: &Dataset,
    val_raw: &[f32],
    test_raw: &[f32],
) -> Result<Option<TaskMetrics>> {
    let (val, test) = (&prepared.split.val, &prepared.split.test);
    let labelled = |rows: &[usize]| -> Vec<bool> {
        if data.labels.is_empty() {
            vec![]
        } else {
            rows.iter().map(|r| data.labels[*r] != 0).collect()
        }
    };
    Ok(match prepared.task {
        Task::Classify => None,
        Task::Binary => {
            let probability =
                |raw: &[f32]| raw.iter().map(|z| (1.0 / (1.0 + (-*z as f64).exp())) as f32).collect::<Vec<_>>();
            let (p_val, p_test) = (probability(val_raw), probability(test_raw));
            let threshold = best_threshold(&p_val, &labelled(val));
            let truth = labelled(test);
            let right = p_test.iter().zip(&truth).filter(|(p, y)| (**p > threshold) == **y).count();
            Some(TaskMetrics::Binary {
                roc_auc: roc_auc(&p_test, &truth),
                threshold,
                accuracy_at_threshold: right as f64 / test.len().max(1) as f64,
            })
        }
        Task::Regress => {
            let (mean, scale) = prepared.target_standardization.unwrap_or((0.0, 1.0));
            let predicted: Vec<f32> = test_raw.iter().map(|z| z * scale + mean).collect();
            let truth: Vec<f32> = test.iter().map(|r| data.targets[*r]).collect();
            let n = truth.len().max(1) as f64;
            let errors = predicted.iter().zip(&truth).map(|(p, t)| (*p as f64 - *t as f64).abs());
            let mae = errors.clone().sum::<f64>() / n;
            let rmse = (errors.map(|e| e * e).sum::<f64>() / n).sqrt();
            Some(TaskMetrics::Regress { mae, rmse, r2: r_squared(&predicted, &truth) })
        }
        Task::Autoencode => {
            let width = prepared.outputs;
            let test_inputs = prepared.standardized(data, test)?.targets;
            let val_scores = anomaly_scores(val_raw, &prepared.val.targets, width);
            let test_scores = anomaly_scores(test_raw, &test_inputs, width);
            let val_flags = labelled(val);
            let normal: Vec<f32> = val_scores
                .iter()
                .enumerate()
                .filter(|(i, _)| !val_flags.get(*i).copied().unwrap_or(false))
                .map(|(_, s)| *s)
                .collect();
            let threshold = quantile(&normal, 0.99);
            let flagged = test_scores.iter().filter(|s| **s > threshold).count() as f64 / test.len().max(1) as f64;
            Some(TaskMetrics::Autoencode {
                threshold,
                quantiles: [0.5, 0.9, 0.99, 1.0].map(|q| quantile(&test_scores, q)),
                flagged,
                roc_auc: roc_auc(&test_scores, &labelled(test)),
            })
        }
    })
}
