//! The deployed network, its digest and its test vectors, generated at build time from a dropship
//! artifact: the network by `dropship-build` (the generator users' crates call), the vectors by
//! `build.rs`.
//!
//! The depth, every width and activation come from the artifact at build time: for an f32 artifact
//! `ModelLayers`, a chain of `Dense<IN, OUT>` run by `Network`; for an int8 one, per-layer int8
//! tables run by `QuantNetwork` (`INT8` says which). `SHAPE` lists every layer as the artifact
//! describes it and the footprint (`dropship_shared::footprint`). `NETWORK.predict(input, scratch,
//! logits)` gives the class and the (dequantized) logits, `Model` wraps it with its scratch and
//! serves it (`Model::served`, `Server`); the weights are `static` constants in flash. The build
//! refuses a model that does not fit the board's flash or RAM.
#![no_std]

pub use dropship_app::TestVector;

include!(concat!(env!("OUT_DIR"), "/model.rs"));
