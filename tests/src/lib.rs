//! Shared fixtures of the end-to-end tests: digits models trained with dropout, exported.
//!
//! Each model is trained once per test binary (about a second) with dropout, the regularizer whose
//! absence at inference matters most, and written under `target/dropship-tests/`: the course's
//! model (one hidden layer of 128, dropout 0.5) and a deeper one (64 → 64 → 32 → 10, dropout 0.5
//! and 0.3 on its two hidden layers).

use std::path::PathBuf;
use std::sync::OnceLock;

use dropship::data::{self, Dataset};
use dropship::export;
use dropship::infer::HostNetwork;
use dropship::model::Weights;
use dropship::output::write_file;
use dropship::prepare::{Prepared, SplitSpec};
use dropship::run::SavedModel;
use dropship::train::{self, Regularizer, TrainConfig};

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

fn build(hidden: &[usize], dropout: &[f32], name: &str) -> anyhow::Result<Fixture> {
    let data = data::load_csv(data::BUNDLED_DIGITS.as_ref(), &Default::default(), Default::default())?;
    let config = TrainConfig {
        hidden: hidden.to_vec(),
        regularizer: Regularizer::Dropout { rates: dropout.to_vec() },
        ..TrainConfig::default()
    };
    let prepared = Prepared::for_seed(&data, SplitSpec::default(), 0, &config.hidden)?;
    let trained = train::train(&prepared, &config, &prepared.initial, &mut |_| {})?;
    let saved = SavedModel {
        weights: trained.weights.clone(),
        standardization: prepared.standardization.clone(),
        provenance: format!("dropship-tests fixture: {}, seed 0", config.regularizer),
    };
    let artifact = export::artifact_bytes(&saved, "", &saved.provenance)?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dropship-tests").join(name);
    std::fs::create_dir_all(&dir)?;
    let artifact_path = dir.join("model.dsm");
    write_file(&artifact_path, &artifact)?;
    let net = HostNetwork::from_artifact(&dropship_shared::Artifact::parse(&artifact)?);
    let bytes = net.vectors(prepared.split.test.iter().map(|r| data.row(*r)))?;
    let vectors_path = dir.join("vectors.dsv");
    write_file(&vectors_path, &bytes)?;
    let x_test = prepared.standardized(&data, &prepared.split.test)?.values()?;
    Ok(Fixture { data, prepared, x_test, weights: trained.weights, artifact, artifact_path, vectors_path })
}
