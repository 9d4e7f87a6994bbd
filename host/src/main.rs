//! The `dropship` command line: train, compare, sweep, export, predict, inspect, vectors.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dropship::data::augment::{Augment, ImageShape};
use dropship::data::{self, Header, LabelColumn};
use dropship::deploy::artifact_commands::{self, PredictOutput};
use dropship::deploy::onnx::StandardizationSource;
use dropship::network::InputForm;
use dropship::study::compare::{self, Study};
use dropship::train::prepare::SplitSpec;
use dropship::train::progress::{self, Mode, Reporter};
use dropship::train::{Features, L2Layers, Regularizer, TrainConfig};
use dropship_boards::firmware::Board;
use dropship_shared::{Activation, Dims, Task};

/// Train a small classifier three ways (none, L2, dropout), compare, and export it for a microcontroller.
#[derive(Parser)]
#[command(name = "dropship", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model and write its run directory.
    Train(TrainArgs),
    /// Train base, L2 and dropout on the same split and weights, and write a report.
    Compare(CompareArgs),
    /// Train over dropout rates and L2 strengths and plot validation accuracy against them.
    Sweep(SweepArgs),
    /// Write the artifact of a trained run (dropout stripped: the format cannot express it).
    Export(ExportArgs),
    /// Run an artifact on a CSV with the no_std core and print one class per row.
    Predict(PredictArgs),
    /// Show what is inside an artifact.
    Inspect {
        /// The artifact file.
        artifact: PathBuf,
    },
    /// Write test vectors (inputs, host logits and classes) for the firmware.
    Vectors(VectorsArgs),
    /// Write the Rust module of an artifact for your own firmware (what dropship-build's
    /// `Model::from_artifact(..).generate()` writes in a build script), to commit.
    Generate(GenerateArgs),
    /// Quantize an f32 model (a run or an artifact) to int8 with calibration rows; report the accuracy it costs.
    Quantize(QuantizeArgs),
    /// Run every row of a CSV on a device serving the model (QEMU, or a flashed board on a serial
    /// port) and check every logit against the host, bit for bit.
    Validate(ValidateArgs),
    /// Turn an ONNX dense network (Keras via tf2onnx, PyTorch, hand-written) into an artifact.
    Import(ImportArgs),
    /// Time the whole comparison and check Keras parity over seeds 0,1,2 on the bundled digits.
    Bench(BenchArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// The artifact (f32 or int8).
    artifact: PathBuf,
    /// The Rust file to write.
    #[arg(long, short)]
    output: PathBuf,
    /// Also write `Server` and `Model::served`, to serve `dropship validate --port` with
    /// dropship-link.
    #[arg(long)]
    serving: bool,
    /// The target has no Arm DSP extension (Cortex-M0/M0+/M3, RISC-V): lay int8 weights out for the
    /// portable kernel (a build script picks this from its target by itself).
    #[arg(long)]
    portable: bool,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// The ONNX file.
    model: PathBuf,
    /// Artifact path.
    #[arg(long, short)]
    output: PathBuf,
    /// Take the input standardization from this run (or its model.safetensors).
    #[arg(long)]
    standardize_from: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct QuantizeArgs {
    /// A run directory (calibrates on its training rows by default) or an f32 artifact.
    source: PathBuf,
    /// The int8 artifact to write.
    #[arg(long, short)]
    output: PathBuf,
    /// Calibration rows (a CSV, label optional); required for an artifact.
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Rows to report the accuracy on (default: the run's test.csv beside it, else the calibration rows).
    #[arg(long)]
    test: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["device", "port"])))]
