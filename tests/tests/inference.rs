//! What runs at inference carries no regularization: the artifact equals candle's inference-mode
//! forward, while candle's training-mode forward (dropout on) is random and disagrees.

use candle_core::{Device, Tensor};
use dropship::network::{HostNetwork, InputForm};
use dropship::rng::{stream, Stream};
use dropship::train::model::{dropout_mask, Mlp};
use dropship_shared::ops::output::argmax;
use dropship_shared::Activation;
use dropship_shared::Artifact;
use dropship_tests::{
    activation_fixture, batch_norm_fixture, cnn_batch_norm_fixture, cnn_fixture, deep_fixture, fixture, Fixture,
    CNN_LAYERS,
};

#[test]
fn artifact_equals_candle_inference_mode_and_differs_from_training_mode() {
    artifact_equals_candle_inference_mode(fixture());
}

#[test]
fn deep_artifact_equals_candle_inference_mode_and_differs_from_training_mode() {
    artifact_equals_candle_inference_mode(deep_fixture());
}

/// Hidden layers trained with tanh, sigmoid and hard-sigmoid: the core's specified formulas stay
/// within 1e-5 of candle's own functions through two layers.
#[test]
fn tanh_sigmoid_and_hard_sigmoid_artifacts_equal_candle_inference_mode() {
    for activation in [Activation::Tanh, Activation::Sigmoid, Activation::HardSigmoid] {
        let f = activation_fixture(activation);
        assert!(f.weights.layers[..2].iter().all(|l| l.activation == activation), "{activation} was trained");
        artifact_equals_candle_inference_mode(f);
    }
}

/// BatchNorm is training-only behaviour, like dropout: the artifact (each BatchNorm folded into its
/// Dense) equals the candle model in inference mode within 1e-5 and has one Dense per layer, while
/// the same model in training mode (batch statistics) gives other outputs.
/// A CNN trained with candle's convolution and pooling: its artifact (Conv2D, MaxPool2D, Flatten,
/// Dense in the shared core's order) equals candle's inference within 1e-5, its run file reads
/// back the same network, and it learned the digits.
#[test]
fn a_candle_trained_cnns_artifact_equals_candle_inference_mode() {
    use dropship_shared::LayerKind::*;
    let f = cnn_fixture();
    let a = Artifact::parse(&f.artifact).unwrap();
    let kinds: Vec<_> = a.layers().map(|l| l.kind).collect();
    assert_eq!(kinds, [Conv2d, MaxPool2d, Conv2d, Flatten, Dense, Dense], "{CNN_LAYERS}");
    assert_eq!(a.input_dims(), dropship_shared::Dims::image(8, 8, 1));
    artifact_equals_candle_inference_mode(f);
    let net = HostNetwork::from_artifact(&a);
    let correct = f
        .test_rows()
        .zip(&f.prepared.split.test)
        .filter(|(row, r)| argmax(&net.logits(row, InputForm::Raw)) == f.data.labels[**r] as usize);
    let accuracy = correct.count() as f64 / f.prepared.split.test.len() as f64;
    assert!(accuracy > 0.9, "the CNN's test accuracy is {accuracy}");
    // the run file holds the front: saved and read back, the same network
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    dropship::train::run::save_weights(&path, &f.weights, &f.prepared.standardization, "cnn").unwrap();
    let back = dropship::train::run::load_weights(&path).unwrap();
    assert_eq!(back.weights, f.weights);
}

/// A CNN trained with a BatchNorm after each convolution (statistics per channel over every
/// row and position) and its hidden Dense: the artifact has none, they are folded, and it equals
/// candle's inference mode within 1e-5.
#[test]
fn a_cnns_batch_norms_are_folded_into_its_convolutions() {
    let f = cnn_batch_norm_fixture();
    let convolutions = f.weights.front.iter().filter(|l| !l.kernel.is_empty());
    assert!(convolutions.clone().count() == 2 && convolutions.clone().all(|l| l.batch_norm.is_some()));
    let moved = f.weights.front[0].batch_norm.as_ref().unwrap();
    assert!(moved.moving_variance.iter().any(|v| (v - 1.0).abs() > 0.1), "the moving statistics were trained");
    let a = Artifact::parse(&f.artifact).unwrap();
    assert_eq!(a.layers().count(), 6, "no BatchNorm layer");
    artifact_equals_candle_inference_mode(f);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    dropship::train::run::save_weights(&path, &f.weights, &f.prepared.standardization, "cnn").unwrap();
    assert_eq!(dropship::train::run::load_weights(&path).unwrap().weights, f.weights, "the run file keeps them");
}

