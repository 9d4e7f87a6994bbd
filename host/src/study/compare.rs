//! The course's comparison: base, L2 and dropout (and, if asked, weight decay and early stopping)
//! trained on one split with the same initial weights and batch order, over one or more seeds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::augment::Augment;
use crate::data::Dataset;
use crate::output::Staging;
use crate::study::outcome::Outcome;
use crate::study::report;
use crate::train::prepare::{Prepared, SplitSpec};
use crate::train::progress::{Progress, Reporter};
use crate::train::run::{self, RunConfig, RunMetrics};
use crate::train::task::Task;
use crate::train::{self, TrainConfig};

/// A named model to train.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Short name (base, l2, dropout, ...), also the run directory's name.
    pub name: String,
    /// How it is trained.
    pub config: TrainConfig,
}

impl Variant {
    /// A variant named after its regularization ([`TrainConfig::model_name`]).
    pub fn new(config: TrainConfig) -> Self {
        Self { name: config.model_name(), config }
    }
}

/// The models a comparison may add to the course's three.
#[derive(Clone, Debug, Default)]
pub struct ExtraModels {
    /// A `weight-decay` model (AdamW) of this decay.
    pub weight_decay: Option<f64>,
    /// An `early-stop` model of this patience.
    pub early_stopping: Option<usize>,
    /// An `augment` model.
    pub augment: Option<Augment>,
    /// A `batchnorm` model: a BatchNorm after every hidden Dense, no regularizer.
    pub batch_norm: bool,
}

/// The course's three models, plus the [`ExtraModels`] asked for.
pub fn course_variants(
    base: &TrainConfig,
    l2: f64,
    l2_layers: train::L2Layers,
    dropout: Vec<f32>,
    extra: ExtraModels,
) -> Vec<Variant> {
    use train::Regularizer::*;
    let mut v: Vec<Variant> = [None, L2 { lambda: l2, layers: l2_layers }, Dropout { rates: dropout }]
        .into_iter()
        .chain(extra.weight_decay.map(|decay| WeightDecay { decay }))
        .map(|regularizer| Variant::new(TrainConfig { regularizer, ..base.clone() }))
        .collect();
    if extra.batch_norm {
        v.push(Variant::new(TrainConfig { regularizer: None, batch_norm: true, ..base.clone() }));
    }
    if let Some(patience) = extra.early_stopping {
        v.push(Variant {
            name: "early-stop".to_string(),
            config: TrainConfig { regularizer: None, early_stopping: Some(patience), ..base.clone() },
        });
    }
    if let Some(augment) = extra.augment {
        v.push(Variant::new(TrainConfig { regularizer: None, augment, ..base.clone() }));
    }
    v
}

