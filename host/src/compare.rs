//! The course's comparison: base, L2 and dropout (and, if asked, weight decay and early stopping)
//! trained on one split with the same initial weights and batch order, over one or more seeds;
//! and sweeps of the dropout rate and the L2 strength.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::model::Weights;
use crate::plot::{self, Chart, Series};
use crate::progress::{Progress, Reporter};
use crate::rng::{stream, Stream};
use crate::run::{self, RunConfig, RunMetrics, Staging};
use crate::split::{self, Split};
use crate::train::{self, EpochRecord, Prepared, TrainConfig, Trained};

/// A named model to train.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Short name (base, l2, dropout, ...), also the run directory's name.
    pub name: String,
    /// How it is trained.
    pub config: TrainConfig,
}

/// How the data is split.
#[derive(Clone, Copy, Debug)]
pub struct SplitSpec {
    /// Share of rows for validation.
    pub val: f64,
    /// Share of rows for test.
    pub test: f64,
}

/// The outcome of one variant on one seed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Variant name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// Training record.
    pub trained: Trained,
    /// Test figures.
    pub metrics: RunMetrics,
    /// Regularizer text.
    pub regularizer: String,
}

impl Outcome {
    fn last(&self) -> &EpochRecord {
        self.trained.history.last().expect("at least one epoch")
    }

    /// Train accuracy minus val accuracy, both in inference mode, at the end of training.
    pub fn gap(&self) -> f64 {
        let r = self.last();
        r.train_accuracy - r.val_accuracy
    }

    /// Validation loss of the weights that were kept (the best epoch's, when early stopping restored them).
    pub fn final_val_loss(&self) -> f64 {
        if self.trained.restored_best {
            self.trained.history[self.trained.best_epoch - 1].val_loss
        } else {
            self.last().val_loss
        }
    }
}

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
    let train = smooth(|r| r.train_cross_entropy);
    let (onset, min) = val.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1))?;
    let end = val.len() - 1;
    (val[end] > min * 1.02 && train[end] < train[onset]).then_some(history[onset].epoch)
}

/// The course's three models, plus weight decay and early stopping when asked.
pub fn course_variants(
    base: &TrainConfig,
    l2: f64,
    l2_layers: train::L2Layers,
    dropout: f32,
    weight_decay: Option<f64>,
    early_stopping: Option<usize>,
) -> Vec<Variant> {
    use train::Regularizer::*;
    let with = |name: &str, regularizer, early_stopping| Variant {
        name: name.to_string(),
        config: TrainConfig { regularizer, early_stopping, ..base.clone() },
    };
    let mut v = vec![
        with("base", None, base.early_stopping),
        with("l2", L2 { lambda: l2, layers: l2_layers }, base.early_stopping),
        with("dropout", Dropout { rate: dropout }, base.early_stopping),
    ];
    if let Some(decay) = weight_decay {
        v.push(with("weight-decay", WeightDecay { decay }, base.early_stopping));
    }
    if let Some(patience) = early_stopping {
        v.push(with("early-stop", None, Some(patience)));
    }
    v
}

/// Runs `jobs` on as many threads as there are cores, in order of submission, keeping order.
pub fn parallel<T: Send, R: Send>(jobs: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let queue: Vec<Mutex<Option<T>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results: Vec<Mutex<Option<R>>> = queue.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = queue.get(i) else { break };
                let job = slot.lock().expect("job lock").take().expect("each job taken once");
                *results[i].lock().expect("result lock") = Some(work(job));
            });
        }
    });
    results.into_iter().map(|r| r.into_inner().expect("result lock").expect("every job ran")).collect()
}

/// Everything the comparison needs besides the variants.
pub struct Study<'a> {
    /// The data.
    pub data: &'a Dataset,
    /// How to split it.
    pub split: SplitSpec,
    /// Seeds to repeat everything with.
    pub seeds: Vec<u64>,
    /// Where the runs and the report go (written atomically).
    pub out: PathBuf,
    /// Replace an existing output directory.
    pub overwrite: bool,
}

/// The result of [`compare`].
pub struct Comparison {
    /// Per seed, per variant.
    pub outcomes: Vec<Outcome>,
    /// The Markdown report.
    pub report: String,
    /// The model chosen for export: lowest validation loss of the kept weights, first seed.
    pub chosen: String,
    /// The output directory.
    pub out: PathBuf,
}

