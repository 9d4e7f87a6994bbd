//! Single-sample inference of the 64-128-10 digits model, an MNIST CNN and MLPerf Tiny's DS-CNN:
//! the `shared` core (the code the device runs; f32 and int8) beside tract-onnx and candle, in one
//! run. onnxruntime's figure on this machine kind is
//! about 4.3 us (data/README.md); Keras's predict_on_batch about 226 us.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use dropship::data::split::Standardization;
use dropship::deploy::export;
use dropship::network::{HostNetwork, InputForm};
use dropship::rng::{stream, Stream};
use dropship::train::model::{Mlp, Weights};
use dropship::train::run::SavedModel;
use dropship_shared::{Artifact, OneHidden, Scratch};
use prost::Message;
use std::hint::black_box;
use tract_onnx::prelude::*;

fn digits_model() -> (Weights, Vec<u8>) {
    let weights = Weights::glorot(64, &[128], 10, &mut stream(0, Stream::Init));
    let saved = SavedModel {
        weights: weights.clone(),
        standardization: Standardization { mean: vec![4.0; 64], scale: vec![5.0; 64] },
        provenance: "bench".into(),
        head: Default::default(),
    };
    let artifact = export::artifact_bytes(&saved, "", "bench").unwrap();
    (weights, artifact)
}

fn inference(c: &mut Criterion) {
    let (weights, artifact) = digits_model();
    let input: [f32; 64] = core::array::from_fn(|i| (i % 17) as f32);
    let mut group = c.benchmark_group("single-sample inference, 64-128-10");

    let mut net = Box::new(OneHidden::<64, 128, 10>::ZERO);
    Artifact::parse(&artifact).unwrap().load_into(&mut net).unwrap();
    let mut scratch = Scratch::<64, 128>::new();
    let mut logits = [0.0f32; 10];
    group.bench_function("dropship shared core (const generic)", |b| {
        b.iter(|| net.predict(black_box(&input), &mut scratch, &mut logits))
    });

    let host = HostNetwork::from_artifact(&Artifact::parse(&artifact).unwrap());
    group.bench_function("dropship shared core (runtime shapes)", |b| {
        b.iter(|| host.logits(black_box(&input), InputForm::Raw))
    });

    // The same model quantized to int8 (calibrated on inputs like the benchmark's), run by the
    // shared core's int8 kernel as `dropship predict` runs an int8 artifact.
    let calibration: Vec<Vec<f32>> = (0..64).map(|r| (0..64).map(|i| ((i * 7 + r) % 17) as f32).collect()).collect();
    let ranges = dropship::deploy::quantize::calibrate(&host, calibration.iter().map(Vec::as_slice));
    let int8 = dropship::deploy::quantize::quantize(&host, &ranges).unwrap();
    let layers = int8.kernel_layers();
    let net8 = int8.quant_network(&layers, InputForm::Raw);
    let mut scratch8 = dropship_shared::network::int8::QuantScratch::<64, 128>::new();
    group.bench_function("dropship shared core, int8", |b| {
        b.iter(|| net8.predict(black_box(&input), &mut scratch8, &mut logits))
    });

    let onnx = dropship::deploy::onnx::export_model(&host).unwrap().encode_to_vec();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact([1, 64]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    group.bench_function("tract-onnx (optimized plan)", |b| {
        b.iter(|| {
            let t: Tensor = tract_ndarray::Array2::from_shape_vec((1, 64), input.to_vec()).unwrap().into();
            plan.run(tvec!(t.into())).unwrap()
        })
    });

    // candle sizes its matmul thread pool from RAYON_NUM_THREADS on every call: measure it as it
    // comes (a pool over the cores) and with one thread, as `dropship` trains.
    let model = Mlp::new(&weights, &Device::Cpu).unwrap();
    let configured = std::env::var_os("RAYON_NUM_THREADS");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, threads) in
        [("candle (inference mode, default threads)", cores), ("candle (inference mode, 1 thread)", 1)]
    {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        group.bench_function(name, |b| {
            b.iter(|| {
                let x = candle_core::Tensor::from_slice(black_box(&input), (1, 64), &Device::Cpu).unwrap();
                model.forward(&x, None).unwrap().to_vec2::<f32>().unwrap()
            })
        });
    }
    match configured {
        Some(v) => std::env::set_var("RAYON_NUM_THREADS", v),
        None => std::env::remove_var("RAYON_NUM_THREADS"),
    }
    group.finish();
}

