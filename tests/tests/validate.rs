//! `dropship validate` end to end under QEMU: the serving firmware answers over its emulated UART,
//! every logit of every row is compared with the host, a device running another model is refused,
//! and a link that corrupts, drops and delays bytes never yields a false match.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dropship::data::{self, Header};
use dropship::deploy::device_link::{Link, QemuSession};
use dropship::deploy::validate::{self, Options, Report, Rows, Target};
use dropship::network::HostNetwork;
use dropship_tests::{deep_fixture, fixture, real_valued_fixture, Fixture};
use xtask::firmware::{self, Board, Image};
use xtask::{elf, toolchain};

fn serving_firmware(f: &Fixture) -> PathBuf {
    // A missing toolchain or QEMU is a failure, never a skip; `cargo xtask setup` installs them.
    let route = toolchain::find().unwrap();
    xtask::qemu::find().unwrap();
    firmware::build(&route, Board::qemu(), &f.artifact_path, &Image::Serve).expect("the serving firmware builds")
}

fn options() -> Options {
    Options { label_column: None, header: Header::Auto, timeout: Duration::from_secs(5), progress: false }
}

/// Validates `csv` against `f`'s artifact over `link`.
fn run_rows<T: Read + Write>(link: &mut Link<T>, f: &Fixture, csv: &Path) -> anyhow::Result<Report> {
    let (net, bytes) = HostNetwork::load(&f.artifact_path)?;
    let data = data::load_csv_for_model(csv, net.input(), None, Header::Auto)?;
    validate::run(
        link,
        &Rows { net: &net, artifact: &f.artifact_path, artifact_bytes: &bytes, data: &data, csv },
        false,
    )
}

fn assert_all_identical(report: &Report, rows: usize) {
    assert_eq!(report.rows, rows);
    assert!(report.all_identical(), "{}", report.summary());
    assert_eq!((report.max_ulp, report.class_differences), (0, 0));
    assert_eq!(report.device_accuracy, report.host_accuracy);
    assert!(report.device_accuracy.unwrap() > 0.8, "{}", report.summary());
}

#[test]
fn digits_model_validates_bit_identical_over_the_uart() {
    let f = fixture();
    let report =
        validate::validate(&f.artifact_path, &f.test_csv_path, &Target::Qemu(Board::qemu()), &options()).unwrap();
    assert_all_identical(&report, 360);
    assert_eq!((report.device.board.as_str(), report.device.cost_unit), ("qemu", "instructions"));
    assert_eq!((report.device.layers, report.device.macs), (2, 64 * 128 + 128 * 10));
    assert!((1.0..4.0).contains(&report.cost_per_mac), "{}", report.summary());
    assert_eq!(report.retries, 0, "a clean link needs no second attempt");
}

#[test]
fn one_firmware_validates_several_row_sets_of_real_valued_and_deep_models() {
    for f in [real_valued_fixture(), deep_fixture()] {
        let elf = serving_firmware(f);
        let (_qemu, stream) = QemuSession::start(Board::qemu(), &elf).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut link = Link::new(stream, Duration::from_secs(5));
        // the test rows, then every row the model was trained on, through the same running firmware
        let test_rows = f.prepared.split.test.len();
        assert_all_identical(&run_rows(&mut link, f, &f.test_csv_path).unwrap(), test_rows);
        let all = f.test_csv_path.with_file_name("all.csv");
        let header: String = (0..f.data.width()).map(|i| format!("f{i},")).collect::<String>() + "label\n";
        let body: String = (0..f.data.rows())
            .map(|r| {
                let values: Vec<String> = f.data.row(r).iter().map(f32::to_string).collect();
                format!("{},{}\n", values.join(","), f.data.labels[r])
            })
            .collect();
        std::fs::write(&all, header + &body).unwrap();
        assert_all_identical(&run_rows(&mut link, f, &all).unwrap(), f.data.rows());
    }
    // the real-valued rows really are not integers (they travel as f32, not bytes)
    let real = real_valued_fixture();
    assert!(real.data.row(0).iter().any(|v| v.fract() != 0.0 && *v < 0.0));
}

