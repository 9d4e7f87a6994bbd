//! Finding, or setting up, a toolchain that builds firmware on this machine, for every target of
//! the board list (Cortex-M4F, M33, M0, RISC-V).
//!
//! Two routes build the same firmware:
//! - **rustup**: the targets installed with rustup, linked by `rust-lld` (what a laptop uses:
//!   `rustup target add thumbv7em-none-eabihf`, and the other boards' targets for them);
//! - **debian**: where rustup cannot download targets, Debian's `rustc-web` with its standard
//!   library source (`rust-web-src`) builds `core` for any target (`build-std`);
//!   `arm-none-eabi-gcc` links Arm firmware, `ld.lld` (Debian's `lld`) RISC-V firmware.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The embedded default's target (the Cortex-M4F): every route builds at least this one.
pub const TARGET: &str = "thumbv7em-none-eabihf";
const DEBIAN_PACKAGES: &[&str] = &["rustc-web", "rust-web-src", "cargo-web", "gcc-arm-none-eabi", "lld"];
/// The QEMU programs of every board's architecture, and the Debian packages that hold them.
const QEMU_PACKAGES: &[(&str, &str)] =
    &[("qemu-system-arm", "qemu-system-arm"), ("qemu-system-riscv32", "qemu-system-misc")];

/// How firmware gets built here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// rustup's installed target and rust-lld.
    Rustup,
    /// Debian's rustc-web, build-std and arm-none-eabi-gcc.
    Debian,
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// True when rustup's active toolchain has `target`'s `core` and `rust-lld`.
fn rustup_has(target: &str) -> bool {
    let Some(sysroot) = output(Command::new("rustc").args(["--print", "sysroot"]).env_remove("RUSTUP_TOOLCHAIN"))
    else {
        return false;
    };
    let host = output(Command::new("rustc").args(["--print", "host-tuple"]).env_remove("RUSTUP_TOOLCHAIN"))
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into());
    let rustlib = Path::new(&sysroot).join("lib/rustlib");
    rustlib.join(target).join("lib").is_dir() && rustlib.join(&host).join("bin/rust-lld").is_file()
}

fn rustup_ready() -> bool {
    rustup_has(TARGET)
}

fn debian_ready() -> bool {
    Path::new("/usr/bin/cargo").is_file()
        && Path::new("/usr/bin/rustc").is_file()
        && Path::new("/usr/lib/rustlib/src/rust/library/core").is_dir()
        && on_path("arm-none-eabi-gcc")
        && on_path("ld.lld")
}

/// Whether `route` builds firmware for `target` here; the command that makes it so, otherwise.
pub fn check_target(route: &Route, target: &str) -> Result<()> {
    match route {
        Route::Debian => Ok(()),
        Route::Rustup if rustup_has(target) => Ok(()),
        Route::Rustup => bail!("the {target} target is not installed: run `rustup target add {target}`"),
    }
}

/// The route that works on this machine now, if any.
pub fn detect() -> Option<Route> {
    if rustup_ready() {
        Some(Route::Rustup)
    } else if debian_ready() {
        Some(Route::Debian)
    } else {
        None
    }
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).as_deref() == Some("0")
}

fn apt_install(packages: &[&str]) -> Result<()> {
    eprintln!("installing {} with apt-get", packages.join(" "));
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {} failed", packages.join(" "));
    }
    Ok(())
}

fn instructions() -> String {
    format!(
        "no toolchain for {TARGET} could be set up here. Run one of:\n\
         \n    rustup target add {TARGET}                      (a machine with rustup and internet)\n\
         \n    sudo apt-get install {} qemu-system-arm         (Debian 12 and later)\n\
         \nthen run the command again.",
        DEBIAN_PACKAGES.join(" ")
    )
}

/// The route that works here, without installing anything (the tests use this: installing is
/// `cargo xtask setup`'s job); otherwise an error saying what to run.
pub fn find() -> Result<Route> {
    detect().with_context(|| format!("no firmware toolchain for {TARGET} here: run `cargo xtask setup` first"))
}

/// The compiler that builds firmware on `route`, as `rustc --version` prints it.
pub fn rustc_version(route: &Route) -> String {
    let rustc = match route {
        Route::Rustup => "rustc",
        Route::Debian => "/usr/bin/rustc",
    };
    output(Command::new(rustc).arg("--version").env_remove("RUSTUP_TOOLCHAIN")).unwrap_or_else(|| "rustc ?".into())
}

