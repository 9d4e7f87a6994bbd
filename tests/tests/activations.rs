//! Every activation bit-identical on the device at its edges: a hand-built f32 network whose layers
//! put tanh, sigmoid, hard-sigmoid and softmax at ±0, subnormals, the exponential's -87 floor,
//! large magnitudes, ±inf and NaN, and an int8 network of the same activations whose tables are
//! read at both ends, both validated row by row under QEMU against the host.

use std::time::Duration;

use dropship::data::Header;
use dropship::deploy::quantize;
use dropship::deploy::validate::{self, Options, Target};
use dropship::network::{HostNetwork, InputForm, Layer};
use dropship_shared::Activation;
use dropship_tests::{activation_fixture, int8_of, write_rows_csv};
use xtask::firmware::Board;

const WIDTH: usize = 8;

/// A `WIDTH`-input layer of `outputs` outputs whose only non-zero weights are `(input, output,
/// weight)`, with bias `bias[o]` (0 where not given).
fn sparse(outputs: usize, weights: &[(usize, usize, f32)], bias: &[f32], activation: Activation) -> Layer {
    let mut kernel = vec![0.0f32; WIDTH * outputs];
    for (i, o, w) in weights {
        kernel[i * outputs + o] = *w;
    }
    let bias = (0..outputs).map(|o| bias.get(o).copied().unwrap_or(0.0)).collect();
    Layer::dense(WIDTH, kernel, bias, activation)
}

/// tanh → sigmoid → hard-sigmoid → softmax, each layer's weights chosen so that the activation
/// after it sees the edges: values passed as they are, scaled to beyond the exponential's floor,
/// into the subnormal range, to ±3.4e38, and summed past f32's range (±inf). Rows whose first two
/// features are both 3e38 overflow to `inf - inf` in the first layer: NaN from there on.
fn edge_network() -> HostNetwork {
    let identity = |n: usize| (0..n).map(|i| (i, i, 1.0)).collect::<Vec<_>>();
    let mut first = identity(6);
    first.extend([(0, 6, 2.0), (1, 6, -2.0), (2, 7, 1e-39)]);
    let second = [
        (0, 0, 20.0),
        (1, 1, 100.0),
        (2, 2, 88.0),
        (3, 3, 1e-39),
        (4, 4, 3.4e38),
        (4, 5, 3e38),
        (5, 5, 3e38),
        (6, 6, 1.0),
        (7, 7, 1.0),
    ];
    let third = [
        (0, 0, 6.0),
        (1, 1, 12.0),
        (2, 2, 1e-39),
        (3, 3, 3e38),
        (4, 3, 3e38),
        (4, 4, 1.0),
        (5, 5, 1.0),
        (6, 6, 1.0),
        (7, 7, 1.0),
    ];
    let fourth = [
        (0, 0, 100.0),
        (1, 1, -100.0),
        (2, 2, 3e38),
        (3, 2, 3e38),
        (3, 3, 1.0),
        (4, 4, 1e-39),
        (5, 5, 3e38),
        (6, 5, 3e38),
    ];
    let layers = vec![
        sparse(WIDTH, &first, &[], Activation::Tanh),
        sparse(WIDTH, &second, &[], Activation::Sigmoid),
        sparse(WIDTH, &third, &[-3.0, -3.0], Activation::HardSigmoid),
        sparse(6, &fourth, &[], Activation::Softmax),
    ];
    HostNetwork::f32(WIDTH, layers, None).unwrap()
}

/// The same activations with ordinary weights, for int8.
fn ordinary_network() -> HostNetwork {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut weight = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1.5
    };
    let mut dense = |inputs: usize, outputs: usize, activation| {
        let kernel = (0..inputs * outputs).map(|_| weight()).collect();
        let bias = (0..outputs).map(|_| weight() * 0.2).collect();
        Layer::dense(inputs, kernel, bias, activation)
    };
    let layers = vec![
        dense(WIDTH, 12, Activation::Tanh),
        dense(12, 10, Activation::Sigmoid),
        dense(10, 9, Activation::HardSigmoid),
        dense(9, 5, Activation::Softmax),
    ];
    HostNetwork::f32(WIDTH, layers, None).unwrap()
}