#[test]
fn a_device_running_another_model_is_refused_with_both_digests() {
    let (digits, deep) = (fixture(), deep_fixture());
    let elf = serving_firmware(digits);
    let (_qemu, stream) = QemuSession::start(Board::qemu(), &elf).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut link = Link::new(stream, Duration::from_secs(5));
    let err = run_rows(&mut link, deep, &deep.test_csv_path).unwrap_err().to_string();
    let digest = |bytes: &[u8]| format!("{:016x}", dropship_link::model_digest(bytes));
    assert!(err.contains("another model"), "{err}");
    assert!(err.contains(&digest(&digits.artifact)) && err.contains(&digest(&deep.artifact)), "{err}");
}

#[test]
fn serving_firmware_meets_its_flash_and_ram_targets() {
    let f = fixture();
    let footprint = elf::footprint(&serving_firmware(f)).unwrap();
    assert!(footprint.flash <= 48 * 1024, "serving firmware flash {} B > 48 KiB", footprint.flash);
    assert!(footprint.static_ram <= 4 * 1024, "serving firmware static RAM {} B > 4 KiB", footprint.static_ram);
    assert_eq!(footprint.flash_without_vectors(), footprint.flash, "no test vectors in a serving firmware");
    let route = toolchain::find().unwrap();
    let nrf = firmware::build(&route, Board::named("nrf52840dk").unwrap(), &f.artifact_path, &Image::Serve)
        .expect("nRF serving firmware");
    let nrf = elf::footprint(&nrf).unwrap();
    assert!(nrf.flash > nrf.weights && nrf.flash <= 1024 * 1024, "{nrf:?}");
}

/// How the proxy damages bytes: out of every 10,000, this many have a bit flipped, are dropped, or
/// are followed by a pause of 0-20 ms; after `cut_after` bytes it forwards nothing.
#[derive(Clone, Copy)]
struct Damage {
    flipped: u64,
    dropped: u64,
    paused: u64,
    cut_after: usize,
}

/// What a proxy did to the bytes: flipped a bit of, dropped.
#[derive(Default)]
struct Harm {
    flipped: AtomicUsize,
    dropped: AtomicUsize,
}

/// Bytes between the host (`a`) and QEMU (`b`), damaged in both directions, from a seed; counts
/// the damage it did in the returned [`Harm`].
fn faulty_proxy(a: UnixStream, b: UnixStream, seed: u64, damage: Damage) -> Arc<Harm> {
    fn pump(mut from: UnixStream, mut to: UnixStream, mut state: u64, damage: Damage, harm: Arc<Harm>) {
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut buf, mut forwarded) = ([0u8; 512], 0usize);
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            for &byte in &buf[..n] {
                let r = next();
                let dice = r % 10_000;
                forwarded += 1;
                if forwarded > damage.cut_after || (dice >= damage.flipped && dice < damage.flipped + damage.dropped) {
                    harm.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if dice < damage.flipped {
                    harm.flipped.fetch_add(1, Ordering::Relaxed);
                }
                out.push(if dice < damage.flipped { byte ^ (1 << ((r >> 20) % 8)) } else { byte });
                if dice >= 10_000 - damage.paused {
                    let _ = to.write_all(&out);
                    out.clear();
                    std::thread::sleep(Duration::from_millis((r >> 32) % 20));
                }
            }
            if to.write_all(&out).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    }
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let harm = Arc::new(Harm::default());
    let (h1, h2) = (harm.clone(), harm.clone());
    std::thread::spawn(move || pump(a, b, seed, damage, h1));
    std::thread::spawn(move || pump(b2, a2, seed ^ 0x5555, damage, h2));
    harm
}