#[test]
fn batch_norm_is_folded_the_artifact_equals_inference_mode_and_differs_from_training_mode() {
    let f = batch_norm_fixture();
    assert!(f.weights.layers[..2].iter().all(|l| l.batch_norm.is_some()));
    let a = Artifact::parse(&f.artifact).unwrap();
    assert_eq!(a.layers().count(), 3, "three Dense layers, no BatchNorm layer");
    let moved = f.weights.layers[0].batch_norm.as_ref().unwrap();
    assert!(moved.moving_variance.iter().any(|v| (v - 1.0).abs() > 0.1), "the moving statistics were trained");
    artifact_equals_candle_inference_mode(f);
    // training mode: each row's outputs depend on the batch it is in
    let model = Mlp::new(&f.weights, &Device::Cpu).unwrap();
    let n = f.prepared.split.test.len();
    let x = Tensor::from_slice(&f.x_test, (n, 64), &Device::Cpu).unwrap();
    let inference = model.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();
    let first_rows = x.narrow(0, 0, 8).unwrap();
    let training = model.forward(&first_rows, Some(&[None, None])).unwrap().to_vec2::<f32>().unwrap();
    let diff =
        training.iter().flatten().zip(inference.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff > 0.1, "batch statistics of 8 rows give other logits: {diff}");
}

fn artifact_equals_candle_inference_mode(f: &Fixture) {
    let net = HostNetwork::from_artifact(&Artifact::parse(&f.artifact).unwrap());
    let model = Mlp::new(&f.weights, &Device::Cpu).unwrap();
    let x_test = &f.x_test;
    let n = f.prepared.split.test.len();
    let x = Tensor::from_slice(x_test, (n, 64), &Device::Cpu).unwrap();
    let inference = model.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();

    let mut max_diff = 0f32;
    let artifact_classes: Vec<usize> = f
        .test_rows()
        .zip(&inference)
        .map(|(row, candle_row)| {
            let logits = net.logits(row, InputForm::Raw);
            for (a, c) in logits.iter().zip(candle_row) {
                max_diff = max_diff.max((a - c).abs());
            }
            let class = argmax(&logits);
            assert_eq!(class, argmax(candle_row), "artifact and candle (train = false) disagree");
            class
        })
        .collect();
    assert!(max_diff <= 1e-5, "max |artifact - candle inference| = {max_diff}");

    // Training mode: a fresh dropout mask per hidden layer and call, as in training.
    let mut rng = stream(99, Stream::Dropout);
    let mut training_mode = || {
        let masks: Vec<Option<Tensor>> = f
            .weights
            .hidden()
            .iter()
            .map(|w| Some(dropout_mask(n, *w, 0.5, &mut rng, &Device::Cpu).unwrap()))
            .collect();
        model.forward(&x, Some(&masks)).unwrap().to_vec2::<f32>().unwrap()
    };
    let (a, b) = (training_mode(), training_mode());
    assert_ne!(a, b, "training-mode forward varies from call to call");
    let disagree = a.iter().zip(&artifact_classes).filter(|(row, class)| argmax(row) != **class).count();
    let share = disagree as f64 / n as f64;
    println!(
        "max |artifact - candle inference| = {max_diff:e}; dropout left on at inference disagrees with the artifact on {disagree}/{n} test rows ({:.1}%)",
        100.0 * share
    );
    assert!(disagree > 0, "dropout on at inference changes some predictions");
}

#[test]
fn the_artifact_has_no_trace_of_dropout_and_needs_no_rescaling() {
    for (f, depth) in [(fixture(), 2), (deep_fixture(), 3)] {
        let a = Artifact::parse(&f.artifact).unwrap();
        let layers: Vec<_> = a.layers().collect();
        assert_eq!(layers.len(), depth, "one Dense per trained layer: no dropout layer");
        // weights are exported as trained: inverted dropout already scaled during training
        for (exported, trained) in layers.iter().zip(&f.weights.layers) {
            let (weights, bias) = exported.f32_params().unwrap();
            assert!(weights.iter().eq(trained.kernel.iter().copied()));
            assert!(bias.iter().eq(trained.bias.iter().copied()));
            assert_eq!(exported.activation, trained.activation, "the trained activation travels");
        }
        assert_eq!(a.parameters(), f.weights.parameters());
    }
}

#[test]
fn raw_mode_takes_inputs_already_standardized() {
    let f = fixture();
    let net = HostNetwork::from_artifact(&Artifact::parse(&f.artifact).unwrap());
    let x_test = &f.x_test;
    for (raw_row, standardized) in f.test_rows().zip(x_test.chunks_exact(64)) {
        let a = net.logits(raw_row, InputForm::Raw);
        let b = net.logits(standardized, InputForm::Standardized);
        assert_eq!(a, b, "the stored standardization, or the caller's, give the same logits");
    }
}
