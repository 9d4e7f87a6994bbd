//! `cargo xtask`: set-up, the end-to-end demo, firmware, QEMU, tests and benchmarks in one place.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use xtask::firmware::{self, Board, Image};
use xtask::{device, elf, golden, root, toolchain};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about = "dropship's chores")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install or find the firmware toolchain and QEMU.
    Setup,
    /// Train the three models, compare, export the best, run it on QEMU and verify it against the host.
    Demo {
        /// Output directory for runs, report, plots and the exported model.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
    },
    /// Build a firmware with an artifact (and vectors, for the self-test), and report its flash and RAM.
    Firmware {
        /// Which board.
        #[arg(long, value_enum, default_value = "qemu")]
        board: Board,
        /// The artifact to embed.
        #[arg(long, default_value = "runs/demo/model.dsm")]
        artifact: PathBuf,
        /// The test vectors to embed (self-test firmware).
        #[arg(long, default_value = "runs/demo/vectors.dsv", conflicts_with = "serve")]
        vectors: PathBuf,
        /// Build the serving firmware (for `dropship validate`) instead of the self-test.
        #[arg(long)]
        serve: bool,
    },
    /// Build the QEMU firmware, run it and print its decoded defmt log.
    Qemu {
        /// A board of firmware/boards.toml that QEMU emulates.
        #[arg(long, default_value = "qemu", value_parser = Board::emulated)]
        board: Board,
        /// The artifact to embed.
        #[arg(long, default_value = "runs/demo/model.dsm")]
        artifact: PathBuf,
        /// The test vectors to embed.
        #[arg(long, default_value = "runs/demo/vectors.dsv")]
        vectors: PathBuf,
    },
    /// Set-up, formatting, lints, every test (the QEMU device test included), the nRF52840-DK build
    /// and the golden device output.
    Test,
    /// Accept the current golden device output (firmware/expected/) after an intended change.
    Bless,
    /// Install dropship with the README's command from a copy of the checkout, delete the copy, and
    /// run every kind of command from an empty directory (a step of `test`).
    Installed,
    /// The benchmarks: training speed and Keras parity, single-sample inference, firmware cost.
    Bench,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Setup => {
            setup()?;
        }
        Task::Demo { out } => demo(&out)?,
        Task::Firmware { board, artifact, vectors, serve } => {
            let route = toolchain::ensure()?;
            let image = if serve { Image::Serve } else { Image::SelfTest { vectors: &vectors } };
            let elf_path = firmware::build(&route, board, &artifact, &image)?;
            print_footprint(&board.binary(&image), &elf_path)?;
        }
        Task::Qemu { board, artifact, vectors } => {
            let route = setup()?;
            let elf_path = firmware::build(&route, board, &artifact, &Image::SelfTest { vectors: &vectors })?;
            let run = device::run_qemu(board, &elf_path, 300)?;
            for line in &run.lines {
                println!("{line}");
            }
            if !run.exit_success {
                bail!("the device did not match the host on every vector");
            }
        }
        Task::Test => test()?,
        Task::Bless => golden::bless(&setup()?)?,
        Task::Installed => {
            setup()?;
            xtask::installed::check(&root().join("target/install"))?
        }
        Task::Bench => bench()?,
    }
    Ok(())
}

/// Installs or finds the firmware toolchain and QEMU: the only task that installs anything.
fn setup() -> Result<toolchain::Route> {
    let route = toolchain::ensure()?;
    toolchain::ensure_qemu()?;
    println!("firmware toolchain: {}", toolchain::describe(&route));
    Ok(route)
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("failed: {cmd:?}");
    }
    Ok(())
}

/// Runs the `dropship` command. It is built by `cargo test --workspace --no-run`, the very build
/// `cargo xtask test` makes: both resolve the dependencies' features the same way, so the demo and
/// the tests share one compiled candle and tract (`cargo run -p dropship` would resolve them for
/// the one package and compile them a second time).
fn dropship(args: &[&str]) -> Result<()> {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if BUILT.get().is_none() {
        run(cargo().args(["test", "--workspace", "--no-run"]))?;
        let _ = BUILT.set(());
    }
    run(Command::new(root().join("target/debug/dropship")).current_dir(root()).args(args))
}