/// Validates the digits test rows through a damaging proxy; also what the proxy did.
fn through_proxy(seed: u64, damage: Damage, timeout: Duration) -> (anyhow::Result<Report>, Arc<Harm>) {
    let f = fixture();
    let (_qemu, device) = QemuSession::start(Board::qemu(), &serving_firmware(f)).unwrap();
    let (host, proxy_end) = UnixStream::pair().unwrap();
    let harm = faulty_proxy(proxy_end, device, seed, damage);
    host.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    (run_rows(&mut Link::new(host, timeout), f, &f.test_csv_path), harm)
}

#[test]
fn a_link_that_corrupts_drops_and_delays_bytes_never_gives_a_false_match() {
    // about one request or answer in ten is damaged: each is detected and sent again
    let damage = Damage { flipped: 5, dropped: 3, paused: 30, cut_after: usize::MAX };
    for seed in [1u64, 2, 3] {
        let (report, harm) = through_proxy(seed, damage, Duration::from_millis(400));
        let report = report.expect("eight attempts per row suffice");
        let (flipped, dropped) = (harm.flipped.load(Ordering::Relaxed), harm.dropped.load(Ordering::Relaxed));
        eprintln!(
            "seed {seed}: {} rows identical, {} requests sent again; {flipped} bytes flipped, {dropped} dropped",
            report.identical_rows, report.retries
        );
        assert_all_identical(&report, 360);
        assert!(flipped > 0 && dropped > 0, "the proxy damaged nothing: the test tests nothing");
        assert!(report.retries > 0, "damage that needed no second attempt");
    }
}

#[test]
fn a_link_that_goes_dead_stops_with_an_error_naming_what_was_expected() {
    // The hello and a few rows get through, then nothing does.
    let damage = Damage { flipped: 0, dropped: 0, paused: 0, cut_after: 2_000 };
    let e = format!("{:#}", through_proxy(7, damage, Duration::from_millis(200)).0.unwrap_err());
    assert!(e.contains("no intact answer from the device after 8 attempts, waiting for the answer to row"), "{e}");
    // ... and nothing half-done is reported as a match: there is no report at all.
}

/// A simulated device (the protocol's own server on the host) whose logits are off by one ULP on
/// row 3: the report must say so, with the row and the distance.
#[test]
fn a_device_one_ulp_off_on_one_row_is_reported_as_a_mismatch() {
    use dropship_link::{serve::buffer_len, CostUnit, Hello, Model, Server};
    struct OffByOne {
        net: HostNetwork,
        digest: u64,
        row: usize,
    }
    impl Model<64, 10> for OffByOne {
        fn hello(&self) -> Hello<'static> {
            Hello {
                protocol: 0,
                firmware: "test",
                board: "host",
                digest: self.digest,
                input: 64,
                classes: 10,
                layers: 2,
                macs: 9472,
                cost_unit: CostUnit::Cycles,
                max_frame: 0,
            }
        }
        fn infer(&mut self, input: &[f32; 64], logits: &mut [f32; 10]) -> (usize, dropship_link::Cost) {
            logits.copy_from_slice(&self.net.logits(input, dropship::network::InputForm::Raw));
            if self.row == 3 {
                logits[7] = f32::from_bits(logits[7].to_bits() + 1);
            }
            self.row += 1;
            (dropship_shared::ops::output::argmax(logits), dropship_link::Cost::total(100))
        }
    }
    let f = fixture();
    let (host, device) = UnixStream::pair().unwrap();
    let net = HostNetwork::load(&f.artifact_path).unwrap().0;
    let mut model = OffByOne { net, digest: dropship_link::model_digest(&f.artifact), row: 0 };
    std::thread::spawn(move || {
        let mut server = Box::new(Server::<{ buffer_len(64, 10) }, 64, 10>::new());
        let mut io = embedded_io_adapters::std::FromStd::new(device);
        let mut tx = io.inner().try_clone().map(embedded_io_adapters::std::FromStd::new).unwrap();
        while let Ok(true) = server.poll(&mut io, &mut tx, &mut model) {}
    });
    host.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let report = run_rows(&mut Link::new(host, Duration::from_secs(5)), f, &f.test_csv_path).unwrap();
    assert_eq!((report.rows, report.identical_rows, report.max_ulp), (360, 359, 1));
    assert_eq!(report.differing_rows, vec![3]);
    assert!(!report.all_identical());
    assert_eq!((report.cost_per_inference, report.device.cost_unit), (100.0, "cycles"));
}

