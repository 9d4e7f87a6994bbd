//! dropship's host side, grouped by stage, each depending only on the ones before it (a test in
//! `tests/tests/invariants.rs` holds the rule over the `use` lines):
//!
//! - the foundation: [`output`] (how every command writes files), [`rng`], and from
//!   `dropship-formats` [`input`], [`limits`] and [`network`] (running an artifact on the host);
//! - [`data`]: CSV, split, standardization, augmentation;
//! - [`train`]: the model (candle, Keras semantics), the optimizer, the training loop, runs;
//! - [`deploy`]: export, ONNX, int8, the artifact commands, validation on a device;
//! - [`study`]: comparison, sweeps, report, plots, the benchmark.
//!
//! The inference arithmetic itself lives in the `dropship-shared` crate, which the device runs too.

pub use dropship_formats::{input, limits, network};

pub mod data;
pub mod deploy;
pub mod output;
pub mod rng;
pub mod study;
pub mod train;
