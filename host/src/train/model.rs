//! The course's classifier in candle, any depth: `Dense → [Dropout] → activation` per hidden layer,
//! then `Dense(classes)`; Keras layout. Each layer's activation comes from the network's
//! description ([`LayerShape`]), which travels with the weights into the run, the artifact and the
//! device.

use candle_core::{CpuStorage, CustomOp2, Device, Layout, Result, Shape, Storage, Tensor, Var};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use dropship_shared::{Activation, Dims, LayerKind, LayerShape};

use crate::train::batch_norm::{BatchNorm, BatchNormWeights};
use crate::train::elementwise::values;
pub use crate::train::elementwise::{activate, add_bias, relu};
use crate::train::features::{self, FeatureVars, FeatureWeights};

/// Trainable parameters, one `(kernel, bias)` per layer. Kernels are input-major `(in, out)` as in
/// Keras and the artifact.
#[derive(Clone, Debug)]
pub struct Mlp {
    /// Kernel `(input, output)` and bias `(output)` of every layer, the output layer last.
    pub layers: Vec<(Var, Var)>,
    /// What follows each layer.
    pub activations: Vec<Activation>,
    /// The BatchNorm between a layer and its activation, if it has one.
    pub batch_norms: Vec<Option<BatchNorm>>,
    /// The convolutional front before the Dense layers (empty for an MLP).
    pub front: Vec<FeatureVars>,
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
    /// What follows the layer.
    pub activation: Activation,
    /// A BatchNorm between the layer and its activation (training only: folded at export).
    pub batch_norm: Option<BatchNormWeights>,
}

impl DenseWeights {
    /// A layer without BatchNorm.
    pub fn new(input: usize, kernel: Vec<f32>, bias: Vec<f32>, activation: Activation) -> Self {
        Self { input, kernel, bias, activation, batch_norm: None }
    }

    /// Output width.
    pub fn output(&self) -> usize {
        self.bias.len()
    }

    /// `(kernel, bias)` of the layer as it runs at inference: its BatchNorm, if any, folded in.
    pub fn inference_weights(&self) -> (Vec<f32>, Vec<f32>) {
        match &self.batch_norm {
            Some(bn) => bn.fold(&self.kernel, &self.bias),
            None => (self.kernel.clone(), self.bias.clone()),
        }
    }
}

/// Plain copies of the parameters, for saving, comparing and exporting.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// Every Dense layer, the output layer last (never empty).
    pub layers: Vec<DenseWeights>,
    /// The convolutions, pooling and Flatten before them (empty for an MLP).
    pub front: Vec<FeatureWeights>,
}

/// The course's classifier as a layer description: a ReLU Dense per hidden width, then a linear
/// Dense of `classes` outputs (the logits).
pub fn classifier(hidden: &[usize], classes: usize) -> Vec<LayerShape> {
    let hidden = hidden.iter().map(|units| LayerShape::dense(*units, Activation::Relu));
    hidden.chain([LayerShape::dense(classes, Activation::Linear)]).collect()
}

/// The activations `--activation` offers for hidden layers (softmax spans a layer and is an
/// output's; linear hidden layers collapse into one).
pub const HIDDEN_ACTIVATIONS: [Activation; 4] =
    [Activation::Relu, Activation::Tanh, Activation::Sigmoid, Activation::HardSigmoid];

impl Weights {
    /// Keras's `glorot_uniform` kernels (limit `sqrt(6 / (fan_in + fan_out))`) and zero biases for
    /// the [`classifier`] of these widths, drawn layer by layer from the input to the output.
    pub fn glorot(input: usize, hidden: &[usize], classes: usize, rng: &mut ChaCha8Rng) -> Self {
        Self::glorot_for(Dims::flat(input), &classifier(hidden, classes), rng)
    }