struct ValidateArgs {
    /// The artifact the device should be running.
    artifact: PathBuf,
    /// CSV of rows, with or without a label column.
    csv: PathBuf,
    /// Build the serving firmware of this board for the artifact and run it under QEMU (a board of
    /// firmware/boards.toml that QEMU emulates: qemu, the mps2-an386 with a Cortex-M4F; qemu-m33;
    /// qemu-m0; qemu-riscv).
    #[arg(long, value_parser = Board::emulated)]
    device: Option<Board>,
    /// With --device: run this serving firmware (your own, built with dropship-build and serving
    /// through dropship_link::serve) under QEMU instead of building dropship's.
    #[arg(long, requires = "device")]
    firmware: Option<PathBuf>,
    /// Serial port of a board flashed with the serving firmware (e.g. /dev/ttyACM0).
    #[arg(long)]
    port: Option<String>,
    /// Baud rate of the serial port.
    #[arg(long, default_value_t = 115_200, value_parser = clap::value_parser!(u32).range(1200..=4_000_000))]
    baud: u32,
    /// Seconds to wait for each answer before asking again.
    #[arg(long, default_value_t = 5.0, value_parser = positive_seconds, allow_negative_numbers = true)]
    timeout: f64,
    /// Name of the label column, if the CSV has one that is not the extra last column.
    #[arg(long)]
    label_column: Option<String>,
    #[command(flatten)]
    header: HeaderArgs,
    /// Print what each stage of an inference costs on the device: the input, each layer (in all
    /// and per MAC), the outputs (instructions under QEMU, DWT cycles on a board).
    #[arg(long)]
    profile: bool,
    /// Also write the report (with the per-layer profile) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Replace an existing --json file.
    #[arg(long)]
    overwrite: bool,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 3600")),
    }
}

#[derive(Args)]
struct BenchArgs {
    /// Timed repetitions of the whole comparison (the median is reported; at least 1).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Keras's figures for the parity table: a file `data/keras_reference.py parity` wrote (it
    /// records when and where they were measured). Without it, Keras's columns stay empty.
    #[arg(long, conflicts_with = "large")]
    keras: Option<PathBuf>,
    /// Instead: MNIST-sized data (60,000 × 784, generated): CSV load time, peak memory, seconds per epoch.
    #[arg(long)]
    large: bool,
    /// Instead: MLPerf Tiny's anomaly detector on synthetic machine-sound frames, trained, exported
    /// and quantized into this directory (its data beside it, as .csv), for `dropship validate`.
    #[arg(long, conflicts_with_all = ["large", "keras"])]
    anomaly: Option<PathBuf>,
    /// Instead: MLPerf Tiny's keyword-spotting DS-CNN (Keras-initialized weights, int8 calibrated on
    /// synthetic frames) written to this directory as f32 and int8 artifacts with frames to run,
    /// for `dropship validate` and the board builds.
    #[arg(long, conflicts_with_all = ["large", "keras", "anomaly"])]
    ds_cnn: Option<PathBuf>,
    /// With --anomaly: training epochs.
    #[arg(long, default_value_t = 30, requires = "anomaly")]
    epochs: usize,
    /// With --anomaly or --ds-cnn: replace an existing output directory.
    #[arg(long)]
    overwrite: bool,
    /// With --large: keep the generated CSV at this path (a new file), for a side-by-side run of
    /// data/keras_reference.py.
    #[arg(long, requires = "large")]
    csv: Option<PathBuf>,
}

/// Whether the CSV's first row names the columns (by default a first row of numbers only is data).
#[derive(Args, Clone)]
struct HeaderArgs {
    /// The first row names the columns, even if it is all numbers.
    #[arg(long, conflicts_with = "no_header")]
    header: bool,
    /// Every row is data; the columns are `column 1`, `column 2`, ...
    #[arg(long)]
    no_header: bool,
}

impl HeaderArgs {
    fn header(&self) -> Header {
        match (self.header, self.no_header) {
            (true, _) => Header::Present,
            (_, true) => Header::Absent,
            _ => Header::Auto,
        }
    }
}

#[derive(Args, Clone)]
struct DataArgs {
    /// CSV with a header row; the bundled digits data when omitted.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Column holding the label: the integer class, 0/1 for binary, the value to predict for
    /// regress, an autoencoder's anomaly flags (evaluation only) (default: the last column; an
    /// autoencoder's data has none unless named).
    #[arg(long)]
    label_column: Option<String>,
    /// What the model learns: classify, binary, regress or autoencode (default: inferred from the
    /// label column, and stated).
    #[arg(long, value_parser = task_by_name)]
    task: Option<Task>,
    #[command(flatten)]
    header: HeaderArgs,
    /// Your own split: this column says each row's part (train, val or test) and is not a feature.
    #[arg(long)]
    split_column: Option<String>,
    /// Your own split: validation rows in a file with the same columns as --data (with --test-data).
    #[arg(long)]
    val_data: Option<PathBuf>,
    /// Your own split: test rows in a file with the same columns as --data (with --val-data).
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// Share of rows for validation.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    val_fraction: f64,
    /// Share of rows for test.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    test_fraction: f64,
}

