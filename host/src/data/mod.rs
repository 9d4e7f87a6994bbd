//! Stage 1, data: CSV data sets (`dropship-formats`' loader, re-exported here), the split and
//! the standardization, augmentation of training rows. Depends only on the foundation
//! (`output`, `rng`, `input`, `limits`).

pub use dropship_formats::data::*;

pub mod augment;
pub mod split;
pub mod synthetic;