fn print_footprint(binary: &str, elf_path: &Path) -> Result<elf::Footprint> {
    let f = elf::footprint(elf_path)?;
    let vectors = if f.flash_without_vectors() == f.flash {
        String::from("no test vectors")
    } else {
        format!("without test vectors {:.1} KiB", f.flash_without_vectors() as f64 / 1024.0)
    };
    println!(
        "{binary} ({}): flash {} B ({:.1} KiB; {vectors}; weights {} B), static RAM {} B",
        elf_path.strip_prefix(root()).unwrap_or(elf_path).display(),
        f.flash,
        f.flash as f64 / 1024.0,
        f.weights,
        f.static_ram
    );
    Ok(f)
}

#[derive(serde::Deserialize)]
struct ReportIndex {
    chosen: String,
    chosen_run: PathBuf,
}

fn demo(out: &Path) -> Result<()> {
    println!("== 1/5 toolchain");
    let route = setup()?;

    println!("== 2/5 training base, l2 and dropout on the bundled digits data");
    let (index, artifact, _vectors) = train_and_export(out)?;

    println!("== 4/5 building the serving firmware for QEMU mps2-an386 (Cortex-M4F)");
    let elf_path = firmware::build(&route, Board::qemu(), &artifact, &Image::Serve)?;
    print_footprint(&Board::qemu().binary(&Image::Serve), &elf_path)?;

    println!("== 5/5 validating: every test row over QEMU's UART, every logit checked against the host");
    let validation = out.join("validation.json");
    let result = dropship(&[
        "validate",
        &artifact.to_string_lossy(),
        &out.join("test.csv").to_string_lossy(),
        "--device",
        "qemu",
        "--json",
        &validation.to_string_lossy(),
        "--overwrite",
    ]);
    println!();
    println!("report: {}", out.join("report.md").display());
    println!("plots:  {} {}", out.join("val_loss.png").display(), out.join("val_accuracy.png").display());
    println!("model:  {} (chosen: {})", out.join("model.dsm").display(), index.chosen);
    result.context("the device does not match the host")?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join(&validation))?)?;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join(out).join(&index.chosen_run).join("config.json"))?)?;
    let trained_with = match config["train"]["regularizer"]["kind"].as_str() {
        Some("dropout") => "its dropout was active in training only".to_string(),
        Some("none") | None => "it was trained without a regularizer".to_string(),
        Some(kind) => format!("its {kind} regularizer was training-only"),
    };
    println!(
        "{}/{} test rows: device logits identical to host; the chosen model is {}: {trained_with}",
        report["identical_rows"], report["rows"], index.chosen
    );
    Ok(())
}

