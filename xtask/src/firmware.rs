//! Building the two firmwares with a model artifact and test vectors embedded.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::toolchain::{self, Route, TARGET};

/// The boards dropship builds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// QEMU mps2-an386 (Cortex-M4F), the embedded default.
    Qemu,
    /// Nordic nRF52840-DK, flashed with cargo embed.
    Nrf52840dk,
}

impl Board {
    /// The board's short name (`qemu`, `nrf52840dk`).
    pub fn name(self) -> &'static str {
        match self {
            Board::Qemu => "qemu",
            Board::Nrf52840dk => "nrf52840dk",
        }
    }

    /// The firmware package (and binary) name.
    pub fn package(self) -> &'static str {
        match self {
            Board::Qemu => "dropship-qemu",
            Board::Nrf52840dk => "dropship-nrf52840dk",
        }
    }
}

/// The firmware workspace.
pub fn dir() -> PathBuf {
    crate::root().join("firmware")
}

/// The cargo command that builds `board`'s firmware (release) with `artifact` and `vectors`.
pub fn command(route: &Route, board: Board, artifact: &Path, vectors: &Path) -> std::process::Command {
    let mut cmd = toolchain::firmware_cargo(route, &dir());
    cmd.args(["build", "--release", "-p", board.package()])
        .args(toolchain::firmware_build_args(route))
        .env("DROPSHIP_ARTIFACT", artifact)
        .env("DROPSHIP_VECTORS", vectors)
        .env("DEFMT_LOG", "info");
    cmd
}

/// Builds `board`'s firmware (release) embedding `artifact` and `vectors`; returns the path of a
/// copy of the ELF that belongs to this artifact and these vectors, so builds of other models (tests
/// run in parallel threads) cannot replace it before it runs.
pub fn build(route: &Route, board: Board, artifact: &Path, vectors: &Path) -> Result<PathBuf> {
    static ONE_BUILD_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_BUILD_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let artifact = std::path::absolute(artifact)?;
    let vectors = std::path::absolute(vectors)?;
    let status = command(route, board, &artifact, &vectors)
        .status()
        .with_context(|| format!("cannot run cargo for {}", board.package()))?;
    if !status.success() {
        bail!("building {} failed (toolchain: {})", board.package(), toolchain::describe(route));
    }
    let built = dir().join("target").join(TARGET).join("release").join(board.package());
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(&artifact, &vectors), &mut hasher);
    let copies = dir().join("target").join("models");
    std::fs::create_dir_all(&copies)?;
    let copy = copies.join(format!("{}-{:016x}.elf", board.package(), std::hash::Hasher::finish(&hasher)));
    std::fs::copy(&built, &copy).with_context(|| format!("cannot copy {} to {}", built.display(), copy.display()))?;
    Ok(copy)
}
