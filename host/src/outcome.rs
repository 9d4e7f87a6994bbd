//! What training one model on one seed produced: its run, its history and its test figures.

use std::path::PathBuf;

use crate::run::RunMetrics;
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

    /// True when the training loss ended more than ten times above the first epoch's: it
    /// diverged without becoming NaN.
    pub fn diverged(&self) -> bool {
        let first = self.trained.history.first().map_or(f64::NAN, |r| r.train_loss);
        self.last().train_loss > 10.0 * first
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
