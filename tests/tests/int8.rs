//! int8 models: quantized after training, within half a point of f32 accuracy, and bit-identical on
//! the device (the Cortex-M4 `SMLAD` kernel under QEMU) and on the host (the portable kernel).

use std::time::Duration;

use dropship::data::Header;
use dropship::infer::{HostNetwork, InputForm};
use dropship::quantize;
use dropship::validate::{self, Options, Target};
use dropship_shared::kernel::argmax;
use dropship_shared::quant::paired;
use dropship_tests::{deep_fixture, fixture, int8_of, real_valued_fixture, Fixture};

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
        for l in int8.kernel_layers() {
            forms.push(paired::fits(l.weights.len() / l.bias.len(), l.shifts));
        }
        let report = validate::validate(&path, &f.test_csv_path, &Target::Qemu, &options).unwrap();
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
    use xtask::firmware::{self, Board, Image};
    let route = xtask::toolchain::find().unwrap();
    let f = fixture();
    let (path, int8) = int8_of(f).unwrap();
    // int8 weights, int32 biases, a multiplier and a shift per channel, and the f32 standardization
    assert!(int8.weight_bytes() <= 11 * 1024, "{} bytes", int8.weight_bytes());
    for board in [Board::Qemu, Board::Nrf52840dk] {
        let f32_elf = firmware::build(&route, board, &f.artifact_path, &Image::Serve).unwrap();
        let int8_elf = firmware::build(&route, board, &path, &Image::Serve).unwrap();
        let (a, b) = (xtask::elf::footprint(&f32_elf).unwrap(), xtask::elf::footprint(&int8_elf).unwrap());
        eprintln!("{board:?}: f32 {} B, int8 {} B of flash", a.flash, b.flash);
        assert!(b.flash + 20 * 1024 < a.flash, "{board:?}: int8 {} B, f32 {} B", b.flash, a.flash);
    }
}
