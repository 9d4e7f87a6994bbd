//! The convolutional training operations, NHWC as the artifact stores maps, each one candle
//! operation with its own gradient: a convolution as im2col and one `gemm` (forward, and both
//! gradients), a depthwise convolution and the poolings as direct loops.
//!
//! candle's own convolution runs NCHW and takes its input's gradient through a transposed
//! convolution; these keep every map channels-last (no permutes), skip the data's gradient
//! (`first`), and walk windows with the shared core's [`Placement`] (Keras's padding), so what
//! trains is what the artifact runs.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use dropship_shared::ops::window::Placement;
use dropship_shared::{Dims, LayerKind};

use crate::train::elementwise::values;
use crate::train::matmul::matmul;

/// The contiguous f32 values of a tensor (made contiguous first).
fn tensor_values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1()
}

/// Rows of `map` values in `x`.
fn batch(x: &[f32], map: Dims) -> Result<usize> {
    if map.is_empty() || !x.len().is_multiple_of(map.len()) {
        candle_core::bail!("{} values are not rows of a {map} map", x.len());
    }
    Ok(x.len() / map.len())
}

/// A convolution over NHWC rows: `x (rows, map)` and the kernel `(taps · in, filters)` (Keras's
/// `(rows, cols, in, out)`) give `(rows · positions, filters)`, before the bias.
pub struct Conv {
    /// The window over the input map.
    pub at: Placement,
    /// Output channels.
    pub filters: usize,
    /// Whether the input is the data (its gradient is not computed).
    pub first: bool,
}

impl Conv {
    fn taps(&self) -> usize {
        self.at.window.size[0] * self.at.window.size[1]
    }