#[derive(Args, Clone)]
struct HyperArgs {
    /// Passes over the training rows.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    epochs: usize,
    /// Rows per training step.
    #[arg(long, default_value_t = 32, allow_negative_numbers = true)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    lr: f64,
    /// Widths of the hidden layers, from the input side: `128` is the course's model, `256,128`
    /// two hidden layers.
    #[arg(long, value_delimiter = ',', default_value = "128", allow_negative_numbers = true)]
    hidden: Vec<usize>,
    /// A convolutional network instead, layer by layer as Keras lists them:
    /// conv8k3,maxpool2,conv16k3,maxpool2,flatten,dense10 (convFkK[sS][same], dwkK[sS][same],
    /// maxpoolP, avgpoolP, gap, flatten, denseN; the last dense is the output). Needs --image.
    #[arg(long, conflicts_with = "hidden")]
    layers: Option<String>,
    /// What follows every hidden layer: relu, tanh, sigmoid or hard-sigmoid.
    #[arg(long, default_value = "relu", value_parser = hidden_activation)]
    activation: Activation,
    /// Kernels L2 applies to: hidden (every hidden layer), output, hidden1, hidden2, ...
    /// [default: hidden,output].
    #[arg(long, value_delimiter = ',')]
    l2_layers: Option<Vec<String>>,
    /// Suppress progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Replace an existing output directory.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args, Clone)]
struct AugmentArgs {
    /// Training-only data augmentation, fresh every batch: noise=SIGMA (Gaussian noise on the
    /// standardized inputs), shift=PIXELS (random translation of image rows, zero fill);
    /// several combine: noise=0.05,shift=1.
    #[arg(long, value_delimiter = ',')]
    augment: Option<Vec<String>>,
    /// The rows are WIDTHxHEIGHT[xCHANNELS] images, row-major, channels last (for shift and
    /// --layers); the bundled digits are 8x8.
    #[arg(long, allow_hyphen_values = true)]
    image: Option<String>,
}

impl AugmentArgs {
    /// The augmentation asked for, if any; the bundled digits are 8x8 images without `--image`.
    fn augment(&self, data: &DataArgs, hyper: &HyperArgs) -> Result<Option<Augment>> {
        let dims = self.dims(data)?;
        let image = match dims {
            Some(d) if d.channels == 1 => Some(ImageShape { width: d.width, height: d.height }),
            Some(d) if self.augment.as_ref().is_some_and(|a| a.iter().any(|s| s.starts_with("shift"))) => {
                bail!(
                    "--augment shift moves one-channel images; --image {} has {} channels",
                    self.image.as_deref().unwrap_or(""),
                    d.channels
                )
            }
            _ => None,
        };
        match &self.augment {
            Some(settings) => Ok(Some(Augment::parse(settings, image)?)),
            None if self.image.is_some() && hyper.layers.is_none() => {
                bail!("--image applies only with --augment or --layers")
            }
            None => Ok(None),
        }
    }

    /// The image one row is: `--image WxH[xC]`, the bundled digits' 8x8 without data; `None` for
    /// other data without `--image`.
    fn dims(&self, data: &DataArgs) -> Result<Option<Dims>> {
        match (&self.image, &data.data) {
            (Some(text), _) => {
                let bad = || anyhow::anyhow!("--image {text}: give WIDTHxHEIGHT or WIDTHxHEIGHTxCHANNELS, e.g. 28x28");
                let sides: Vec<usize> = text
                    .split(['x', 'X'])
                    .map(|s| s.trim().parse().ok().filter(|v| *v > 0))
                    .collect::<Option<_>>()
                    .ok_or_else(bad)?;
                let dims = match sides[..] {
                    [w, h] => Dims::image(h, w, 1),
                    [w, h, c] => Dims::image(h, w, c),
                    _ => return Err(bad()),
                };
                let max = dropship::limits::MAX_WIDTH;
                let values = dims.height.checked_mul(dims.width).and_then(|p| p.checked_mul(dims.channels));
                if values.is_none_or(|v| v > max) {
                    bail!("--image {text} has more pixels than a row of data holds ({max} values)");
                }
                Ok(Some(dims))
            }
            (None, None) => Ok(Some(Dims::image(8, 8, 1))),
            (None, Some(_)) => Ok(None),
        }
    }

