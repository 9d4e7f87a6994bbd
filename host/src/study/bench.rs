//! `dropship bench`: the training targets, measured. The whole comparison's wall time (median of
//! repeats, candle single-threaded per model, models in parallel), Keras parity over seeds 0,1,2
//! and the process's peak memory, side by side with the Keras figures from data/README.md.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::data;
use crate::study::compare::{course_variants, parallel};
use crate::train::prepare::{Prepared, SplitSpec};
use crate::train::{self, L2Layers, TrainConfig};

/// Keras's side of the parity table, as `data/keras_reference.py parity` writes it: when, where
/// and with what it was measured, and per model the test accuracy and seconds of seeds 0, 1, 2.
#[derive(serde::Deserialize)]
pub struct KerasReference {
    /// When it was measured.
    pub measured: String,
    /// On what machine.
    pub machine: String,
    /// Keras's and TensorFlow's versions.
    pub versions: String,
    /// Per model (base, l2, dropout).
    pub models: std::collections::BTreeMap<String, KerasModel>,
}

/// One model's Keras figures, per seed.
#[derive(serde::Deserialize)]
pub struct KerasModel {
    /// Test accuracy of seeds 0, 1, 2.
    pub test_accuracy: Vec<f64>,
    /// Seconds of training of seeds 0, 1, 2.
    pub seconds: Vec<f64>,
}

impl KerasReference {
    /// Reads a file `data/keras_reference.py parity` wrote; every model of the course's
    /// comparison must be there with three seeds.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let bytes = crate::input::read(path)?;
        let reference: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a file `data/keras_reference.py parity` wrote", path.display()))?;
        for name in COURSE_MODELS {
            let m = reference.models.get(name).with_context(|| format!("{}: no model `{name}`", path.display()))?;
            if m.test_accuracy.len() != 3 || m.seconds.len() != 3 {
                anyhow::bail!("{}: model `{name}` needs three seeds' figures", path.display());
            }
        }
        Ok(reference)
    }
}

/// The course's three models, in the comparison's order.
const COURSE_MODELS: [&str; 3] = ["base", "l2", "dropout"];

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One timed comparison.
struct Timed {
    /// Test accuracy per model, in the course's order.
    accuracies: Vec<f64>,
    /// Wall time of the training.
    seconds: f64,
    /// Training steps of the three models together.
    steps: usize,
}

/// Trains base, l2 and dropout for `seed`, in parallel or one after another.
fn comparison(data: &data::Dataset, seed: u64, in_parallel: bool) -> Result<Timed> {
    let base = TrainConfig { seed, ..TrainConfig::default() };
    let prepared = Prepared::for_seed(data, SplitSpec::default(), seed, &base.hidden, base.task)?;
    let variants = course_variants(&base, 1e-3, L2Layers::all(), vec![0.5], Default::default());
    let start = Instant::now();
    let one = |v: crate::study::compare::Variant| -> Result<(String, f64)> {
        let t = train::train(&prepared, &v.config, &prepared.initial, &mut |_| {})?;
        Ok((v.name, train::evaluate_test(&t.weights, &prepared, data)?.1))
    };
    let results = if in_parallel { parallel(variants, one) } else { variants.into_iter().map(one).collect() };
    let seconds = start.elapsed().as_secs_f64();
    let steps = 3 * base.epochs * prepared.split.train.len().div_ceil(base.batch_size);
    let accuracies = results.into_iter().map(|r| r.map(|(_, a)| a)).collect::<Result<Vec<_>>>()?;
    Ok(Timed { accuracies, seconds, steps })
}

