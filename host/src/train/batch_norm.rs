//! Keras's `BatchNormalization` after a hidden Dense: batch statistics in training, moving
//! statistics at inference, and the fold that turns it into the Dense's own weights at export
//! (the artifact has no BatchNorm, as it has no dropout).
//!
//! Keras's semantics exactly: `momentum = 0.99`, `epsilon = 1e-3`; in training
//! `y = gamma · (x - mean_B) / sqrt(var_B + epsilon) + beta` with the batch's mean and biased
//! variance, then `moving = momentum · moving + (1 - momentum) · batch` for both statistics; at
//! inference the moving statistics replace the batch's. `gamma` starts at 1, `beta` and the moving
//! mean at 0, the moving variance at 1.

use candle_core::{Device, Result, Tensor, Var};

/// Keras's default momentum of the moving statistics.
pub const MOMENTUM: f64 = 0.99;
/// Keras's default epsilon.
pub const EPSILON: f64 = 1e-3;

/// A BatchNorm's parameters and moving statistics as plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormWeights {
    /// Scale per unit (trained).
    pub gamma: Vec<f32>,
    /// Shift per unit (trained).
    pub beta: Vec<f32>,
    /// Moving mean per unit.
    pub moving_mean: Vec<f32>,
    /// Moving (biased) variance per unit.
    pub moving_variance: Vec<f32>,
}

impl BatchNormWeights {
    /// Keras's initial values for `units` units.
    pub fn initial(units: usize) -> Self {
        Self {
            gamma: vec![1.0; units],
            beta: vec![0.0; units],
            moving_mean: vec![0.0; units],
            moving_variance: vec![1.0; units],
        }
    }

    /// The layer `x · kernel + bias` followed by this BatchNorm in inference mode, as one Dense:
    /// with `s = gamma / sqrt(moving_variance + epsilon)` (in f64), `kernel'[i][o] = kernel[i][o] · s[o]`
    /// and `bias'[o] = (bias[o] - moving_mean[o]) · s[o] + beta[o]`. `kernel` is input-major.
    pub fn fold(&self, kernel: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let units = bias.len();
        let scale: Vec<f64> =
            (0..units).map(|o| self.gamma[o] as f64 / (self.moving_variance[o] as f64 + EPSILON).sqrt()).collect();
        let kernel = kernel.iter().enumerate().map(|(k, w)| (*w as f64 * scale[k % units]) as f32).collect();
        let bias = (0..units)
            .map(|o| ((bias[o] as f64 - self.moving_mean[o] as f64) * scale[o] + self.beta[o] as f64) as f32)
            .collect();
        (kernel, bias)
    }
}

/// A BatchNorm inside a trainable model.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Trained scale.
    pub gamma: Var,
    /// Trained shift.
    pub beta: Var,
    moving_mean: Var,
    moving_variance: Var,
}

impl BatchNorm {
    /// Variables holding `w`.
    pub fn new(w: &BatchNormWeights, device: &Device) -> Result<Self> {
        let var = |v: &[f32]| Var::from_slice(v, v.len(), device);
        Ok(Self {
            gamma: var(&w.gamma)?,
            beta: var(&w.beta)?,
            moving_mean: var(&w.moving_mean)?,
            moving_variance: var(&w.moving_variance)?,
        })
    }

    /// Normalizes `h` `(rows, units)`: with the batch's statistics (and the moving ones updated)
    /// when `training`, with the moving ones otherwise.
    pub fn forward(&self, h: &Tensor, training: bool) -> Result<Tensor> {
        let (mean, variance) = if training {
            let mean = h.mean(0)?;
            let variance = h.broadcast_sub(&mean)?.sqr()?.mean(0)?;
            let update = |moving: &Var, batch: &Tensor| {
                moving.set(&((moving.as_tensor() * MOMENTUM)? + (batch.detach() * (1.0 - MOMENTUM))?)?)
            };
            update(&self.moving_mean, &mean)?;
            update(&self.moving_variance, &variance)?;
            (mean, variance)
        } else {
            (self.moving_mean.as_tensor().clone(), self.moving_variance.as_tensor().clone())
        };
        let normalized = h.broadcast_sub(&mean)?.broadcast_div(&(variance + EPSILON)?.sqrt()?)?;
        normalized.broadcast_mul(self.gamma.as_tensor())?.broadcast_add(self.beta.as_tensor())
    }

    /// A copy of the current values.
    pub fn weights(&self) -> Result<BatchNormWeights> {
        let values = |v: &Var| v.as_tensor().to_vec1::<f32>();
        Ok(BatchNormWeights {
            gamma: values(&self.gamma)?,
            beta: values(&self.beta)?,
            moving_mean: values(&self.moving_mean)?,
            moving_variance: values(&self.moving_variance)?,
        })
    }

