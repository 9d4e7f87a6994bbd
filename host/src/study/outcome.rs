//! What training one model on one seed produced: its run, its history and its test figures.

use std::path::PathBuf;

use crate::train::run::RunMetrics;
use crate::train::{EpochRecord, Trained};

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
    /// What the model learned.
    pub task: crate::train::task::Task,
    /// Regularizer text.
    pub regularizer: String,
    /// What to change if it diverged ([`crate::train::TrainConfig::divergence_hint`]).
    pub config_hint: &'static str,
}

impl Outcome {
    /// The last epoch's record.
    pub fn last(&self) -> &EpochRecord {
        self.trained.history.last().expect("at least one epoch")
    }

    /// The epoch and value of a training loss that exploded: above a hundred times the loss of a
    /// uniform guess (`ln(classes)`, at least `ln 2`; a standardized regression's mean guess
    /// costs 1), or a final loss ten times the first epoch's. Such a run diverged without
    /// becoming NaN.
    pub fn exploded(&self) -> Option<(usize, f64)> {
        let history = &self.trained.history;
        let uniform = (self.trained.weights.classes().max(2) as f64).ln();
        let peak = history.iter().max_by(|a, b| a.train_loss.total_cmp(&b.train_loss))?;
        let (first, last) = (history.first()?, history.last()?);
        if peak.train_loss > 100.0 * uniform {
            Some((peak.epoch, peak.train_loss))
        } else if last.train_loss > 10.0 * first.train_loss {
            Some((last.epoch, last.train_loss))
        } else {
            None
        }
    }

    /// Train accuracy minus val accuracy, both in inference mode, at the end of training.
    pub fn gap(&self) -> f64 {
        let r = self.last();
        r.train_score - r.val_score
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