/// The CNN of the README's MNIST comparison (`conv8k3,maxpool2,conv16k3,maxpool2,flatten,dense32,
/// dense10` on 28x28x1), Keras-initialized: the shared core's `Graph` (what a firmware runs)
/// beside tract-onnx running its ONNX export.
fn cnn_inference(c: &mut Criterion) {
    use dropship_shared::{Activation, Dims};
    let image = Dims::image(28, 28, 1);
    let list = dropship::train::features::parse(
        "conv8k3,maxpool2,conv16k3,maxpool2,flatten,dense32,dense10",
        image,
        Activation::Relu,
    )
    .unwrap();
    let shapes: Vec<_> =
        list.front.iter().copied().chain(dropship::train::model::classifier(&list.hidden, 10)).collect();
    let weights = Weights::glorot_for(image, &shapes, &mut stream(0, Stream::Init));
    let saved = SavedModel {
        weights,
        standardization: Standardization { mean: vec![33.0; 784], scale: vec![78.0; 784] },
        provenance: "bench".into(),
        head: Default::default(),
    };
    let host =
        HostNetwork::from_artifact(&Artifact::parse(&export::artifact_bytes(&saved, "", "bench").unwrap()).unwrap());
    let input: Vec<f32> = (0..784).map(|i| ((i * 37) % 256) as f32).collect();
    let mut group = c.benchmark_group("single-sample inference, MNIST CNN (14,410 parameters, 201k MACs)");
    let layers = host.graph_layers();
    let (mean, scale) = host.standardization().unwrap();
    let graph = dropship_shared::network::graph::Graph { standardization: Some((mean, scale)), layers: &layers };
    let (a, b) = dropship_shared::network::scratch_widths(&host.widths());
    let (mut a, mut b, mut logits) = (vec![0.0f32; a], vec![0.0f32; b], vec![0.0f32; 10]);
    group.bench_function("dropship shared core (Graph)", |bench| {
        bench.iter(|| graph.predict_in(black_box(&input), &mut a, &mut b, &mut logits, &mut || {}))
    });
    let calibration: Vec<Vec<f32>> =
        (0..32).map(|r| (0..784).map(|i| ((i * 37 + r * 11) % 256) as f32).collect()).collect();
    cnn_int8_and_tract(&mut group, &host, &input, &calibration);
    group.finish();

    // MLPerf Tiny's keyword-spotting DS-CNN (`dropship bench --ds-cnn`'s model)
    use dropship::study::ds_cnn;
    let frames = ds_cnn::frames(ds_cnn::INPUT, 32, 1);
    let host = ds_cnn::network(ds_cnn::INPUT, &ds_cnn::layers(64, 4, 12), 0, &frames).unwrap();
    let mut group = c.benchmark_group("single-sample inference, DS-CNN (22,604 parameters, 2.66M MACs)");
    let layers = host.graph_layers();
    let graph = dropship_shared::network::graph::Graph { standardization: None, layers: &layers };
    let (a, b) = dropship_shared::network::scratch_widths(&host.widths());
    let (mut a, mut b, mut logits) = (vec![0.0f32; a], vec![0.0f32; b], vec![0.0f32; 12]);
    group.bench_function("dropship shared core (Graph)", |bench| {
        bench.iter(|| graph.predict_in(black_box(&frames[0]), &mut a, &mut b, &mut logits, &mut || {}))
    });
    cnn_int8_and_tract(&mut group, &host, &frames[0], &frames);
    group.finish();
}

/// The CNN `host` quantized to int8 (calibrated on `calibration`) run by the shared core, and its
/// f32 ONNX export run by tract-onnx, on `input`.
fn cnn_int8_and_tract(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    host: &HostNetwork,
    input: &[f32],
    calibration: &[Vec<f32>],
) {
    let ranges = dropship::deploy::quantize::calibrate(host, calibration.iter().map(Vec::as_slice));
    let int8 = dropship::deploy::quantize::quantize(host, &ranges).unwrap();
    let layers = int8.kernel_layers();
    let net8 = int8.quant_network(&layers, InputForm::Raw);
    let widest = int8.widths().into_iter().max().unwrap();
    let (mut z, mut a, mut b) = (vec![0.0f32; input.len()], vec![0i8; widest], vec![0i8; widest]);
    let mut logits = vec![0.0f32; int8.classes()];
    group.bench_function("dropship shared core, int8", |bench| {
        bench.iter(|| net8.predict_in(black_box(input), &mut z, &mut a, &mut b, &mut logits))
    });
    let onnx = dropship::deploy::onnx::export_model(host).unwrap().encode_to_vec();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact([1, input.len()]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    group.bench_function("tract-onnx (optimized plan)", |bench| {
        bench.iter(|| {
            let t: Tensor = tract_ndarray::Array2::from_shape_vec((1, input.len()), input.to_vec()).unwrap().into();
            plan.run(tvec!(t.into())).unwrap()
        })
    });
}

criterion_group!(benches, inference, cnn_inference);
criterion_main!(benches);
