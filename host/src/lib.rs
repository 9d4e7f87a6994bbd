//! dropship's host side: data, training with candle (Keras semantics), comparison, plots, export.
//!
//! The inference arithmetic itself lives in the `dropship-shared` crate, which the device runs too.

pub use dropship_formats::{data, input, limits, network};

pub mod adam;
pub mod artifact_commands;
pub mod augment;
pub mod bench;
pub mod compare;
pub mod device_link;
pub mod export;
pub mod model;
pub mod onnx;
pub mod outcome;
pub mod output;
pub mod plot;
pub mod prepare;
pub mod progress;
pub mod quantize;
pub mod report;
pub mod rng;
pub mod run;
pub mod split;
pub mod sweep;
pub mod train;
pub mod validate;
