//! The files dropship reads and writes that need no training library: CSV data sets, ONNX graphs,
//! and the runtime-shaped network both the artifact and an ONNX import become.
//!
//! Kept apart from the `dropship` crate (which links candle and tract's runtime) so the parsers
//! that take a user's bytes can be fuzzed in a small binary.

pub mod data;
pub mod input;
pub mod limits;
pub mod network;
pub mod onnx_graph;