    /// Keras's `glorot_uniform` kernels and zero biases for the network `layers` describes
    /// after an `input` map: its front (convolutions, pooling, up to the first Dense) first.
    pub fn glorot_for(input: Dims, layers: &[LayerShape], rng: &mut ChaCha8Rng) -> Self {
        let split = layers.iter().position(|l| l.kind == LayerKind::Dense).unwrap_or(layers.len());
        let front = features::glorot(input, &layers[..split], rng);
        let mut fan_in = front.last().map_or(input.len(), |f| f.output().len());
        let layers = layers[split..]
            .iter()
            .map(|shape| {
                let fan_out = shape.units;
                let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                let kernel = (0..fan_in * fan_out).map(|_| rng.random_range(-limit..limit)).collect();
                let layer = DenseWeights::new(fan_in, kernel, vec![0.0; fan_out], shape.activation);
                fan_in = fan_out;
                layer
            })
            .collect();
        Self { layers, front }
    }

    /// The network's description: every layer without its parameters.
    pub fn shapes(&self) -> Vec<LayerShape> {
        let front = self.front.iter().map(|f| f.shape);
        front.chain(self.layers.iter().map(|l| LayerShape::dense(l.output(), l.activation))).collect()
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input_dims().len()
    }

    /// The input map: the front's image, or the first Dense layer's width.
    pub fn input_dims(&self) -> Dims {
        match self.front.first() {
            Some(f) => f.input,
            None => Dims::flat(self.layers.first().map_or(0, |l| l.input)),
        }
    }

