//! Stage 4, study: the comparison of regularizers (and of what int8 costs them), sweeps, the report
//! and its plots, the benchmark. The last stage: it may use every other, and none uses it.

pub mod bench;
pub mod compare;
pub mod ds_cnn;
pub mod outcome;
pub mod plot;
pub mod report;
pub mod sweep;