    /// The convolutional network `--layers` lists, with the image `--image` gives; `None`
    /// without `--layers`.
    fn features(&self, data: &DataArgs, hyper: &HyperArgs) -> Result<Option<Features>> {
        let Some(layers) = &hyper.layers else { return Ok(None) };
        let dims = self.dims(data)?.context("--layers needs --image WIDTHxHEIGHT[xCHANNELS]: the shape of one row")?;
        Ok(Some(Features { image: [dims.height, dims.width, dims.channels], layers: layers.clone() }))
    }
}

#[derive(Args)]
struct SeedArg {
    /// Seed of every random draw (split, initial weights, batch order, dropout).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    seed: u64,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    hyper: HyperArgs,
    #[command(flatten)]
    seed: SeedArg,
    /// L2 strength on the chosen kernels.
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f64>,
    /// Dropout rate after each hidden Dense, in [0, 1): one rate for every hidden layer, or one per
    /// hidden layer (`0.5,0.3`).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    dropout: Option<Vec<f32>>,
    /// AdamW decoupled weight decay on the kernels.
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Early stopping on validation loss with this patience in epochs (restores the best weights).
    #[arg(long, alias = "patience", allow_negative_numbers = true)]
    early_stopping: Option<usize>,
    /// A BatchNorm (Keras's: momentum 0.99, epsilon 1e-3) after every hidden Dense, folded into
    /// it at export.
    #[arg(long)]
    batch_norm: bool,
    #[command(flatten)]
    augment: AugmentArgs,
    /// Run directory (default runs/<regularizer>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    hyper: HyperArgs,
    /// Seeds to repeat the comparison with (mean ± std when several).
    #[arg(long, value_delimiter = ',', default_value = "0", allow_negative_numbers = true)]
    seeds: Vec<u64>,
    /// L2 strength of the l2 model.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    l2: f64,
    /// Dropout rate of the dropout model: one for every hidden layer, or one per hidden layer.
    #[arg(long, value_delimiter = ',', default_value = "0.5", allow_negative_numbers = true)]
    dropout: Vec<f32>,
    /// Also train a model with AdamW weight decay of this strength.
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Also train a base model with early stopping of this patience.
    #[arg(long, allow_negative_numbers = true)]
    early_stopping: Option<usize>,
    /// Also train a `batchnorm` model: a BatchNorm (Keras's: momentum 0.99, epsilon 1e-3) after
    /// every hidden Dense, folded into it at export.
    #[arg(long)]
    batch_norm: bool,
    /// Also train an `augment` model: no regularizer, training rows augmented as --augment says.
    #[command(flatten)]
    augment: AugmentArgs,
    /// Also quantize every model to int8 (calibrated on its training rows) and report its test accuracy.
    #[arg(long)]
    int8: bool,
    /// Output directory.
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
}

#[derive(Args)]
struct SweepArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    hyper: HyperArgs,
    #[command(flatten)]
    seed: SeedArg,
    /// Dropout rates to try.
    #[arg(long, value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8", allow_negative_numbers = true)]
    dropout_rates: Vec<f32>,
    /// L2 strengths to try.
    #[arg(long, value_delimiter = ',', default_value = "0.00001,0.0001,0.001,0.01,0.1", allow_negative_numbers = true)]
    l2_strengths: Vec<f64>,
    /// Gaussian-noise augmentation levels (σ on the standardized inputs) to try, e.g. 0,0.1,0.3.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    noise_levels: Vec<f32>,
    /// Output directory.
    #[arg(long, default_value = "runs/sweep")]
    out: PathBuf,
}