    /// Class count.
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, DenseWeights::output)
    }

    /// Widths of the hidden layers.
    pub fn hidden(&self) -> Vec<usize> {
        self.layers.split_last().map_or(Vec::new(), |(_, hidden)| hidden.iter().map(DenseWeights::output).collect())
    }

    /// The same weights with every hidden layer followed by `activation` (the output layer keeps
    /// its own), and by a BatchNorm in Keras's initial state before it when `batch_norm` (a layer
    /// that has one keeps it).
    pub fn with_hidden(&self, activation: Activation, batch_norm: bool) -> Self {
        let mut layers = self.layers.clone();
        let hidden = layers.len().saturating_sub(1);
        for l in layers.iter_mut().take(hidden) {
            l.activation = activation;
            if batch_norm && l.batch_norm.is_none() {
                l.batch_norm = Some(BatchNormWeights::initial(l.output()));
            }
        }
        let mut front = self.front.clone();
        for f in front.iter_mut().filter(|f| LayerShape::has_weights(f.shape.kind)) {
            if batch_norm && f.batch_norm.is_none() {
                f.batch_norm = Some(BatchNormWeights::initial(f.shape.units));
            }
        }
        Self { layers, front }
    }

    /// Euclidean norm of every kernel (the convolutions', then the Dense layers'), the output
    /// layer last.
    pub fn kernel_norms(&self) -> Vec<f64> {
        let norm = |k: &[f32]| k.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let front = self.front.iter().filter(|f| !f.kernel.is_empty()).map(|f| norm(&f.kernel));
        front.chain(self.layers.iter().map(|l| norm(&l.kernel))).collect()
    }

    /// Number of weights and biases.
    pub fn parameters(&self) -> usize {
        let front: usize = self.front.iter().map(|f| f.kernel.len() + f.bias.len()).sum();
        front + self.layers.iter().map(|l| l.kernel.len() + l.bias.len()).sum::<usize>()
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
        let batch_norms = weights
            .layers
            .iter()
            .map(|l| l.batch_norm.as_ref().map(|b| BatchNorm::new(b, device)).transpose())
            .collect::<Result<_>>()?;
        let front = weights.front.iter().map(|f| FeatureVars::new(f, device)).collect::<Result<_>>()?;
        Ok(Self { layers, activations: weights.layers.iter().map(|l| l.activation).collect(), batch_norms, front })
    }

    /// All trained variables: every kernel first, the convolutions' then the Dense layers' (the
    /// optimizer decays the first [`Mlp::kernels`]), then the biases in the same order, then each
    /// BatchNorm's gamma and beta.
    pub fn vars(&self) -> Vec<Var> {
        let front = || self.front.iter().filter_map(|f| f.params.as_ref());
        let kernels = front().map(|(k, _)| k.clone()).chain(self.layers.iter().map(|(k, _)| k.clone()));
        let biases = front().map(|(_, b)| b.clone()).chain(self.layers.iter().map(|(_, b)| b.clone()));
        let dense_norms = self.batch_norms.iter().flatten();
        let batch_norms = dense_norms
            .chain(self.front.iter().filter_map(|f| f.batch_norm.as_ref()))
            .flat_map(|b| [b.gamma.clone(), b.beta.clone()]);
        kernels.chain(biases).chain(batch_norms).collect()
    }

    /// Number of dense layers.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Number of convolutions (the kernels before the Dense layers').
    pub fn front_kernels(&self) -> usize {
        self.front.iter().filter(|f| f.params.is_some()).count()
    }

    /// Number of kernels: the convolutions' and the Dense layers'.
    pub fn kernels(&self) -> usize {
        self.front_kernels() + self.depth()
    }

    /// Logits for a batch `(rows, input)`. `dropout_masks` (inverted dropout: 0 or `1/(1-p)` per
    /// unit; one per hidden layer, `None` for a layer without dropout) are applied between each
    /// hidden Dense (and its BatchNorm) and its activation, the course's position; `None` is
    /// inference mode, in which BatchNorm uses its moving statistics (in training mode, the
    /// batch's, and it updates the moving ones).
    pub fn forward(&self, x: &Tensor, dropout_masks: Option<&[Option<Tensor>]>) -> Result<Tensor> {
        let raw = self.forward_raw(x, dropout_masks)?;
        activate(&raw, self.activations.last().copied().unwrap_or(Activation::Linear))
    }

    /// [`Mlp::forward`] without the last layer's activation: the logits a loss is computed from
    /// (softmax and binary cross-entropy from logits, as Keras does for its output activations).
    pub fn forward_raw(&self, x: &Tensor, dropout_masks: Option<&[Option<Tensor>]>) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = features::forward(&self.front, x, dropout_masks.is_some())?;
        for (i, ((kernel, bias), activation)) in self.layers.iter().zip(&self.activations).enumerate() {
            // the data needs no gradient; a convolution's output does
            let product = if i == 0 && self.front.is_empty() {
                input_product(&h, kernel.as_tensor())?
            } else {
                h.matmul(kernel.as_tensor())?
            };
            h = add_bias(&product, bias.as_tensor())?;
            if let Some(Some(bn)) = self.batch_norms.get(i) {
                h = bn.forward(&h, dropout_masks.is_some())?;
            }
            if i < last {
                if let Some(Some(mask)) = dropout_masks.and_then(|m| m.get(i)) {
                    h = (h * mask)?;
                }
                h = activate(&h, *activation)?;
            }
        }
        Ok(h)
    }

    /// A copy of the current parameters.
    pub fn weights(&self) -> Result<Weights> {
        let layers = self
            .layers
            .iter()
            .zip(&self.activations)
            .zip(&self.batch_norms)
            .map(|(((kernel, bias), activation), batch_norm)| {
                let (input, _) = kernel.as_tensor().dims2()?;
                Ok(DenseWeights {
                    input,
                    kernel: kernel.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                    bias: bias.as_tensor().to_vec1::<f32>()?,
                    activation: *activation,
                    batch_norm: batch_norm.as_ref().map(BatchNorm::weights).transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        let front = self.front.iter().map(FeatureVars::weights).collect::<Result<_>>()?;
        Ok(Weights { layers, front })
    }

    /// Overwrites the parameters (restore-best-weights).
    pub fn set(&self, weights: &Weights) -> Result<()> {
        let device = self.layers.first().map_or(Device::Cpu, |(k, _)| k.device().clone());
        let other = Mlp::new(weights, &device)?;
        for (mine, theirs) in self.vars().iter().zip(other.vars()) {
            mine.set(theirs.as_tensor())?;
        }
        for (mine, theirs) in self.batch_norms.iter().zip(&weights.layers) {
            if let (Some(bn), Some(values)) = (mine, &theirs.batch_norm) {
                bn.set(values)?;
            }
        }
        for (mine, theirs) in self.front.iter().zip(&weights.front) {
            if let (Some(bn), Some(values)) = (&mine.batch_norm, &theirs.batch_norm) {
                bn.set(values)?;
            }
        }
        Ok(())
    }
}

/// An inverted-dropout mask `(rows, units)`: each unit kept with probability `1 - rate` and then
/// scaled by `1 / (1 - rate)`, dropped (0) otherwise.
pub fn dropout_mask(rows: usize, units: usize, rate: f32, rng: &mut ChaCha8Rng, device: &Device) -> Result<Tensor> {
    let keep = 1.0 - rate;
    let scale = 1.0 / keep;
    // `rng.random::<f32>() < keep`, the draw rand makes (the top 24 bits of a u32 times 2^-24),
    // compared as an integer: the same decisions from the same stream, without the conversion
    let threshold = keep * 16_777_216.0;
    let mut mask = vec![0.0f32; rows * units];
    for m in mask.iter_mut() {
        if ((rng.next_u32() >> 8) as f32) < threshold {
            *m = scale;
        }
    }
    Tensor::from_vec(mask, (rows, units), device)
}

/// `x · kernel` for the first layer, whose input (the data) needs no gradient: candle's `matmul`
/// computes the gradients of both factors, here a product as large as the forward one, thrown
/// away. The same `gemm` call as candle's, so the same numbers.
pub fn input_product(x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
    x.apply_op2(kernel, InputProduct)
}

struct InputProduct;

impl CustomOp2 for InputProduct {
    fn name(&self) -> &'static str {
        "input-product"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (values(s1, l1)?, values(s2, l2)?);
        let (&[m, k], &[k2, n]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!("input-product: two matrices expected");
        };
        if k != k2 {
            candle_core::bail!("input-product: ({m}, {k}) times ({k2}, {n})");
        }
        let mut dst = vec![0.0f32; m * n];
        crate::train::matmul::matmul((m, n, k), &mut dst, x, (k, 1), w, (n, 1));
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }

    fn bwd(&self, x: &Tensor, _w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(x.t()?.matmul(grad)?)))
    }
}

