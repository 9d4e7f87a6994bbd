//! int8 models: quantized after training, within half a point of f32 accuracy, and bit-identical on
//! the device (the Cortex-M4 `SMLAD` kernel under QEMU) and on the host (the portable kernel).

use std::time::Duration;

use dropship::data::Header;
use dropship::deploy::quantize;
use dropship::deploy::validate::{self, Options, Target};
use dropship::network::{HostNetwork, InputForm};
use dropship_shared::ops::dense::int8::paired;
use dropship_shared::ops::output::argmax;
use dropship_tests::{deep_fixture, fixture, int8_of, real_valued_fixture, Fixture};
use xtask::firmware::Board;

fn accuracy_drop(f: &Fixture) -> (f64, f64, f64) {
    let net = HostNetwork::from_artifact(&dropship_shared::Artifact::parse(&f.artifact).unwrap());
    let (_, int8) = int8_of(f).unwrap();
    let rows: Vec<&[f32]> = f.test_rows().collect();
    let labels: Vec<u32> = f.prepared.split.test.iter().map(|r| f.data.labels[*r]).collect();
    let g = quantize::agreement(&net, &int8, &rows, &labels);
    // the report's int8 classes are the int8 network's own
    let direct = rows.iter().zip(&labels).filter(|(r, l)| argmax(&int8.logits(r, InputForm::Raw)) == **l as usize);
    assert_eq!(direct.count() as f64 / rows.len() as f64, g.int8_accuracy.unwrap());
    (g.f32_accuracy.unwrap(), g.int8_accuracy.unwrap(), g.class_agreement)
}

#[test]
fn quantized_models_stay_within_half_a_point_of_f32_accuracy() {
    for f in [fixture(), deep_fixture()] {
        let (f32_acc, int8_acc, agreement) = accuracy_drop(f);
        eprintln!("f32 {f32_acc:.4} int8 {int8_acc:.4} agreement {agreement:.4}");
        assert!(f32_acc - int8_acc <= 0.005, "f32 {f32_acc:.4}, int8 {int8_acc:.4}: more than 0.5 points lost");
        assert!(agreement >= 0.98, "class agreement {agreement:.4}");
    }
}

#[test]
fn int8_device_logits_are_bit_identical_to_the_host_in_both_weight_forms() {
    let options =
        Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(5), progress: false };
    // the digits and deep models' layers take the Cortex-M4's paired form; the real-valued model's
    // first layer (12 inputs, not a multiple of 8) the blocked one
    let mut forms = Vec::new();
    for f in [fixture(), deep_fixture(), real_valued_fixture()] {
        let (path, int8) = int8_of(f).unwrap();
        for l in int8.layers() {
            let w = l.int8().unwrap();
            let shifts: Vec<i8> = w.requant.iter().map(|r| r.shift as i8).collect();
            forms.push(paired::fits(l.input, &shifts, &w.weights));
        }
        let report = validate::validate(&path, &f.test_csv_path, &Target::Qemu(Board::qemu()), &options).unwrap();
        eprint!("{}", report.summary());
        assert_eq!(report.rows, f.prepared.split.test.len());
        assert!(report.all_identical(), "{}", report.summary());
        assert_eq!(report.device_accuracy, report.host_accuracy);
        assert_eq!(report.device.macs, f.weights.layers.iter().map(|l| l.input * l.bias.len()).sum::<usize>());
    }
    assert!(forms.contains(&true) && forms.contains(&false), "both weight forms ran: {forms:?}");
}

#[test]
fn int8_firmwares_build_for_both_boards_with_a_quarter_of_the_weight_flash() {
    use xtask::firmware::{self, Image};
    let route = xtask::toolchain::find().unwrap();
    let f = fixture();
    let (path, int8) = int8_of(f).unwrap();
    // int8 weights, int32 biases, a multiplier and a shift per channel, and the f32 standardization
    assert!(int8.footprint().weight_bytes <= 11 * 1024, "{} bytes", int8.footprint().weight_bytes);
    for board in Board::all().iter().copied() {
        let f32_elf = firmware::build(&route, board, &f.artifact_path, &Image::Serve).unwrap();
        let int8_elf = firmware::build(&route, board, &path, &Image::Serve).unwrap();
        let (a, b) = (xtask::elf::footprint(&f32_elf).unwrap(), xtask::elf::footprint(&int8_elf).unwrap());
        eprintln!("{}: f32 {} B, int8 {} B of flash", board.name(), a.flash, b.flash);
        // the weights' flash is under a third; the int8 kernels and the per-layer profile (0.8 KiB)
        // take some of the difference back
        assert!(3 * b.weights < a.weights, "{}: int8 weights {} B, f32 {} B", board.name(), b.weights, a.weights);
        assert!(b.flash + 19 * 1024 < a.flash, "{}: int8 {} B, f32 {} B", board.name(), b.flash, a.flash);
    }
}

