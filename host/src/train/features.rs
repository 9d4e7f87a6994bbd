//! The convolutional front of a model: the layers `--layers` lists before its Dense layers
//! (Conv2D, DepthwiseConv2D, MaxPool2D, AveragePool2D, GlobalAveragePool, Flatten), their
//! Keras-initialized weights, and their forward pass in candle.
//!
//! The syntax reads like Keras's layer list: `conv8k3,maxpool2,conv16k3,maxpool2,flatten,dense10`
//! is `Conv2D(8, 3)`, `MaxPooling2D(2)`, `Conv2D(16, 3)`, `MaxPooling2D(2)`, `Flatten()`,
//! `Dense(10)`. Kernels are stored as Keras stores them (`(rows, cols, in, out)`, depthwise
//! `(rows, cols, channels)`) and maps NHWC, so the artifact takes them as they are; the forward
//! pass runs the NHWC operations of [`crate::train::conv_ops`].

use candle_core::{Result, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use dropship_shared::{Activation, Dims, LayerKind, LayerShape, Padding, Window};

use crate::train::batch_norm::{BatchNorm, BatchNormWeights};
use crate::train::conv_ops::{Conv, Depthwise, Pool};
use crate::train::elementwise::{activate, add_bias};
use dropship_shared::ops::window::Placement;

/// A `--layers` list that cannot be built.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LayersError {
    #[error(
        "--layers: `{0}` is not a layer (use convFkK[sS][same], dwkK[sS][same], maxpoolP, avgpoolP, gap, flatten, denseN, with K and S a number or RxC; e.g. conv8k3,maxpool2,flatten,dense10)"
    )]
    Unknown(String),
    #[error("--layers: {0}")]
    Shape(String),
}

/// What `--layers` lists: the front (convolutions, pooling, and the Flatten or global pooling that
/// ends it), the hidden Dense widths, and the output Dense's width.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerList {
    /// The layers before the first Dense, with `activation` on the convolutions.
    pub front: Vec<LayerShape>,
    /// Widths of the hidden Dense layers.
    pub hidden: Vec<usize>,
    /// The last Dense layer's width: the task's outputs.
    pub outputs: usize,
}

fn number(text: &str, token: &str) -> std::result::Result<usize, LayersError> {
    text.parse().ok().filter(|n| (1..=4096).contains(n)).ok_or_else(|| LayersError::Unknown(token.into()))
}

/// `R` or `RxC`: a square or `rows × cols` side (or stride).
fn sides(text: &str, token: &str) -> std::result::Result<[usize; 2], LayersError> {
    match text.split_once('x') {
        Some((rows, cols)) => Ok([number(rows, token)?, number(cols, token)?]),
        None => number(text, token).map(|n| [n, n]),
    }
}

/// `k{K}[s{S}][same|valid]`: a window of `K` (square) or `RxC` (rows × cols) taps, a stride `S`
/// or `RxC` (Keras's default padding, `valid`).
fn window(rest: &str, token: &str) -> std::result::Result<Window, LayersError> {
    let (rest, padding) = match (rest.strip_suffix("same"), rest.strip_suffix("valid")) {
        (Some(r), _) => (r, Padding::Same),
        (_, Some(r)) => (r, Padding::Valid),
        _ => (rest, Padding::Valid),
    };
    let rest = rest.strip_prefix('k').ok_or_else(|| LayersError::Unknown(token.into()))?;
    let (size, stride) = match rest.split_once('s') {
        Some((size, stride)) => (sides(size, token)?, sides(stride, token)?),
        None => (sides(rest, token)?, [1, 1]),
    };
    if size.iter().chain(&stride).any(|n| *n > 64) {
        return Err(LayersError::Shape(format!("`{token}`: windows and strides are at most 64")));
    }
    Ok(Window::new(size, stride, padding))
}

