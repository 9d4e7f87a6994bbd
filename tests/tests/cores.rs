//! Every core QEMU emulates (the Cortex-M4F default, the Cortex-M33 with FPU and DSP, the
//! Cortex-M0 and the RV32IMAC, both without FPU) runs the digits model in f32 and int8 bit for bit
//! as the host does, served over its own UART; the int8 kernels each core runs, by its cost.

use std::time::Duration;

use dropship::data::Header;
use dropship::deploy::validate::{self, Options, Target};
use dropship_tests::{deep_fixture, fixture, int8_of};
use xtask::firmware::Board;

fn options() -> Options {
    Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(10), progress: false }
}

#[test]
fn every_emulated_core_validates_f32_and_int8_models_n_of_n() {
    let boards: Vec<Board> = Board::all().iter().copied().filter(|b| b.spec().qemu.is_some()).collect();
    let names: Vec<&str> = boards.iter().map(|b| b.name()).collect();
    assert_eq!(names, ["qemu", "qemu-m33", "qemu-m0", "qemu-riscv"], "the cores the README's table lists");
    for f in [fixture(), deep_fixture()] {
        let (int8_path, _) = int8_of(f).unwrap();
        for board in &boards[1..] {
            let mut per_mac = Vec::new();
            for path in [&f.artifact_path, &int8_path] {
                let report = validate::validate(path, &f.test_csv_path, &Target::Qemu(*board), &options()).unwrap();
                eprint!("{}: {}", board.name(), report.summary());
                assert_eq!(report.device.board, board.name());
                assert_eq!(report.device.cost_unit, "instructions");
                assert_eq!(report.rows, f.prepared.split.test.len());
                assert!(report.all_identical() && report.max_ulp == 0, "{}: {}", board.name(), report.summary());
                assert_eq!(report.device_accuracy, report.host_accuracy);
                per_mac.push(report.cost_per_mac);
                // the profile: the input, each layer, the outputs, adding up to the whole (each
                // stage rounded to a whole instruction)
                let depth = f.weights.layers.len();
                assert_eq!(report.profile.len(), depth + 2, "{}", report.profile_table().unwrap_or_default());
                let sum: f64 = report.profile.iter().map(|s| s.cost).sum();
                assert!((sum - report.cost_per_inference).abs() <= (depth + 2) as f64, "{sum} vs {report:?}");
                let layer_macs: usize = report.profile.iter().map(|s| s.macs).sum();
                assert_eq!(layer_macs, report.device.macs);
                assert!(report.profile.iter().all(|s| s.cost > 0.0), "every stage costs something");
            }
            let (f32_cost, int8_cost) = (per_mac[0], per_mac[1]);
            match board.name() {
                // the FPU and the DSP extension: SMLAD on paired weights, as on the M4F
                "qemu-m33" => assert!(f32_cost < 4.0 && int8_cost < 1.8, "M33: {f32_cost} / {int8_cost} per MAC"),
                // soft-float f32; the scalar int8 kernel, many times cheaper than soft-float
                _ => assert!(f32_cost > 50.0 && int8_cost < f32_cost / 5.0, "{}: {per_mac:?}", board.name()),
            }
        }
    }
}
