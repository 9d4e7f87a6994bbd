//! dropship's inference core: `no_std`, allocation-free networks of the [`layer`] vocabulary, their
//! operators ([`ops`]) and the model [`artifact`].
//!
//! The same code runs on the host (to check and serve models) and on a Cortex-M4F (to deploy them).
//!
//! # Weight layout
//!
//! A dense layer with `IN` inputs and `OUT` outputs keeps its kernel **input-major**, as Keras does:
//! `weights[i][o]` is the weight from input `i` to output `o` (shape `(IN, OUT)`; candle's `Linear`
//! keeps the transpose, `(OUT, IN)`). Every output is accumulated across the inputs in order:
//!
//! ```text
//! y[o] = bias[o]
//! for i in 0..IN:  y[o] = y[o] + x[i] * weights[i][o]     (one rounding for *, one for +)
//! ```
//!
//! Because one input row `weights[i]` feeds many outputs at once, the host vectorizes across outputs
//! (and the device keeps a block of outputs in registers) without changing the order of the
//! additions for any output. No `mul_add`, no reassociation: a host build and a Cortex-M4F build
//! give the same bits for the same input. See [`ops`].
//!
//! # Features
//!
//! `std` (off by default, never on the device) lets the host pick an AVX build of the same kernel
//! at run time; the results are bit-identical to the portable build, which tests check.
//!
//! # What is deliberately absent
//!
//! There is no dropout, no regularization and no training-only state anywhere in this crate, and
//! the [`artifact`] format has no way to express them.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod artifact;
pub mod error;
pub mod footprint;
pub mod layer;
pub mod network;
pub mod ops;
pub mod prediction;
pub mod vectors;
mod wire;

#[cfg(test)]
mod test_rng;

pub use artifact::Artifact;
pub use error::FormatError;
pub use layer::{Activation, Dims, LayerKind, LayerShape, Padding, Precision, Task, Window};
pub use network::{Chain, Dense, Layers, Network, OneHidden, Scratch, Standardization, TwoHidden};
pub use prediction::Prediction;