/// What `report.json` records for tools (the demo reads the chosen run from it).
#[derive(Serialize, Deserialize)]
pub struct ReportIndex {
    /// Name of the chosen model.
    pub chosen: String,
    /// Its run directory, relative to the report.
    pub chosen_run: PathBuf,
    /// Every run directory, relative to the report.
    pub runs: Vec<PathBuf>,
}

/// Trains every variant on every seed and writes runs, report and plots under `study.out`.
pub fn compare(study: &Study<'_>, variants: &[Variant], reporter: &Reporter) -> Result<Comparison> {
    for v in variants {
        v.config.validate()?;
    }
    let staging = Staging::new(&study.out, study.overwrite)?;
    let multi_seed = study.seeds.len() > 1;
    let mut jobs = Vec::new();
    for &seed in &study.seeds {
        let split = split::stratified(study.data, study.split.val, study.split.test, seed)?;
        let prepared = std::sync::Arc::new(Prepared::new(study.data, &split));
        let initial = std::sync::Arc::new(Weights::glorot(
            prepared.input,
            variants[0].config.hidden,
            prepared.classes,
            &mut stream(seed, Stream::Init),
        ));
        let seed_dir =
            if multi_seed { staging.path().join(format!("seed-{seed}")) } else { staging.path().to_path_buf() };
        std::fs::create_dir_all(&seed_dir)?;
        write_test_rows(study.data, &split, &seed_dir.join("test.csv"))?;
        for v in variants {
            let config = TrainConfig { seed, ..v.config.clone() };
            let label = if multi_seed { format!("{}#{seed}", v.name) } else { v.name.clone() };
            let progress = reporter.model(&label, config.epochs);
            jobs.push((
                v.name.clone(),
                config,
                prepared.clone(),
                initial.clone(),
                split.clone(),
                seed_dir.clone(),
                progress,
            ));
        }
    }
    let results = parallel(jobs, |(name, config, prepared, initial, split, dir, progress)| {
        train_and_write(study.data, &name, &config, &prepared, &initial, &split, &dir, &progress)
            .with_context(|| format!("model {name}, seed {}", config.seed))
    });
    let mut outcomes = results.into_iter().collect::<Result<Vec<_>>>()?;
    let chosen = outcomes
        .iter()
        .filter(|o| o.seed == study.seeds[0])
        .min_by(|a, b| a.final_val_loss().total_cmp(&b.final_val_loss()))
        .map(|o| o.name.clone())
        .context("no model was trained")?;
    let report = report(&outcomes, &study.seeds, &chosen);
    std::fs::write(staging.path().join("report.md"), &report)?;
    val_curves(&outcomes, study.seeds[0], staging.path())?;
    let staged = staging.path().to_path_buf();
    let relative = |o: &Outcome| o.run_dir.strip_prefix(&staged).map(Path::to_path_buf).unwrap_or_default();
    let index = ReportIndex {
        chosen: chosen.clone(),
        chosen_run: outcomes
            .iter()
            .find(|o| o.name == chosen && o.seed == study.seeds[0])
            .map(relative)
            .unwrap_or_default(),
        runs: outcomes.iter().map(relative).collect(),
    };
    std::fs::write(staging.path().join("report.json"), serde_json::to_vec_pretty(&index)?)?;
    let out = staging.commit()?;
    for o in &mut outcomes {
        o.run_dir = out.join(relative(o));
    }
    Ok(Comparison { outcomes, report, chosen, out })
}

/// Trains one model and writes its run directory into `dir`.
#[allow(clippy::too_many_arguments)]
pub fn train_and_write(
    data: &Dataset,
    name: &str,
    config: &TrainConfig,
    prepared: &Prepared,
    initial: &Weights,
    split: &Split,
    dir: &Path,
    progress: &Progress,
) -> Result<Outcome> {
    let trained = train::train(prepared, config, initial, progress)?;
    let (test_cross_entropy, test_accuracy) = train::evaluate(&trained.weights, &prepared.test)?;
    let metrics = RunMetrics {
        test_accuracy,
        test_cross_entropy,
        best_epoch: trained.best_epoch,
        epochs_run: trained.history.len(),
        seconds: trained.seconds,
    };
    let run_config = RunConfig {
        name: name.to_string(),
        data: data.source.clone(),
        label: data.label_name.clone(),
        features: data.feature_names.clone(),
        classes: data.classes,
        split_rows: [split.train.len(), split.val.len(), split.test.len()],
        train: config.clone(),
    };
    let run_dir = dir.join(name);
    std::fs::create_dir_all(&run_dir)?;
    run::write_run(&run_dir, &run_config, &prepared.standardization, &trained, &metrics)?;
    let mut regularizer = config.regularizer.to_string();
    if let Some(p) = config.early_stopping {
        write!(regularizer, ", early stopping (patience {p})")?;
    }
    Ok(Outcome { name: name.to_string(), seed: config.seed, run_dir, trained, metrics, regularizer })
}