/// Rows of edge values in every position, ordinary values, and rows that overflow to NaN.
fn rows() -> Vec<Vec<f32>> {
    let edges: [f32; 26] = [
        0.0, -0.0, 1e-40, -1e-40, 1e-45, 2.4e-4, -2.4e-4, 0.25, -0.25, 0.2499, 1.0, -1.0, 3.0, -3.0, 43.5, -43.5, 87.0,
        -87.0, -87.01, 88.0, -88.0, 1e30, -1e30, 3e38, -3e38, 0.5,
    ];
    let mut rows: Vec<Vec<f32>> =
        (0..78).map(|r| (0..WIDTH).map(|f| edges[(r * 7 + f * 3 + r / 26) % edges.len()]).collect()).collect();
    rows.extend((0..40).map(|r| (0..WIDTH).map(|f| ((r * 31 + f * 17) % 41) as f32 / 2.0 - 10.0).collect()));
    rows.extend((0..4).map(|r| {
        let mut row = vec![r as f32; WIDTH];
        row[0] = 3e38;
        row[1] = 3e38;
        row
    }));
    rows
}

fn options() -> Options {
    Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(5), progress: false }
}

/// What each layer's activation sees over `rows`: `[NaN, ±0, subnormal, finite beyond ±87, ±inf,
/// ≤ -3, ≥ 3]`, one flag each.
fn edges_seen(net: &HostNetwork, rows: &[Vec<f32>]) -> Vec<[bool; 7]> {
    let mut seen = vec![[false; 7]; net.layers().len()];
    for row in rows {
        let mut x = row.clone();
        for (layer, flags) in net.layers().iter().zip(&mut seen) {
            let (kernel, bias) = layer.f32().unwrap();
            let mut y = vec![0.0; bias.len()];
            dropship_shared::ops::dense::dense(&x, kernel, bias, &mut y, Activation::Linear);
            for v in &y {
                let found = [
                    v.is_nan(),
                    *v == 0.0,
                    v.is_subnormal(),
                    v.is_finite() && v.abs() > 87.0,
                    v.is_infinite(),
                    *v <= -3.0,
                    *v >= 3.0,
                ];
                flags.iter_mut().zip(found).for_each(|(f, now)| *f |= now);
            }
            layer.activation.apply_layer(&mut y);
            x = y;
        }
    }
    seen
}

/// Whether each int8 layer's requantized sums reach -128 and 127 (the ends of its table) over
/// `rows`, computed with the shared kernel's reference and tables.
fn table_ends(net: &HostNetwork, rows: &[Vec<f32>]) -> Vec<(bool, bool)> {
    use dropship_shared::ops::dense::int8::dense_i8_reference;
    let layers = net.kernel_layers();
    let (scale, zero) = net.input_quantization().unwrap();
    let mut ends = vec![(false, false); layers.len()];
    for row in rows {
        let mut x = vec![0i8; row.len()];
        dropship_shared::ops::quantize::quantize_input(row, scale, zero, &mut x);
        for (layer, (low, high)) in layers.iter().map(|l| &l.quant).zip(&mut ends) {
            let mut y = vec![0i8; layer.bias.len()];
            dense_i8_reference(&x, layer, &mut y);
            *low |= y.contains(&-128);
            *high |= y.contains(&127);
            layer.lookup.apply(&mut y);
            x = y;
        }
    }
    ends
}