#[derive(Args)]
struct ExportArgs {
    /// A run directory written by train or compare.
    run: PathBuf,
    /// Artifact path (default <run>/model.dsm).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also write the model as ONNX (opset 13), checked with tract-onnx against the artifact.
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// The artifact.
    artifact: PathBuf,
    /// CSV of rows, with or without a label column.
    csv: PathBuf,
    /// Name of the label column, if the CSV has one that is not the extra last column.
    #[arg(long)]
    label_column: Option<String>,
    /// Print the logits as CSV instead of one class per row.
    #[arg(long)]
    logits: bool,
    /// Inputs are already standardized: skip the artifact's standardization.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    header: HeaderArgs,
}

#[derive(Args)]
struct VectorsArgs {
    /// The artifact.
    artifact: PathBuf,
    /// CSV of rows (a label column, if any, is ignored).
    csv: PathBuf,
    /// Output file.
    #[arg(long, short)]
    output: PathBuf,
    /// Use only the first N rows.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    rows: Option<u64>,
    /// Replace an existing output file.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    header: HeaderArgs,
}

fn main() {
    // `dropship predict ... | head` ends quietly when the reader goes away, as Unix tools do,
    // instead of panicking on the closed pipe.
    // SAFETY: restoring a signal's default action, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = dropship::output::clean_up_on_signals().and_then(|()| run_cli(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// candle sizes its matmul thread pool per call from this variable. A training step's products
/// (a batch of 32 rows) are too small to pay for threads: on two cores an MNIST-sized epoch took
/// 0.57 s on one thread and 0.64 to 0.80 s on two; and several models already train in parallel.
fn single_threaded_candle() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    matmul_pool();
}

/// Builds the thread pool candle's matrix products run on (one thread per core;
/// `RAYON_NUM_THREADS` says how many of them candle uses).
fn matmul_pool() {
    // Err only when the pool exists already, which it cannot before training starts
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = rayon::ThreadPoolBuilder::new().num_threads(cores).build_global();
}

/// A task by name (`classify`, `binary`, `regress`, `autoencode`).
fn task_by_name(name: &str) -> Result<Task, String> {
    Task::from_name(name).ok_or_else(|| "a task is one of classify, binary, regress, autoencode".to_string())
}

/// Loads the training data and the task: `--task`, or the one its label column implies (stated
/// on stderr); checks that the data fits the task.
fn load_data(args: &DataArgs, quiet: bool) -> Result<(data::Dataset, Task)> {
    let path = match &args.data {
        Some(path) => path.clone(),
        None => data::bundled_digits()?,
    };
    let label = match (&args.label_column, args.task) {
        (Some(name), _) => LabelColumn::Named(name.clone()),
        (None, Some(Task::Autoencode)) => LabelColumn::None,
        (None, _) => LabelColumn::Last,
    };
    let files = match (&args.val_data, &args.test_data, &args.split_column) {
        (None, None, _) => None,
        (Some(_), Some(_), Some(_)) => {
            bail!("--split-column and --val-data/--test-data are two ways to give your own split: use one")
        }
        (Some(val), Some(test), None) => Some((val, test)),
        _ => bail!("--val-data and --test-data go together (or mark each row's part with --split-column)"),
    };
    let header = args.header.header();
    let mut bar = progress::LoadBar::new(&path, quiet);
    let mut data = data::load_training_csv(&path, &label, header, args.split_column.as_deref(), &mut |read, total| {
        bar.update(read, total)
    })?;
    bar.finish();
    if let Some(note) = data::header_note(&data, header) {
        eprintln!("{note}");
    }
    if let Some((val, test)) = files {
        let (val, test) = (data::load_csv(val, &label, header)?, data::load_csv(test, &label, header)?);
        data = data::join_parts(data, val, test)?;
    }
    if args.data.is_none() {
        data.source = PathBuf::from("data/digits.csv (bundled)");
    }
    let task = match args.task {
        Some(task) => task,
        None => {
            let (task, why) = dropship::train::task::infer(&data);
            if !quiet {
                eprintln!("task: {task} ({why})");
            }
            task
        }
    };
    dropship::train::task::check(task, &data)?;
    Ok((data, task))
}