/// Batch-mean softmax cross-entropy of `logits` `(rows, classes)` against `labels` `(rows)`, u32, as
/// one candle operation with its own gradient, `(softmax - onehot) / rows`: candle's
/// `log_softmax` and `nll` are ten operations forward and as many backward, which cost more than
/// the matrix products on batches this small. The same numbers as theirs: `logsumexp - logit`,
/// with the maximum subtracted first.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    logits.apply_op2(labels, SoftmaxCrossEntropy)
}

struct SoftmaxCrossEntropy;

/// Per row of `logits` (`classes` wide): the softmax, written into `probabilities`, and
/// `logsumexp - logit[label]`.
fn softmax_row(row: &[f32], label: usize, probabilities: &mut [f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, z) in probabilities.iter_mut().zip(row) {
        *p = (z - max).exp();
        sum += *p;
    }
    for p in probabilities.iter_mut() {
        *p /= sum;
    }
    max + sum.ln() - row.get(label).copied().unwrap_or(f32::NAN)
}

/// The contiguous f32 logits and u32 labels of the op's arguments.
fn loss_arguments<'a>(
    logits: (&'a CpuStorage, &Layout),
    labels: (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [u32], usize)> {
    let (CpuStorage::F32(z), CpuStorage::U32(y)) = (logits.0, labels.0) else {
        candle_core::bail!("softmax-cross-entropy: f32 logits and u32 labels");
    };
    let (Some((z0, z1)), Some((y0, y1)), [_, classes]) =
        (logits.1.contiguous_offsets(), labels.1.contiguous_offsets(), logits.1.dims())
    else {
        candle_core::bail!("softmax-cross-entropy: contiguous (rows, classes) logits and (rows) labels");
    };
    Ok((&z[z0..z1], &y[y0..y1], *classes))
}

impl CustomOp2 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (z, y, classes) = loss_arguments((s1, l1), (s2, l2))?;
        let mut probabilities = vec![0.0; classes];
        let total: f32 = z
            .chunks_exact(classes)
            .zip(y)
            .map(|(row, label)| softmax_row(row, *label as usize, &mut probabilities))
            .sum();
        Ok((CpuStorage::F32(vec![total / y.len().max(1) as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (z, z_layout) = logits.storage_and_layout();
        let (y, y_layout) = labels.storage_and_layout();
        let (Storage::Cpu(z), Storage::Cpu(y)) = (&*z, &*y) else {
            candle_core::bail!("softmax-cross-entropy: CPU tensors only");
        };
        let (z, y, classes) = loss_arguments((z, z_layout), (y, y_layout))?;
        let scale = grad.to_scalar::<f32>()? / y.len().max(1) as f32;
        let mut d = vec![0.0f32; z.len()];
        for ((row, label), out) in z.chunks_exact(classes).zip(y).zip(d.chunks_exact_mut(classes)) {
            softmax_row(row, *label as usize, out);
            if let Some(p) = out.get_mut(*label as usize) {
                *p -= 1.0;
            }
            for p in out.iter_mut() {
                *p *= scale;
            }
        }
        Ok((Some(Tensor::from_vec(d, logits.shape(), logits.device())?), None))
    }
}

/// Batch-mean categorical cross-entropy from logits, and the accuracy, computed on the host in f64.
pub fn cross_entropy_and_accuracy(logits: &[f32], labels: &[u32], classes: usize) -> (f64, f64) {
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (row, label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + row.iter().map(|v| (*v as f64 - max).exp()).sum::<f64>().ln();
        loss += lse - row[*label as usize] as f64;
        correct += usize::from(dropship_shared::ops::output::argmax(row) == *label as usize);
    }
    let n = labels.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// The raw outputs of `x` in inference mode (before the last layer's activation: the logits of a
/// classifier, a binary model's logit), as a flat row-major vector.
pub fn logits(model: &Mlp, x: &Tensor) -> Result<Vec<f32>> {
    model.forward_raw(x, None)?.flatten_all()?.to_vec1()
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

    /// The fused operations against candle's own: the same forward values, the same gradients.
    #[test]
    fn the_fused_operations_give_candles_values_and_gradients() {
        let dev = Device::Cpu;
        let mut rng = stream(9, Stream::Init);
        let mut draw = |n: usize| (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect::<Vec<f32>>();
        let h = Var::from_vec(draw(32 * 10), (32, 10), &dev).unwrap();
        let b = Var::from_vec(draw(10), 10, &dev).unwrap();
        let labels = Tensor::from_vec((0..32u32).map(|i| (i * 7) % 10).collect::<Vec<u32>>(), 32, &dev).unwrap();
        let weights = Tensor::from_vec(draw(32 * 10), (32, 10), &dev).unwrap();
        // a loss through every fused operation, and the same through candle's
        let fused = {
            let z = relu(&add_bias(h.as_tensor(), b.as_tensor()).unwrap()).unwrap();
            softmax_cross_entropy(&(z * &weights).unwrap(), &labels).unwrap()
        };
        let candle = {
            let z = h.as_tensor().broadcast_add(b.as_tensor()).unwrap().relu().unwrap();
            candle_nn::loss::cross_entropy(&(z * &weights).unwrap(), &labels).unwrap()
        };
        let (f, c) = (fused.to_scalar::<f32>().unwrap(), candle.to_scalar::<f32>().unwrap());
        assert!((f - c).abs() <= 1e-6 * c.abs(), "loss {f} vs {c}");
        let (fg, cg) = (fused.backward().unwrap(), candle.backward().unwrap());
        for var in [&h, &b] {
            let grad = |g: &candle_core::backprop::GradStore| {
                g.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            };
            let (fv, cv) = (grad(&fg), grad(&cg));
            assert!(fv.iter().any(|x| *x != 0.0), "a gradient reaches it");
            for (x, y) in fv.iter().zip(&cv) {
                assert!((x - y).abs() <= 1e-6, "gradient {x} vs {y}");
            }
        }
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