/// The raw test rows with their labels, in the data's own columns, for `predict` and the device.
pub fn write_test_rows(data: &Dataset, split: &Split, path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    let mut header = data.feature_names.clone();
    header.push(data.label_name.clone());
    w.write_record(&header)?;
    for r in &split.test {
        let mut row: Vec<String> = data.row(*r).iter().map(|v| v.to_string()).collect();
        row.push(data.labels[*r].to_string());
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The comparison table (one row per model; mean ± std over seeds when there are several).
pub fn report(outcomes: &[Outcome], seeds: &[u64], chosen: &str) -> String {
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
    let _ = writeln!(md, "# Regularization comparison\n");
    let _ = writeln!(md, "Seeds: {seeds_text}. Same split, initial weights and batch order for every model of a seed.");
    let _ = writeln!(
        md,
        "Accuracies and losses are in inference mode (no dropout); losses are cross-entropy without the L2 term.\n"
    );
    let _ = writeln!(
        md,
        "| model | regularizer | test acc | test CE | final val acc | best val acc | best epoch | train−val gap | ‖W hidden‖ | ‖W output‖ | params | train s | overfitting from epoch |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for name in &names {
        let os: Vec<&Outcome> = outcomes.iter().filter(|o| o.name == *name).collect();
        let col = |f: &dyn Fn(&Outcome) -> f64, d| fmt(os.iter().map(|o| f(o)).collect(), d);
        let onsets: Vec<String> = os
            .iter()
            .map(|o| overfitting_onset(&o.trained.history).map_or("none".to_string(), |e| e.to_string()))
            .collect();
        let _ = writeln!(
            md,
            "| {name}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if *name == chosen { " (chosen)" } else { "" },
            os[0].regularizer,
            col(&|o| o.metrics.test_accuracy, 4),
            col(&|o| o.metrics.test_cross_entropy, 4),
            col(&|o| o.last().val_accuracy, 4),
            col(&|o| o.trained.history.iter().map(|r| r.val_accuracy).fold(0.0, f64::max), 4),
            col(&|o| o.trained.best_epoch as f64, 0),
            col(&|o| o.gap(), 3),
            col(&|o| o.trained.weights.kernel_norms()[0], 2),
            col(&|o| o.trained.weights.kernel_norms()[1], 2),
            os[0].trained.weights.parameters(),
            col(&|o| o.trained.seconds, 2),
            onsets.join(", "),
        );
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

fn val_curves(outcomes: &[Outcome], seed: u64, dir: &Path) -> Result<()> {
    let of_seed: Vec<&Outcome> = outcomes.iter().filter(|o| o.seed == seed).collect();
    let names: Vec<String> = of_seed.iter().map(|o| o.name.clone()).collect();
    for (stem, title, y, f) in [
        ("val_loss", "validation loss", "cross-entropy", (|r: &EpochRecord| r.val_loss) as fn(&EpochRecord) -> f64),
        ("val_accuracy", "validation accuracy", "accuracy", |r: &EpochRecord| r.val_accuracy),
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

/// One point of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// Which hyper-parameter (dropout or l2).
    pub parameter: String,
    /// Its value.
    pub value: f64,
    /// Final train accuracy (inference mode).
    pub train_accuracy: f64,
    /// Final validation accuracy.
    pub val_accuracy: f64,
    /// Best validation accuracy.
    pub best_val_accuracy: f64,
    /// Final validation loss.
    pub val_loss: f64,
}

/// A sweep over dropout rates and L2 strengths on one split.
pub struct Sweep<'a> {
    /// The data.
    pub data: &'a Dataset,
    /// How to split it.
    pub split: SplitSpec,
    /// Everything but the regularizer.
    pub base: TrainConfig,
    /// Dropout rates to try.
    pub rates: Vec<f32>,
    /// L2 strengths to try.
    pub lambdas: Vec<f64>,
    /// Kernels the L2 strengths apply to.
    pub layers: train::L2Layers,
    /// Output directory (written atomically).
    pub out: PathBuf,
    /// Replace an existing output directory.
    pub overwrite: bool,
}

/// Trains one model per dropout rate and per L2 strength on one split and plots validation
/// accuracy against the value: too much regularization underfits (train accuracy falls too).
pub fn sweep(spec: &Sweep<'_>, reporter: &Reporter) -> Result<Vec<SweepPoint>> {
    let Sweep { data, split: split_spec, base, rates, lambdas, layers, out, overwrite } = spec;
    let (data, layers, overwrite) = (*data, *layers, *overwrite);
    use train::Regularizer;
    let mut configs: Vec<(String, f64, TrainConfig)> = Vec::new();
    for r in rates {
        configs.push((
            "dropout".into(),
            r.to_string().parse().unwrap_or(*r as f64), // 0.2, not 0.20000000298023224
            TrainConfig { regularizer: Regularizer::Dropout { rate: *r }, ..base.clone() },
        ));
    }
    for l in lambdas {
        configs.push((
            "l2".into(),
            *l,
            TrainConfig { regularizer: Regularizer::L2 { lambda: *l, layers }, ..base.clone() },
        ));
    }
    for (_, _, c) in &configs {
        c.validate()?;
    }
    let staging = Staging::new(out, overwrite)?;
    let split = split::stratified(data, split_spec.val, split_spec.test, base.seed)?;
    let prepared = Prepared::new(data, &split);
    let initial = Weights::glorot(prepared.input, base.hidden, prepared.classes, &mut stream(base.seed, Stream::Init));
    let jobs: Vec<_> = configs
        .into_iter()
        .map(|(p, v, c)| {
            let progress = reporter.model(&format!("{p}={v}"), c.epochs);
            (p, v, c, progress)
        })
        .collect();
    let points = parallel(jobs, |(parameter, value, config, progress)| -> Result<SweepPoint> {
        let t = train::train(&prepared, &config, &initial, &progress)?;
        let last = t.history.last().expect("at least one epoch");
        Ok(SweepPoint {
            parameter,
            value,
            train_accuracy: last.train_accuracy,
            val_accuracy: last.val_accuracy,
            best_val_accuracy: t.history.iter().map(|r| r.val_accuracy).fold(0.0, f64::max),
            val_loss: last.val_loss,
        })
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let mut md = String::from("# Sweep\n\n| parameter | value | train acc | final val acc | best val acc | final val loss |\n|---|---|---|---|---|---|\n");
    for p in &points {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} |",
            p.parameter, p.value, p.train_accuracy, p.val_accuracy, p.best_val_accuracy, p.val_loss
        );
    }
    std::fs::write(staging.path().join("sweep.md"), &md)?;
    std::fs::write(staging.path().join("sweep.json"), serde_json::to_vec_pretty(&points)?)?;
    for (parameter, x_label, log_x) in [("dropout", "dropout rate", false), ("l2", "L2 strength (lambda)", true)] {
        let of: Vec<&SweepPoint> =
            points.iter().filter(|p| p.parameter == parameter && (!log_x || p.value > 0.0)).collect();
        if of.is_empty() {
            continue;
        }
        let line = |name, f: fn(&SweepPoint) -> f64| Series {
            name,
            dashed: false,
            points: of.iter().map(|p| (p.value, f(p))).collect(),
        };
        let title = format!("accuracy against the {x_label}");
        plot::write(
            &Chart {
                title: &title,
                x_label,
                y_label: "accuracy",
                series: vec![
                    line("val (final)", |p| p.val_accuracy),
                    line("train (inference mode)", |p| p.train_accuracy),
                ],
                log_x,
            },
            &staging.path().join(format!("sweep_{parameter}")),
        )?;
    }
    print!("{md}");
    staging.commit()?;
    Ok(points)
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
                train_cross_entropy: *t,
                train_accuracy_running: 0.0,
                train_accuracy: 0.0,
                val_loss: *v,
                val_accuracy: 0.0,
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

    #[test]
    fn parallel_keeps_the_order_of_the_jobs() {
        assert_eq!(parallel((0..17).collect(), |i: i32| i * i), (0..17).map(|i| i * i).collect::<Vec<_>>());
    }
}