impl HyperArgs {
    /// The kernels `--l2-layers` names (both when not given).
    fn l2_layers(&self) -> Result<L2Layers> {
        let default = ["hidden".to_string(), "output".to_string()];
        Ok(L2Layers::parse(self.l2_layers.as_deref().unwrap_or(&default))?)
    }
}

/// A hidden layer's activation by name, in any case (`relu`, `ReLU`, `tanh`, ...).
fn hidden_activation(name: &str) -> Result<Activation, String> {
    dropship::train::model::HIDDEN_ACTIVATIONS
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| "a hidden layer's activation is one of relu, tanh, sigmoid, hard-sigmoid".to_string())
}

/// The configuration the hyperparameters give; `features`: a convolutional network's layers,
/// whose Dense widths become the hidden ones.
fn base_config(h: &HyperArgs, seed: u64, features: Option<Features>) -> Result<TrainConfig> {
    let hidden = match &features {
        Some(f) => f.list(h.activation)?.hidden,
        None => h.hidden.clone(),
    };
    Ok(TrainConfig {
        features,
        hidden,
        activation: h.activation,
        epochs: h.epochs,
        batch_size: h.batch_size,
        lr: h.lr,
        seed,
        ..TrainConfig::default()
    })
}

fn reporter(h: &HyperArgs) -> Reporter {
    Reporter::new(if h.quiet { Mode::Quiet } else { Mode::Auto })
}

fn split_spec(d: &DataArgs) -> SplitSpec {
    SplitSpec { val: d.val_fraction, test: d.test_fraction }
}