/// Parses `--layers` for an `image` input: every convolution followed by `activation`, the maps
/// chained by Keras's rules (a window that fits nowhere, or a Dense after a map, is an error).
pub fn parse(spec: &str, image: Dims, activation: Activation) -> std::result::Result<LayerList, LayersError> {
    let mut front = Vec::new();
    let mut dense = Vec::new();
    let mut map = image;
    for token in spec.split(',').map(str::trim) {
        let shape = if let Some(units) = token.strip_prefix("dense") {
            if !map.is_flat() {
                return Err(LayersError::Shape(format!(
                    "`{token}` after a {map} map: put flatten or gap before the first dense"
                )));
            }
            dense.push(number(units, token)?);
            continue;
        } else if !dense.is_empty() {
            return Err(LayersError::Shape(format!(
                "`{token}` after a dense layer: convolutions and pooling come first"
            )));
        } else if let Some(rest) = token.strip_prefix("conv") {
            let split = rest.find('k').ok_or_else(|| LayersError::Unknown(token.into()))?;
            let filters = number(&rest[..split], token)?;
            LayerShape::windowed(LayerKind::Conv2d, filters, window(&rest[split..], token)?, activation)
        } else if let Some(rest) = token.strip_prefix("dw") {
            LayerShape::windowed(LayerKind::DepthwiseConv2d, map.channels, window(rest, token)?, activation)
        } else if let Some((kind, size)) = token
            .strip_prefix("maxpool")
            .map(|s| (LayerKind::MaxPool2d, s))
            .or_else(|| token.strip_prefix("avgpool").map(|s| (LayerKind::AveragePool2d, s)))
        {
            let size = number(size, token)?.min(64);
            LayerShape::windowed(
                kind,
                map.channels,
                Window::new([size; 2], [size; 2], Padding::Valid),
                Activation::Linear,
            )
        } else if token == "gap" {
            LayerShape { kind: LayerKind::GlobalAveragePool, ..LayerShape::dense(map.channels, Activation::Linear) }
        } else if token == "flatten" {
            LayerShape { kind: LayerKind::Flatten, ..LayerShape::dense(map.len(), Activation::Linear) }
        } else {
            return Err(LayersError::Unknown(token.into()));
        };
        map = shape.output_dims(map).ok_or_else(|| {
            LayersError::Shape(format!("`{token}` cannot take a {map} map (a window larger than it?)"))
        })?;
        front.push(shape);
    }
    let Some((outputs, hidden)) = dense.split_last() else {
        return Err(LayersError::Shape("the list must end with the output layer, denseN".into()));
    };
    Ok(LayerList { front, hidden: hidden.to_vec(), outputs: *outputs })
}

/// The text [`parse`] reads for `front` and the Dense widths: what a run records and a report
/// shows.
pub fn describe(front: &[LayerShape], dense: &[usize]) -> String {
    let side = |[rows, cols]: [usize; 2]| if rows == cols { rows.to_string() } else { format!("{rows}x{cols}") };
    let window = |w: &Window| {
        let stride = if w.stride == [1, 1] { String::new() } else { format!("s{}", side(w.stride)) };
        let padding = if w.padding == Padding::Same { "same" } else { "" };
        format!("k{}{stride}{padding}", side(w.size))
    };
    let front = front.iter().map(|l| match l.kind {
        LayerKind::Conv2d => format!("conv{}{}", l.units, window(&l.window)),
        LayerKind::DepthwiseConv2d => format!("dw{}", window(&l.window)),
        LayerKind::MaxPool2d => format!("maxpool{}", l.window.size[0]),
        LayerKind::AveragePool2d => format!("avgpool{}", l.window.size[0]),
        LayerKind::GlobalAveragePool => "gap".into(),
        LayerKind::Flatten | LayerKind::Dense => "flatten".into(),
    });
    front.chain(dense.iter().map(|u| format!("dense{u}"))).collect::<Vec<_>>().join(",")
}

/// One front layer's parameters as plain values (empty for pooling and Flatten).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureWeights {
    /// What it computes.
    pub shape: LayerShape,
    /// Its input map.
    pub input: Dims,
    /// Its kernel as Keras stores it.
    pub kernel: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
    /// A BatchNorm between a convolution and its activation (training only: folded at export).
    pub batch_norm: Option<BatchNormWeights>,
}

impl FeatureWeights {
    /// Its output map.
    pub fn output(&self) -> Dims {
        self.shape.output_dims(self.input).unwrap_or(Dims::flat(0))
    }

    /// `(kernel, bias)` as the layer runs at inference: its BatchNorm, if any, folded in (the
    /// kernel's last axis is its output channels, as a Dense kernel's is).
    pub fn inference_weights(&self) -> (Vec<f32>, Vec<f32>) {
        match &self.batch_norm {
            Some(bn) => bn.fold(&self.kernel, &self.bias),
            None => (self.kernel.clone(), self.bias.clone()),
        }
    }
}

