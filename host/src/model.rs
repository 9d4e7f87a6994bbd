//! The course's classifier in candle: `Dense(hidden) → [Dropout] → ReLU → Dense(classes)`, Keras layout.

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Trainable parameters. Kernels are input-major `(in, out)` as in Keras and the artifact.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// Hidden kernel `(input, hidden)`.
    pub w1: Var,
    /// Hidden bias `(hidden)`.
    pub b1: Var,
    /// Output kernel `(hidden, classes)`.
    pub w2: Var,
    /// Output bias `(classes)`.
    pub b2: Var,
}

/// Plain copies of the parameters, for saving, comparing and exporting.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// Input width.
    pub input: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Class count.
    pub classes: usize,
    /// `(input, hidden)` row-major.
    pub w1: Vec<f32>,
    /// `(hidden)`.
    pub b1: Vec<f32>,
    /// `(hidden, classes)` row-major.
    pub w2: Vec<f32>,
    /// `(classes)`.
    pub b2: Vec<f32>,
}

impl Weights {
    /// Keras's `glorot_uniform` kernels (limit `sqrt(6 / (fan_in + fan_out))`) and zero biases.
    pub fn glorot(input: usize, hidden: usize, classes: usize, rng: &mut ChaCha8Rng) -> Self {
        let mut kernel = |fan_in: usize, fan_out: usize| {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            (0..fan_in * fan_out).map(|_| rng.random_range(-limit..limit)).collect::<Vec<f32>>()
        };
        let w1 = kernel(input, hidden);
        let w2 = kernel(hidden, classes);
        Self { input, hidden, classes, w1, b1: vec![0.0; hidden], w2, b2: vec![0.0; classes] }
    }

    /// Euclidean norms of the two kernels.
    pub fn kernel_norms(&self) -> [f64; 2] {
        let norm = |w: &[f32]| w.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        [norm(&self.w1), norm(&self.w2)]
    }

    /// Number of weights and biases.
    pub fn parameters(&self) -> usize {
        self.w1.len() + self.b1.len() + self.w2.len() + self.b2.len()
    }
}

impl Mlp {
    /// Trainable variables holding `weights`.
    pub fn new(weights: &Weights, device: &Device) -> Result<Self> {
        let Weights { input, hidden, classes, .. } = *weights;
        Ok(Self {
            w1: Var::from_slice(&weights.w1, (input, hidden), device)?,
            b1: Var::from_slice(&weights.b1, hidden, device)?,
            w2: Var::from_slice(&weights.w2, (hidden, classes), device)?,
            b2: Var::from_slice(&weights.b2, classes, device)?,
        })
    }

    /// All variables, kernels first.
    pub fn vars(&self) -> Vec<Var> {
        vec![self.w1.clone(), self.w2.clone(), self.b1.clone(), self.b2.clone()]
    }

    /// Logits for a batch `(rows, input)`. `dropout_mask` (inverted dropout: 0 or `1/(1-p)` per
    /// hidden unit) is applied between the hidden Dense and ReLU, the course's position; `None`
    /// is inference mode.
    pub fn forward(&self, x: &Tensor, dropout_mask: Option<&Tensor>) -> Result<Tensor> {
        let h = x.matmul(self.w1.as_tensor())?.broadcast_add(self.b1.as_tensor())?;
        let h = match dropout_mask {
            Some(mask) => (h * mask)?,
            None => h,
        };
        h.relu()?.matmul(self.w2.as_tensor())?.broadcast_add(self.b2.as_tensor())
    }

    /// A copy of the current parameters.
    pub fn weights(&self) -> Result<Weights> {
        let flat = |v: &Var| v.as_tensor().flatten_all()?.to_vec1::<f32>();
        let (input, hidden) = self.w1.as_tensor().dims2()?;
        let classes = self.b2.as_tensor().dims1()?;
        Ok(Weights {
            input,
            hidden,
            classes,
            w1: flat(&self.w1)?,
            b1: flat(&self.b1)?,
            w2: flat(&self.w2)?,
            b2: flat(&self.b2)?,
        })
    }

    /// Overwrites the parameters (restore-best-weights).
    pub fn set(&self, weights: &Weights) -> Result<()> {
        let other = Mlp::new(weights, self.w1.device())?;
        for (mine, theirs) in self.vars().iter().zip(other.vars()) {
            mine.set(theirs.as_tensor())?;
        }
        Ok(())
    }
}