/// A device that talks without end but never answers (bytes with no frame end) is given up on,
/// as a silent one is.
#[test]
fn a_device_that_babbles_without_answering_times_out() {
    let (host, mut device) = UnixStream::pair().unwrap();
    std::thread::spawn(move || while device.write_all(&[0x55; 256]).is_ok() {});
    host.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let started = std::time::Instant::now();
    let e = format!("{:#}", Link::new(host, Duration::from_millis(100)).hello().unwrap_err());
    assert!(e.contains("no intact answer from the device after 8 attempts, waiting for the device's hello"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// When QEMU stops early, the error says how (its exit status) and what it and the firmware said,
/// instead of "QEMU said:" followed by nothing.
#[test]
fn a_qemu_that_stops_early_is_reported_with_its_status_and_output() {
    xtask::qemu::find().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // QEMU opens its UART socket, then stops when it cannot load its kernel
    let missing = dir.path().join("missing-firmware.elf");
    let (mut session, _uart) = QemuSession::start(Board::qemu(), &missing).unwrap();
    let started = std::time::Instant::now();
    let e = loop {
        let report = session.report();
        if report.starts_with("QEMU exited") || started.elapsed().as_secs() > 10 {
            break report;
        }
    };
    assert!(e.contains("QEMU exited (exit status: 1)"), "{e}");
    assert!(e.contains("its stderr: qemu-system-arm"), "{e}");
    assert!(e.contains("the firmware's log:"), "{e}");
}

/// Files an earlier release wrote (format versions 1 and 2, `shared/tests/fixtures/`): the host
/// reads them and gives the logits that release computed, bit for bit; rewritten as format
/// version 3 they give the same; and they validate bit-identical on QEMU.
#[test]
fn artifacts_of_an_earlier_release_give_its_logits_and_validate_on_the_device() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/fixtures");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (model, vectors, precision) in
        [("v1.dsm", "v1.dsv", dropship_shared::Precision::F32), ("v2.dsm", "v2.dsv", dropship_shared::Precision::Int8)]
    {
        let (net, bytes) = HostNetwork::load(&fixtures.join(model)).unwrap();
        assert_eq!(dropship_shared::artifact::version(&bytes), Some(if model == "v1.dsm" { 1 } else { 2 }));
        assert_eq!(net.precision(), precision);
        let rewritten = HostNetwork::parse(&net.to_artifact("", "rewritten").unwrap()).unwrap();
        let expected = std::fs::read(fixtures.join(vectors)).unwrap();
        let expected = dropship_shared::vectors::Vectors::parse(&expected).unwrap();
        assert_eq!(expected.len(), 40);
        for v in expected.iter() {
            let input: Vec<f32> = v.input.iter().collect();
            let logits: Vec<f32> = v.logits.iter().collect();
            assert_eq!(bits(&net.logits(&input, dropship::network::InputForm::Raw)), bits(&logits), "{model}");
            assert_eq!(
                bits(&rewritten.logits(&input, dropship::network::InputForm::Raw)),
                bits(&logits),
                "{model} as v3"
            );
        }
        let report = validate::validate(
            &fixtures.join(model),
            &fixtures.join("rows.csv"),
            &Target::Qemu(Board::qemu()),
            &options(),
        )
        .unwrap();
        assert_all_identical(&report, 40);
    }
}
