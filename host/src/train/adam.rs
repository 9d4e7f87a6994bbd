//! Adam exactly as Keras defines it, with optional AdamW decoupled weight decay, as a candle optimizer.
//!
//! Keras (3.x) per step `t`, in f32: `alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)`,
//! `m += (g - m) * (1 - b1)`, `v += (g^2 - v) * (1 - b2)`, `w -= alpha * m / (sqrt(v) + eps)`.
//! candle's `AdamW` places `eps` inside the bias correction and decays by 0.01 by default, so it
//! does not give Keras's numbers. Weight decay, when asked for, is Keras's AdamW:
//! `w -= lr * decay * w` before the Adam update, on kernels only (biases are never regularized).

use std::cell::{Cell, RefCell};

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Var};

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
    /// The L2 coefficient of this variable (0: none).
    l2: f32,
}

/// Keras's Adam (and AdamW) over candle variables.
pub struct KerasAdam {
    slots: Vec<Slot>,
    config: AdamConfig,
    step: i32,
    /// The L2 penalty at the weights the last step started from.
    penalty: f64,
}

impl KerasAdam {
    /// Puts an L2 penalty `l2[i] * sum(w^2)` on variable `i` (0: none), in the order of the
    /// variables given to `new`.
    pub fn set_l2(&mut self, l2: &[f32]) {
        for (slot, lambda) in self.slots.iter_mut().zip(l2) {
            slot.l2 = *lambda;
        }
    }

    /// The L2 penalty (summed over the variables that have one) at the weights the last step
    /// started from, the term the loss of that step's batch includes; 0 without one.
    pub fn penalty(&self) -> f64 {
        self.penalty
    }
}

impl candle_nn::Optimizer for KerasAdam {
    type Config = AdamConfig;

    fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|var| {
                let n = var.as_tensor().elem_count();
                Slot { var, m: vec![0.0; n], v: vec![0.0; n], l2: 0.0 }
            })
            .collect();
        Ok(Self { slots, config, step: 0, penalty: 0.0 })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let (b1, b2, eps, lr) = (c.beta1 as f32, c.beta2 as f32, c.epsilon as f32, c.lr as f32);
        let alpha = lr * (1.0 - b2.powi(self.step)).sqrt() / (1.0 - b1.powi(self.step));
        let decay = (c.lr * c.weight_decay) as f32;
        self.penalty = 0.0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let update = Update {
                moments: RefCell::new((&mut slot.m, &mut slot.v)),
                b1,
                b2,
                eps,
                alpha,
                decay: if i < c.decayed_vars { decay } else { 0.0 },
                l2: slot.l2,
                penalty: Cell::new(0.0),
            };
            slot.var.as_tensor().inplace_op2(grad, &update)?;
            self.penalty += update.penalty.get();
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

/// One variable's update, done in place on its storage (no copies of the weights or the gradient).
struct Update<'a> {
    /// The variable's first and second moments.
    moments: RefCell<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
    b1: f32,
    b2: f32,
    eps: f32,
    /// The step's bias-corrected learning rate.
    alpha: f32,
    /// `lr * weight_decay` for a decayed variable, else 0.
    decay: f32,
    /// The variable's L2 coefficient (0: none), and the penalty found at its weights.
    l2: f32,
    penalty: Cell<f64>,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "keras-adam"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, src: &CpuStorage, src_l: &Layout) -> Result<()> {
        let (CpuStorage::F32(w), CpuStorage::F32(g)) = (dst, src) else {
            candle_core::bail!("keras-adam: f32 variables and gradients only");
        };
        let (Some((w_start, w_end)), Some((g_start, g_end))) = (dst_l.contiguous_offsets(), src_l.contiguous_offsets())
        else {
            candle_core::bail!("keras-adam: contiguous variables and gradients only");
        };
        let (w, g) = (&mut w[w_start..w_end], &g[g_start..g_end]);
        let mut moments = self.moments.borrow_mut();
        let (m, v) = &mut *moments;
        let (b1, b2, eps, alpha, decay) = (self.b1, self.b2, self.eps, self.alpha, self.decay);
        if self.l2 > 0.0 {
            self.penalty.set(self.l2 as f64 * sum_of_squares(w));
        }
        // the L2 gradient added to every element (0 * w where there is none) keeps one loop
        // the compiler vectorizes
        let two_l2 = 2.0 * self.l2;
        for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = flush_tiny(*g + two_l2 * *w);
            if decay > 0.0 {
                *w -= *w * decay;
            }
            *m = flush_tiny(*m + (g - *m) * (1.0 - b1));
            let g2 = if g.abs() < TINY.sqrt() { 0.0 } else { g * g };
            *v = flush_tiny(*v + (g2 - *v) * (1.0 - b2));
            *w -= alpha * *m / (v.sqrt() + eps);
        }
        Ok(())
    }
}

/// Moments and gradients smaller than this are taken as 0 (see [`flush_tiny`]).
const TINY: f32 = 1e-30;

