//! Stage 2, training: the model built from a network description, the optimizer, the training
//! loop ([`train`], re-exported from `fit`), what every model of a seed shares, progress bars, and
//! the run directory a trained model is stored in. Depends on the data stage and the foundation.

pub mod adam;
pub mod batch_norm;
pub mod conv_ops;
pub mod elementwise;
pub mod features;
pub mod figures;
mod fit;
pub mod matmul;
pub mod model;
pub mod prepare;
pub mod progress;
pub mod run;
pub mod task;

pub use fit::*;