/// Rows of `width` features mixing ±3e38 with ordinary values: inputs whose sums overflow f32
/// inside the model (`inf - inf` in a linear layer is NaN).
fn overflowing_csv(width: usize, rows: usize) -> String {
    let mut csv: String = (0..width).map(|f| format!("f{f},")).collect();
    csv.push_str("label\n");
    for r in 0..rows {
        let values: Vec<String> = (0..width)
            .map(|i| match (i + r) % 5 {
                0 => "3e38".to_string(),
                1 => "-3e38".to_string(),
                2 => format!("{}", (i * r) % 17),
                3 => "3.4e38".to_string(),
                _ => "0".to_string(),
            })
            .collect();
        csv.push_str(&format!("{},{}\n", values.join(","), r % 10));
    }
    csv
}

/// The edges of both arithmetics on the device: inputs that overflow f32 inside the model give
/// the one canonical NaN on QEMU as on the host (f32), and an int8 model whose multipliers are as
/// large as the quantizer makes (inputs that barely varied in calibration) saturates the same way
/// on both (it used to wrap to -128 on the device and panic on the host).
#[test]
fn overflowing_inputs_and_large_multipliers_are_bit_identical_on_the_device() {
    let options =
        Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(5), progress: false };
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("overflow.csv");
    std::fs::write(&csv, overflowing_csv(f.data.width(), 40)).unwrap();
    // f32: the host's logits hold the canonical NaN for some rows, and QEMU's are the same bits
    let net = HostNetwork::from_artifact(&dropship_shared::Artifact::parse(&f.artifact).unwrap());
    let rows = dropship::data::load_csv_for_model(&csv, net.input(), None, Header::Auto).unwrap();
    let nan_rows = (0..rows.rows())
        .filter(|r| net.logits(rows.row(*r), InputForm::Raw).iter().any(|v| v.to_bits() == 0x7fc0_0000))
        .count();
    assert!(nan_rows > 0, "no row reached NaN: the test would not exercise the rule");
    let report = validate::validate(&f.artifact_path, &csv, &Target::Qemu(Board::qemu()), &options).unwrap();
    eprint!("{}", report.summary());
    assert!(report.all_identical(), "{}", report.summary());
    // int8: the same rows, and the test rows, through a model with large multipliers
    let (_, int8) = int8_of(f).unwrap();
    // the hidden layer's multipliers as the quantizer makes them for outputs that barely varied
    // in calibration: 10^8 times larger, so negative sums requantize below i32's range before
    // the zero point (-128) is added
    let mut layers = int8.layers().to_vec();
    if let dropship::network::Weights::Int8(w) = &mut layers[0].weights {
        for r in &mut w.requant {
            *r = dropship_shared::ops::dense::int8::Requant::from_real(r.to_real() * 1e8).unwrap();
        }
    }
    let large = dropship::network::HostNetwork::new(
        int8.input(),
        layers,
        int8.standardization().cloned(),
        int8.input_quantization(),
    )
    .unwrap();
    let (input_scale, input_zero) = large.input_quantization().unwrap();
    let hidden_layer = &large.layers()[0];
    let hidden = hidden_layer.int8().unwrap();
    assert!(hidden.requant.iter().all(|r| r.shift >= -1), "{:?}", &hidden.requant[..4]);
    assert_ne!(int8.layers()[0].int8().unwrap().requant, hidden.requant);
    // the case that overflowed: a sum whose requantization saturates at i32::MIN, then -128
    let below = f.test_rows().any(|row| {
        let (mean, scale) = large.standardization().unwrap();
        let mut z = vec![0.0; row.len()];
        dropship_shared::ops::standardize::standardize(row, mean, scale, &mut z);
        let mut x = vec![0i8; row.len()];
        dropship_shared::ops::quantize::quantize_input(&z, input_scale, input_zero, &mut x);
        (0..hidden.bias.len()).any(|o| {
            let n = hidden_layer.input;
            let acc = (0..n).fold(hidden.bias[o] as i64, |a, i| a + x[i] as i64 * hidden.weights[o * n + i] as i64);
            (acc as f64 * hidden.requant[o].to_real()) < i32::MIN as f64 && hidden.output_zero < 0
        })
    });
    assert!(below, "no sum reaches the saturation the test is about");
    let path = dir.path().join("large-multipliers.dsm");
    std::fs::write(&path, large.to_artifact("", "large multipliers").unwrap()).unwrap();
    for rows in [&f.test_csv_path, &csv] {
        let report = validate::validate(&path, rows, &Target::Qemu(Board::qemu()), &options).unwrap();
        eprint!("{}", report.summary());
        assert!(report.all_identical(), "{}", report.summary());
    }
}

