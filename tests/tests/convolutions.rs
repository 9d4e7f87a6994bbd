//! Convolutional networks on the device, bit for bit: CNNs of every conv and pooling kind (odd
//! maps, channel counts that are not multiples of 4, both paddings, stride 2's asymmetric `same`
//! padding, every activation a convolution can have), in f32 and quantized to int8, validated row
//! by row under QEMU on every emulated core against the host, with their per-layer profile; and
//! MLPerf Tiny's keyword-spotting DS-CNN in int8 within its instruction target.

use std::time::Duration;

use dropship::data::Header;
use dropship::deploy::quantize;
use dropship::deploy::validate::{self, Options, Target};
use dropship::network::{HostNetwork, InputForm, Layer};
use dropship::study::ds_cnn;
use dropship_shared::{Activation, Dims, LayerKind, LayerShape, Padding, Window};
use dropship_tests::{cnn_fixture, write_rows_csv};
use xtask::firmware::Board;

/// Deterministic weights in `[-scale, scale)`.
struct Weights(u64);

impl Weights {
    fn take(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

/// Builds a network layer by layer from an input map, each layer's weights drawn at random.
struct Builder {
    map: Dims,
    layers: Vec<Layer>,
    weights: Weights,
}

impl Builder {
    fn new(input: Dims) -> Self {
        Self { map: input, layers: Vec::new(), weights: Weights(0x9e37_79b9_7f4a_7c15) }
    }

    fn add(mut self, shape: LayerShape) -> Self {
        let scale = (3.0 / (shape.weights(self.map) / shape.units.max(1)).max(1) as f32).sqrt();
        let kernel = self.weights.take(shape.weights(self.map), scale);
        let bias = self.weights.take(shape.biases(), 0.1);
        let layer = Layer::f32_of(shape, self.map, kernel, bias);
        self.map = layer.output_dims().expect("the test's layers fit their maps");
        self.layers.push(layer);
        self
    }

    fn window(
        self,
        kind: LayerKind,
        units: usize,
        size: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
        activation: Activation,
    ) -> Self {
        self.add(LayerShape::windowed(kind, units, Window::new(size, stride, padding), activation))
    }

    fn kind(self, kind: LayerKind, units: usize) -> Self {
        self.add(LayerShape { kind, ..LayerShape::dense(units, Activation::Linear) })
    }

    fn dense(self, units: usize, activation: Activation) -> Self {
        self.add(LayerShape::dense(units, activation))
    }

    fn build(self, input: Dims, standardization: Option<(Vec<f32>, Vec<f32>)>) -> HostNetwork {
        HostNetwork::f32(input.len(), self.layers, standardization).unwrap()
    }
}

/// 11×9×2 → Conv2D 5 3×3/2 same (ReLU) →
/// DepthwiseConv2D 3×3/1 same (tanh) → MaxPool 2×2/2 valid → Conv2D 7 2×3/1 same (sigmoid) →
/// AveragePool 3×3/2 same → Conv2D 3 1×1 (hard-sigmoid) → Flatten → Dense 4 (softmax).
fn every_kind_network() -> HostNetwork {
    use LayerKind::*;
    let input = Dims::image(11, 9, 2);
    let mean = (0..input.len()).map(|i| (i % 5) as f32 * 0.1).collect();
    let scale = (0..input.len()).map(|i| 0.5 + (i % 3) as f32 * 0.25).collect();
    Builder::new(input)
        .window(Conv2d, 5, [3, 3], [2, 2], Padding::Same, Activation::Relu)
        .window(DepthwiseConv2d, 5, [3, 3], [1, 1], Padding::Same, Activation::Tanh)
        .window(MaxPool2d, 5, [2, 2], [2, 2], Padding::Valid, Activation::Linear)
        .window(Conv2d, 7, [2, 3], [1, 1], Padding::Same, Activation::Sigmoid)
        .window(AveragePool2d, 7, [3, 3], [2, 2], Padding::Same, Activation::Linear)
        .window(Conv2d, 3, [1, 1], [1, 1], Padding::Valid, Activation::HardSigmoid)
        .kind(Flatten, 2 * 3) // 2×1×3
        .dense(4, Activation::Softmax)
        .build(input, Some((mean, scale)))
}

/// The DS-CNN's shape, small (`dropship::study::ds_cnn`): 25×10×1, 8 filters (two blocks of
/// four channels: the paired depthwise loop; pointwise windows of 8, the paired `SMLAD` loops),
/// two blocks, 3 classes; normalized on synthetic frames.
fn ds_cnn_like_network() -> HostNetwork {
    let input = Dims::image(25, 10, 1);
    ds_cnn::network(input, &ds_cnn::layers(8, 2, 3), 0, &ds_cnn::frames(input, 32, 1)).unwrap()
}

/// Every int8 asm loop a CNN reaches on the Cortex-M4 and M33, at its edges: 7×5×8 (35 positions:
/// the pointwise pairs' odd one out) → pointwise 16 linear (the two-input `SMLAD` loop, 8 inputs)
/// → depthwise 2×2, 3×1 linear and 3×3, 2×1 ReLU (the paired depthwise loops, one and three taps
/// a turn) → MaxPool 2×2/2 → pointwise 256 ReLU (16 inputs a turn) → pointwise 12 linear from 256 channels (the
/// two-input path's widest input) → pointwise 8 ReLU from 12 (not paired: the blocked kernel)
/// → GlobalAveragePool → Dense 4 (the single-input paired loop, 8 inputs, linear).
fn int8_paths_network() -> HostNetwork {
    use LayerKind::*;
    let input = Dims::image(7, 5, 8);
    let pointwise =
        |b: Builder, filters, activation| b.window(Conv2d, filters, [1, 1], [1, 1], Padding::Valid, activation);
    let mut b = pointwise(Builder::new(input), 16, Activation::Linear);
    b = b.window(DepthwiseConv2d, 16, [2, 2], [1, 1], Padding::Same, Activation::Linear);
    b = b.window(DepthwiseConv2d, 16, [3, 1], [1, 1], Padding::Same, Activation::Linear);
    b = b.window(DepthwiseConv2d, 16, [3, 3], [1, 1], Padding::Same, Activation::Relu);
    b = b.window(DepthwiseConv2d, 16, [2, 1], [1, 1], Padding::Valid, Activation::Relu);
    // 3×2 positions from here: the 256-channel map fits the smallest board's RAM
    b = b.window(MaxPool2d, 16, [2, 2], [2, 2], Padding::Valid, Activation::Linear);
    b = pointwise(b, 256, Activation::Relu);
    b = pointwise(b, 12, Activation::Linear);
    b = pointwise(b, 8, Activation::Relu);
    b.kind(GlobalAveragePool, 8).dense(4, Activation::Linear).build(input, None)
}

/// `net` quantized to int8, calibrated on `rows`.
fn int8(net: &HostNetwork, rows: &[Vec<f32>]) -> HostNetwork {
    let ranges = quantize::calibrate(net, rows.iter().map(Vec::as_slice));
    quantize::quantize(net, &ranges).expect("the test networks quantize")
}

fn rows(width: usize, count: usize) -> Vec<Vec<f32>> {
    let mut w = Weights(0x1234_5678_9abc_def1);
    let mut rows: Vec<Vec<f32>> = (0..count).map(|_| w.take(width, 2.0)).collect();
    // edges: zeros, large values, a row of ±0
    rows.push(vec![0.0; width]);
    rows.push((0..width).map(|i| if i % 2 == 0 { 1e30 } else { -1e30 }).collect());
    rows.push((0..width).map(|i| if i % 3 == 0 { -0.0 } else { 0.0 }).collect());
    rows
}

fn options() -> Options {
    Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(10), progress: false }
}

#[test]
fn cnns_of_every_conv_and_pool_kind_are_bit_identical_on_every_emulated_core() {
    let dir = tempfile::tempdir().unwrap();
    let mut networks = Vec::new();
    let built = [
        ("every-kind", every_kind_network()),
        ("ds-cnn-like", ds_cnn_like_network()),
        ("int8-paths", int8_paths_network()),
    ];
    for (name, net) in built {
        let rows = rows(net.input(), 40);
        // int8 calibrated on the random rows (the edge rows would stretch every range)
        let quantized = int8(&net, &rows[..40]);
        // int8 follows f32 on the calibration rows, within a tenth of the outputs' largest value
        let (mut error, mut largest) = (0f32, 0f32);
        for row in &rows[..40] {
            let (a, b) = (net.logits(row, InputForm::Raw), quantized.logits(row, InputForm::Raw));
            error = a.iter().zip(&b).fold(error, |m, (x, y)| m.max((x - y).abs()));
            largest = a.iter().fold(largest, |m, x| m.max(x.abs()));
        }
        assert!(error < 0.1 * largest, "{name}: int8 is {error} from f32 (outputs up to {largest})");
        if name == "int8-paths" {
            // every layer but the pointwise one from 12 channels takes a paired form on a DSP core
            let bytes = quantized.to_artifact("", name).unwrap();
            let code = dropship_build::code_for(&bytes, name, false, dropship_build::Kernels::Dsp).unwrap();
            assert_eq!(code.matches("WeightForm::Paired").count(), 8, "{code}");
            assert_eq!(code.matches("WeightForm::Blocked").count(), 1);
        }
        networks.push((format!("{name}-int8"), quantized, rows.clone()));
        if name != "int8-paths" {
            // (its f32 maps would not fit the smallest board's RAM; the f32 kernels are the
            // other two networks')
            networks.push((name.to_string(), net, rows));
        }
    }
    for (name, net, rows) in networks {
        // the artifact round-trips to the same network, and the outputs are not degenerate
        let bytes = net.to_artifact("", &name).unwrap();
        assert_eq!(HostNetwork::parse(&bytes).unwrap(), net, "{name}");
        let outputs: Vec<Vec<f32>> = rows.iter().map(|r| net.logits(r, InputForm::Raw)).collect();
        let distinct = outputs
            .iter()
            .map(|o| o.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<std::collections::HashSet<_>>();
        // (the every-kind network's int8 softmax moves in steps of 1/256: a handful of values)
        let least = if name == "every-kind-int8" { 3 } else { rows.len() / 2 };
        assert!(distinct.len() >= least, "{name}: {} distinct outputs", distinct.len());
        let (path, csv) = (dir.path().join(format!("{name}.dsm")), dir.path().join(format!("{name}.csv")));
        std::fs::write(&path, &bytes).unwrap();
        write_rows_csv(&csv, &rows);
        for board in Board::all().iter().copied().filter(|b| b.spec().qemu.is_some()) {
            let options = Options { ..options() };
            let report = validate::validate(&path, &csv, &Target::Qemu(board), &options).unwrap();
            eprint!("{name} on {}: {}", board.name(), report.summary());
            assert_eq!(report.rows, rows.len());
            assert!(report.all_identical() && report.max_ulp == 0, "{name} on {}: {}", board.name(), report.summary());
            assert_eq!(report.profile.len(), net.layers().len() + 2, "input, every layer, outputs");
        }
    }
}

/// The CNN trained with candle (`conv8k3same,maxpool2,conv12k3,flatten,dense32,dense10` on the
/// digits): every test row bit-identical on the default board, its accuracy the host's.
#[test]
fn a_trained_cnn_validates_bit_for_bit_on_the_device() {
    let f = cnn_fixture();
    let report =
        validate::validate(&f.artifact_path, &f.test_csv_path, &Target::Qemu(Board::qemu()), &options()).unwrap();
    eprint!("{}", report.summary());
    assert_eq!(report.rows, f.prepared.split.test.len());
    assert!(report.all_identical() && report.max_ulp == 0, "{}", report.summary());
    assert!(report.device_accuracy.unwrap() > 0.9 && report.device_accuracy == report.host_accuracy);
}

/// MLPerf Tiny's keyword-spotting DS-CNN at full size (49×10×1, 64 filters, four blocks, 12
/// classes: 2,656,768 MACs) with random weights, quantized to int8: bit-identical under QEMU on
/// the Cortex-M4F within 1.6 instructions per MAC (MLPerf Tiny's target for this model: ST's
/// STM32L4R5 result is about 1.95 cycles per MAC), and built for the nRF52840-DK, whose 256 KiB
/// of RAM it fits.
#[test]
fn the_int8_ds_cnn_is_bit_identical_within_its_instruction_target_and_fits_the_nrf52840dk() {
    let calibration = ds_cnn::frames(ds_cnn::INPUT, 64, 1);
    let net = ds_cnn::network(ds_cnn::INPUT, &ds_cnn::layers(64, 4, 12), 0, &calibration).unwrap();
    assert_eq!(net.layers().iter().map(|l| l.shape().macs(l.input_dims)).sum::<usize>(), 2_656_768);
    let int8 = int8(&net, &calibration);
    // synthetic frames, then the edge rows (zeros, ±1e30: every input saturated, ±0)
    let mut rows = ds_cnn::frames(ds_cnn::INPUT, 5, 2);
    rows.extend(self::rows(net.input(), 0));
    let dir = tempfile::tempdir().unwrap();
    let (path, csv) = (dir.path().join("ds-cnn-int8.dsm"), dir.path().join("rows.csv"));
    std::fs::write(&path, int8.to_artifact("", "ds-cnn").unwrap()).unwrap();
    write_rows_csv(&csv, &rows);
    let report = validate::validate(&path, &csv, &Target::Qemu(Board::qemu()), &options()).unwrap();
    eprint!("{}{}", report.summary(), report.profile_table().unwrap_or_default());
    assert!(report.all_identical() && report.rows == 8, "{}", report.summary());
    assert_eq!(report.device.macs, 2_656_768);
    assert!(report.cost_per_mac <= 1.6, "{} instructions per MAC", report.cost_per_mac);
    // the pointwise convolutions run the Dense kernel's paired SMLAD form
    let pointwise: Vec<f64> =
        report.profile.iter().filter(|s| s.stage.contains("1x1 window")).filter_map(|s| s.per_mac).collect();
    assert!(pointwise.len() == 4 && pointwise.iter().all(|c| *c < 1.1), "{pointwise:?}");
    let route = xtask::toolchain::find().unwrap();
    let nrf = Board::named("nrf52840dk").unwrap();
    let elf = xtask::firmware::build(&route, nrf, &path, &xtask::firmware::Image::Serve).expect("it fits the DK");
    let size = xtask::elf::footprint(&elf).unwrap();
    eprintln!("nRF52840-DK serving firmware: {size:?}");
    assert!(size.static_ram < 256 * 1024 && size.weights > 25_000, "{size:?}");
}
