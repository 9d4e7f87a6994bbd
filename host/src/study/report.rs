//! The comparison report: the Markdown table (mean ± std over seeds), the overfitting onset, and
//! the plot of every model's validation curves.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::study::outcome::Outcome;
use crate::study::plot::{self, Chart, Series};
use crate::train::task::{self, Task, TaskMetrics};
use crate::train::EpochRecord;

/// The epoch where overfitting starts: the minimum of the (5-epoch mean) validation loss, if the
/// validation loss then rises by more than 2% while the training loss keeps falling.
pub fn overfitting_onset(history: &[EpochRecord]) -> Option<usize> {
    const WINDOW: usize = 5;
    if history.len() < 2 * WINDOW {
        return None;
    }
    let smooth = |f: fn(&EpochRecord) -> f64| -> Vec<f64> {
        (0..history.len())
            .map(|i| {
                let lo = i.saturating_sub(WINDOW / 2);
                let hi = (i + WINDOW / 2 + 1).min(history.len());
                history[lo..hi].iter().map(f).sum::<f64>() / (hi - lo) as f64
            })
            .collect()
    };
    let val = smooth(|r| r.val_loss);
    let train = smooth(|r| r.train_data_loss);
    let (onset, min) = val.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1))?;
    let end = val.len() - 1;
    (val[end] > min * 1.02 && train[end] < train[onset]).then_some(history[onset].epoch)
}

