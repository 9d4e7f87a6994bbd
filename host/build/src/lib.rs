//! Turns a dropship artifact into Rust for your own firmware, the way prost-build turns a `.proto`
//! into Rust: one call in `build.rs` writes a typed, `no_std`, heap-free network into `OUT_DIR`,
//! which your code `include!`s.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), dropship_build::Error> {
//!     dropship_build::Model::from_artifact("model.dsm").generate()
//! }
//! ```
//!
//! ```text
//! // src/main.rs (depends on dropship-shared; and dropship-link with `.serving(true)`)
//! mod model {
//!     include!(concat!(env!("OUT_DIR"), "/model.rs"));
//! }
//! let mut net = model::Model::new();
//! match net.predict(&features) {
//!     dropship_shared::Prediction::Class { class, .. } => { /* ... */ }
//!     _ => {}
//! }
//! ```
//!
//! The generated module has const shapes (`INPUT`, `OUTPUTS`), the weights as `static`s in flash,
//! the input standardization, the task and its threshold (`TASK`, `THRESHOLD`), the artifact's
//! digest and footprint (`DIGEST`, `SHAPE`), and `Model`: `Model::new()` holds the working memory
//! of one inference; `predict(&input)` answers as the task says (`dropship_shared::Prediction`),
//! `infer(&input, &mut outputs)` gives the raw outputs and the class. With [`Model::serving`], also
//! `Server` and `Model::served`, for `dropship_link::serve` (`dropship validate --port`).
//! The same code can be written to a file and committed (`dropship generate model.dsm -o model.rs`).

mod code;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a model could not be generated: the file and what is wrong with it.
pub struct Error {
    path: PathBuf,
    reason: String,
}

impl Error {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), reason: reason.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

// What a build script returning `Err` prints: the same sentence.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// The code for the artifact `bytes` (named `name` in the header comment; `serving` as
/// [`Model::serving`]); why not, otherwise (`dropship generate` reads and writes the files itself).
pub fn code_for(bytes: &[u8], name: &str, serving: bool, kernels: Kernels) -> Result<String, String> {
    code::generate(bytes, name, serving, kernels == Kernels::Dsp)
}

/// Which int8 kernels the target runs, which decides how int8 weights are laid out in flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// A Cortex-M with Arm's DSP extension (M4, M7, M33): `SMLAD` on paired weights.
    Dsp,
    /// Any other core (Cortex-M0/M0+/M3, RISC-V, the host): the portable kernel on blocked weights.
    Portable,
}

impl Kernels {
    /// The kernels of the target cargo is building for, in a build script (`CARGO_CFG_TARGET_*`);
    /// [`Kernels::Dsp`] elsewhere (the paired form runs everywhere, fastest on the DSP extension).
    pub fn of_build_target() -> Self {
        let arch = std::env::var("CARGO_CFG_TARGET_ARCH").ok();
        let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
        match arch.as_deref() {
            None => Kernels::Dsp,
            Some("arm") if features.split(',').any(|f| f == "dsp") => Kernels::Dsp,
            Some(_) => Kernels::Portable,
        }
    }
}

/// A model to generate Rust for.
#[derive(Clone, Debug)]
pub struct Model {
    artifact: PathBuf,
    serving: bool,
    cargo: bool,
    kernels: Kernels,
}

impl Model {
    /// The artifact `dropship export` or `dropship quantize` wrote (a relative path is relative to
    /// the build script's crate, as cargo runs it).
    pub fn from_artifact(path: impl AsRef<Path>) -> Self {
        Self { artifact: path.as_ref().to_path_buf(), serving: false, cargo: true, kernels: Kernels::of_build_target() }
    }

    /// Also generate `Server` and `Model::served`, the model served to `dropship validate` over a
    /// serial link (the crate then depends on `dropship-link`).
    pub fn serving(mut self, on: bool) -> Self {
        self.serving = on;
        self
    }

    /// The int8 kernels the target runs (by default those of the target the build script builds
    /// for, [`Kernels::of_build_target`]).
    pub fn kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the artifact (on by default; off outside a
    /// build script).
    pub fn cargo_directives(mut self, on: bool) -> Self {
        self.cargo = on;
        self
    }

    /// The generated code.
    pub fn code(&self) -> Result<String, Error> {
        if self.cargo {
            println!("cargo:rerun-if-changed={}", self.artifact.display());
        }
        let bytes =
            std::fs::read(&self.artifact).map_err(|e| Error::new(&self.artifact, format!("cannot read it ({e})")))?;
        let name = self.artifact.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        code_for(&bytes, &name, self.serving, self.kernels).map_err(|reason| Error::new(&self.artifact, reason))
    }

    /// Writes the code to `model.rs` in cargo's `OUT_DIR`, for `include!(concat!(env!("OUT_DIR"),
    /// "/model.rs"))`.
    pub fn generate(&self) -> Result<(), Error> {
        let out = std::env::var_os("OUT_DIR")
            .ok_or_else(|| Error::new(&self.artifact, "OUT_DIR is not set: generate() runs in a build script"))?;
        self.write_to(Path::new(&out).join("model.rs"))
    }

    /// Writes the code to `path` (replacing it whole: a failed write leaves the old file).
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let code = self.code()?;
        let partial = path.with_extension("rs.partial");
        std::fs::write(&partial, code)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| Error::new(path, format!("cannot write it ({e})")))
    }

    /// What the model takes on a device, to check it against a board's memory.
    pub fn footprint(&self) -> Result<dropship_shared::footprint::Footprint, Error> {
        let bytes =
            std::fs::read(&self.artifact).map_err(|e| Error::new(&self.artifact, format!("cannot read it ({e})")))?;
        let artifact = dropship_shared::Artifact::parse(&bytes)
            .map_err(|e| Error::new(&self.artifact, format!("not a valid dropship artifact: {e}")))?;
        Ok(dropship_shared::footprint::Footprint::of(&artifact))
    }
}
