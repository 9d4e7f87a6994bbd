//! Sweeps of the dropout rate, the L2 strength and the augmentation noise on one split: validation and train accuracy
//! against the value, which shows the course's trap of a rate that underfits.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::data::augment::Augment;
use crate::data::Dataset;
use crate::output::Staging;
use crate::study::compare::parallel;
use crate::study::plot::{self, Chart, Series};
use crate::train::prepare::SplitSpec;
use crate::train::progress::Reporter;
use crate::train::{self, TrainConfig};

/// One point of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// Which hyper-parameter (dropout or l2).
    pub parameter: String,
    /// Its value.
    pub value: f64,
    /// Final train accuracy (inference mode).
    pub train_score: f64,
    /// Final validation accuracy.
    pub val_score: f64,
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
    /// Gaussian-noise augmentation levels to try.
    pub noise: Vec<f32>,
    /// Output directory (written atomically).
    pub out: PathBuf,
    /// Replace an existing output directory.
    pub overwrite: bool,
}

/// Trains one model per dropout rate and per L2 strength on one split and plots validation
/// accuracy against the value: too much regularization underfits (train accuracy falls too).
pub fn sweep(spec: &Sweep<'_>, reporter: &Reporter) -> Result<Vec<SweepPoint>> {
    let Sweep { data, split: split_spec, base, rates, lambdas, layers, noise, out, overwrite } = spec;
    let (data, overwrite) = (*data, *overwrite);
    use train::Regularizer;
    let mut configs: Vec<(String, f64, TrainConfig)> = Vec::new();
    for r in rates {
        configs.push((
            "dropout".into(),
            r.to_string().parse().unwrap_or(*r as f64), // 0.2, not 0.20000000298023224
            TrainConfig { regularizer: Regularizer::Dropout { rates: vec![*r] }, ..base.clone() },
        ));
    }
    for l in lambdas {
        configs.push((
            "l2".into(),
            *l,
            TrainConfig { regularizer: Regularizer::L2 { lambda: *l, layers: layers.clone() }, ..base.clone() },
        ));
    }
    for sigma in noise {
        let augment = Augment { noise: *sigma, ..Augment::default() };
        let value = sigma.to_string().parse().unwrap_or(*sigma as f64);
        configs.push(("noise".into(), value, TrainConfig { augment, ..base.clone() }));
    }
    if let Some(s) = noise.iter().find(|s| !(**s >= 0.0 && s.is_finite())) {
        anyhow::bail!("--noise-levels: {s} is not a non-negative number");
    }
    if let Some(r) = rates.iter().find(|r| !(0.0..1.0).contains(*r)) {
        anyhow::bail!("--dropout-rates: {r} is not in [0, 1)");
    }
    if let Some(l) = lambdas.iter().find(|l| !(**l >= 0.0 && l.is_finite())) {
        anyhow::bail!("--l2-strengths: {l} is not a non-negative number");
    }
    for (_, _, c) in &configs {
        c.validate()?;
        c.check_size(data.width(), data.classes)?;
    }
    let staging = Staging::new(out, overwrite, &data.files())?;
    let prepared = base.prepared(data, *split_spec, base.seed)?;
    let jobs: Vec<_> = configs
        .into_iter()
        .map(|(p, v, c)| {
            let progress = reporter.model(&format!("{p}={v}"), c.epochs);
            (p, v, c, progress)
        })
        .collect();
    let points = parallel(jobs, |(parameter, value, config, progress)| -> Result<SweepPoint> {
        let t = train::train(&prepared, &config, &prepared.initial, &mut |r| progress.epoch(r));
        progress.finish();
        let t = t?;
        let last = t.history.last().expect("at least one epoch");
        Ok(SweepPoint {
            parameter,
            value,
            train_score: last.train_score,
            val_score: last.val_score,
            best_val_accuracy: t.history.iter().map(|r| r.val_score).fold(0.0, f64::max),
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
            p.parameter, p.value, p.train_score, p.val_score, p.best_val_accuracy, p.val_loss
        );
    }
    std::fs::write(staging.path().join("sweep.md"), &md)?;
    std::fs::write(staging.path().join("sweep.json"), serde_json::to_vec_pretty(&points)?)?;
    let axes = [("dropout", "dropout rate", false), ("l2", "L2 strength (lambda)", true), ("noise", "noise σ", false)];
    for (parameter, x_label, log_x) in axes {
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
                series: vec![line("val (final)", |p| p.val_score), line("train (inference mode)", |p| p.train_score)],
                log_x,
            },
            &staging.path().join(format!("sweep_{parameter}")),
        )?;
    }
    print!("{md}");
    staging.commit()?;
    Ok(points)
}
