//! MLPerf Tiny's keyword-spotting DS-CNN (mlcommons/tiny,
//! `benchmark/training/keyword_spotting/keras_model.py`) as a device benchmark: its layers in
//! `--layers` syntax, Keras-initialized weights with each layer's BatchNorm folded in as fit to
//! synthetic frames (batch statistics: every channel's output at zero mean and unit variance, as
//! in training; without them a Keras-initialized stack shrinks its signal tenfold per block),
//! int8 calibrated on those frames, and `dropship bench --ds-cnn`, which writes both artifacts
//! and the frames for `dropship validate` and the board builds.

use std::path::Path;

use anyhow::{Context, Result};
use rand::Rng;

use dropship_shared::{Activation, Dims, LayerShape};

use dropship_shared::network::graph::GraphLayer;

use crate::network::{HostNetwork, InputForm, Layer, Weights};
use crate::rng::{stream, Stream};
use crate::train::features;

/// The model's input: 49 frames of 10 MFCC coefficients.
pub const INPUT: Dims = Dims::image(49, 10, 1);

/// The layers of a DS-CNN of `filters` filters, `blocks` depthwise-separable blocks and
/// `classes` outputs: Conv2D `filters` 10×4 at stride 2 (`same`), then per block a depthwise 3×3
/// (`same`) and a pointwise Conv2D `filters`, each with ReLU, global average pooling, Dense
/// `classes`. MLPerf Tiny's model is `layers(64, 4, 12)`: 2,656,768 MACs over [`INPUT`].
pub fn layers(filters: usize, blocks: usize, classes: usize) -> String {
    let mut spec = format!("conv{filters}k10x4s2same");
    for _ in 0..blocks {
        spec.push_str(&format!(",dwk3same,conv{filters}k1"));
    }
    spec + &format!(",gap,dense{classes}")
}

/// The network `spec` describes over `input`, its weights drawn as Keras initializes them
/// (glorot uniform kernels, zero biases) from `seed`, each layer but the last then normalized on
/// `frames` (a BatchNorm's batch statistics, folded); ReLU after every convolution, the last Dense
/// linear (logits).
pub fn network(input: Dims, spec: &str, seed: u64, frames: &[Vec<f32>]) -> Result<HostNetwork> {
    let list = features::parse(spec, input, Activation::Relu)?;
    let mut rng = stream(seed, Stream::Init);
    let mut layers: Vec<Layer> = features::glorot(input, &list.front, &mut rng)
        .into_iter()
        .map(|w| Layer::f32_of(w.shape, w.input, w.kernel, w.bias))
        .collect();
    let mut map = layers.last().and_then(Layer::output_dims).unwrap_or(input);
    let widths: Vec<usize> = list.hidden.iter().copied().chain([list.outputs]).collect();
    for (i, units) in widths.iter().enumerate() {
        let limit = (6.0 / (map.len() + units) as f64).sqrt() as f32;
        let kernel = (0..map.len() * units).map(|_| rng.random_range(-limit..limit)).collect();
        let activation = if i + 1 == widths.len() { Activation::Linear } else { Activation::Relu };
        layers.push(Layer::f32_of(LayerShape::dense(*units, activation), map, kernel, vec![0.0; *units]));
        map = Dims::flat(*units);
    }
    normalize(&mut layers, frames);
    HostNetwork::f32(input.len(), layers, None)
}

/// Folds into each layer with weights but the last the BatchNorm that batch statistics over
/// `frames` make (`(y - mean) / std` per output channel, before the activation), running the
/// frames through the layers as they are normalized.
fn normalize(layers: &mut [Layer], frames: &[Vec<f32>]) {
    let mut xs: Vec<Vec<f32>> = frames.to_vec();
    let last = layers.len().saturating_sub(1);
    for (i, layer) in layers.iter_mut().enumerate() {
        let (Some(out), Some((kernel, bias))) = (layer.output_dims(), layer.f32()) else { continue };
        // every frame's outputs before the activation, once
        let linear = LayerShape { activation: Activation::Linear, ..layer.shape() };
        let graph = GraphLayer { shape: linear, input: layer.input_dims, output: out, weights: kernel, bias };
        let mut ys: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| {
                let mut y = vec![0.0; out.len()];
                graph.forward(x, &mut y);
                y
            })
            .collect();
        let units = layer.units.max(1);
        if i != last && LayerShape::has_weights(layer.kind) {
            let (mut sum, mut squares) = (vec![0f64; units], vec![0f64; units]);
            for (j, v) in ys.iter().flatten().enumerate() {
                sum[j % units] += *v as f64;
                squares[j % units] += (*v as f64).powi(2);
            }
            let n = (ys.len() * out.len() / units).max(1) as f64;
            let stats: Vec<(f64, f64)> = (0..units)
                .map(|c| (sum[c] / n, ((squares[c] / n - (sum[c] / n).powi(2)).max(0.0) + 1e-3).sqrt()))
                .collect();
            // Keras's layouts keep the output channel last: weight `j` (and output `j`) is
            // channel `j % units`'s
            let scaled = |j: usize, v: f32, shift: f64| ((v as f64 - shift) / stats[j % units].1) as f32;
            let kernel = kernel.iter().enumerate().map(|(j, w)| scaled(j, *w, 0.0)).collect();
            let bias = bias.iter().enumerate().map(|(c, b)| scaled(c, *b, stats[c].0)).collect();
            for y in &mut ys {
                for (j, v) in y.iter_mut().enumerate() {
                    *v = scaled(j, *v, stats[j % units].0);
                }
            }
            layer.weights = Weights::F32 { kernel, bias };
        }
        for y in &mut ys {
            layer.activation.apply_layer(y);
        }
        xs = ys;
    }
}