fn run_cli(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train(a)?,
        Command::Compare(a) => compare(a)?,
        Command::Sweep(a) => {
            if a.hyper.layers.is_some() {
                bail!("sweep varies an MLP's regularization; --layers is for train and compare");
            }
            single_threaded_candle();
            let layers = a.hyper.l2_layers()?;
            let (data, task) = load_data(&a.data, a.hyper.quiet)?;
            let sweep = dropship::study::sweep::Sweep {
                data: &data,
                split: split_spec(&a.data),
                base: TrainConfig { task, ..base_config(&a.hyper, a.seed.seed, None)? },
                rates: a.dropout_rates,
                lambdas: a.l2_strengths,
                noise: a.noise_levels,
                layers,
                out: a.out.clone(),
                overwrite: a.hyper.overwrite,
            };
            dropship::study::sweep::sweep(&sweep, &reporter(&a.hyper))?;
            println!("sweep written to {}", a.out.display());
        }
        Command::Export(a) => {
            let e = dropship::deploy::export::export_run(&a.run, a.output.as_deref(), a.onnx.as_deref(), a.overwrite)?;
            println!("wrote {} ({} bytes, {} parameters)", e.artifact.display(), e.bytes, e.parameters);
            if let Some(o) = e.onnx {
                println!(
                    "wrote {} (ONNX opset {}; tract-onnx matches the artifact on {} rows, max |diff| {:.1e})",
                    o.path.display(),
                    dropship::deploy::onnx::OPSET,
                    o.rows,
                    o.max_diff
                );
            }
        }
        Command::Import(a) => {
            let r =
                dropship::deploy::onnx::import_file(&a.model, &a.output, a.standardize_from.as_deref(), a.overwrite)?;
            for s in &r.imported.stripped {
                println!("stripped {s}");
            }
            if r.imported.pre_softmax.is_some() {
                println!("the final Softmax is kept: the artifact outputs probabilities (checked before it too)");
            }
            match &r.standardization {
                StandardizationSource::Graph => println!("standardization: taken from the graph's leading Sub/Div"),
                StandardizationSource::Run(run) => println!("standardization: from {}", run.display()),
                StandardizationSource::None => println!(
                    "no standardization: give --standardize-from <run> if the model expects standardized inputs"
                ),
            }
            let shapes: Vec<String> = r
                .imported
                .network
                .layers()
                .iter()
                .map(|l| format!("{} {}", l.shape().describe(l.input_dims), l.activation))
                .collect();
            println!(
                "wrote {} ({}; matches tract-onnx running the original within {:.1e})",
                a.output.display(),
                shapes.join(", "),
                r.max_diff
            );
        }
        Command::Bench(a) => {
            if let Some(out) = &a.ds_cnn {
                dropship::study::ds_cnn::run(out, a.overwrite)?
            } else if let Some(out) = &a.anomaly {
                single_threaded_candle();
                dropship::study::bench::run_anomaly(out, a.epochs, a.overwrite)?
            } else if a.large {
                single_threaded_candle();
                dropship::study::bench::run_large(a.csv.as_deref())?
            } else {
                single_threaded_candle();
                dropship::study::bench::run(a.repeats, a.keras.as_deref())?
            }
        }
        Command::Predict(a) => artifact_commands::predict(
            &a.artifact,
            &a.csv,
            a.label_column.as_ref(),
            if a.logits { PredictOutput::Logits } else { PredictOutput::Class },
            if a.raw { InputForm::Standardized } else { InputForm::Raw },
            a.header.header(),
        )?,
        Command::Inspect { artifact } => artifact_commands::inspect(&artifact)?,
        Command::Validate(a) => validate(a)?,
        Command::Generate(a) => {
            artifact_commands::generate(&a.artifact, &a.output, a.serving, a.portable, a.overwrite)?
        }
        Command::Quantize(a) => quantize(a)?,
        Command::Vectors(a) => {
            artifact_commands::vectors(&a.artifact, &a.csv, &a.output, a.rows, a.overwrite, a.header.header())?
        }
    }
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let layers = a.hyper.l2_layers()?;
    if a.hyper.l2_layers.is_some() && a.l2.is_none() {
        bail!("--l2-layers applies only with --l2 (the L2 strength)");
    }
    let regularizer = Regularizer::from_flags(a.l2, layers, a.dropout, a.weight_decay)?;
    let augment = a.augment.augment(&a.data, &a.hyper)?.unwrap_or_default();
    let mut config = TrainConfig {
        regularizer,
        early_stopping: a.early_stopping,
        augment,
        batch_norm: a.batch_norm,
        ..base_config(&a.hyper, a.seed.seed, a.augment.features(&a.data, &a.hyper)?)?
    };
    config.validate()?;
    let (data, task) = load_data(&a.data, a.hyper.quiet)?;
    config.task = task;
    single_threaded_candle();
    let variant = compare::Variant::new(config);
    let study = Study {
        data: &data,
        split: split_spec(&a.data),
        seeds: vec![a.seed.seed],
        out: a.out.unwrap_or_else(|| Path::new("runs").join(&variant.name)),
        overwrite: a.hyper.overwrite,
        int8: false,
    };
    let result = compare::compare(&study, std::slice::from_ref(&variant), &reporter(&a.hyper))?;
    warn(&result);
    let o = &result.outcomes[0];
    let task = variant.config.task;
    println!(
        "{}: test {} {:.4}, test {} {:.4}, best epoch {}, {:.2} s",
        variant.name,
        dropship::train::task::score_name(task),
        o.metrics.test_score,
        dropship::train::task::loss_name(task),
        o.metrics.test_loss,
        o.metrics.best_epoch,
        o.metrics.seconds
    );
    if let Some(figures) = &o.metrics.task {
        println!("{}", dropship::study::report::task_summary(figures));
    }
    println!("run written to {}", o.run_dir.display());
    Ok(())
}

