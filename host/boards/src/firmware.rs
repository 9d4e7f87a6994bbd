//! Building a board's firmware with a model artifact compiled in: the self-test (test vectors
//! embedded, checked on the device) or the serving firmware (rows arrive over a serial link).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dropship_board_list::BoardSpec;
use std::sync::OnceLock;

use crate::toolchain::{self, Route};

/// A board dropship builds for: an entry of the one list, `firmware/boards.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board(&'static BoardSpec);

impl Board {
    /// Every board, in the list's order.
    pub fn all() -> &'static [Board] {
        static ALL: OnceLock<Vec<Board>> = OnceLock::new();
        ALL.get_or_init(|| dropship_board_list::boards().iter().map(Board).collect())
    }

    /// The board of this name.
    pub fn named(name: &str) -> Option<Board> {
        Self::all().iter().copied().find(|b| b.name() == name)
    }

    /// The board of this name that QEMU emulates; otherwise a message listing those (for a
    /// command line's `--device`/`--board`).
    pub fn emulated(name: &str) -> Result<Board, String> {
        let emulated: Vec<Board> = Self::all().iter().copied().filter(|b| b.0.qemu.is_some()).collect();
        emulated.iter().copied().find(|b| b.name() == name).ok_or_else(|| {
            let names: Vec<&str> = emulated.iter().map(|b| b.name()).collect();
            format!("`{name}` is not a board QEMU emulates (these are: {})", names.join(", "))
        })
    }

    /// The embedded default: the first board QEMU emulates.
    pub fn qemu() -> Board {
        Self::all().iter().copied().find(|b| b.0.qemu.is_some()).expect("firmware/boards.toml lists a QEMU board")
    }

    /// Its entry in the list.
    pub fn spec(self) -> &'static BoardSpec {
        self.0
    }

    /// The board's short name (`qemu`, `nrf52840dk`).
    pub fn name(self) -> &'static str {
        &self.0.name
    }

    /// The firmware package (and self-test binary) name.
    pub fn package(self) -> String {
        self.0.package()
    }

    /// The binary of `image` for this board.
    pub fn binary(self, image: &Image<'_>) -> String {
        match image {
            Image::SelfTest { .. } => self.0.package(),
            Image::Serve => self.0.serve_binary(),
        }
    }
}

impl clap::ValueEnum for Board {
    fn value_variants<'a>() -> &'a [Self] {
        Board::all()
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.0.description.as_str()))
    }
}

/// Which firmware of a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Image<'a> {
    /// Runs the test vectors in this file (`dropship vectors`) and reports the verdict in its log.
    SelfTest {
        /// The vector file to embed.
        vectors: &'a Path,
    },
    /// Answers `dropship validate` over the board's serial port; no vectors in flash.
    Serve,
}

/// The firmware workspace (in the checkout, or in the unpacked built-in sources).
pub fn dir() -> Result<PathBuf> {
    Ok(crate::sources()?.join("firmware"))
}

/// The cargo command that builds `board`'s `image` (release) with `artifact` compiled in.
pub fn command(route: &Route, board: Board, artifact: &Path, image: &Image<'_>) -> Result<std::process::Command> {
    let sources = crate::sources()?;
    let mut cmd = toolchain::firmware_cargo(route, &sources.join("firmware"));
    cmd.args(["build", "--release", "-p", &board.package(), "--bin", &board.binary(image)])
        .args(toolchain::firmware_build_args(route, &board.spec().target, &sources))
        .env("DROPSHIP_ARTIFACT", artifact)
        .env("DEFMT_LOG", "info");
    match image {
        Image::SelfTest { vectors } => cmd.env("DROPSHIP_VECTORS", vectors),
        Image::Serve => cmd.env("DROPSHIP_VECTORS", "none"),
    };
    Ok(cmd)
}

/// Cargo builds of one workspace do not run side by side (tests build from parallel threads).
static ONE_BUILD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds `board`'s `image` (release) with `artifact` compiled in; returns the path of a copy of
/// the ELF that belongs to this artifact and image, so builds of other models (tests run in
/// parallel threads) cannot replace it before it runs.
pub fn build(route: &Route, board: Board, artifact: &Path, image: &Image<'_>) -> Result<PathBuf> {
    let _guard = ONE_BUILD_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let artifact = std::path::absolute(artifact)?;
    let vectors = match image {
        Image::SelfTest { vectors } => Some(std::path::absolute(vectors)?),
        Image::Serve => None,
    };
    let image = &match &vectors {
        Some(vectors) => Image::SelfTest { vectors },
        None => Image::Serve,
    };
    let binary = board.binary(image);
    toolchain::check_target(route, &board.spec().target)?;
    let status =
        command(route, board, &artifact, image)?.status().with_context(|| format!("cannot run cargo for {binary}"))?;
    if !status.success() {
        bail!("building {binary} failed (toolchain: {})", toolchain::describe(route));
    }
    copy_for(&dir()?, &board.spec().target, &binary, &(&artifact, image))
}

/// Builds the firmware crate at `project` (a user's own, outside dropship's workspaces, with its
/// own `.cargo/config.toml`; its `build.rs` reads `DROPSHIP_ARTIFACT`) with `artifact`; returns
/// the path of a copy of its ELF `binary` that belongs to this artifact.
pub fn build_project(route: &Route, project: &Path, binary: &str, artifact: &Path) -> Result<PathBuf> {
    let _guard = ONE_BUILD_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let artifact = std::path::absolute(artifact)?;
    let status = toolchain::firmware_cargo(route, project)
        .args(["build", "--release", "--bin", binary])
        .args(toolchain::firmware_build_args(route, toolchain::TARGET, &crate::root()))
        .env("DROPSHIP_ARTIFACT", &artifact)
        .status()
        .with_context(|| format!("cannot run cargo in {}", project.display()))?;
    if !status.success() {
        bail!("building {} failed (toolchain: {})", project.display(), toolchain::describe(route));
    }
    copy_for(project, toolchain::TARGET, binary, &artifact)
}

/// Copies the release ELF `binary` for `target` of the crate or workspace at `workspace` to a name
/// of its own for `key` (the artifact and image it was built with), so builds of other models
/// (tests run in parallel threads) cannot replace it before it runs.
fn copy_for(workspace: &Path, target: &str, binary: &str, key: &impl std::hash::Hash) -> Result<PathBuf> {
    let built = workspace.join("target").join(target).join("release").join(binary);
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    let copies = workspace.join("target").join("models");
    std::fs::create_dir_all(&copies)?;
    let copy = copies.join(format!("{binary}-{:016x}.elf", std::hash::Hasher::finish(&hasher)));
    std::fs::copy(&built, &copy).with_context(|| format!("cannot copy {} to {}", built.display(), copy.display()))?;
    Ok(copy)
}