#[test]
fn every_activation_is_bit_identical_on_every_core_at_its_edges_in_f32_and_int8() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("edges.csv");
    let rows = rows();
    write_rows_csv(&csv, &rows);
    // f32: the host's outputs reach the edges the test is about
    let f32_net = edge_network();
    let outputs: Vec<Vec<f32>> = rows.iter().map(|r| f32_net.logits(r, InputForm::Raw)).collect();
    for (layer, seen) in f32_net.layers().iter().zip(edges_seen(&f32_net, &rows)) {
        assert_eq!(seen, [true; 7], "{}: NaN, 0, subnormal, beyond ±87, ±inf, ≤ -3, ≥ 3", layer.activation);
    }
    let flat = || outputs.iter().flatten();
    assert!(flat().any(|v| v.to_bits() == 0x7fc0_0000), "no row reaches the canonical NaN");
    assert!(flat().any(|v| *v == 0.5) && flat().any(|v| *v == 0.0), "no shared or empty softmax share");
    let f32_path = dir.path().join("edges.dsm");
    std::fs::write(&f32_path, f32_net.to_artifact("", "activation edges").unwrap()).unwrap();
    // int8: calibrated on ordinary rows, so the edge rows drive every table to both ends
    let ordinary = ordinary_network();
    let calibration: Vec<Vec<f32>> =
        (0..64).map(|r| (0..WIDTH).map(|f| ((r * 13 + f * 7) % 21) as f32 / 10.0 - 1.0).collect()).collect();
    let ranges = quantize::calibrate(&ordinary, calibration.iter().map(Vec::as_slice));
    let int8 = quantize::quantize(&ordinary, &ranges).unwrap();
    let tables = int8.layers().iter().filter(|l| l.int8().is_some_and(|w| w.table.is_some())).count();
    assert_eq!(tables, 4, "every layer runs its activation as a table");
    for (layer, (low, high)) in int8.layers().iter().zip(table_ends(&int8, &rows)) {
        assert!(low && high, "{}: its table is not read at both ends ({low}, {high})", layer.activation);
    }
    let int8_path = dir.path().join("edges-int8.dsm");
    std::fs::write(&int8_path, int8.to_artifact("", "activation edges, int8").unwrap()).unwrap();
    // on every core QEMU emulates: the FPU's f32 (M4F, M33) and soft-float (M0, RISC-V) alike
    for board in Board::all().iter().copied().filter(|b| b.spec().qemu.is_some()) {
        for path in [&f32_path, &int8_path] {
            let report = validate::validate(path, &csv, &Target::Qemu(board), &options()).unwrap();
            eprint!("{}: {}", board.name(), report.summary());
            assert_eq!(report.rows, rows.len());
            assert!(report.all_identical() && report.max_ulp == 0, "{}: {}", board.name(), report.summary());
        }
    }
}

/// Digits models trained with tanh, sigmoid and hard-sigmoid hidden layers, f32 and int8: every
/// test row's outputs identical on the device, and the int8 model within two points of f32.
#[test]
fn trained_tanh_sigmoid_and_hard_sigmoid_models_validate_on_the_device_in_f32_and_int8() {
    for activation in [Activation::Tanh, Activation::Sigmoid, Activation::HardSigmoid] {
        let f = activation_fixture(activation);
        let (int8_path, _) = int8_of(f).unwrap();
        let mut accuracy = Vec::new();
        for path in [&f.artifact_path, &int8_path] {
            let report = validate::validate(path, &f.test_csv_path, &Target::Qemu(Board::qemu()), &options()).unwrap();
            eprint!("{activation}: {}", report.summary());
            assert_eq!(report.rows, f.prepared.split.test.len());
            assert!(report.all_identical() && report.max_ulp == 0, "{activation}: {}", report.summary());
            accuracy.push(report.device_accuracy.unwrap());
        }
        assert!(accuracy[0] > 0.9, "{activation}: f32 accuracy {}", accuracy[0]);
        assert!(accuracy[0] - accuracy[1] <= 0.02, "{activation}: f32 {} int8 {}", accuracy[0], accuracy[1]);
    }
}
