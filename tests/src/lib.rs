//! Shared fixtures of the end-to-end tests: digits models trained with dropout, exported.
//!
//! Each model is trained once per test binary (about a second) with dropout, the regularizer whose
//! absence at inference matters most, and written under `target/dropship-tests/`: the course's
//! model (one hidden layer of 128, dropout 0.5), a deeper one (64 → 64 → 32 → 10, dropout 0.5
//! and 0.3 on its two hidden layers), and one trained on a generated CSV of real-valued features.

use std::path::PathBuf;
use std::sync::OnceLock;

use dropship::data::{self, Dataset};
use dropship::deploy::export;
use dropship::network::HostNetwork;
use dropship::output::write_file;
use dropship::train::model::Weights;
use dropship::train::prepare::{Prepared, SplitSpec};
use dropship::train::run::{OutputHead, SavedModel};
use dropship::train::task::Task;
use dropship::train::{self, Regularizer, TrainConfig};
use dropship_shared::Activation;

/// The digits model every end-to-end test uses.
pub struct Fixture {
    /// The bundled digits data.
    pub data: Dataset,
    /// Its split (seed 0), standardized parts and initial weights.
    pub prepared: Prepared,
    /// The test rows standardized, row-major.
    pub x_test: Vec<f32>,
    /// Trained weights (dropout 0.5 in training).
    pub weights: Weights,
    /// The exported artifact's bytes.
    pub artifact: Vec<u8>,
    /// Where the artifact and the vectors were written.
    pub artifact_path: PathBuf,
    /// Test vectors of every test row: raw input, host logits, host class.
    pub vectors_path: PathBuf,
    /// Every test row, raw, with its label in the last column (`label`).
    pub test_csv_path: PathBuf,
}

impl Fixture {
    /// Raw (unstandardized) test rows.
    pub fn test_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.prepared.split.test.iter().map(|r| self.data.row(*r))
    }
}

/// The course's model, trained, exported and written once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build(&[128], &[0.5], "").expect("training the fixture model"))
}

/// The deeper model (two hidden layers, dropout on both), written to `target/dropship-tests/deep/`.
pub fn deep_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build(&[64, 32], &[0.5, 0.3], "deep").expect("training the deep fixture model"))
}

/// A model of real-valued features (12 of them, 4 classes, 800 rows of Gaussian clusters with
/// negative values and decimals, written as a CSV and loaded back), in `target/dropship-tests/real/`.
pub fn real_valued_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = fixture_dir("real");
        let csv = dir.join("data.csv");
        write_file(&csv, real_valued_csv(800, 12, 4).as_bytes()).expect("writing the generated CSV");
        let data = data::load_csv(&csv, &Default::default(), Default::default()).expect("loading the generated CSV");
        build_on(data, &[32], &[0.3], "real", 40).expect("training the real-valued model")
    })
}

/// `rows` rows of `features` real values around one of `classes` centres, label last.
fn real_valued_csv(rows: usize, features: usize, classes: usize) -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let centres: Vec<Vec<f64>> =
        (0..classes).map(|_| (0..features).map(|_| (uniform() - 0.5) * 6.0).collect()).collect();
    let mut out: String = (0..features).map(|f| format!("x{f},")).collect();
    out.push_str("label\n");
    for r in 0..rows {
        let class = r % classes;
        for (f, centre) in centres[class].iter().enumerate() {
            // Box-Muller: a normal draw, spread 1.5 around the class centre, scaled per feature.
            let normal = (-2.0 * uniform().max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
            let value = (centre + 1.5 * normal) * (1.0 + f as f64 * 0.7);
            out.push_str(&format!("{},", value as f32));
        }
        out.push_str(&format!("{class}\n"));
    }
    out
}

fn fixture_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dropship-tests").join(name);
    std::fs::create_dir_all(&dir).expect("target/ is writable");
    dir
}