/// The paired form at its bound, on the device: a 1024-input layer (the widest the form takes)
/// whose first row's bound is exactly 2^23 - 1, fed the inputs that reach it (every input -128),
/// its negation, a row of odd weights only and a trained-like row; the `asm!` loop's sums must be
/// the host's exact blocked sums, row after row.
#[test]
fn the_paired_form_at_its_bound_is_exact_on_the_device() {
    use dropship::network::{Int8Weights, Layer};
    use dropship_shared::ops::dense::int8::Requant;
    use dropship_shared::Activation;
    let n = paired::MAX_INPUTS;
    let mut bound = vec![0i8; n];
    for i in (0..n).step_by(2) {
        bound[i] = 127;
    }
    (bound[1], bound[3], bound[5]) = (127, 127, 3);
    assert_eq!(paired::row_bound(&bound), (1 << 23) - 1);
    let negated: Vec<i8> = bound.iter().map(|w| -w).collect();
    // 256 odd weights of ±127: a bound of 255 * 127 * 256 = 8,290,560, just below 2^23
    let sign = |i: usize| if i % 4 == 1 { 127 } else { -127 };
    let odd: Vec<i8> = (0..n).map(|i| if i % 2 == 1 && i < 512 { sign(i) } else { 0 }).collect();
    let trained: Vec<i8> = (0..n).map(|i| ((i * 37 % 81) as i8) - 40).collect();
    let weights: Vec<i8> = [bound, negated, odd, trained].concat();
    let requant = vec![Requant::from_real(1e-5).unwrap(); 4];
    let shifts: Vec<i8> = requant.iter().map(|r| r.shift as i8).collect();
    assert!(paired::fits(n, &shifts, &weights), "the layer takes the paired form");
    let layer = Layer::dense_int8(
        n,
        Int8Weights {
            weights,
            bias: vec![0, 7, -7, 0],
            requant,
            weight_scales: vec![1.0; 4],
            output_scale: 1.0,
            output_zero: 0,
            table: None,
        },
        Activation::Linear,
    );
    let net = HostNetwork::new(n, vec![layer], None, Some((1.0, 0))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut csv: String = (0..n).map(|i| format!("x{i},")).collect::<String>() + "label\n";
    let mut state = 5u64;
    for r in 0..6 {
        let values: Vec<String> = (0..n)
            .map(|i| match r {
                0 => "-128".into(),
                1 => "127".into(),
                2 => if i % 2 == 0 { "-128" } else { "127" }.into(),
                _ => {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 33) % 256).to_string().parse::<i32>().map(|v| (v - 128).to_string()).unwrap()
                }
            })
            .collect();
        csv.push_str(&format!("{},0\n", values.join(",")));
    }
    let rows_path = dir.path().join("bound.csv");
    std::fs::write(&rows_path, csv).unwrap();
    // the host's outputs of the first row: S = -(2^23 - 1) requantized, not saturated
    let rows = dropship::data::load_csv_for_model(&rows_path, n, None, Header::Auto).unwrap();
    let first = net.logits(rows.row(0), InputForm::Raw);
    assert!(first[0] > -128.0 && first[0] < -40.0, "{first:?}");
    let path = dir.path().join("bound.dsm");
    std::fs::write(&path, net.to_artifact("", "the paired form's bound").unwrap()).unwrap();
    let options =
        Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(5), progress: false };
    let report = validate::validate(&path, &rows_path, &Target::Qemu(Board::qemu()), &options).unwrap();
    eprint!("{}", report.summary());
    assert_eq!(report.rows, 6);
    assert!(report.all_identical() && report.max_ulp == 0, "{}", report.summary());
}