/// Keras's `glorot_uniform` kernels (fans over the window: `rows·cols·in` and `rows·cols·out`,
/// one output per channel for a depthwise kernel) and zero biases for `front` after `image`.
pub fn glorot(image: Dims, front: &[LayerShape], rng: &mut ChaCha8Rng) -> Vec<FeatureWeights> {
    let mut map = image;
    front
        .iter()
        .map(|shape| {
            let taps = shape.window.size[0] * shape.window.size[1];
            let fans = match shape.kind {
                LayerKind::Conv2d => Some((taps * map.channels, taps * shape.units)),
                LayerKind::DepthwiseConv2d => Some((taps * map.channels, taps)),
                _ => None,
            };
            let kernel = match fans {
                Some((fan_in, fan_out)) => {
                    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                    (0..shape.weights(map)).map(|_| rng.random_range(-limit..limit)).collect()
                }
                None => Vec::new(),
            };
            let bias = vec![0.0; shape.biases()];
            let layer = FeatureWeights { shape: *shape, input: map, kernel, bias, batch_norm: None };
            map = layer.output();
            layer
        })
        .collect()
}

/// A front layer's trainable variables.
#[derive(Clone, Debug)]
pub struct FeatureVars {
    /// What it computes.
    pub shape: LayerShape,
    /// Its input map.
    pub input: Dims,
    /// `(kernel, bias)` for a convolution, Keras's layout.
    pub params: Option<(Var, Var)>,
    /// The BatchNorm between a convolution and its activation, if it has one.
    pub batch_norm: Option<BatchNorm>,
}

impl FeatureVars {
    /// Variables holding `w`.
    pub fn new(w: &FeatureWeights, device: &candle_core::Device) -> Result<Self> {
        let params = if LayerShape::has_weights(w.shape.kind) {
            let [rows, cols] = w.shape.window.size;
            let dims: Vec<usize> = match w.shape.kind {
                LayerKind::Conv2d => vec![rows, cols, w.input.channels, w.shape.units],
                _ => vec![rows, cols, w.input.channels],
            };
            Some((Var::from_slice(&w.kernel, dims, device)?, Var::from_slice(&w.bias, w.bias.len(), device)?))
        } else {
            None
        };
        let batch_norm = w.batch_norm.as_ref().map(|b| BatchNorm::new(b, device)).transpose()?;
        Ok(Self { shape: w.shape, input: w.input, params, batch_norm })
    }

    /// Its parameters as plain values.
    pub fn weights(&self) -> Result<FeatureWeights> {
        let (kernel, bias) = match &self.params {
            Some((k, b)) => (k.as_tensor().flatten_all()?.to_vec1()?, b.as_tensor().to_vec1()?),
            None => (Vec::new(), Vec::new()),
        };
        let batch_norm = self.batch_norm.as_ref().map(BatchNorm::weights).transpose()?;
        Ok(FeatureWeights { shape: self.shape, input: self.input, kernel, bias, batch_norm })
    }

    /// The layer on `x`, NHWC rows of its input map (any shape holding them); `first`: `x` is the
    /// data, whose gradient is not needed; `training`: a BatchNorm uses the batch's statistics.
    fn forward(&self, x: &Tensor, first: bool, training: bool) -> Result<Tensor> {
        let (shape, map) = (self.shape, self.input);
        let rows = x.elem_count() / map.len().max(1);
        let at = Placement::new(map, shape.window);
        let out = shape.output_dims(map).unwrap_or(map);
        match (shape.kind, &self.params, at) {
            (LayerKind::Conv2d, Some((kernel, bias)), Some(at)) => {
                let y = x.apply_op2(kernel.as_tensor(), Conv { at, filters: shape.units, first })?;
                self.normalized_activation(add_bias(&y, bias.as_tensor())?, training)
            }
            (LayerKind::DepthwiseConv2d, Some((kernel, bias)), Some(at)) => {
                let y = x.apply_op2(kernel.as_tensor(), Depthwise { at, first })?;
                self.normalized_activation(add_bias(&y, bias.as_tensor())?, training)
            }
            (LayerKind::MaxPool2d | LayerKind::AveragePool2d, _, Some(at)) => {
                x.contiguous()?.apply_op1(Pool { at, kind: shape.kind })
            }
            (LayerKind::GlobalAveragePool, _, _) => x.reshape((rows, map.height * map.width, map.channels))?.mean(1),
            (LayerKind::Flatten, _, _) => x.reshape((rows, out.len())),
            _ => candle_core::bail!("a {} layer without its parameters or its window", shape.kind),
        }
    }
}