/// An inverted-dropout mask `(rows, units)`: each unit kept with probability `1 - rate` and then
/// scaled by `1 / (1 - rate)`, dropped (0) otherwise.
pub fn dropout_mask(rows: usize, units: usize, rate: f32, rng: &mut ChaCha8Rng, device: &Device) -> Result<Tensor> {
    let keep = 1.0 - rate;
    let scale = 1.0 / keep;
    let mask: Vec<f32> = (0..rows * units).map(|_| if rng.random::<f32>() < keep { scale } else { 0.0 }).collect();
    Tensor::from_vec(mask, (rows, units), device)
}

/// Batch-mean categorical cross-entropy from logits, and the accuracy, computed on the host in f64.
pub fn cross_entropy_and_accuracy(logits: &[f32], labels: &[u32], classes: usize) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (row, label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + row.iter().map(|v| (*v as f64 - max).exp()).sum::<f64>().ln();
        loss += lse - row[*label as usize] as f64;
        correct += usize::from(dropship_shared::kernel::argmax(row) == *label as usize);
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// The logits of `x` in inference mode, as a flat row-major vector.
pub fn logits(model: &Mlp, x: &Tensor) -> Result<Vec<f32>> {
    model.forward(x, None)?.flatten_all()?.to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Stream};
    use candle_core::DType;

    #[test]
    fn glorot_limits_and_zero_biases() {
        let w = Weights::glorot(64, 128, 10, &mut stream(0, Stream::Init));
        let limit1 = (6.0f32 / 192.0).sqrt();
        let limit2 = (6.0f32 / 138.0).sqrt();
        assert!(w.w1.iter().all(|x| x.abs() <= limit1));
        assert!(w.w2.iter().all(|x| x.abs() <= limit2));
        assert!(w.w1.iter().any(|x| x.abs() > 0.9 * limit1), "uses the whole range");
        assert!(w.b1.iter().chain(&w.b2).all(|b| *b == 0.0));
        assert_eq!(w.parameters(), 9610);
    }

    #[test]
    fn inverted_dropout_scales_kept_units_and_is_identity_in_inference_mode() {
        let dev = Device::Cpu;
        let mut rng = stream(3, Stream::Dropout);
        let mask =
            dropout_mask(200, 100, 0.5, &mut rng, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(mask.iter().all(|m| *m == 0.0 || *m == 2.0));
        let kept = mask.iter().filter(|m| **m == 2.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.5).abs() < 0.02, "kept share {kept}");
        let mask = dropout_mask(1, 1000, 0.2, &mut rng, &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(mask.iter().all(|m| *m == 0.0 || *m == 1.25));

        let weights = Weights::glorot(3, 4, 2, &mut stream(0, Stream::Init));
        let model = Mlp::new(&weights, &dev).unwrap();
        let x = Tensor::from_vec(vec![1f32, -2.0, 0.5], (1, 3), &dev).unwrap();
        let ones = Tensor::ones((1, 4), DType::F32, &dev).unwrap();
        let with_ones = model.forward(&x, Some(&ones)).unwrap().to_vec2::<f32>().unwrap();
        let inference = model.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(with_ones, inference);
        // a mask of 2s doubles the hidden pre-activation: logits - b2 double too (b2 = 0)
        let twos = (ones * 2.0).unwrap();
        let doubled = model.forward(&x, Some(&twos)).unwrap().to_vec2::<f32>().unwrap();
        for (d, i) in doubled[0].iter().zip(&inference[0]) {
            assert!((d - 2.0 * i).abs() < 1e-6);
        }
    }

    #[test]
    fn cross_entropy_by_hand() {
        // logits [0, ln 3] for label 1: p = 3/4, loss = ln(4/3); label 0: ln 4
        let l = [0.0, 3f32.ln(), 0.0, 3f32.ln()];
        let (loss, acc) = cross_entropy_and_accuracy(&l, &[1, 0], 2);
        assert!((loss - ((4.0f64 / 3.0).ln() + 4f64.ln()) / 2.0).abs() < 1e-6);
        assert_eq!(acc, 0.5);
    }
}