    /// Each output position's receptive field as a row of `taps · in` values (zeros where padded),
    /// row by row of the window: one copy of `cols · in` values for each window row inside the
    /// input when the window's columns are all inside, tap by tap at the edges.
    fn patches(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (c, k, positions) = (self.at.input.channels, self.taps() * self.at.input.channels, self.at.positions());
        let (out_rows, out_cols) = self.at.output_size();
        let (height, width) = (self.at.input.height, self.at.input.width);
        let [kh, kw] = self.at.window.size;
        let [sh, sw] = self.at.window.stride;
        let (top, left) = (self.at.before(0), self.at.before(1));
        let mut patches = vec![0.0; rows * positions * k];
        for (image, patches) in x.chunks_exact(self.at.input.len()).zip(patches.chunks_exact_mut(positions * k)) {
            for (position, patch) in patches.chunks_exact_mut(k).enumerate() {
                let (oy, ox) = (position / out_cols, position % out_cols);
                debug_assert!(oy < out_rows);
                let x0 = (ox * sw) as isize - left as isize;
                for ky in 0..kh {
                    let iy = (oy * sh + ky) as isize - top as isize;
                    if iy < 0 || iy >= height as isize {
                        continue;
                    }
                    let row = &image[iy as usize * width * c..][..width * c];
                    let out = &mut patch[ky * kw * c..][..kw * c];
                    if x0 >= 0 && x0 as usize + kw <= width {
                        out.copy_from_slice(&row[x0 as usize * c..][..kw * c]);
                    } else {
                        for kx in 0..kw {
                            let ix = x0 + kx as isize;
                            if ix >= 0 && ix < width as isize {
                                out[kx * c..][..c].copy_from_slice(&row[ix as usize * c..][..c]);
                            }
                        }
                    }
                }
            }
        }
        patches
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-nhwc"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, kernel) = (values(s1, l1)?, values(s2, l2)?);
        let rows = batch(x, self.at.input)?;
        let k = self.taps() * self.at.input.channels;
        if kernel.len() != k * self.filters {
            candle_core::bail!("conv2d-nhwc: a kernel of {} values for {k} × {}", kernel.len(), self.filters);
        }
        let patches = self.patches(x, rows);
        let m = rows * self.at.positions();
        let mut out = vec![0.0; m * self.filters];
        matmul((m, self.filters, k), &mut out, &patches, (k, 1), kernel, (self.filters, 1));
        Ok((CpuStorage::F32(out), Shape::from((m, self.filters))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, g) = (tensor_values(x)?, tensor_values(grad)?);
        let rows = batch(&xv, self.at.input)?;
        let (k, m, f) = (self.taps() * self.at.input.channels, rows * self.at.positions(), self.filters);
        let patches = self.patches(&xv, rows);
        // dK (k × f) = patchesᵀ · dY
        let mut grad_kernel = vec![0.0; k * f];
        matmul((k, f, m), &mut grad_kernel, &patches, (1, k), &g, (f, 1));
        let grad_kernel = Tensor::from_vec(grad_kernel, kernel.shape(), kernel.device())?;
        if self.first {
            return Ok((None, Some(grad_kernel)));
        }
        // dpatches (m × k) = dY · Kᵀ, then each patch's values added back where they came from
        let kv = tensor_values(kernel)?;
        let mut grad_patches = vec![0.0; m * k];
        matmul((m, k, f), &mut grad_patches, &g, (f, 1), &kv, (1, f));
        let c = self.at.input.channels;
        let (positions, (_, cols)) = (self.at.positions(), self.at.output_size());
        let mut grad_x = vec![0.0; xv.len()];
        for (b, image) in grad_x.chunks_exact_mut(self.at.input.len()).enumerate() {
            for position in 0..positions {
                let patch = &grad_patches[(b * positions + position) * k..][..k];
                for (tap, pixel) in self.at.taps(position / cols, position % cols) {
                    for (d, v) in image[pixel * c..][..c].iter_mut().zip(&patch[tap * c..][..c]) {
                        *d += v;
                    }
                }
            }
        }
        Ok((Some(Tensor::from_vec(grad_x, x.shape(), x.device())?), Some(grad_kernel)))
    }
}

/// A depthwise convolution over NHWC rows, one filter per channel: `x (rows, map)` and the kernel
/// `(taps, channels)` give `(rows · positions, channels)`, before the bias.
pub struct Depthwise {
    /// The window over the input map.
    pub at: Placement,
    /// Whether the input is the data (its gradient is not computed).
    pub first: bool,
}

impl Depthwise {
    /// Calls `f(row, output position, tap, input pixel)` for every tap inside the input.
    fn each(&self, rows: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (_, cols) = self.at.output_size();
        for b in 0..rows {
            for position in 0..self.at.positions() {
                for (tap, pixel) in self.at.taps(position / cols, position % cols) {
                    f(b, position, tap, pixel);
                }
            }
        }
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-nhwc"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, kernel) = (values(s1, l1)?, values(s2, l2)?);
        let (rows, c, positions) = (batch(x, self.at.input)?, self.at.input.channels, self.at.positions());
        let mut out = vec![0.0; rows * positions * c];
        self.each(rows, |b, position, tap, pixel| {
            let y = &mut out[(b * positions + position) * c..][..c];
            let x = &x[b * self.at.input.len() + pixel * c..][..c];
            for ((y, x), w) in y.iter_mut().zip(x).zip(&kernel[tap * c..][..c]) {
                *y += x * w;
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows * positions, c))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, kv, g) = (tensor_values(x)?, tensor_values(kernel)?, tensor_values(grad)?);
        let (rows, c, positions) = (batch(&xv, self.at.input)?, self.at.input.channels, self.at.positions());
        let (mut grad_kernel, mut grad_x) = (vec![0.0; kv.len()], vec![0.0; if self.first { 0 } else { xv.len() }]);
        self.each(rows, |b, position, tap, pixel| {
            let g = &g[(b * positions + position) * c..][..c];
            let at = b * self.at.input.len() + pixel * c;
            for ((dk, x), g) in grad_kernel[tap * c..][..c].iter_mut().zip(&xv[at..][..c]).zip(g) {
                *dk += x * g;
            }
            if let Some(dx) = grad_x.get_mut(at..at + c) {
                for ((dx, w), g) in dx.iter_mut().zip(&kv[tap * c..][..c]).zip(g) {
                    *dx += w * g;
                }
            }
        });
        let grad_kernel = Tensor::from_vec(grad_kernel, kernel.shape(), kernel.device())?;
        let grad_x = if self.first { None } else { Some(Tensor::from_vec(grad_x, x.shape(), x.device())?) };
        Ok((grad_x, Some(grad_kernel)))
    }
}

/// Max or average pooling over NHWC rows, `(rows, map)` to `(rows, out map)`, as the shared core
/// computes it (windows inside the input; an average over the taps inside). The gradient of a
/// maximum goes to the window's first largest value, as TensorFlow's does.
pub struct Pool {
    /// The window over the input map.
    pub at: Placement,
    /// [`LayerKind::MaxPool2d`] or [`LayerKind::AveragePool2d`].
    pub kind: LayerKind,
}

impl Pool {
    /// Per row and output position, the taps inside the input (their pixels).
    fn windows(&self) -> Vec<Vec<usize>> {
        let (_, cols) = self.at.output_size();
        (0..self.at.positions()).map(|p| self.at.taps(p / cols, p % cols).map(|(_, pixel)| pixel).collect()).collect()
    }
}

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "pool-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = values(storage, layout)?;
        let (rows, c, len) = (batch(x, self.at.input)?, self.at.input.channels, self.at.input.len());
        let windows = self.windows();
        let mut out = vec![0.0; rows * windows.len() * c];
        for (image, y) in x.chunks_exact(len).zip(out.chunks_exact_mut(windows.len() * c)) {
            for (window, y) in windows.iter().zip(y.chunks_exact_mut(c)) {
                match self.kind {
                    LayerKind::MaxPool2d => {
                        y.copy_from_slice(&image[window[0] * c..][..c]);
                        for pixel in &window[1..] {
                            for (y, x) in y.iter_mut().zip(&image[pixel * c..][..c]) {
                                if *x > *y {
                                    *y = *x;
                                }
                            }
                        }
                    }
                    _ => {
                        for pixel in window {
                            for (y, x) in y.iter_mut().zip(&image[pixel * c..][..c]) {
                                *y += x;
                            }
                        }
                        let count = window.len() as f32;
                        y.iter_mut().for_each(|y| *y /= count);
                    }
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, windows.len() * c))))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (xv, yv, g) = (tensor_values(x)?, tensor_values(res)?, tensor_values(grad)?);
        let (c, len) = (self.at.input.channels, self.at.input.len());
        let windows = self.windows();
        let out_len = windows.len() * c;
        let mut grad_x = vec![0.0; xv.len()];
        for (b, dx) in grad_x.chunks_exact_mut(len).enumerate() {
            let image = &xv[b * len..][..len];
            for (w, window) in windows.iter().enumerate() {
                for ch in 0..c {
                    let at = b * out_len + w * c + ch;
                    match self.kind {
                        LayerKind::MaxPool2d => {
                            if let Some(pixel) = window.iter().find(|p| image[*p * c + ch] == yv[at]) {
                                dx[pixel * c + ch] += g[at];
                            }
                        }
                        _ => {
                            let share = g[at] / window.len() as f32;
                            window.iter().for_each(|p| dx[p * c + ch] += share);
                        }
                    }
                }
            }
        }
        Ok(Some(Tensor::from_vec(grad_x, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use dropship_shared::{Padding, Window};

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    /// The largest difference between the gradients of `vars` through `ours` and `theirs` of a
    /// weighted sum of the outputs (`weights` the same shape as both).
    fn gradient_gap(ours: Tensor, theirs: Tensor, weights: &Tensor, vars: [&Var; 2]) -> f32 {
        let grads = |y: Tensor| (y * weights).unwrap().sum_all().unwrap().backward().unwrap();
        let (a, b) = (grads(ours), grads(theirs));
        vars.iter().map(|v| max_abs_diff(a.get(v).unwrap(), b.get(v).unwrap())).fold(0.0, f32::max)
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    /// The operations against candle's NCHW ones (forward, and the gradients of both inputs)
    /// on odd maps, channels that are not multiples of 4, stride 2 and Keras's `same` padding
    /// (square maps: candle's convolution gradient pads both axes by the rows' rule).
    #[test]
    fn the_nhwc_operations_and_their_gradients_equal_candles_nchw_ones() {
        let device = Device::Cpu;
        let map = Dims::image(7, 7, 3);
        for (size, stride, padding) in
            [(3, 1, Padding::Valid), (3, 2, Padding::Same), (2, 2, Padding::Valid), (1, 1, Padding::Valid)]
        {
            let window = Window::new([size; 2], [stride; 2], padding);
            let at = Placement::new(map, window).unwrap();
            let (oh, ow) = at.output_size();
            let x = Var::from_vec(values(2 * map.len(), 0.1), (2, map.len()), &device).unwrap();
            let kernel = Var::from_vec(values(size * size * 3 * 5, 0.7), (size * size * 3, 5), &device).unwrap();
            let ours = x.as_tensor().apply_op2(kernel.as_tensor(), Conv { at, filters: 5, first: false }).unwrap();
            // candle: NHWC → NCHW, padded as Keras pads, kernel (taps, in, out) → (out, in, rows, cols)
            let total = |len: usize, out: usize| ((out - 1) * stride + size).saturating_sub(len);
            let axis = |a: usize, len: usize, out: usize| {
                let before = window.axis(a, len).unwrap().before;
                (before, total(len, out) - before)
            };
            let (rows, cols) = (axis(0, 7, oh), axis(1, 7, ow));
            let nchw = x.as_tensor().reshape((2, 7, 7, 3)).unwrap().permute((0, 3, 1, 2)).unwrap();
            let padded = nchw.pad_with_zeros(2, rows.0, rows.1).unwrap().pad_with_zeros(3, cols.0, cols.1).unwrap();
            let w = kernel
                .as_tensor()
                .reshape((size, size, 3, 5))
                .unwrap()
                .permute((3, 2, 0, 1))
                .unwrap()
                .contiguous()
                .unwrap();
            let theirs = padded
                .conv2d(&w, 0, stride, 1, 1)
                .unwrap()
                .permute((0, 2, 3, 1))
                .unwrap()
                .reshape((2 * oh * ow, 5))
                .unwrap();
            let diff = max_abs_diff(&ours, &theirs);
            assert!(diff < 1e-5, "{window:?}: forward {diff}");
            let weights = Tensor::from_vec(values(2 * oh * ow * 5, 2.0), (2 * oh * ow, 5), &device).unwrap();
            let gap = gradient_gap(ours, theirs, &weights, [&x, &kernel]);
            assert!(gap < 1e-4, "{window:?}: gradient {gap}");
            // pooling: max and average against the shared core's forward, gradients by hand
            for kind in [LayerKind::MaxPool2d, LayerKind::AveragePool2d] {
                let pooled = x
                    .as_tensor()
                    .apply_op1(Pool { at, kind })
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let xs = x.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for b in 0..2 {
                    let mut expected = vec![0.0; oh * ow * 3];
                    let image = &xs[b * map.len()..][..map.len()];
                    match kind {
                        LayerKind::MaxPool2d => dropship_shared::ops::pool::max_pool(&at, image, &mut expected),
                        _ => dropship_shared::ops::pool::average_pool(&at, image, &mut expected),
                    }
                    assert_eq!(&pooled[b * oh * ow * 3..][..oh * ow * 3], &expected[..], "{kind} {window:?}");
                }
                let grads = x.as_tensor().apply_op1(Pool { at, kind }).unwrap().sum_all().unwrap().backward().unwrap();
                let total: f32 = grads.get(&x).unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(
                    (total - (2 * oh * ow * 3) as f32).abs() < 1e-3,
                    "each output's gradient of 1 lands once: {total}"
                );
            }
        }
    }

    /// On maps that are not square (which candle's gradient cannot take), the forward pass
    /// against the shared core's operators, which are checked against naive loops.
    #[test]
    fn on_odd_maps_the_operations_compute_what_the_shared_core_computes() {
        let device = Device::Cpu;
        let map = Dims::image(7, 6, 3);
        for window in [
            Window::new([3, 3], [2, 2], Padding::Same),
            Window::new([4, 2], [1, 2], Padding::Same),
            Window::new([2, 3], [1, 1], Padding::Valid),
        ] {
            let at = Placement::new(map, window).unwrap();
            let taps = window.size[0] * window.size[1];
            let x = values(map.len(), 0.4);
            let (kernel, dw) = (values(taps * 3 * 5, 0.9), values(taps * 3, 1.3));
            let xt = Tensor::from_vec(x.clone(), (1, map.len()), &device).unwrap();
            let ours = xt
                .apply_op2(
                    &Tensor::from_vec(kernel.clone(), (taps * 3, 5), &device).unwrap(),
                    Conv { at, filters: 5, first: true },
                )
                .unwrap();
            let mut core = vec![0.0; at.positions() * 5];
            dropship_shared::ops::conv::conv2d(
                &at,
                &x,
                &kernel,
                &[0.0; 5],
                &mut core,
                dropship_shared::Activation::Linear,
            );
            let ours: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
            assert!(ours.iter().zip(&core).all(|(a, b)| (a - b).abs() < 1e-5), "{window:?}");
            let ours = xt
                .apply_op2(&Tensor::from_vec(dw.clone(), (taps, 3), &device).unwrap(), Depthwise { at, first: true })
                .unwrap();
            let mut core = vec![0.0; at.positions() * 3];
            dropship_shared::ops::conv::depthwise_conv2d(
                &at,
                &x,
                &dw,
                &[0.0; 3],
                &mut core,
                dropship_shared::Activation::Linear,
            );
            assert_eq!(ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(), core, "{window:?}");
        }
    }

    #[test]
    fn the_depthwise_operation_and_its_gradients_equal_candles_grouped_convolution() {
        let device = Device::Cpu;
        let map = Dims::image(5, 5, 3);
        let window = Window::new([3, 3], [2, 2], Padding::Same);
        let at = Placement::new(map, window).unwrap();
        let (oh, ow) = at.output_size();
        let x = Var::from_vec(values(2 * map.len(), 0.3), (2, map.len()), &device).unwrap();
        let kernel = Var::from_vec(values(9 * 3, 1.1), (9, 3), &device).unwrap();
        let ours = x.as_tensor().apply_op2(kernel.as_tensor(), Depthwise { at, first: false }).unwrap();
        let rows = window.axis(0, 5).unwrap();
        let cols = window.axis(1, 5).unwrap();
        let after =
            |a: dropship_shared::layer::Axis, len: usize| ((a.outputs - 1) * 2 + 3).saturating_sub(len + a.before);
        let nchw = x.as_tensor().reshape((2, 5, 5, 3)).unwrap().permute((0, 3, 1, 2)).unwrap();
        let padded = nchw
            .pad_with_zeros(2, rows.before, after(rows, 5))
            .unwrap()
            .pad_with_zeros(3, cols.before, after(cols, 5))
            .unwrap();
        let w = kernel
            .as_tensor()
            .reshape((3, 3, 3))
            .unwrap()
            .permute((2, 0, 1))
            .unwrap()
            .unsqueeze(1)
            .unwrap()
            .contiguous()
            .unwrap();
        let theirs =
            padded.conv2d(&w, 0, 2, 1, 3).unwrap().permute((0, 2, 3, 1)).unwrap().reshape((2 * oh * ow, 3)).unwrap();
        let diff = max_abs_diff(&ours, &theirs);
        assert!(diff < 1e-5, "forward {diff}");
        let weights = Tensor::from_vec(values(2 * oh * ow * 3, 2.0), (2 * oh * ow, 3), &device).unwrap();
        let gap = gradient_gap(ours, theirs, &weights, [&x, &kernel]);
        assert!(gap < 1e-4, "gradient {gap}");
    }
}