/// Mean and population standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The comparison table (one row per model; mean ± std over seeds when there are several).
pub fn table(outcomes: &[Outcome], seeds: &[u64], chosen: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    for o in outcomes {
        if !names.contains(&o.name.as_str()) {
            names.push(&o.name);
        }
    }
    let multi = seeds.len() > 1;
    let fmt = |vals: Vec<f64>, digits: usize| {
        let (m, s) = mean_std(&vals);
        if multi {
            format!("{m:.digits$} ± {s:.digits$}")
        } else {
            format!("{m:.digits$}")
        }
    };
    let mut md = String::new();
    let seeds_text = seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let task = outcomes.first().map_or(Task::Classify, |o| o.task);
    let (score, loss) = match task {
        Task::Classify => ("acc", "CE"),
        Task::Binary => ("acc", "BCE"),
        Task::Regress | Task::Autoencode => ("R²", "MSE"),
    };
    let _ = writeln!(md, "# Regularization comparison\n");
    let _ = writeln!(md, "Seeds: {seeds_text}. Same split, initial weights and batch order for every model of a seed.");
    if let Some(weights) = outcomes.first().map(|o| &o.trained.weights) {
        let _ = writeln!(
            md,
            "Layers: {} ({} input).",
            describe_network(&weights.shapes(), weights.input_dims()),
            weights.input_dims()
        );
    }
    let _ = writeln!(
        md,
        "Task: {task}. Scores and losses are in inference mode (no dropout); losses are {} without the L2 term{}.\n",
        task::loss_name(task),
        if matches!(task, Task::Regress | Task::Autoencode) { ", of standardized values" } else { "" }
    );
    let int8 = outcomes.iter().all(|o| o.metrics.int8_test_score.is_some()) && !outcomes.is_empty();
    let extra = task_headers(task);
    let _ = writeln!(
        md,
        "| model | regularizer | test {score} |{} test {loss} |{} final val {score} | best val {score} | best epoch | train−val gap | ‖W‖ per layer | params | train s | overfitting from epoch |",
        if int8 { format!(" int8 test {score} |") } else { String::new() },
        extra.iter().map(|h| format!(" {h} |")).collect::<String>(),
    );
    let _ = writeln!(
        md,
        "|---|---|---|{}---|{}---|---|---|---|---|---|---|---|",
        if int8 { "---|" } else { "" },
        "---|".repeat(extra.len())
    );
    for name in &names {
        let os: Vec<&Outcome> = outcomes.iter().filter(|o| o.name == *name).collect();
        let col = |f: &dyn Fn(&Outcome) -> f64, d| fmt(os.iter().map(|o| f(o)).collect(), d);
        let onsets: Vec<String> = os
            .iter()
            .map(|o| overfitting_onset(&o.trained.history).map_or("none".to_string(), |e| e.to_string()))
            .collect();
        let extra_values: String = (0..extra.len())
            .map(|k| {
                format!(
                    " {} |",
                    col(&|o| task_values(o.metrics.task.as_ref())[k].0, task_values(os[0].metrics.task.as_ref())[k].1)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "| {name}{} | {} | {} |{} {} |{extra_values} {} | {} | {} | {} | {} | {} | {} | {} |",
            if *name == chosen { " (chosen)" } else { "" },
            os[0].regularizer,
            col(&|o| o.metrics.test_score, 4),
            if int8 {
                format!(" {} |", col(&|o| o.metrics.int8_test_score.unwrap_or(f64::NAN), 4))
            } else {
                String::new()
            },
            col(&|o| o.metrics.test_loss, 4),
            col(&|o| o.last().val_score, 4),
            col(&|o| o.trained.history.iter().map(|r| r.val_score).fold(f64::NEG_INFINITY, f64::max), 4),
            col(&|o| o.trained.best_epoch as f64, 0),
            col(&|o| o.gap(), 3),
            (0..os[0].trained.weights.kernel_norms().len())
                .map(|layer| col(&|o| o.trained.weights.kernel_norms()[layer], 2))
                .collect::<Vec<_>>()
                .join(" / "),
            os[0].trained.weights.parameters(),
            col(&|o| o.trained.seconds, 2),
            onsets.join(", "),
        );
    }
    if let Some(note) = task_note(task) {
        let _ = writeln!(md, "\n{note}");
    }
    let _ = writeln!(
        md,
        "\nChosen for export: **{chosen}** (lowest validation loss of the weights it keeps, seed {}). \
         Its dropout, if any, is training-only: the exported artifact has no way to express it.",
        seeds[0]
    );
    let _ = writeln!(
        md,
        "\nOverfitting onset: the epoch of the lowest (5-epoch mean) validation loss, when the validation loss \
         then rises by more than 2% while the training loss still falls. Next steps the course names: early \
         stopping (`--early-stopping N`), data augmentation, weight decay (`--weight-decay D`)."
    );
    md
}

/// The columns a task adds to the table.
fn task_headers(task: Task) -> Vec<&'static str> {
    match task {
        Task::Classify => vec![],
        Task::Binary => vec!["ROC AUC", "threshold", "acc at threshold"],
        Task::Regress => vec!["MAE", "RMSE"],
        Task::Autoencode => vec!["threshold", "median score", "p99 score", "flagged", "ROC AUC"],
    }
}

/// A task's extra figures with their decimals, in [`task_headers`]' order (NaN where absent).
fn task_values(m: Option<&TaskMetrics>) -> Vec<(f64, usize)> {
    let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    match m {
        None => vec![],
        Some(TaskMetrics::Binary { roc_auc, threshold, accuracy_at_threshold }) => {
            vec![(or_nan(*roc_auc), 4), (*threshold as f64, 3), (*accuracy_at_threshold, 4)]
        }
        Some(TaskMetrics::Regress { mae, rmse, .. }) => vec![(*mae, 2), (*rmse, 2)],
        Some(TaskMetrics::Autoencode { threshold, quantiles, flagged, roc_auc }) => vec![
            (*threshold as f64, 4),
            (quantiles[0] as f64, 4),
            (quantiles[2] as f64, 4),
            (*flagged, 3),
            (or_nan(*roc_auc), 4),
        ],
    }
}

/// What the task's columns mean.
fn task_note(task: Task) -> Option<&'static str> {
    match task {
        Task::Classify => None,
        Task::Binary => Some(
            "Binary: accuracy at the probability 0.5 (Keras's metric); the threshold is chosen on the validation \
             rows (most rows right) and travels with the exported model.",
        ),
        Task::Regress => Some(
            "Regression: R² and the loss of standardized targets; MAE and RMSE in the targets' own units (the \
             exported model outputs those units).",
        ),
        Task::Autoencode => Some(
            "Autoencoder: the anomaly score is a row's reconstruction error (mean squared error of standardized \
             values); the threshold is the 99th percentile of the validation rows' normal scores; flagged is the \
             share of test rows above it; ROC AUC scores the test rows' anomaly labels, when the data has them.",
        ),
    }
}

/// A task's test figures in one line (`train` prints it).
pub fn task_summary(m: &TaskMetrics) -> String {
    let auc = |a: &Option<f64>| a.map_or("n/a (one kind of row)".to_string(), |a| format!("{a:.4}"));
    match m {
        TaskMetrics::Binary { roc_auc, threshold, accuracy_at_threshold } => format!(
            "ROC AUC {}, threshold {threshold:.3} (chosen on the validation rows), test accuracy there {accuracy_at_threshold:.4}",
            auc(roc_auc)
        ),
        TaskMetrics::Regress { mae, rmse, r2 } => format!("test MAE {mae:.3}, RMSE {rmse:.3}, R² {r2:.4} (the targets' units)"),
        TaskMetrics::Autoencode { threshold, quantiles, flagged, roc_auc } => format!(
            "anomaly threshold {threshold:.4} (99th percentile of the validation rows' normal scores); test scores median {:.4}, p90 {:.4}, p99 {:.4}, max {:.4}; {:.1}% flagged; ROC AUC {}",
            quantiles[0],
            quantiles[1],
            quantiles[2],
            quantiles[3],
            100.0 * flagged,
            auc(roc_auc)
        ),
    }
}

