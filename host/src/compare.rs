//! The course's comparison: base, L2 and dropout (and, if asked, weight decay and early stopping)
//! trained on one split with the same initial weights and batch order, over one or more seeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::model::Weights;
use crate::progress::{Progress, Reporter};
use crate::report;
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
    /// The last epoch's record.
    pub fn last(&self) -> &EpochRecord {
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
    let report = report::table(&outcomes, &study.seeds, &chosen);
    std::fs::write(staging.path().join("report.md"), &report)?;
    report::val_curves(&outcomes, study.seeds[0], staging.path())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_keeps_the_order_of_the_jobs() {
        assert_eq!(parallel((0..17).collect(), |i: i32| i * i), (0..17).map(|i| i * i).collect::<Vec<_>>());
    }
}
