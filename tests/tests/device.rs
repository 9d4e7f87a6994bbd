//! The test that matters: the QEMU Cortex-M4F firmware, built with an exported model and every
//! test row, gives bit-identical logits to the `shared` core on the host and candle's classes, for
//! the course's two-layer model and a three-layer one.

use candle_core::{Device, Tensor};
use dropship::network::{HostNetwork, Layer};
use dropship::train::model::Mlp;
use dropship_shared::vectors::Vectors;
use dropship_shared::Activation;
use dropship_shared::{Artifact, Layers, Network, OneHidden, Scratch, TwoHidden};
use dropship_tests::{deep_fixture, fixture, Fixture};
use xtask::firmware::{self, Board, Image};
use xtask::{device, elf, toolchain};

#[test]
fn device_logits_are_bit_identical_to_the_host_and_classes_match_candle() {
    device_matches_host(fixture(), OneHidden::<64, 128, 10>::ZERO, &mut Scratch::<64, 128>::new());
}

#[test]
fn deep_device_logits_are_bit_identical_to_the_host_and_classes_match_candle() {
    // 64 → 64 → 32 → 10: buffer a holds the input and the second hidden layer, b the first.
    device_matches_host(deep_fixture(), TwoHidden::<64, 64, 32, 10>::ZERO, &mut Scratch::<64, 64>::new());
}

/// Builds the QEMU firmware with the fixture's model and every test row, runs it twice, and checks
/// every logit against the host: the vectors file (runtime-shaped host path), the const-generic
/// network the device runs (`net`, loaded from the artifact here) and candle's classes.
fn device_matches_host<L: Layers, const A: usize, const B: usize>(
    f: &Fixture,
    net: Network<L, 64, 10>,
    scratch: &mut Scratch<A, B>,
) {
    // A missing toolchain or QEMU is a failure, never a skip; `cargo xtask setup` installs them.
    let route = toolchain::find().unwrap();
    xtask::qemu::find().unwrap();
    let board = Board::qemu();
    let elf_path = firmware::build(&route, board, &f.artifact_path, &Image::SelfTest { vectors: &f.vectors_path })
        .expect("QEMU firmware builds");
    let first = device::run_qemu(board, &elf_path, 300).expect("QEMU runs");
    let second = device::run_qemu(board, &elf_path, 300).expect("QEMU runs again");
    let depth = f.weights.layers.len();
    assert!(first.lines[0].contains(&format!("{depth} dense layers")), "{}", first.lines[0]);

    // The shared crate on the host, through the same const-generic type the device runs.
    let mut net = Box::new(net);
    Artifact::parse(&f.artifact).unwrap().load_into(&mut net).unwrap();
    // candle, inference mode (no dropout mask).
    let model = Mlp::new(&f.weights, &Device::Cpu).unwrap();
    let x_test = &f.x_test;
    let x = Tensor::from_slice(x_test, (f.prepared.split.test.len(), 64), &Device::Cpu).unwrap();
    let candle_logits = model.forward(&x, None).unwrap().to_vec2::<f32>().unwrap();

    // The device against the vectors file (the runtime-shaped host path wrote it): every logit bit.
    let vectors_bytes = std::fs::read(&f.vectors_path).unwrap();
    let host = Vectors::parse(&vectors_bytes).unwrap();
    let agreement = device::compare_with_host(&host, &first);
    assert!(agreement.complete(), "{:?}", &agreement.differences[..agreement.differences.len().min(5)]);
    assert_eq!(agreement.identical, f.prepared.split.test.len(), "one identical line per test row");
    assert_eq!(first.summary, Some((360, 360)));
    // ... and against the const-generic network the device runs, on the host, and candle's classes.
    for (d, (row, candle_row)) in first.vectors.iter().zip(f.test_rows().zip(&candle_logits)) {
        let input: &[f32; 64] = row.try_into().unwrap();
        let mut logits = [0.0; 10];
        let class = net.predict(input, scratch, &mut logits);
        let host_bits: Vec<u32> = logits.iter().map(|v| v.to_bits()).collect();
        assert_eq!(d.logits_bits, host_bits, "vector {}: device logits differ from the host's", d.index);
        assert_eq!(d.class, class, "vector {}", d.index);
        assert_eq!(
            d.class,
            dropship_shared::ops::output::argmax(candle_row),
            "vector {}: device class differs from candle",
            d.index
        );
    }
    assert_eq!(first.lines, second.lines, "two device runs give identical output");
}

#[test]
fn nrf52840dk_firmware_builds_with_the_model_in_flash() {
    let f = fixture();
    let route = toolchain::find().unwrap();
    let elf_path = firmware::build(
        &route,
        Board::named("nrf52840dk").unwrap(),
        &f.artifact_path,
        &Image::SelfTest { vectors: &f.vectors_path },
    )
    .expect("nRF52840-DK firmware builds");
    let size = elf::footprint(&elf_path).unwrap();
    println!("nRF52840-DK: {size:?}");
    assert!(size.weights >= 9610 * 4, "the weights are in flash: {size:?}");
    assert!(size.vectors > 0, "the vectors are in flash: {size:?}");
    assert!(size.static_ram < 256 * 1024, "fits the nRF52840's RAM: {size:?}");
}

#[test]
fn a_model_too_big_for_the_board_is_refused_at_build_time_with_the_numbers() {
    // 64 → 2048 → 128 → 10: 396,682 parameters, 1.6 MB of f32, more than the nRF52840's 1 MiB flash.
    // Weights as the firmware lays them out (`Footprint`): 4 bytes per parameter, one word per
    // layer for its activation, and the standardization slot (64 + 64 f32 and a word), even empty.
    let widths = [64, 2048, 128, 10];
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let activation = if i < 2 { Activation::Relu } else { Activation::Linear };
            Layer::dense(w[0], vec![0.0; w[0] * w[1]], vec![0.0; w[1]], activation)
        })
        .collect();
    let net = HostNetwork::f32(64, layers, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (artifact, vectors) = (dir.path().join("big.dsm"), dir.path().join("big.dsv"));
    std::fs::write(&artifact, net.to_artifact("", "too big").unwrap()).unwrap();
    std::fs::write(&vectors, net.vectors(std::iter::once(&[0.0f32; 64][..])).unwrap()).unwrap();
    let route = toolchain::find().unwrap();
    let out = firmware::command(
        &route,
        Board::named("nrf52840dk").unwrap(),
        &artifact,
        &Image::SelfTest { vectors: &vectors },
    )
    .unwrap()
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build fails");
    assert!(stderr.contains("does not fit the nrf52840dk board"), "{stderr}");
    assert!(stderr.contains("layers [64, 2048, 128, 10]"), "{stderr}");
    assert!(stderr.contains("flash: 1603712 bytes needed (1587256 weights + 72 test vectors"), "{stderr}");
    assert!(stderr.contains("1048576 available"), "{stderr}");
    assert!(stderr.contains("--hidden"), "says what to change: {stderr}");
}
