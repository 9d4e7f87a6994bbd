//! The course's classifier in candle, any depth: `Dense → [Dropout] → ReLU` per hidden layer, then
//! `Dense(classes)`; Keras layout.

use candle_core::{Device, Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Trainable parameters, one `(kernel, bias)` per layer. Kernels are input-major `(in, out)` as in
/// Keras and the artifact.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// Kernel `(input, output)` and bias `(output)` of every layer, the output layer last.
    pub layers: Vec<(Var, Var)>,
}

/// One dense layer's parameters as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseWeights {
    /// Input width.
    pub input: usize,
    /// `(input, output)` row-major.
    pub kernel: Vec<f32>,
    /// `(output)`.
    pub bias: Vec<f32>,
}

impl DenseWeights {
    /// Output width.
    pub fn output(&self) -> usize {
        self.bias.len()
    }
}

/// Plain copies of the parameters, for saving, comparing and exporting.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// Every layer, the output layer last (never empty).
    pub layers: Vec<DenseWeights>,
}

impl Weights {
    /// Keras's `glorot_uniform` kernels (limit `sqrt(6 / (fan_in + fan_out))`) and zero biases,
    /// drawn layer by layer from the input to the output.
    pub fn glorot(input: usize, hidden: &[usize], classes: usize, rng: &mut ChaCha8Rng) -> Self {
        let widths: Vec<usize> = std::iter::once(input).chain(hidden.iter().copied()).chain([classes]).collect();
        let layers = widths
            .windows(2)
            .map(|pair| {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                let kernel = (0..fan_in * fan_out).map(|_| rng.random_range(-limit..limit)).collect();
                DenseWeights { input: fan_in, kernel, bias: vec![0.0; fan_out] }
            })
            .collect();
        Self { layers }
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.layers.first().map_or(0, |l| l.input)
    }

    /// Class count.
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, DenseWeights::output)
    }

    /// Widths of the hidden layers.
    pub fn hidden(&self) -> Vec<usize> {
        self.layers.split_last().map_or(Vec::new(), |(_, hidden)| hidden.iter().map(DenseWeights::output).collect())
    }

    /// Euclidean norm of every kernel, the output layer last.
    pub fn kernel_norms(&self) -> Vec<f64> {
        self.layers.iter().map(|l| l.kernel.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()).collect()
    }

    /// Number of weights and biases.
    pub fn parameters(&self) -> usize {
        self.layers.iter().map(|l| l.kernel.len() + l.bias.len()).sum()
    }
}

impl Mlp {
    /// Trainable variables holding `weights`.
    pub fn new(weights: &Weights, device: &Device) -> Result<Self> {
        let layers = weights
            .layers
            .iter()
            .map(|l| {
                Ok((
                    Var::from_slice(&l.kernel, (l.input, l.output()), device)?,
                    Var::from_slice(&l.bias, l.output(), device)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// All variables, every kernel first (the optimizer decays the first [`Mlp::depth`]), then
    /// the biases.
    pub fn vars(&self) -> Vec<Var> {
        let kernels = self.layers.iter().map(|(k, _)| k.clone());
        kernels.chain(self.layers.iter().map(|(_, b)| b.clone())).collect()
    }

    /// Number of dense layers.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Logits for a batch `(rows, input)`. `dropout_masks` (inverted dropout: 0 or `1/(1-p)` per
    /// unit; one per hidden layer, `None` for a layer without dropout) are applied between each
    /// hidden Dense and its ReLU, the course's position; `None` is inference mode.
    pub fn forward(&self, x: &Tensor, dropout_masks: Option<&[Option<Tensor>]>) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, (kernel, bias)) in self.layers.iter().enumerate() {
            h = h.matmul(kernel.as_tensor())?.broadcast_add(bias.as_tensor())?;
            if i < last {
                if let Some(Some(mask)) = dropout_masks.and_then(|m| m.get(i)) {
                    h = (h * mask)?;
                }
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    /// A copy of the current parameters.
    pub fn weights(&self) -> Result<Weights> {
        let layers = self
            .layers
            .iter()
            .map(|(kernel, bias)| {
                let (input, _) = kernel.as_tensor().dims2()?;
                Ok(DenseWeights {
                    input,
                    kernel: kernel.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                    bias: bias.as_tensor().to_vec1::<f32>()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Weights { layers })
    }

    /// Overwrites the parameters (restore-best-weights).
    pub fn set(&self, weights: &Weights) -> Result<()> {
        let device = self.layers.first().map_or(Device::Cpu, |(k, _)| k.device().clone());
        let other = Mlp::new(weights, &device)?;
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
        let w = Weights::glorot(64, &[128], 10, &mut stream(0, Stream::Init));
        let limit1 = (6.0f32 / 192.0).sqrt();
        let limit2 = (6.0f32 / 138.0).sqrt();
        assert!(w.layers[0].kernel.iter().all(|x| x.abs() <= limit1));
        assert!(w.layers[1].kernel.iter().all(|x| x.abs() <= limit2));
        assert!(w.layers[0].kernel.iter().any(|x| x.abs() > 0.9 * limit1), "uses the whole range");
        assert!(w.layers.iter().all(|l| l.bias.iter().all(|b| *b == 0.0)));
        assert_eq!(w.parameters(), 9610);
        let deep = Weights::glorot(64, &[64, 32], 10, &mut stream(0, Stream::Init));
        assert_eq!((deep.input(), deep.hidden(), deep.classes()), (64, vec![64, 32], 10));
        assert_eq!(deep.parameters(), 64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10);
        let limit3 = (6.0f32 / 42.0).sqrt();
        assert!(deep.layers[2].kernel.iter().all(|x| x.abs() <= limit3));
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

        let weights = Weights::glorot(3, &[4], 2, &mut stream(0, Stream::Init));
        let model = Mlp::new(&weights, &dev).unwrap();
        let x = Tensor::from_vec(vec![1f32, -2.0, 0.5], (1, 3), &dev).unwrap();
        let ones = Tensor::ones((1, 4), DType::F32, &dev).unwrap();
        let with_ones = model.forward(&x, Some(&[Some(ones.clone())])).unwrap().to_vec2::<f32>().unwrap();
        let inference = model.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(with_ones, inference);
        // a mask of 2s doubles the hidden pre-activation: logits - b2 double too (b2 = 0)
        let twos = (ones * 2.0).unwrap();
        let doubled = model.forward(&x, Some(&[Some(twos)])).unwrap().to_vec2::<f32>().unwrap();
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