/// `count` synthetic frames of `input`'s size: per row a few smooth bands over time and
/// frequency plus noise, within about ±3 (the range standardized MFCCs have).
pub fn frames(input: Dims, count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = stream(seed, Stream::Augment);
    (0..count)
        .map(|_| {
            let (f, t, a) =
                (rng.random_range(0.2..1.5f32), rng.random_range(0.05..0.4f32), rng.random_range(0.5..2.0f32));
            (0..input.len())
                .map(|i| {
                    let (frame, coefficient) = ((i / input.width) as f32, (i % input.width) as f32);
                    a * (coefficient * f + frame * t).sin() + rng.random_range(-0.5..0.5f32)
                })
                .collect()
        })
        .collect()
}

/// `dropship bench --ds-cnn`: MLPerf Tiny's DS-CNN with Keras-initialized weights, quantized to
/// int8 on synthetic frames; writes `model.dsm`, `model-int8.dsm` and `frames.csv` to `out` and
/// prints its shape, its footprints and how int8 follows f32.
pub fn run(out: &Path, overwrite: bool) -> Result<()> {
    let spec = layers(64, 4, 12);
    let calibration = frames(INPUT, 64, 1);
    let net = network(INPUT, &spec, 0, &calibration)?;
    let rows = frames(INPUT, 32, 2);
    let ranges = crate::deploy::quantize::calibrate(&net, calibration.iter().map(Vec::as_slice));
    let int8 = crate::deploy::quantize::quantize(&net, &ranges).context("quantizing the DS-CNN")?;
    let staging = crate::output::Staging::new(out, overwrite, &[])?;
    let provenance = format!("MLPerf Tiny's keyword-spotting DS-CNN ({spec}), Keras-initialized, seed 0");
    std::fs::write(staging.path().join("model.dsm"), net.to_artifact("", &provenance)?)?;
    std::fs::write(staging.path().join("model-int8.dsm"), int8.to_artifact("", &(provenance + "; int8"))?)?;
    let header: Vec<String> = (0..INPUT.len()).map(|i| format!("x{i}")).collect();
    let mut csv = header.join(",") + "\n";
    for row in &rows {
        let values: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
        csv.push_str(&(values.join(",") + "\n"));
    }
    std::fs::write(staging.path().join("frames.csv"), csv)?;
    let out = staging.commit()?;
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let agreement = crate::deploy::quantize::agreement(&net, &int8, &refs, &[]);
    let largest = refs.iter().flat_map(|r| net.logits(r, InputForm::Raw)).fold(0f32, |m, v| m.max(v.abs()));
    let (f, q) = (net.footprint(), int8.footprint());
    let macs: usize = net.layers().iter().map(|l| l.shape().macs(l.input_dims)).sum();
    let parameters: usize = net.layers().iter().map(|l| l.shape().parameters(l.input_dims)).sum();
    println!("## MLPerf Tiny's keyword-spotting DS-CNN, Keras-initialized ({spec} over 49x10x1)\n");
    println!("parameters {parameters}, MACs {macs}\n");
    println!("| | f32 | int8 |");
    println!("|---|---|---|");
    println!("| flash (parameters) | {} B | {} B |", f.weight_bytes, q.weight_bytes);
    println!("| RAM (activations) | {} B | {} B |", f.activation_bytes, q.activation_bytes);
    println!(
        "\nint8 against f32 on {} synthetic frames: the same class on {:.1}%, logits within {:.4} (largest {:.4})",
        agreement.rows,
        agreement.class_agreement * 100.0,
        agreement.max_logit_error,
        largest
    );
    println!(
        "the device's cost: `dropship validate {0}/model-int8.dsm {0}/frames.csv --device qemu --profile`",
        out.display()
    );
    Ok(())
}