/// A digits model whose hidden layers (64 → 32, dropout 0.3) are followed by `activation`
/// (tanh, sigmoid or hard-sigmoid), trained for 30 epochs, in `target/dropship-tests/<activation>/`.
pub fn activation_fixture(activation: Activation) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match activation {
        Activation::Tanh => 0,
        Activation::Sigmoid => 1,
        Activation::HardSigmoid => 2,
        other => panic!("no fixture for {other} hidden layers"),
    };
    FIXTURES[slot].get_or_init(|| {
        let data = digits();
        let config = TrainConfig {
            hidden: vec![64, 32],
            activation,
            regularizer: Regularizer::Dropout { rates: vec![0.3] },
            epochs: 30,
            ..TrainConfig::default()
        };
        build_with(data, config, activation.name()).expect("training the activation fixture")
    })
}

/// A digits model with a BatchNorm after each hidden Dense (64 → 32, ReLU, no other regularizer),
/// trained for 30 epochs, in `target/dropship-tests/batchnorm/`: its artifact has the BatchNorms
/// folded in.
pub fn batch_norm_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = digits();
        let config = TrainConfig { hidden: vec![64, 32], batch_norm: true, epochs: 30, ..TrainConfig::default() };
        build_with(data, config, "batchnorm").expect("training the BatchNorm fixture")
    })
}

/// A convolutional digits model, `conv8k3same,maxpool2,conv12k3,flatten,dense32,dense10` on the
/// 8x8 images (dropout 0.3 after its hidden Dense), trained for 20 epochs, in
/// `target/dropship-tests/cnn/`.
pub fn cnn_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = TrainConfig { regularizer: Regularizer::Dropout { rates: vec![0.3] }, epochs: 20, ..cnn_config() };
        build_with(digits(), config, "cnn").expect("training the CNN fixture")
    })
}

/// [`cnn_fixture`]'s network with a BatchNorm after each convolution and the hidden Dense (no
/// other regularizer), trained for 10 epochs, in `target/dropship-tests/cnn-batchnorm/`.
pub fn cnn_batch_norm_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = TrainConfig { batch_norm: true, epochs: 10, ..cnn_config() };
        build_with(digits(), config, "cnn-batchnorm").expect("training the CNN BatchNorm fixture")
    })
}

/// The bundled digits.
fn digits() -> Dataset {
    data::load_csv(data::BUNDLED_DIGITS.as_ref(), &Default::default(), Default::default())
        .expect("the bundled digits load")
}

/// [`CNN_LAYERS`] on the digits' 8x8 images, ReLU, nothing else set.
fn cnn_config() -> TrainConfig {
    let features = train::Features { image: [8, 8, 1], layers: CNN_LAYERS.into() };
    TrainConfig {
        hidden: features.list(Activation::Relu).expect("the fixture's layers parse").hidden,
        features: Some(features),
        ..TrainConfig::default()
    }
}

/// The layers of [`cnn_fixture`].
pub const CNN_LAYERS: &str = "conv8k3same,maxpool2,conv12k3,flatten,dense32,dense10";

/// A model of `task` trained on the CSV at `path` (its label column `label`, or none), with these
/// hidden layers, for `epochs`, in `target/dropship-tests/<name>/`.
pub fn task_fixture(
    path: &std::path::Path,
    label: Option<&str>,
    config: TrainConfig,
    name: &str,
) -> anyhow::Result<Fixture> {
    let column = label.map_or(data::LabelColumn::None, |l| data::LabelColumn::Named(l.into()));
    let data = data::load_csv(path, &column, Default::default())?;
    build_with(data, config, name)
}

fn build(hidden: &[usize], dropout: &[f32], name: &str) -> anyhow::Result<Fixture> {
    let data = data::load_csv(data::BUNDLED_DIGITS.as_ref(), &Default::default(), Default::default())?;
    build_on(data, hidden, dropout, name, TrainConfig::default().epochs)
}