    /// Overwrites every value with `w`'s.
    pub fn set(&self, w: &BatchNormWeights) -> Result<()> {
        let device = self.gamma.device().clone();
        for (var, values) in [
            (&self.gamma, &w.gamma),
            (&self.beta, &w.beta),
            (&self.moving_mean, &w.moving_mean),
            (&self.moving_variance, &w.moving_variance),
        ] {
            var.set(&Tensor::from_slice(values, values.len(), &device)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One training step of Keras's formulas by hand: a batch of two rows normalizes each unit to
    /// ±1 / sqrt(1 + epsilon / var) and moves the moving statistics 1% of the way; inference then
    /// uses the moving statistics.
    #[test]
    fn training_uses_batch_statistics_and_moves_the_moving_ones_as_keras_does() {
        let device = Device::Cpu;
        let bn = BatchNorm::new(&BatchNormWeights::initial(2), &device).unwrap();
        let h = Tensor::from_slice(&[1.0f32, 10.0, 3.0, 30.0], (2, 2), &device).unwrap();
        let y = bn.forward(&h, true).unwrap().to_vec2::<f32>().unwrap();
        // unit 0: mean 2, var 1; unit 1: mean 20, var 100
        let (a, b) = (1.0 / (1.0 + EPSILON).sqrt(), 10.0 / (100.0 + EPSILON).sqrt());
        for (got, want) in y.iter().flatten().zip([-a, -b, a, b]) {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
        let w = bn.weights().unwrap();
        let expected_var = [0.99 + 0.01 * 1.0, 0.99 + 0.01 * 100.0];
        let moved = w.moving_mean.iter().zip([0.02, 0.2]).chain(w.moving_variance.iter().zip(expected_var));
        for (got, want) in moved {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
        // inference: the moving statistics, nothing moves
        let z = bn.forward(&h, false).unwrap().to_vec2::<f32>().unwrap();
        let want = (1.0 - 0.02) / (expected_var[0] + EPSILON).sqrt();
        assert!((z[0][0] as f64 - want).abs() < 1e-6);
        assert_eq!(bn.weights().unwrap(), w);
    }

    /// The fold gives the Dense + BatchNorm of inference mode within 1e-5, for non-trivial
    /// statistics.
    #[test]
    fn the_folded_dense_equals_dense_then_batch_norm_in_inference_mode() {
        let device = Device::Cpu;
        let (inputs, units) = (5, 3);
        let kernel: Vec<f32> = (0..inputs * units).map(|k| ((k * 7 % 11) as f32 - 5.0) / 4.0).collect();
        let bias = vec![0.5, -0.25, 2.0];
        let w = BatchNormWeights {
            gamma: vec![1.5, 0.5, -2.0],
            beta: vec![0.1, -0.2, 0.3],
            moving_mean: vec![0.4, -1.0, 3.0],
            moving_variance: vec![0.25, 4.0, 0.001],
        };
        let x = Tensor::from_slice(&[0.3f32, -1.2, 2.0, 0.0, 5.0, 1.0, 1.0, -1.0, 0.5, 0.25], (2, inputs), &device)
            .unwrap();
        let k = Tensor::from_slice(&kernel, (inputs, units), &device).unwrap();
        let h = x.matmul(&k).unwrap().broadcast_add(&Tensor::from_slice(&bias, units, &device).unwrap()).unwrap();
        let expected = BatchNorm::new(&w, &device).unwrap().forward(&h, false).unwrap().to_vec2::<f32>().unwrap();
        let (fk, fb) = w.fold(&kernel, &bias);
        let folded = x
            .matmul(&Tensor::from_slice(&fk, (inputs, units), &device).unwrap())
            .unwrap()
            .broadcast_add(&Tensor::from_slice(&fb, units, &device).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (a, b) in expected.iter().flatten().zip(folded.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    /// Numbers Keras produced (Keras 3.15 on TensorFlow 2.21, `keras.layers.BatchNormalization()`:
    /// momentum 0.99, epsilon 1e-3; gamma 1.5, 0.5, beta 0.25, -1, fresh moving statistics): one
    /// call in training mode on three rows, the moving statistics after it, then inference mode.
    #[test]
    fn training_step_and_inference_match_the_numbers_keras_gives() {
        let device = Device::Cpu;
        let start = BatchNormWeights { gamma: vec![1.5, 0.5], beta: vec![0.25, -1.0], ..BatchNormWeights::initial(2) };
        let bn = BatchNorm::new(&start, &device).unwrap();
        let h = Tensor::from_slice(&[1.0f32, 10.0, 3.0, 30.0, 2.5, -4.0], (3, 2), &device).unwrap();
        let close = |got: &[f32], want: &[f64]| {
            for (g, w) in got.iter().zip(want) {
                assert!((*g as f64 - w).abs() < 1e-5 * w.abs().max(1.0), "{got:?} vs {want:?}");
            }
        };
        let train = bn.forward(&h, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        close(
            &train,
            &[
                -1.8077952861785889,
                -1.0716725587844849,
                1.7198536396026611,
                -0.35494673252105713,
                0.8379414081573486,
                -1.5733805894851685,
            ],
        );
        let w = bn.weights().unwrap();
        close(&w.moving_mean, &[0.021666666492819786, 0.11999999731779099]);
        close(&w.moving_variance, &[0.9972222447395325, 2.93666672706604]);
        let infer = bn.forward(&h, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        close(
            &infer,
            &[
                1.718806266784668,
                1.882210373878479,
                4.7214765548706055,
                7.716644287109375,
                3.970808982849121,
                -2.2018933296203613,
            ],
        );
    }
}