/// `x`, or 0 when `|x| < 1e-30`: keeps Adam's state out of the subnormal range.
///
/// An L2 penalty shrinks gradients until their squares in the second moment turn subnormal, and
/// x86 cores take a slow path of a hundred cycles or more for every operation on one (the course's
/// L2 model trained 2.7 times slower). TensorFlow avoids it by running its CPU threads with
/// flush-to-zero, a floating-point mode Rust cannot change soundly (LLVM assumes the default
/// mode); this flushes in the update itself instead, with a threshold far enough above the
/// subnormal range (below 1.2e-38) that no product or difference of the step can reach it. The
/// deviation from Keras's step is bounded: a first moment below 1e-30 moves a weight by less than
/// `alpha * 1e-30 / eps = alpha * 1e-23`, and a second moment below 1e-30 changes
/// `sqrt(v) + eps` by less than 1e-15 against `eps = 1e-7`, a relative 1e-8, below f32's resolution.
#[inline(always)]
fn flush_tiny(x: f32) -> f32 {
    if x.abs() < TINY {
        0.0
    } else {
        x
    }
}

/// `sum(w^2)`, eight lanes at a time (a serial sum would keep the loop from vectorizing).
fn sum_of_squares(w: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 8];
    let chunks = w.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x * x;
        }
    }
    lanes.iter().map(|l| *l as f64).sum::<f64>() + rest as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
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

    /// The L2 term by hand: w1 = [1, -2] and w2 = [3, 0] with lambda 0.5, the bias unpenalized, and
    /// a loss whose own gradient is 0. The penalty is 0.5 * (1 + 4) + 0.5 * 9 = 7; the gradient
    /// 2 * 0.5 * w, so the first moments after one step are 0.1 * w.
    #[test]
    fn the_l2_term_and_its_gradient_by_hand() {
        let dev = Device::Cpu;
        let w1 = Var::from_slice(&[1.0f32, -2.0], 2, &dev).unwrap();
        let w2 = Var::from_slice(&[3.0f32, 0.0], 2, &dev).unwrap();
        let bias = Var::from_slice(&[5.0f32], 1, &dev).unwrap();
        let sum = |v: &Var| v.as_tensor().sum_all().unwrap();
        // a loss whose gradient is 0 everywhere (a product with a constant 0)
        let zero = Tensor::zeros((), candle_core::DType::F32, &dev).unwrap();
        let loss = ((sum(&w1) + sum(&w2)).unwrap() + sum(&bias)).unwrap().broadcast_mul(&zero).unwrap();
        let mut opt = KerasAdam::new(vec![w1.clone(), w2.clone(), bias.clone()], AdamConfig::default()).unwrap();
        opt.set_l2(&[0.5, 0.5, 0.0]);
        opt.backward_step(&loss).unwrap();
        assert_eq!(opt.penalty(), 7.0);
        let first = 1.0 - 0.9f32; // (1 - beta1) in f32, as the step computes it
        assert_eq!(opt.slots[0].m, vec![first, -2.0 * first]);
        assert_eq!(opt.slots[1].m, vec![3.0 * first, 0.0]);
        assert_eq!(opt.slots[2].m, vec![0.0]);
        // only w2 penalized now: the penalty is taken at the weights the step starts from
        opt.set_l2(&[0.0, 0.5, 0.0]);
        let w2_now = opt.slots[1].var.as_tensor().to_vec1::<f32>().unwrap();
        let vars: Vec<Var> = opt.slots.iter().map(|s| s.var.clone()).collect();
        let loss = ((sum(&vars[0]) + sum(&vars[1])).unwrap() + sum(&vars[2])).unwrap().broadcast_mul(&zero).unwrap();
        opt.backward_step(&loss).unwrap();
        assert_eq!(opt.penalty(), (0.5 * w2_now.iter().map(|w| w * w).sum::<f32>()) as f64);
    }

    /// Gradients far below 1e-30 (subnormal ones included) leave the moments at 0 instead of
    /// subnormal, and the weights where Keras's step would leave them to f32's resolution.
    #[test]
    fn tiny_gradients_keep_the_moments_out_of_the_subnormal_range() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1.0f32, -2.0, 0.5, 3.0], 4, &dev).unwrap();
        // gradients 1e-20 (square subnormal), 1e-40 (itself subnormal), 2e-25, and a normal one
        let g = Tensor::new(&[1e-20f32, 1e-40, -2e-25, 0.25], &dev).unwrap();
        let mut opt = KerasAdam::new(vec![w.clone()], AdamConfig::default()).unwrap();
        for _ in 0..50 {
            let loss = (w.as_tensor() * &g).unwrap().sum_all().unwrap();
            opt.backward_step(&loss).unwrap();
            let slot = &opt.slots[0];
            for x in slot.m.iter().chain(&slot.v) {
                assert!(*x == 0.0 || x.is_normal(), "a subnormal moment: {x:e}");
            }
        }
        let slot = &opt.slots[0];
        assert_eq!(slot.v[..3], [0.0, 0.0, 0.0]);
        assert!(slot.m[0] != 0.0 && slot.m[1] == 0.0 && slot.v[3] > 0.0);
        // Keras's step for the tiny gradients moves the weights by less than f32 can show
        let got = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!((got[1] + 2.0).abs() <= f32::EPSILON * 2.0 && (got[2] - 0.5).abs() <= f32::EPSILON, "{got:?}");
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