fn build_on(data: Dataset, hidden: &[usize], dropout: &[f32], name: &str, epochs: usize) -> anyhow::Result<Fixture> {
    let config = TrainConfig {
        hidden: hidden.to_vec(),
        regularizer: Regularizer::Dropout { rates: dropout.to_vec() },
        epochs,
        ..TrainConfig::default()
    };
    build_with(data, config, name)
}

fn build_with(data: Dataset, config: TrainConfig, name: &str) -> anyhow::Result<Fixture> {
    let prepared = config.prepared(&data, SplitSpec::default(), 0)?;
    let trained = train::train(&prepared, &config, &prepared.initial, &mut |_| {})?;
    let figures = match config.task {
        Task::Classify => None,
        _ => {
            let raw = |rows: &[usize]| train::raw_outputs(&trained.weights, &prepared, &data, rows);
            dropship::train::figures::task_metrics(
                &prepared,
                &data,
                &raw(&prepared.split.val)?,
                &raw(&prepared.split.test)?,
            )?
        }
    };
    let saved = SavedModel {
        weights: trained.weights.clone(),
        standardization: prepared.standardization.clone(),
        provenance: format!("dropship-tests fixture: {}, seed 0", config.regularizer),
        head: OutputHead::of(&prepared, figures.as_ref()),
    };
    let artifact = export::artifact_bytes(&saved, "", &saved.provenance)?;
    let dir = fixture_dir(name);
    let artifact_path = dir.join("model.dsm");
    write_file(&artifact_path, &artifact)?;
    let net = HostNetwork::from_artifact(&dropship_shared::Artifact::parse(&artifact)?);
    let bytes = net.vectors(prepared.split.test.iter().map(|r| data.row(*r)))?;
    let vectors_path = dir.join("vectors.dsv");
    write_file(&vectors_path, &bytes)?;
    let test_csv_path = dir.join("test.csv");
    let mut csv: String = (0..data.width()).map(|f| format!("f{f},")).collect();
    csv.push_str("label\n");
    for r in &prepared.split.test {
        let values: Vec<String> = data.row(*r).iter().map(f32::to_string).collect();
        let label = data.labels.get(*r).map_or_else(|| data.targets[*r].to_string(), u32::to_string);
        csv.push_str(&format!("{},{label}\n", values.join(",")));
    }
    write_file(&test_csv_path, csv.as_bytes())?;
    let x_test = prepared.standardized(&data, &prepared.split.test)?.values()?;
    Ok(Fixture {
        data,
        prepared,
        x_test,
        weights: trained.weights,
        artifact,
        artifact_path,
        vectors_path,
        test_csv_path,
    })
}

/// The fixture's model quantized to int8 (calibrated on its training rows), written beside its f32
/// artifact as `model-int8.dsm`; returns the path and the network.
pub fn int8_of(f: &Fixture) -> anyhow::Result<(PathBuf, dropship::network::HostNetwork)> {
    use dropship::deploy::quantize;
    let net = HostNetwork::from_artifact(&dropship_shared::Artifact::parse(&f.artifact)?);
    let ranges = quantize::calibrate(&net, f.prepared.split.train.iter().map(|r| f.data.row(*r)));
    let int8 = quantize::quantize(&net, &ranges)?;
    let path = f.artifact_path.with_file_name("model-int8.dsm");
    write_file(&path, &int8.to_artifact("", "dropship-tests fixture, int8")?)?;
    Ok((path, int8))
}

/// Writes `rows` (all of one width) as a CSV of feature columns `f0, f1, ...` and a `label`
/// column of zeros, every value in scientific notation (edge values survive the round trip).
pub fn write_rows_csv(path: &std::path::Path, rows: &[Vec<f32>]) {
    let width = rows.first().map_or(0, Vec::len);
    let mut csv: String = (0..width).map(|f| format!("f{f},")).collect::<String>() + "label\n";
    for row in rows {
        let values: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
        csv.push_str(&format!("{},0\n", values.join(",")));
    }
    std::fs::write(path, csv).expect("writing the rows");
}