/// Runs `jobs` on up to two threads per core, in order of submission, keeping order. With one
/// thread per core, the course's three models on two cores would train two, then one: the
/// last waits for a whole model's time; sharing the cores three ways ends them all sooner.
pub fn parallel<T: Send, R: Send>(jobs: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (2 * cores).min(jobs.len().max(1));
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
    /// Also quantize every trained model to int8 and report its test accuracy.
    pub int8: bool,
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
        v.config.check_size(study.data.width(), crate::train::task::output_layer(v.config.task, study.data).units)?;
        v.config.augment.validate(study.data.width()).map_err(train::ConfigError::from)?;
    }
    let staging = Staging::new(&study.out, study.overwrite, &study.data.files())?;
    let multi_seed = study.seeds.len() > 1;
    let mut jobs = Vec::new();
    let first = &variants.first().context("no model to train")?.config;
    for &seed in &study.seeds {
        let prepared = std::sync::Arc::new(first.prepared(study.data, study.split, seed)?);
        let seed_dir =
            if multi_seed { staging.path().join(format!("seed-{seed}")) } else { staging.path().to_path_buf() };
        // one level only: a partial directory removed by a signal must not be made again
        if seed_dir != staging.path() {
            std::fs::create_dir(&seed_dir)?;
        }
        write_test_rows(study.data, &prepared.split.test, &seed_dir.join("test.csv"))?;
        for v in variants {
            let config = TrainConfig { seed, ..v.config.clone() };
            let label = if multi_seed { format!("{}#{seed}", v.name) } else { v.name.clone() };
            let progress = reporter.model(&label, config.epochs);
            jobs.push((v.name.clone(), config, prepared.clone(), seed_dir.clone(), progress));
        }
    }
    let results = parallel(jobs, |(name, config, prepared, dir, progress)| {
        train_and_write(study.data, &name, &config, &prepared, &dir, &progress, study.int8)
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

/// Trains one model from the seed's initial weights and writes its run directory into `dir`.
pub fn train_and_write(
    data: &Dataset,
    name: &str,
    config: &TrainConfig,
    prepared: &Prepared,
    dir: &Path,
    progress: &Progress,
    int8: bool,
) -> Result<Outcome> {
    let trained = train::train(prepared, config, &prepared.initial, &mut |r| progress.epoch(r));
    progress.finish();
    let trained = trained?;
    let (test_loss, test_score) = train::evaluate_test(&trained.weights, prepared, data)?;
    let task_metrics = match prepared.task {
        Task::Classify => None,
        _ => {
            let val_raw = train::raw_outputs(&trained.weights, prepared, data, &prepared.split.val)?;
            let test_raw = train::raw_outputs(&trained.weights, prepared, data, &prepared.split.test)?;
            crate::train::figures::task_metrics(prepared, data, &val_raw, &test_raw)?
        }
    };
    let metrics = RunMetrics {
        test_score,
        test_loss,
        best_epoch: trained.best_epoch,
        epochs_run: trained.history.len(),
        seconds: trained.seconds,
        int8_test_score: None,
        task: task_metrics,
    };
    let run_config = RunConfig {
        name: name.to_string(),
        data: data.source.clone(),
        label: data.label_name.clone(),
        features: data.feature_names.clone(),
        classes: data.classes,
        split_rows: [prepared.split.train.len(), prepared.split.val.len(), prepared.split.test.len()],
        train: config.clone(),
        train_rows: prepared.split.train.iter().map(|r| *r as u32).collect(),
    };
    let mut metrics = metrics;
    let head = run::OutputHead::of(prepared, metrics.task.as_ref());
    if int8 {
        metrics.int8_test_score = Some(int8_test_score(data, prepared, &trained.weights, &head)?);
    }
    let run_dir = dir.join(name);
    std::fs::create_dir(&run_dir)?;
    run::write_run(&run_dir, &run_config, &prepared.standardization, &trained, &metrics, &head)?;
    crate::study::report::learning_curves(&run_dir, name, config.task, &trained.history)?;
    let mut regularizer = config.regularization();
    if let Some(p) = config.early_stopping {
        write!(regularizer, ", early stopping (patience {p})")?;
    }
    Ok(Outcome {
        name: name.to_string(),
        seed: config.seed,
        run_dir,
        trained,
        metrics,
        task: config.task,
        regularizer,
        config_hint: config.divergence_hint(),
    })
}

/// The test score of `weights` quantized to int8 (calibrated on the seed's training rows): the
/// task's score of the int8 model's outputs.
fn int8_test_score(
    data: &Dataset,
    prepared: &Prepared,
    weights: &crate::train::model::Weights,
    head: &run::OutputHead,
) -> Result<f64> {
    let saved = crate::train::run::SavedModel {
        weights: weights.clone(),
        standardization: prepared.standardization.clone(),
        provenance: String::new(),
        head: head.clone(),
    };
    let net = saved.network();
    let rows = |part: &[usize]| part.iter().map(|r| data.row(*r)).collect::<Vec<_>>();
    let int8 = crate::deploy::quantize::quantize(
        &net,
        &crate::deploy::quantize::calibrate(&net, rows(&prepared.split.train).into_iter()),
    )?;
    let test = &prepared.split.test;
    let outputs: Vec<f32> = rows(test).iter().flat_map(|r| int8.logits(r, crate::network::InputForm::Raw)).collect();
    let labels: Vec<u32> = if data.labels.is_empty() { vec![] } else { test.iter().map(|r| data.labels[*r]).collect() };
    let truth = match prepared.task {
        Task::Regress => test.iter().map(|r| data.targets[*r]).collect(),
        Task::Autoencode => prepared.standardized(data, test)?.targets,
        _ => vec![],
    };
    Ok(crate::train::task::output_score(prepared.task, &outputs, prepared.outputs, &labels, &truth))
}

/// The raw test rows with their labels, in the data's own columns, for `predict` and the device.
pub fn write_test_rows(data: &Dataset, test_rows: &[usize], path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    let mut header = data.feature_names.clone();
    let labelled = !data.targets.is_empty();
    if labelled {
        header.push(data.label_name.clone());
    }
    w.write_record(&header)?;
    for r in test_rows {
        let mut row: Vec<String> = data.row(*r).iter().map(|v| v.to_string()).collect();
        match (data.labels.get(*r), labelled) {
            (Some(label), _) => row.push(label.to_string()),
            (None, true) => row.push(data.targets[*r].to_string()),
            (None, false) => {}
        }
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
