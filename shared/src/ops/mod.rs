//! The operators, one module each, laid out as CMSIS-NN and microflow-rs lay theirs out: each
//! operator has its portable reference, its x86 and Cortex-M paths beside it, its scratch size,
//! and the bit-exactness invariant that lets host and device give the same bits.
//!
//! | operator | f32 | int8 | scratch |
//! |---|---|---|---|
//! | [`standardize`] | `(x - mean) / scale` | (f32, before [`quantize`]) | none |
//! | [`quantize`] | — | f32 → int8 and back | none |
//! | [`dense`] | [`dense::dense`] (+ AVX) | [`dense::int8`] (+ AVX2, AVX-VNNI, Cortex-M4 DSP) | f32 none; int8 [`dense::int8::scratch_bytes`] on the Cortex-M4 stack |
//! | [`conv`] | [`conv::conv2d`], [`conv::depthwise_conv2d`] | [`conv::int8`] (Conv2D through the Dense kernel; depthwise + Cortex-M4 DSP) | f32 none; int8 [`conv::int8::SCRATCH_BYTES`], [`conv::int8::DEPTHWISE_SCRATCH_BYTES`] on the Cortex-M4 stack |
//! | [`pool`] | max, average, global average | the same, TFLite's rounding | none |
//! | [`activation`] | applied as a layer stores | fused into the requantization | none |
//! | [`output`] | NaN canonicalization, argmax | argmax | none |
//!
//! Convolutions and pooling walk their windows with [`window::Placement`] (Keras's padding).
//! A network ([`crate::network`]) chains them over two activation buffers. Adding an operator is a
//! module here, a [`crate::layer::LayerKind`] and a tag in the [`crate::artifact`].

pub mod activation;
pub mod conv;
pub mod dense;
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
pub(crate) mod dsp;
pub mod output;
pub mod pool;
pub mod quantize;
pub mod standardize;
pub mod window;
