//! Adam exactly as Keras defines it, with optional AdamW decoupled weight decay, as a candle optimizer.
//!
//! Keras (3.x) per step `t`, in f32: `alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)`,
//! `m += (g - m) * (1 - b1)`, `v += (g^2 - v) * (1 - b2)`, `w -= alpha * m / (sqrt(v) + eps)`.
//! candle's `AdamW` places `eps` inside the bias correction and decays by 0.01 by default, so it
//! does not give Keras's numbers. Weight decay, when asked for, is Keras's AdamW:
//! `w -= lr * decay * w` before the Adam update, on kernels only (biases are never regularized).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Hyper-parameters; the defaults are Keras's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Keras's epsilon, added to `sqrt(v)`.
    pub epsilon: f64,
    /// Decoupled weight decay (AdamW), applied to the first `decayed_vars` variables.
    pub weight_decay: f64,
    /// How many of the variables (the kernels, listed first) weight decay applies to.
    pub decayed_vars: usize,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weight_decay: 0.0, decayed_vars: 0 }
    }
}

struct Slot {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Keras's Adam (and AdamW) over candle variables.
pub struct KerasAdam {
    slots: Vec<Slot>,
    config: AdamConfig,
    step: i32,
}

impl candle_nn::Optimizer for KerasAdam {
    type Config = AdamConfig;

    fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|var| {
                let n = var.as_tensor().elem_count();
                Slot { var, m: vec![0.0; n], v: vec![0.0; n] }
            })
            .collect();
        Ok(Self { slots, config, step: 0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let (b1, b2, eps, lr) = (c.beta1 as f32, c.beta2 as f32, c.epsilon as f32, c.lr as f32);
        let alpha = lr * (1.0 - b2.powi(self.step)).sqrt() / (1.0 - b1.powi(self.step));
        let decay = (c.lr * c.weight_decay) as f32;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let g = grad.flatten_all()?.to_vec1::<f32>()?;
            let mut w = slot.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let decays = decay > 0.0 && i < c.decayed_vars;
            for (((w, g), m), v) in w.iter_mut().zip(&g).zip(&mut slot.m).zip(&mut slot.v) {
                if decays {
                    *w -= *w * decay;
                }
                *m += (*g - *m) * (1.0 - b1);
                *v += (*g * *g - *v) * (1.0 - b2);
                *w -= alpha * *m / (v.sqrt() + eps);
            }
            let shape = slot.var.as_tensor().shape().clone();
            slot.var.set(&Tensor::from_vec(w, shape, slot.var.device())?)?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    /// One step on `loss = 0.5 * sum(w * g0)`-style gradients, against values worked out by hand
    /// from Keras's formulas (in f64):
    ///   t = 1: m = 0.1 g, v = 0.001 g^2, alpha = 1e-3 * sqrt(0.001) / 0.1 = 3.16227766e-4
    ///   w1 = w0 - alpha * m / (sqrt(v) + 1e-7)
    /// w0 = [1.0, -2.0], g = [0.5, -4.0]:
    ///   w1[0] = 1 - 3.16227766e-4 * 0.05 / (0.0158113883 + 1e-7) = 0.99900000632
    ///   w1[1] = -2 + 3.16227766e-4 * 0.4 / (0.126491106 + 1e-7) = -1.99900000079
    #[test]
    fn one_keras_adam_step_by_hand() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1.0f32, -2.0], 2, &dev).unwrap();
        let g = Tensor::new(&[0.5f32, -4.0], &dev).unwrap();
        let loss = (w.as_tensor() * &g).unwrap().sum_all().unwrap();
        let mut opt = KerasAdam::new(vec![w.clone()], AdamConfig::default()).unwrap();
        opt.backward_step(&loss).unwrap();
        let got = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!((got[0] as f64 - 0.99900000632).abs() < 1e-7, "{got:?}");
        assert!((got[1] as f64 + 1.99900000079).abs() < 1e-7, "{got:?}");

        // second step, same gradient: m = 0.19 g, v = 0.001999 g^2, alpha = 1e-3 sqrt(0.001999)/0.19
        let loss = (w.as_tensor() * &g).unwrap().sum_all().unwrap();
        opt.backward_step(&loss).unwrap();
        let alpha2 = 1e-3 * (1.0f64 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
        let step2 = alpha2 * 0.19 * 0.5 / ((0.001999f64 * 0.25).sqrt() + 1e-7);
        let got2 = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!((got2[0] as f64 - (0.99900000632 - step2)).abs() < 1e-7, "{got2:?}");
    }

    #[test]
    fn decoupled_weight_decay_shrinks_kernels_only() {
        // Both start at 1 with gradient 0.5 (loss = 0.5 * (kernel + bias)); the Adam step is the
        // 0.00099999368 of the test above. With decay 0.5 the kernel first loses lr * 0.5 * 1 = 5e-4:
        //   kernel = 1 - 5e-4 - 0.00099999368 = 0.99850000632, bias = 1 - 0.00099999368 = 0.99900000632
        let dev = Device::Cpu;
        let kernel = Var::from_slice(&[1.0f32], 1, &dev).unwrap();
        let bias = Var::from_slice(&[1.0f32], 1, &dev).unwrap();
        let loss = ((kernel.as_tensor() + bias.as_tensor()).unwrap() * 0.5).unwrap().sum_all().unwrap();
        let config = AdamConfig { weight_decay: 0.5, decayed_vars: 1, ..AdamConfig::default() };
        let mut opt = KerasAdam::new(vec![kernel.clone(), bias.clone()], config).unwrap();
        opt.backward_step(&loss).unwrap();
        let k = kernel.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        let b = bias.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((k - 0.99850000632).abs() < 1e-7, "{k}");
        assert!((b - 0.99900000632).abs() < 1e-7, "{b}");
    }
}
