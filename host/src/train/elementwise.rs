//! The training operations every layer kind shares: the bias added to each row and the
//! activations (ReLU as one operation with a one-pass gradient), on tensors of any shape whose last
//! dimension is the layer's units.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use dropship_shared::Activation;

/// `h + b`, `b` `(units)` added to every row of `h` `(rows, units)`, as one candle operation: the
/// same additions as `broadcast_add`, but the bias gradient is a plain sum of rows (candle reduces
/// along the strided axis one element at a time, a tenth of a training step on these shapes).
pub fn add_bias(h: &Tensor, b: &Tensor) -> Result<Tensor> {
    h.apply_op2(b, AddBias)
}

/// A layer's activation in training: the function the core applies at inference (candle's own
/// for sigmoid, tanh and softmax, whose results differ from the core's specified formulas by a few
/// ulp; the artifact is checked against candle within 1e-5).
pub fn activate(v: &Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Linear => Ok(v.clone()),
        Activation::Relu => relu(v),
        Activation::Sigmoid => candle_nn::ops::sigmoid(v),
        Activation::Tanh => v.tanh(),
        Activation::HardSigmoid => (v + 3.0)?.clamp(0f32, 6f32)? / 6.0,
        Activation::Softmax => candle_nn::ops::softmax_last_dim(v),
    }
}

/// `max(v, 0)`, as one candle operation whose gradient is one pass (`grad` where `v >= 0`, as
/// candle's own `relu` has it) instead of candle's comparison, conversion and product.
pub fn relu(v: &Tensor) -> Result<Tensor> {
    v.apply_op1(Relu)
}

/// The contiguous f32 values of a CPU tensor, given to `f`.
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        candle_core::bail!("a contiguous f32 CPU tensor was expected");
    };
    Ok(f(&values[start..end]))
}

/// The contiguous f32 values of a storage argument.
pub(crate) fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        _ => candle_core::bail!("a contiguous f32 tensor was expected"),
    }
}

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (h, b) = (values(s1, l1)?, values(s2, l2)?);
        if b.is_empty() || h.len() % b.len() != 0 {
            candle_core::bail!("add-bias: {} values do not make rows of {}", h.len(), b.len());
        }
        let mut out = h.to_vec();
        for row in out.chunks_exact_mut(b.len()) {
            for (x, b) in row.iter_mut().zip(b) {
                *x += b;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _h: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let units = b.elem_count();
        let sums = with_values(&grad, |g| {
            let mut sums = vec![0.0f32; units];
            for row in g.chunks_exact(units.max(1)) {
                for (s, x) in sums.iter_mut().zip(row) {
                    *s += x;
                }
            }
            sums
        })?;
        Ok((Some(grad), Some(Tensor::from_vec(sums, b.shape(), b.device())?)))
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = values(storage, layout)?.iter().map(|v| if *v < 0.0 { 0.0 } else { *v }).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (arg, grad) = (arg.contiguous()?, grad.contiguous()?);
        let passed = with_values(&arg, |v| {
            with_values(&grad, |g| v.iter().zip(g).map(|(v, g)| if *v >= 0.0 { *g } else { 0.0 }).collect::<Vec<f32>>())
        })??;
        Ok(Some(Tensor::from_vec(passed, arg.shape(), arg.device())?))
    }
}