/// The plot file stem of a task's score: `accuracy`, or `r2`.
pub fn score_stem(task: Task) -> &'static str {
    match task {
        Task::Classify | Task::Binary => "accuracy",
        Task::Regress | Task::Autoencode => "r2",
    }
}

/// `val_loss` and `val_accuracy` (or `val_r2`) plots of every model of `seed`.
pub fn val_curves(outcomes: &[Outcome], seed: u64, dir: &Path) -> Result<()> {
    let of_seed: Vec<&Outcome> = outcomes.iter().filter(|o| o.seed == seed).collect();
    let names: Vec<String> = of_seed.iter().map(|o| o.name.clone()).collect();
    let task = of_seed.first().map_or(Task::Classify, |o| o.task);
    let score_stem = format!("val_{}", score_stem(task));
    let score_title = format!("validation {}", task::score_name(task));
    for (stem, title, y, f) in [
        (
            "val_loss",
            "validation loss",
            task::loss_name(task),
            (|r: &EpochRecord| r.val_loss) as fn(&EpochRecord) -> f64,
        ),
        (score_stem.as_str(), score_title.as_str(), task::score_name(task), |r: &EpochRecord| r.val_score),
    ] {
        let series = of_seed
            .iter()
            .zip(&names)
            .map(|(o, name)| Series {
                name,
                dashed: false,
                points: o.trained.history.iter().map(|r| (r.epoch as f64, f(r))).collect(),
            })
            .collect();
        let title = format!("{title} per model (seed {seed})");
        plot::write(&Chart { title: &title, x_label: "epoch", y_label: y, series, log_x: false }, &dir.join(stem))?;
    }
    Ok(())
}

/// A run's learning curves: `loss` and `accuracy` (or `r2`) plots in its directory.
pub fn learning_curves(dir: &Path, name: &str, task: Task, history: &[EpochRecord]) -> Result<()> {
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
            y_label: task::loss_name(task),
            series: vec![line("train", false, |r| r.train_data_loss), line("val", false, |r| r.val_loss)],
            log_x: false,
        },
        &dir.join("loss"),
    )?;
    let acc_title = format!("{name}: {}", task::score_name(task));
    plot::write(
        &Chart {
            title: &acc_title,
            x_label: "epoch",
            y_label: task::score_name(task),
            series: vec![
                line("train (inference mode)", false, |r| r.train_score),
                line("train (as trained)", true, |r| r.train_score_running),
                line("val", false, |r| r.val_score),
            ],
            log_x: false,
        },
        &dir.join(score_stem(task)),
    )
}

/// A network layer by layer as reports show it: `Conv2D(28x28x1 -> 26x26x8, ...) ReLU, ...,
/// Dense(32 -> 10) linear`.
pub fn describe_network(shapes: &[dropship_shared::LayerShape], input: dropship_shared::Dims) -> String {
    let mut map = input;
    let mut parts = Vec::with_capacity(shapes.len());
    for shape in shapes {
        parts.push(format!("{} {}", shape.describe(map), shape.activation));
        map = shape.output_dims(map).unwrap_or(map);
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(val: &[f64], train: &[f64]) -> Vec<EpochRecord> {
        val.iter()
            .zip(train)
            .enumerate()
            .map(|(i, (v, t))| EpochRecord {
                epoch: i + 1,
                train_loss: *t,
                train_data_loss: *t,
                train_score_running: 0.0,
                train_score: 0.0,
                val_loss: *v,
                val_score: 0.0,
                seconds: 0.0,
            })
            .collect()
    }

    #[test]
    fn overfitting_starts_where_val_loss_turns_up_while_train_loss_falls() {
        // val falls to its minimum at epoch 10, then rises; train keeps falling
        let val: Vec<f64> = (0..30).map(|i| 1.0 + 0.01 * (i as f64 - 9.0).powi(2)).collect();
        let train: Vec<f64> = (0..30).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        assert_eq!(overfitting_onset(&history(&val, &train)), Some(10));
        // val flat at the end: no overfitting
        let flat: Vec<f64> = (0..30).map(|i| 1.0 / (i as f64 + 1.0) + 0.1).collect();
        assert_eq!(overfitting_onset(&history(&flat, &train)), None);
        // val rises but train rises too (diverging, not overfitting)
        let rising: Vec<f64> = (0..30).map(|i| i as f64).collect();
        assert_eq!(overfitting_onset(&history(&val, &rising)), None);
    }
}