/// `dropship validate` of `csv` under QEMU, five times: the median wall time (QEMU start, the hello
/// and every row included; the serving firmware is already built) and the device's figures.
fn validation_bench(artifact: &Path, csv: &Path) -> Result<()> {
    println!("== validation over QEMU's UART (median of 5, QEMU start included)");
    let json = root().join("runs/bench/validation.json");
    let args = |json: &Path| -> Vec<String> {
        let mut a: Vec<String> =
            vec!["validate".into(), artifact.to_string_lossy().into(), csv.to_string_lossy().into()];
        a.extend(["--device".into(), "qemu".into(), "--overwrite".into(), "--json".into()]);
        a.push(json.to_string_lossy().into());
        a
    };
    let args = args(&json);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dropship(&args)?; // builds the serving firmware once
    let mut seconds = Vec::new();
    for _ in 0..5 {
        let start = std::time::Instant::now();
        dropship(&args)?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    println!("\n| validation under QEMU | rows | bit-identical | wall time (median of 5) | rows/s over the link | instructions / inference | per MAC |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| digits test rows | {} | {} | {:.2} s | {:.0} | {:.0} | {:.2} |",
        report["rows"],
        report["identical_rows"],
        seconds[2],
        report["rows_per_second"].as_f64().unwrap_or(f64::NAN),
        report["cost_per_inference"].as_f64().unwrap_or(f64::NAN),
        report["cost_per_mac"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The chosen model quantized to int8: its serving firmwares' flash and RAM and, under QEMU, its
/// cost and bit-identity over all test rows.
fn int8_bench(route: &toolchain::Route, run_dir: &Path, csv: &Path) -> Result<()> {
    println!("== int8: the chosen model quantized, its serving firmwares, a validation under QEMU");
    let int8 = Path::new("runs/bench/model-int8.dsm");
    dropship(&["quantize", &run_dir.to_string_lossy(), "-o", &int8.to_string_lossy(), "--overwrite"])?;
    for board in Board::all().iter().copied() {
        let elf_path = firmware::build(route, board, &root().join(int8), &Image::Serve)?;
        print_footprint(&format!("{} (int8)", board.binary(&Image::Serve)), &elf_path)?;
    }
    dropship(&["validate", &int8.to_string_lossy(), &csv.to_string_lossy(), "--device", "qemu"])
}

/// Medians (ns) of every criterion benchmark under `dir`, read from its `new/estimates.json`.
fn criterion_medians(dir: &Path) -> Result<Vec<(String, f64)>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
                let est: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(path.with_file_name("estimates.json"))?)?;
                let name = meta["function_id"].as_str().unwrap_or("?").to_string();
                found.push((name, est["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN)));
            }
        }
    }
    found.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(found)
}

/// Trains the three models into `out`, exports the one with the best validation loss and writes
/// vectors of every test row; returns the report index, the artifact and the vectors.
fn train_and_export(out: &Path) -> Result<(ReportIndex, PathBuf, PathBuf)> {
    // dropship runs in the repository root: paths relative to it read well in its output.
    let out_s = out.to_string_lossy().to_string();
    dropship(&["compare", "--out", &out_s, "--overwrite"])?;
    let index: ReportIndex = serde_json::from_slice(&std::fs::read(root().join(out).join("report.json"))?)?;

    println!("== 3/5 exporting `{}` (best validation loss), dropout stripped", index.chosen);
    let run_dir = out.join(&index.chosen_run);
    let artifact = out.join("model.dsm");
    let vectors = out.join("vectors.dsv");
    let onnx = out.join("model.onnx");
    dropship(&[
        "export",
        &run_dir.to_string_lossy(),
        "-o",
        &artifact.to_string_lossy(),
        "--onnx",
        &onnx.to_string_lossy(),
    ])?;
    dropship(&["inspect", &artifact.to_string_lossy()])?;
    let test_rows = out.join("test.csv");
    dropship(&[
        "vectors",
        &artifact.to_string_lossy(),
        &test_rows.to_string_lossy(),
        "-o",
        &vectors.to_string_lossy(),
    ])?;
    Ok((index, root().join(artifact), root().join(vectors)))
}

fn test() -> Result<()> {
    println!("== set-up");
    let route = setup()?;
    println!("== formatting");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["fmt", "--manifest-path", "firmware/Cargo.toml", "--all", "--", "--check"]))?;
    run(cargo().args(["fmt", "--manifest-path", "examples/own-firmware/Cargo.toml", "--", "--check"]))?;
    println!("== lints");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args([
        "clippy",
        "--manifest-path",
        "firmware/Cargo.toml",
        "-p",
        "dropship-app",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    println!("== firmware logic on the host (embedded-hal-mock)");
    let mut tally = tests(cargo().args(["test", "--manifest-path", "firmware/Cargo.toml", "-p", "dropship-app"]))?;
    println!(
        "== every test, the QEMU device test and the nRF52840-DK build included ({})",
        toolchain::describe(&route)
    );
    let all = tests(cargo().args(["test", "--workspace"]))?;
    tally = (tally.0 + all.0, tally.1 + all.1);
    println!("== installed with the README's command, the clone gone, from an empty directory");
    xtask::installed::check(&root().join("target/install"))?;
    println!("== golden device output (firmware/expected/)");
    golden::check(&route)?;
    println!("\ntests: {} passed, {} failed; golden device output as expected", tally.0, tally.1);
    Ok(())
}

/// Runs a `cargo test` command, echoing its output, and adds up its `test result:` lines.
fn tests(cmd: &mut Command) -> Result<(usize, usize)> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().context("piped stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(word)?.trim().rsplit(' ').next()?.parse::<usize>().ok())
            };
            passed += count(" passed").unwrap_or(0);
            failed += count(" failed").unwrap_or(0);
        }
    }
    if !child.wait()?.success() {
        println!("\ntests: {passed} passed, {failed} failed");
        bail!("failed: {cmd:?}");
    }
    Ok((passed, failed))
}

