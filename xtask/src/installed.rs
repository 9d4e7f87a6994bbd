//! dropship as a user has it after the README's install command, the clone gone: a copy of the
//! working tree is installed with `cargo install --locked --path host`, the copy deleted, and every
//! kind of command run from an empty directory, `validate --device qemu` included (the firmware
//! builds from the sources the program carries, unpacked into a fresh cache directory).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::root;

/// Runs the whole check in a temporary directory; `target_dir` keeps the install's build between
/// runs (it compiles candle and tract for the one package, as a user's install does).
pub fn check(target_dir: &Path) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("dropship-installed").tempdir()?;
    let clone = tmp.path().join("clone");
    copy_working_tree(&clone)?;
    let prefix = tmp.path().join("prefix");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "--locked", "--path"])
        .arg(clone.join("host"))
        .arg("--root")
        .arg(&prefix)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("cannot run cargo install")?;
    ensure!(status.success(), "cargo install --path host failed");
    std::fs::remove_dir_all(&clone)?;
    ensure!(!clone.exists(), "the clone is gone");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work)?;
    let dropship =
        Installed { program: prefix.join("bin/dropship"), work: work.clone(), cache: tmp.path().join("cache") };
    dropship.run(&["train", "--hidden", "16", "--epochs", "5", "--dropout", "0.2", "--quiet", "--out", "run"])?;
    dropship.run(&["export", "run/dropout", "-o", "model.dsm"])?;
    dropship.run(&["quantize", "run/dropout", "-o", "model-int8.dsm"])?;
    dropship.run(&["inspect", "model.dsm"])?;
    dropship.run(&["generate", "model.dsm", "-o", "model.rs", "--serving"])?;
    for artifact in ["model.dsm", "model-int8.dsm"] {
        let out = dropship.run(&["validate", artifact, "run/test.csv", "--device", "qemu", "--profile"])?;
        let rows = out.lines().find_map(|l| l.strip_prefix("rows: ")).context("validate printed its rows")?;
        let (all, identical) = rows.split_once(", bit-identical to the host: ").context("a rows line")?;
        ensure!(all == identical, "{artifact}: {rows}");
        println!("installed, the clone gone: {artifact} validated on QEMU, rows {all}/{identical} bit-identical");
    }
    ensure!(dropship.cache.join("dropship").read_dir()?.count() > 0, "the firmware sources were unpacked in the cache");
    Ok(())
}

/// The installed program, run from `work` with its cache in `cache`.
struct Installed {
    program: PathBuf,
    work: PathBuf,
    cache: PathBuf,
}

impl Installed {
    /// Runs `dropship args...`; its stdout, or an error with both outputs.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.program)
            .args(args)
            .current_dir(&self.work)
            .env("XDG_CACHE_HOME", &self.cache)
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!("dropship {} failed:\n{stdout}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(stdout)
    }
}

/// Copies the files git tracks or would track (untracked, not ignored) to `to`: the checkout as a
/// fresh clone of it would be, with the working tree's changes.
fn copy_working_tree(to: &Path) -> Result<()> {
    let listed = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root())
        .output()
        .context("cannot run git ls-files")?;
    ensure!(listed.status.success(), "git ls-files failed");
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = Path::new(std::str::from_utf8(name)?);
        let from = root().join(name);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let dest = to.join(name);
        std::fs::create_dir_all(dest.parent().context("a file in a directory")?)?;
        std::fs::copy(&from, &dest).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}
