//! Convolutional networks on the device, bit for bit: f32 CNNs of every conv and pooling kind (odd
//! maps, channel counts that are not multiples of 4, both paddings, stride 2's asymmetric `same`
//! padding, every activation a convolution can have) validated row by row under QEMU on every
//! emulated core against the host, with their per-layer profile.

use std::time::Duration;

use dropship::data::Header;
use dropship::deploy::validate::{self, Options, Target};
use dropship::network::{HostNetwork, InputForm, Layer};
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

/// A keyword-spotting shape, small: 25×10×1 → Conv2D 6 5×4/2 same → two depthwise 3×3 +
/// pointwise blocks → GlobalAveragePool → Dense 3 (logits).
fn ds_cnn_like_network() -> HostNetwork {
    use LayerKind::*;
    let input = Dims::image(25, 10, 1);
    let mut b = Builder::new(input).window(Conv2d, 6, [5, 4], [2, 2], Padding::Same, Activation::Relu);
    for _ in 0..2 {
        b = b.window(DepthwiseConv2d, 6, [3, 3], [1, 1], Padding::Same, Activation::Relu).window(
            Conv2d,
            6,
            [1, 1],
            [1, 1],
            Padding::Valid,
            Activation::Relu,
        );
    }
    b.kind(GlobalAveragePool, 6).dense(3, Activation::Linear).build(input, None)
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
    for (name, net) in [("every-kind", every_kind_network()), ("ds-cnn-like", ds_cnn_like_network())] {
        let rows = rows(net.input(), 40);
        // the artifact round-trips to the same network, and the outputs are not degenerate
        let bytes = net.to_artifact("", name).unwrap();
        assert_eq!(HostNetwork::parse(&bytes).unwrap(), net, "{name}");
        let outputs: Vec<Vec<f32>> = rows.iter().map(|r| net.logits(r, InputForm::Raw)).collect();
        let distinct = outputs
            .iter()
            .map(|o| o.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<std::collections::HashSet<_>>();
        assert!(distinct.len() > rows.len() / 2, "{name}: {} distinct outputs", distinct.len());
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
