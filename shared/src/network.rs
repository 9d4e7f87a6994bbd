//! Fixed-size networks: `Dense<IN, OUT>` layers and the input → hidden → classes classifier.
//!
//! Shapes are const generics, so a shape mismatch is a compile error and inference needs no error
//! type. All arithmetic goes through [`crate::kernel`], the one place that defines it.

use crate::kernel::{self, Activation};

/// A dense layer, kernel input-major (`weights[i][o]`, see the crate docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<const IN: usize, const OUT: usize> {
    /// `weights[i][o]`: from input `i` to output `o`.
    pub weights: [[f32; OUT]; IN],
    /// One bias per output.
    pub bias: [f32; OUT],
}

impl<const IN: usize, const OUT: usize> Dense<IN, OUT> {
    /// A layer of zeros.
    pub const ZERO: Self = Self { weights: [[0.0; OUT]; IN], bias: [0.0; OUT] };

    /// `output = input · weights + bias`, then `activation`.
    pub fn forward(&self, input: &[f32; IN], output: &mut [f32; OUT], activation: Activation) {
        let weights = self.weights.as_flattened();
        if OUT <= 16 {
            // Narrow layers (the classes) keep all their accumulators in registers at once.
            kernel::dense_blocked::<OUT>(input, weights, &self.bias, output, activation);
        } else {
            kernel::dense(input, weights, &self.bias, output, activation);
        }
    }

    /// Number of weights and biases.
    pub const PARAMETERS: usize = IN * OUT + OUT;
}

/// The input standardization fitted on the training rows: `(x - mean) / scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardization<const N: usize> {
    /// Per-feature mean of the training rows.
    pub mean: [f32; N],
    /// Per-feature standard deviation of the training rows (1 for a constant feature).
    pub scale: [f32; N],
}

impl<const N: usize> Standardization<N> {
    /// The identity: mean 0, scale 1.
    pub const IDENTITY: Self = Self { mean: [0.0; N], scale: [1.0; N] };
}

/// The classifier `standardize → Dense(IN, HIDDEN) → ReLU → Dense(HIDDEN, CLASSES)`.
///
/// There is no dropout here, and no place for it: dropout is a training-time operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<const IN: usize, const HIDDEN: usize, const CLASSES: usize> {
    /// Applied to raw inputs by [`Network::logits`]; `None` for models that take standardized input.
    pub standardization: Option<Standardization<IN>>,
    /// Hidden layer, followed by ReLU.
    pub hidden: Dense<IN, HIDDEN>,
    /// Output layer, producing logits.
    pub output: Dense<HIDDEN, CLASSES>,
}

/// Working memory for one inference: the activations, and nothing else.
#[derive(Clone, Debug)]
pub struct Scratch<const IN: usize, const HIDDEN: usize> {
    standardized: [f32; IN],
    hidden: [f32; HIDDEN],
}

impl<const IN: usize, const HIDDEN: usize> Scratch<IN, HIDDEN> {
    /// Zeroed scratch space.
    pub const fn new() -> Self {
        Self { standardized: [0.0; IN], hidden: [0.0; HIDDEN] }
    }
}

impl<const IN: usize, const HIDDEN: usize> Default for Scratch<IN, HIDDEN> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const IN: usize, const HIDDEN: usize, const CLASSES: usize> Network<IN, HIDDEN, CLASSES> {
    /// A network of zeros without standardization.
    pub const ZERO: Self = Self { standardization: None, hidden: Dense::ZERO, output: Dense::ZERO };

    /// Weights and biases of both layers.
    pub const PARAMETERS: usize = Dense::<IN, HIDDEN>::PARAMETERS + Dense::<HIDDEN, CLASSES>::PARAMETERS;

    /// Bytes of activations one inference needs (standardized input, hidden layer, logits).
    pub const ACTIVATION_BYTES: usize = (IN + HIDDEN + CLASSES) * core::mem::size_of::<f32>();

    /// Writes the logits for a raw (unstandardized) input.
    pub fn logits(&self, input: &[f32; IN], scratch: &mut Scratch<IN, HIDDEN>, logits: &mut [f32; CLASSES]) {
        let standardized = match &self.standardization {
            Some(s) => {
                kernel::standardize(input, &s.mean, &s.scale, &mut scratch.standardized);
                &scratch.standardized
            }
            None => input,
        };
        self.hidden.forward(standardized, &mut scratch.hidden, Activation::Relu);
        self.output.forward(&scratch.hidden, logits, Activation::Linear);
    }

    /// The predicted class for a raw input, with its logits.
    pub fn predict(&self, input: &[f32; IN], scratch: &mut Scratch<IN, HIDDEN>, logits: &mut [f32; CLASSES]) -> usize {
        self.logits(input, scratch, logits);
        kernel::argmax(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_network_by_hand() {
        // x = [3, 1] standardized with mean [1, 1], scale [2, 1] -> [1, 0]
        // hidden = relu([1, 0] · [[1, -1], [5, 5]] + [0, 0]) = relu([1, -1]) = [1, 0]
        // logits = [1, 0] · [[2, 0, 1], [9, 9, 9]] + [0, 0.5, 0] = [2, 0.5, 1]
        let net = Network::<2, 2, 3> {
            standardization: Some(Standardization { mean: [1.0, 1.0], scale: [2.0, 1.0] }),
            hidden: Dense { weights: [[1.0, -1.0], [5.0, 5.0]], bias: [0.0; 2] },
            output: Dense { weights: [[2.0, 0.0, 1.0], [9.0, 9.0, 9.0]], bias: [0.0, 0.5, 0.0] },
        };
        let mut logits = [0.0; 3];
        let class = net.predict(&[3.0, 1.0], &mut Scratch::new(), &mut logits);
        assert_eq!(logits, [2.0, 0.5, 1.0]);
        assert_eq!(class, 0);
        assert_eq!(Network::<64, 128, 10>::PARAMETERS, 9610);
        assert_eq!(Network::<64, 128, 10>::ACTIVATION_BYTES, 808);
    }
}