/// Writes an MNIST-shaped CSV (`rows` × 784 pixels 0..=255, about 80% zeros, and a label) to
/// `path`, reproducibly from a fixed seed.
pub fn write_mnist_shaped(path: &std::path::Path, rows: usize) -> Result<()> {
    use rand::Rng;
    use std::io::Write;
    let mut rng = crate::rng::stream(0, crate::rng::Stream::Split);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = (0..784).map(|i| format!("p{i}")).chain(["label".to_string()]).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut line = String::new();
    for r in 0..rows {
        line.clear();
        for _ in 0..784 {
            let v: u32 = if rng.random::<f32>() < 0.8 { 0 } else { rng.random_range(1..256) };
            line.push_str(&v.to_string());
            line.push(',');
        }
        line.push_str(&(r % 10).to_string());
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Resets the peak-memory mark (Linux `clear_refs`), so [`peak_memory`] measures what follows.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `dropship bench --large`: an MNIST-shaped CSV (60,000 × 784): its load time (median of 3), the
/// peak memory of loading and of training against the f32 matrix, and `train --epochs 2` per epoch.
/// The CSV is written to `keep` when given (a new file; an existing one is refused), else to a
/// temporary directory.
pub fn run_large(keep: Option<&std::path::Path>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = match keep {
        Some(path) if path.exists() => anyhow::bail!("{} exists; --csv writes a new file", path.display()),
        Some(path) => path.to_path_buf(),
        None => dir.path().join("mnist-shaped.csv"),
    };
    let rows = 60_000;
    write_mnist_shaped(&path, rows)?;
    let file_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
    let matrix_mb = (rows * 784 * 4) as f64 / 1e6;
    let mut loads = Vec::new();
    let mut data = None;
    let mut load_peak = 0;
    for _ in 0..3 {
        drop(data.take()); // the previous load is freed before the peak is measured again
        reset_peak_memory();
        let start = Instant::now();
        data = Some(data::load_training_csv(&path, &Default::default(), Default::default(), None, &mut |_, _| {})?);
        loads.push(start.elapsed().as_secs_f64());
        load_peak = peak_memory().unwrap_or(0);
    }
    let data = data.expect("loaded three times");
    reset_peak_memory();
    let config = TrainConfig { epochs: 2, ..TrainConfig::default() };
    let start = Instant::now();
    let prepared = Prepared::for_seed(&data, SplitSpec::default(), 0, &config.hidden, config.task)?;
    let prepare_seconds = start.elapsed().as_secs_f64();
    let trained = train::train(&prepared, &config, &prepared.initial, &mut |_| {})?;
    let train_peak = peak_memory().unwrap_or(0);
    let epochs: Vec<f64> = trained.history.iter().map(|r| r.seconds).collect();
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "## MNIST-shaped data: {rows} rows × 784 columns ({file_mb:.0} MB of CSV, a {matrix_mb:.0} MB f32 matrix)\n"
    );
    println!("| | dropship |");
    println!("|---|---|");
    println!("| CSV load, median of 3 | {:.2} s ({:.0} MB/s) |", median(loads.clone()), file_mb / median(loads));
    println!(
        "| peak memory while loading (whole process) | {:.0} MB ({:.2}× the matrix) |",
        mb(load_peak),
        mb(load_peak) / matrix_mb
    );
    println!("| split and standardize | {prepare_seconds:.2} s |");
    println!(
        "| training, per epoch (36,000 rows, batch 32, validation included) | {} s |",
        epochs.iter().map(|e| format!("{e:.2}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "| peak memory while training (whole process) | {:.0} MB ({:.2}× the matrix) |",
        mb(train_peak),
        mb(train_peak) / matrix_mb
    );
    println!("\n(numpy and Keras on the same file: `--csv PATH` keeps it; then `python data/keras_reference.py large PATH`.)");
    Ok(())
}

/// Runs the benchmark and prints its tables; Keras's columns come from `keras` (a file
/// `data/keras_reference.py parity` wrote, with when and where it was measured), or are left out.
pub fn run(repeats: usize, keras: Option<&std::path::Path>) -> Result<()> {
    if repeats == 0 {
        anyhow::bail!("--repeats 0: at least one timed run is needed for a median");
    }
    let keras = keras.map(KerasReference::read).transpose()?;
    let data = data::load_training_csv(
        &data::bundled_digits()?,
        &Default::default(),
        Default::default(),
        None,
        &mut |_, _| {},
    )?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## Training: the whole comparison (base, l2, dropout; 100 epochs, batch 32, validation every epoch)\n");
    println!(
        "{threads} cores; candle matmuls single-threaded (RAYON_NUM_THREADS={}), models trained in parallel.\n",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
    );
    // candle as it comes: its matmul thread pool sized to the cores, the models one after another.
    let configured = std::env::var_os("RAYON_NUM_THREADS");
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let out_of_the_box = comparison(&data, 0, false)?.seconds;
    match configured {
        Some(v) => std::env::set_var("RAYON_NUM_THREADS", v),
        None => std::env::remove_var("RAYON_NUM_THREADS"),
    }
    let mut times = Vec::new();
    let mut steps = 0;
    for _ in 0..repeats {
        let timed = comparison(&data, 0, true)?;
        times.push(timed.seconds);
        steps = timed.steps;
    }
    let med = median(times.clone());
    let keras_seed0 = keras.as_ref().map(|k| COURSE_MODELS.iter().map(|m| k.models[*m].seconds[0]).sum::<f64>());
    println!("| | dropship (candle) | Keras |");
    println!("|---|---|---|");
    let keras_cell =
        keras_seed0.map_or("not measured".to_string(), |t| format!("{t:.1} s (three models in sequence, seed 0)"));
    println!("| wall time, median of {} | {med:.2} s | {keras_cell} |", times.len());
    println!("| per training step (3 models, {steps} steps) | {:.3} ms | |", 1000.0 * med / steps as f64);
    println!("| candle defaults ({threads}-thread matmuls, models in sequence), one run | {out_of_the_box:.2} s | |");
    println!("| runs | {} | |\n", times.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", "));

    println!("## Keras parity: mean test accuracy over seeds 0, 1, 2\n");
    let mut per_model: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for seed in 0..3 {
        for (i, a) in comparison(&data, seed, true)?.accuracies.into_iter().enumerate() {
            per_model[i].push(a);
        }
    }
    println!("| model | dropship | Keras | difference | within 1 pp |");
    println!("|---|---|---|---|---|");
    for (name, accs) in COURSE_MODELS.iter().zip(&per_model) {
        let (mean, std) = crate::study::report::mean_std(accs);
        let (keras_text, diff_text, within) = match &keras {
            Some(k) => {
                let (k_mean, k_std) = crate::study::report::mean_std(&k.models[*name].test_accuracy);
                let diff = 100.0 * (mean - k_mean);
                (
                    format!("{k_mean:.4} ± {k_std:.4}"),
                    format!("{diff:+.2} pp"),
                    if diff.abs() <= 1.0 { "yes" } else { "no" },
                )
            }
            None => ("not measured".to_string(), String::new(), ""),
        };
        println!("| {name} | {mean:.4} ± {std:.4} | {keras_text} | {diff_text} | {within} |");
    }
    match &keras {
        Some(k) => println!(
            "\nKeras's figures: measured {} on {} with {}, as read from the file given (not in this run).",
            k.measured, k.machine, k.versions
        ),
        None => println!(
            "\nKeras was not measured: in a throwaway virtualenv with tensorflow-cpu, run \
             `python data/keras_reference.py parity data/digits.csv keras.json`, then `dropship bench --keras keras.json`."
        ),
    }
    if let Some(bytes) = peak_memory() {
        println!("\npeak memory (resident, whole process): {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    }
    Ok(())
}

/// MLPerf Tiny's anomaly-detection autoencoder (mlcommons/tiny,
/// `benchmark/training/anomaly_detection/keras_model.py`): 640 inputs, four Dense 128 with
/// BatchNorm and ReLU, a Dense 8 bottleneck with BatchNorm and ReLU, four more Dense 128, Dense
/// 640; mean squared error.
pub const ANOMALY_HIDDEN: [usize; 9] = [128, 128, 128, 128, 8, 128, 128, 128, 128];

/// `dropship bench --anomaly`: MLPerf Tiny's anomaly detector trained on synthetic machine-sound
/// frames (`data::synthetic`), its test figures, and the f32 and int8 artifacts written to `out`
/// for `dropship validate` (the device's cost per inference and per MAC).
pub fn run_anomaly(out: &std::path::Path, epochs: usize, overwrite: bool) -> Result<()> {
    use crate::study::compare::{self, Study, Variant};
    use crate::train::task::Task;
    let csv = out.with_extension("csv");
    crate::output::check_outputs(&[&csv], &[], overwrite)?;
    crate::output::write_file(&csv, crate::data::synthetic::machine_frames_csv(3000, 90, 0).as_bytes())?;
    let label = crate::data::LabelColumn::Named("anomaly".into());
    let data = data::load_training_csv(&csv, &label, Default::default(), None, &mut |_, _| {})?;
    let config = TrainConfig {
        hidden: ANOMALY_HIDDEN.to_vec(),
        batch_norm: true,
        task: Task::Autoencode,
        epochs,
        batch_size: 512,
        ..TrainConfig::default()
    };
    let study = Study {
        data: &data,
        split: SplitSpec::default(),
        seeds: vec![0],
        out: out.to_path_buf(),
        overwrite,
        int8: true,
    };
    let variant = Variant::new(config);
    let reporter = crate::train::progress::Reporter::new(crate::train::progress::Mode::Quiet);
    let result = compare::compare(&study, std::slice::from_ref(&variant), &reporter)?;
    let o = &result.outcomes[0];
    let exported = crate::deploy::export::export_run(&o.run_dir, Some(&out.join("model.dsm")), None, overwrite)?;
    let quantized =
        crate::deploy::quantize::quantize_command(&o.run_dir, &out.join("model-int8.dsm"), None, None, overwrite)?;
    println!("## MLPerf Tiny's anomaly detector on synthetic machine-sound frames ({} rows × 640)\n", data.rows());
    println!("| | f32 | int8 |");
    println!("|---|---|---|");
    println!(
        "| parameters | {} | {} |",
        exported.parameters,
        quantized.network.layers().iter().map(|l| l.shape().parameters(l.input_dims)).sum::<usize>()
    );
    let (f, q) = (crate::network::HostNetwork::load(&exported.artifact)?.0.footprint(), quantized.network.footprint());
    println!("| flash (parameters) | {} B | {} B |", f.weight_bytes, q.weight_bytes);
    println!("| RAM (activations) | {} B | {} B |", f.activation_bytes, q.activation_bytes);
    println!(
        "| test R² of the reconstruction | {:.4} | {:.4} |",
        o.metrics.test_score,
        o.metrics.int8_test_score.unwrap_or(f64::NAN)
    );
    if let Some(figures) = &o.metrics.task {
        println!("\n{}", crate::study::report::task_summary(figures));
    }
    println!(
        "\ntrained {} epochs in {:.1} s; the runs and report: {}",
        o.trained.history.len(),
        o.trained.seconds,
        result.out.display()
    );
    println!(
        "the device's cost: `dropship validate {} {} --device qemu` (and the f32 model beside it)",
        quantized.output.display(),
        o.run_dir.parent().map(|p| p.join("test.csv")).unwrap_or_default().display()
    );
    Ok(())
}