fn compare(a: CompareArgs) -> Result<()> {
    single_threaded_candle();
    let layers = a.hyper.l2_layers()?;
    let features = a.augment.features(&a.data, &a.hyper)?;
    let base = base_config(&a.hyper, a.seeds.first().copied().unwrap_or(0), features)?;
    let augment = a.augment.augment(&a.data, &a.hyper)?;
    let extra = compare::ExtraModels {
        weight_decay: a.weight_decay,
        early_stopping: a.early_stopping,
        augment,
        batch_norm: a.batch_norm,
    };
    let mut variants = compare::course_variants(&base, a.l2, layers, a.dropout, extra);
    for v in &variants {
        v.config.validate()?;
    }
    if a.seeds.is_empty() {
        bail!("--seeds needs at least one seed");
    }
    if let Some(twice) = a.seeds.iter().enumerate().find_map(|(i, s)| a.seeds[..i].contains(s).then_some(s)) {
        bail!("--seeds: seed {twice} is given twice (the same seed gives the same models)");
    }
    let (data, task) = load_data(&a.data, a.hyper.quiet)?;
    for v in &mut variants {
        v.config.task = task;
    }
    let study = Study {
        data: &data,
        split: split_spec(&a.data),
        seeds: a.seeds,
        out: a.out,
        overwrite: a.hyper.overwrite,
        int8: a.int8,
    };
    let result = compare::compare(&study, &variants, &reporter(&a.hyper))?;
    warn(&result);
    println!("{}", result.report);
    println!("report: {}", result.out.join("report.md").display());
    println!(
        "plots:  {} and {}",
        result.out.join("val_loss.png").display(),
        result.out.join(format!("val_{}.png", dropship::study::report::score_stem(task))).display()
    );
    Ok(())
}

/// Warns about models whose training loss exploded without becoming NaN: their run is written,
/// but not worth exporting.
fn warn(result: &compare::Comparison) {
    for o in &result.outcomes {
        if let Some((epoch, loss)) = o.exploded() {
            eprintln!(
                "warning: model {} (seed {}): the training loss reached {loss:.3e} in epoch {epoch}: training diverged ({})",
                o.name, o.seed, o.config_hint
            );
        }
    }
}

fn validate(a: ValidateArgs) -> Result<()> {
    if let Some(json) = &a.json {
        dropship::output::check_outputs(&[json], &[&a.artifact, &a.csv], a.overwrite)?;
    }
    let target = match (a.device, a.port) {
        (_, Some(path)) => dropship::deploy::validate::Target::Port { path, baud: a.baud },
        (Some(board), None) => match a.firmware {
            Some(elf) => dropship::deploy::validate::Target::QemuElf { board, elf },
            None => dropship::deploy::validate::Target::Qemu(board),
        },
        (None, None) => dropship::deploy::validate::Target::Qemu(Board::qemu()),
    };
    let options = dropship::deploy::validate::Options {
        label_column: a.label_column,
        header: a.header.header(),
        timeout: std::time::Duration::from_secs_f64(a.timeout),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = dropship::deploy::validate::validate(&a.artifact, &a.csv, &target, &options)?;
    print!("{}", report.summary());
    if a.profile {
        match report.profile_table() {
            Some(table) => print!("{table}"),
            None => println!("profile: this firmware does not count the stages of an inference"),
        }
    }
    if let Some(json) = &a.json {
        dropship::output::write_file(json, &serde_json::to_vec_pretty(&report)?)?;
    }
    if !report.all_identical() {
        anyhow::bail!(
            "{} of {} rows differ between the device and the host",
            report.rows - report.identical_rows,
            report.rows
        );
    }
    Ok(())
}

fn quantize(a: QuantizeArgs) -> Result<()> {
    let q = dropship::deploy::quantize::quantize_command(
        &a.source,
        &a.output,
        a.calibration.as_deref(),
        a.test.as_deref(),
        a.overwrite,
    )?;
    let g = &q.agreement;
    println!(
        "wrote {} ({} bytes, int8; {} bytes of weights, biases and requantization)",
        q.output.display(),
        q.bytes,
        q.network.footprint().weight_bytes
    );
    println!("calibration: {} rows from {}", q.calibration.1, q.calibration.0);
    println!("evaluated on {} rows from {}", g.rows, q.evaluation);
    if let (Some(f), Some(i)) = (g.f32_accuracy, g.int8_accuracy) {
        println!("accuracy: f32 {f:.4}, int8 {i:.4} ({:+.2} percentage points)", 100.0 * (i - f));
    }
    match q.network.task_or_classify().0 {
        Task::Classify | Task::Binary => {
            println!("class agreement f32/int8: {:.4}", g.class_agreement);
            println!("max logit error after dequantization: {:.4}", g.max_logit_error);
        }
        Task::Regress | Task::Autoencode => {
            println!("max output error after dequantization: {:.4} (in the outputs' units)", g.max_logit_error)
        }
    }
    Ok(())
}
