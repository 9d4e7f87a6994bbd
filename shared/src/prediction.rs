//! What a network's outputs mean for its task: a class, a probability, values or an anomaly score
//! ([`Prediction`]), read from the outputs the same way on every target.
//!
//! Bit-exactness: the anomaly score is a mean of f32 squares summed in input order, with the
//! standardization's own formula, so host and device give the same bits.

use crate::layer::Task;
use crate::ops::output::argmax;

/// One inference's answer, as its task reads the `N` outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prediction<const N: usize> {
    /// A classifier: the class with the largest output (the first of ties), and every output.
    Class {
        /// The predicted class.
        class: usize,
        /// The outputs (logits, or a final softmax's probabilities).
        logits: [f32; N],
    },
    /// A binary classifier: the sigmoid output and whether it is above the threshold.
    Binary {
        /// The probability of the positive class.
        probability: f32,
        /// `probability > threshold`.
        positive: bool,
    },
    /// A regression: the values, in the targets' units.
    Values([f32; N]),
    /// An autoencoder: the mean squared error of the reconstruction against the standardized
    /// input, and whether it is above the threshold.
    Anomaly {
        /// The anomaly score.
        score: f32,
        /// `score > threshold`.
        anomalous: bool,
    },
}

impl<const N: usize> Prediction<N> {
    /// Reads `outputs` as `task` says, with the artifact's `threshold`; an autoencoder's score
    /// compares them with `input` standardized by `standardization` (`(mean, scale)`), as its first
    /// layer took it.
    pub fn read(
        task: Task,
        threshold: f32,
        outputs: [f32; N],
        input: &[f32],
        standardization: Option<(&[f32], &[f32])>,
    ) -> Self {
        match task {
            Task::Classify => Self::Class { class: argmax(&outputs), logits: outputs },
            Task::Binary => {
                let probability = outputs.first().copied().unwrap_or(0.0);
                Self::Binary { probability, positive: probability > threshold }
            }
            Task::Regress => Self::Values(outputs),
            Task::Autoencode => {
                let score = anomaly_score(&outputs, input, standardization);
                Self::Anomaly { score, anomalous: score > threshold }
            }
        }
    }

    /// The class of a classifier (0 or 1 for a binary one, 1 for an anomaly); `None` for values.
    pub fn class(&self) -> Option<usize> {
        match self {
            Self::Class { class, .. } => Some(*class),
            Self::Binary { positive, .. } => Some(usize::from(*positive)),
            Self::Anomaly { anomalous, .. } => Some(usize::from(*anomalous)),
            Self::Values(_) => None,
        }
    }
}

/// The mean squared error of `reconstruction` against `input` standardized by `standardization`
/// (`(x - mean) / scale`, the formula of [`crate::ops::standardize`]), summed in order in f32.
pub fn anomaly_score(reconstruction: &[f32], input: &[f32], standardization: Option<(&[f32], &[f32])>) -> f32 {
    let mut sum = 0.0f32;
    for (i, (r, x)) in reconstruction.iter().zip(input).enumerate() {
        let z = match standardization {
            Some((mean, scale)) => (*x - mean[i]) / scale[i],
            None => *x,
        };
        let d = *r - z;
        sum += d * d;
    }
    sum / reconstruction.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_reads_its_outputs() {
        let none = None;
        assert_eq!(
            Prediction::read(Task::Classify, 0.0, [0.5, 2.0, 2.0], &[], none),
            Prediction::Class { class: 1, logits: [0.5, 2.0, 2.0] }
        );
        let binary = Prediction::read(Task::Binary, 0.7, [0.7], &[], none);
        assert_eq!(binary, Prediction::Binary { probability: 0.7, positive: false }, "at the threshold: negative");
        assert_eq!(Prediction::read(Task::Binary, 0.7, [0.71], &[], none).class(), Some(1));
        assert_eq!(Prediction::read(Task::Regress, 0.0, [151.5], &[], none), Prediction::Values([151.5]));
        assert_eq!(Prediction::<1>::Values([1.0]).class(), None);
        // standardized input [(3-1)/2, (5-5)/1] = [1, 0]; reconstruction [0, 2]: (1 + 4) / 2
        let mean = [1.0, 5.0];
        let scale = [2.0, 1.0];
        let a = Prediction::read(Task::Autoencode, 2.5, [0.0, 2.0], &[3.0, 5.0], Some((&mean, &scale)));
        assert_eq!(a, Prediction::Anomaly { score: 2.5, anomalous: false });
        let b = Prediction::read(Task::Autoencode, 2.0, [0.0, 2.0], &[3.0, 5.0], Some((&mean, &scale)));
        assert_eq!(b.class(), Some(1));
        assert_eq!(anomaly_score(&[1.0, 1.0], &[1.0, 3.0], None), 2.0);
    }
}