/// Finds a route, installing one if needed: Debian's packages where this is root with apt-get,
/// else `rustup target add`; otherwise an error with the exact commands to run.
pub fn ensure() -> Result<Route> {
    let route = ensure_default()?;
    if route == Route::Rustup {
        // the other boards' targets, where rustup can add them (a board whose target is missing
        // is refused with the command when it is built)
        for target in dropship_board_list::boards().iter().map(|b| b.target.as_str()) {
            if !rustup_has(target) {
                eprintln!("running: rustup target add {target}");
                let _ = Command::new("timeout").args(["300", "rustup", "target", "add", target]).status();
            }
        }
    }
    Ok(route)
}

/// [`ensure`] for the embedded default's target.
fn ensure_default() -> Result<Route> {
    if let Some(route) = detect() {
        return Ok(route);
    }
    if is_root() && on_path("apt-get") {
        match apt_install(DEBIAN_PACKAGES) {
            Ok(()) if debian_ready() => return Ok(Route::Debian),
            Ok(()) => {
                eprintln!("the Debian packages installed, but the toolchain is still incomplete")
            }
            Err(e) => eprintln!("{e}; trying rustup"),
        }
    }
    if on_path("rustup") {
        eprintln!("running: rustup target add {TARGET}");
        let status = Command::new("timeout").args(["300", "rustup", "target", "add", TARGET]).status();
        if status.is_ok_and(|s| s.success()) && rustup_ready() {
            return Ok(Route::Rustup);
        }
    }
    bail!(instructions())
}

/// Makes sure QEMU for every board's architecture (`qemu-system-arm`, `qemu-system-riscv32`) is
/// there, installing it where possible.
pub fn ensure_qemu() -> Result<()> {
    let missing = || QEMU_PACKAGES.iter().filter(|(program, _)| !on_path(program)).collect::<Vec<_>>();
    if missing().is_empty() {
        return Ok(());
    }
    if is_root() && on_path("apt-get") {
        apt_install(&missing().iter().map(|(_, package)| *package).collect::<Vec<_>>())?;
        if missing().is_empty() {
            return Ok(());
        }
    }
    let packages: Vec<&str> = missing().iter().map(|(_, package)| *package).collect();
    bail!(
        "{} missing: install it (Debian/Ubuntu: sudo apt-get install {}; macOS: brew install qemu) and run the command again",
        missing().iter().map(|(program, _)| *program).collect::<Vec<_>>().join(" and "),
        packages.join(" ")
    )
}

/// A `cargo` command for the firmware workspace on `route`, run in `firmware/` so that its
/// `.cargo/config.toml` applies, with the variables of an outer `cargo` removed.
pub fn firmware_cargo(route: &Route, firmware_dir: &Path) -> Command {
    let mut cmd = match route {
        Route::Rustup => Command::new("cargo"),
        Route::Debian => Command::new("/usr/bin/cargo"),
    };
    cmd.current_dir(firmware_dir);
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTDOC",
    ] {
        cmd.env_remove(var);
    }
    if *route == Route::Debian {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![PathBuf::from("/usr/bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).expect("valid PATH"));
        cmd.env("RUSTC_BOOTSTRAP", "1");
    }
    cmd
}

/// Arguments `cargo build` needs on `route` for `target` besides the package. The path of the
/// sources (`sources`, the repository root) is remapped, so the firmware's bytes (its golden sizes
/// included) do not depend on where the repository was cloned.
pub fn firmware_build_args(route: &Route, target: &str, sources: &Path) -> Vec<String> {
    let remap = format!("\"--remap-path-prefix={}=/dropship\"", sources.display());
    let mut args = vec!["--target".to_string(), target.to_string()];
    match route {
        Route::Rustup => args.extend(["--config".into(), format!("target.{target}.rustflags=[{remap}]")]),
        Route::Debian if target.starts_with("riscv") => args.extend([
            "-Zbuild-std=core".into(),
            "--config".into(),
            format!("target.{target}.linker=\"ld.lld\""),
            "--config".into(),
            format!("target.{target}.rustflags=[{remap}]"),
        ]),
        Route::Debian => args.extend([
            "-Zbuild-std=core".into(),
            "--config".into(),
            format!("target.{target}.linker=\"arm-none-eabi-gcc\""),
            "--config".into(),
            format!("target.{target}.rustflags=[\"-C\", \"link-arg=-nostartfiles\", {remap}]"),
        ]),
    }
    args
}

/// A short description for logs.
pub fn describe(route: &Route) -> &'static str {
    match route {
        Route::Rustup => "rustup targets + rust-lld",
        Route::Debian => "Debian rustc-web + build-std + arm-none-eabi-gcc / ld.lld",
    }
}
