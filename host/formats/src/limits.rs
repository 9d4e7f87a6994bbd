//! The limits on every size that comes from a user (classes, widths, epochs, rows × columns, ONNX
//! dimensions), stated once and checked with checked arithmetic before anything is allocated.

use dropship_shared::artifact;

/// Most classes a model may have: the artifact's widest layer.
pub const MAX_CLASSES: usize = artifact::MAX_WIDTH;
/// Widest input or hidden layer: the artifact's widest layer.
pub const MAX_WIDTH: usize = artifact::MAX_WIDTH;
/// Most dense layers a network may have (hidden layers and the output): the artifact's limit.
pub const MAX_LAYERS: usize = artifact::MAX_LAYERS;
/// Most values (rows × feature columns) a CSV may hold: 4 GiB of f32.
pub const MAX_VALUES: usize = 1 << 30;
/// Most epochs a run may ask for.
pub const MAX_EPOCHS: usize = 1_000_000;
/// Most weights and biases an imported tensor may hold: the artifact's limit.
pub const MAX_PARAMETERS: usize = artifact::MAX_PARAMETERS;

/// The product of `dims`, or `None` when it overflows or exceeds `limit`.
pub fn product_within(dims: &[usize], limit: usize) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d)).filter(|n| *n <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_overflow_or_exceed_the_limit_as_none() {
        assert_eq!(product_within(&[3, 4], 12), Some(12));
        assert_eq!(product_within(&[3, 4], 11), None);
        assert_eq!(product_within(&[1 << 40, 1 << 40], usize::MAX), None);
        assert_eq!(product_within(&[], 1), Some(1));
    }
}