fn bench() -> Result<()> {
    println!("== training: the whole comparison, and Keras parity over seeds 0,1,2");
    // Keras's figures from the file the reference script wrote (it says when and where)
    let keras = root().join("data/keras-digits.json");
    dropship(&["bench", "--keras", &keras.to_string_lossy()])?;
    println!("== firmware: flash, RAM and instructions per inference of the digits model");
    let route = setup()?;
    let out = Path::new("runs/bench");
    let (index, artifact, vectors) = train_and_export(out)?;
    let macs = {
        let bytes = std::fs::read(root().join(&artifact))?;
        let parsed =
            dropship_shared::Artifact::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", artifact.display()))?;
        parsed.macs()
    };
    println!("| firmware | flash | flash without test vectors | weights | static RAM | instructions / inference | per MAC ({macs} MACs) |");
    println!("|---|---|---|---|---|---|---|");
    for board in Board::all().iter().copied() {
        let elf_path = firmware::build(&route, board, &artifact, &Image::SelfTest { vectors: &vectors })?;
        let f = elf::footprint(&elf_path)?;
        let (per_inference, per_mac) = if board.spec().qemu.is_some() {
            let run = device::run_qemu(board, &elf_path, 300)?;
            let fmt = |v: Option<f64>, d: usize| v.map_or("?".into(), |v| format!("{v:.d$}"));
            (fmt(run.instructions_per_inference, 0), fmt(run.instructions_per_mac, 2))
        } else {
            ("(DWT cycles on the board)".to_string(), String::new())
        };
        println!(
            "| {} | {:.1} KiB | {:.1} KiB | {} B | {} B | {per_inference} | {per_mac} |",
            board.package(),
            f.flash as f64 / 1024.0,
            f.flash_without_vectors() as f64 / 1024.0,
            f.weights,
            f.static_ram
        );
    }
    for board in Board::all().iter().copied() {
        let elf_path = firmware::build(&route, board, &artifact, &Image::Serve)?;
        let f = elf::footprint(&elf_path)?;
        println!(
            "| {} | {:.1} KiB | (none embedded) | {} B | {} B | (from `dropship validate`) | |",
            board.binary(&Image::Serve),
            f.flash as f64 / 1024.0,
            f.weights,
            f.static_ram
        );
    }
    validation_bench(&artifact, &out.join("test.csv"))?;
    int8_bench(&route, &out.join(&index.chosen_run), &out.join("test.csv"))?;
    println!("== single-sample inference on the host: shared core vs tract vs candle");
    let criterion = root().join("target/criterion");
    let _ = std::fs::remove_dir_all(&criterion);
    run(cargo().args(["bench", "--profile", "dev", "--workspace", "--bench", "inference"]))?;
    println!("\n| single-sample inference, 64-128-10 | median |\n|---|---|");
    for (name, nanoseconds) in criterion_medians(&criterion)? {
        let text = if nanoseconds >= 1000.0 {
            format!("{:.2} µs", nanoseconds / 1000.0)
        } else {
            format!("{nanoseconds:.0} ns")
        };
        println!("| {name} | {text} |");
    }
    Ok(())
}