impl FeatureVars {
    /// A convolution's `(rows · positions, channels)` sums through its BatchNorm (statistics per
    /// channel over every row and position, as Keras's), then its activation.
    fn normalized_activation(&self, h: Tensor, training: bool) -> Result<Tensor> {
        let h = match &self.batch_norm {
            Some(bn) => bn.forward(&h, training)?,
            None => h,
        };
        activate(&h, self.shape.activation)
    }
}

/// The front on `x` `(rows, values)` (standardized NHWC rows): its output rows, flat. In
/// `training` mode its BatchNorms use (and update) the batch's statistics.
pub fn forward(front: &[FeatureVars], x: &Tensor, training: bool) -> Result<Tensor> {
    if front.is_empty() {
        return Ok(x.clone());
    }
    let rows = x.dim(0)?;
    let mut h = x.clone();
    for (i, layer) in front.iter().enumerate() {
        h = layer.forward(&h, i == 0, training)?;
    }
    h.reshape((rows, ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_list_reads_like_keras_and_refuses_what_does_not_chain() {
        let list = parse(
            "conv8k3,maxpool2,conv16k3s2same,maxpool2,flatten,dense64,dense10",
            Dims::image(28, 28, 1),
            Activation::Relu,
        )
        .unwrap();
        assert_eq!((list.hidden.clone(), list.outputs), (vec![64], 10));
        let mut map = Dims::image(28, 28, 1);
        let maps: Vec<Dims> = list
            .front
            .iter()
            .map(|l| {
                map = l.output_dims(map).unwrap();
                map
            })
            .collect();
        assert_eq!(
            maps,
            [
                Dims::image(26, 26, 8),
                Dims::image(13, 13, 8),
                Dims::image(7, 7, 16),
                Dims::image(3, 3, 16),
                Dims::flat(144)
            ]
        );
        assert_eq!(list.front[2].window, Window::new([3, 3], [2, 2], Padding::Same));
        assert_eq!(
            describe(&list.front, &[64, 10]),
            "conv8k3,maxpool2,conv16k3s2same,maxpool2,flatten,dense64,dense10"
        );
        // MLPerf Tiny's keyword-spotting DS-CNN: a 10×4 window at stride 2 over 49×10 frames
        let kws = "conv64k10x4s2same,dwk3same,conv64k1,gap,dense12";
        let ds = parse(kws, Dims::image(49, 10, 1), Activation::Relu).unwrap();
        assert_eq!(ds.front[0].window, Window::new([10, 4], [2, 2], Padding::Same));
        assert_eq!(ds.front[0].output_dims(Dims::image(49, 10, 1)), Some(Dims::image(25, 5, 64)));
        assert_eq!(describe(&ds.front, &[12]), kws);
        let odd = parse("conv4k3x1s2x1,gap,dense2", Dims::image(9, 9, 1), Activation::Relu).unwrap();
        assert_eq!(odd.front[0].window, Window::new([3, 1], [2, 1], Padding::Valid));
        assert_eq!(describe(&odd.front, &[2]), "conv4k3x1s2x1,gap,dense2");
        let dw = parse("conv4k3same,dwk3,gap,dense3", Dims::image(5, 5, 2), Activation::Tanh).unwrap();
        assert_eq!(
            (dw.front[1].kind, dw.front[1].units, dw.front[1].activation),
            (LayerKind::DepthwiseConv2d, 4, Activation::Tanh)
        );
        for (bad, says) in [
            ("conv8k3,dense10", "put flatten or gap"),
            ("flatten,dense10,conv8k3", "after a dense layer"),
            ("conv8k30,flatten,dense10", "cannot take a 28x28x1 map"),
            ("conv8x3,flatten,dense10", "is not a layer"),
            ("conv8k3,flatten", "must end with the output layer"),
            ("pool2,flatten,dense10", "is not a layer"),
        ] {
            let e = parse(bad, Dims::image(28, 28, 1), Activation::Relu).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
