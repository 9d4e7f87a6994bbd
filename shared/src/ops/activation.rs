//! Activations applied to a layer's f32 outputs as they are stored. An int8 layer's activation is
//! fused into its requantization (see [`crate::ops::dense::int8`]); both read [`Activation`].
//!
//! Bit-exactness: each activation is one specified function of one f32 (no platform `expf`), so
//! every target gives the same bits.

pub use crate::layer::Activation;

impl Activation {
    /// The activation of one value.
    #[inline(always)]
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Linear => v,
            Activation::Relu => relu(v),
        }
    }
}

/// `max(v, 0)`; `-0.0` and NaN become `0.0`. Applied by [`dense`] as it stores each block.
#[inline(always)]
pub(crate) fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}
