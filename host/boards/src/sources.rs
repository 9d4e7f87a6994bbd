//! Where the firmware's sources are: the checkout this dropship was built from, or, for an
//! installed dropship whose checkout is gone, the copy built into it (`build.rs` packs it),
//! unpacked once into the user's cache directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The firmware workspace, the core, the generator and the board list, as a tar archive.
static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sources.tar"));

/// The repository root the firmware builds from: the checkout if it is still there, else the
/// built-in copy, unpacked into [`cache_dir`] on first use.
pub fn sources() -> Result<PathBuf> {
    let checkout = crate::root();
    if holds_sources(&checkout) {
        return Ok(checkout);
    }
    unpacked()
}

/// The user's cache directory for dropship: `$XDG_CACHE_HOME/dropship`, else `~/.cache/dropship`.
pub fn cache_dir() -> Result<PathBuf> {
    let base = match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(cache), _) if !cache.is_empty() => PathBuf::from(cache),
        (_, Some(home)) if !home.is_empty() => PathBuf::from(home).join(".cache"),
        _ => bail!("neither XDG_CACHE_HOME nor HOME is set: dropship has nowhere to keep its firmware sources"),
    };
    Ok(base.join("dropship"))
}

fn holds_sources(dir: &Path) -> bool {
    dir.join("firmware/Cargo.toml").is_file() && dir.join("shared/src/lib.rs").is_file()
}

/// The built-in sources in the cache, unpacked there first if they are not yet: into a directory
/// of their own, then renamed into place, so an interrupted unpacking is never taken for sources.
fn unpacked() -> Result<PathBuf> {
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(ARCHIVE, &mut hasher);
    let name = format!("sources-{}-{:016x}", env!("CARGO_PKG_VERSION"), std::hash::Hasher::finish(&hasher));
    let cache = cache_dir()?;
    let dir = cache.join(&name);
    if holds_sources(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let partial = cache.join(format!("{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    tar::Archive::new(ARCHIVE)
        .unpack(&partial)
        .with_context(|| format!("cannot unpack the firmware sources into {}", partial.display()))?;
    match std::fs::rename(&partial, &dir) {
        Ok(()) => {}
        // another dropship unpacked them first
        Err(_) if holds_sources(&dir) => {
            let _ = std::fs::remove_dir_all(&partial);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot move the firmware sources to {}", dir.display())),
    }
    eprintln!("unpacked the firmware sources into {}", dir.display());
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_sources_unpack_into_a_tree_the_firmware_builds_from() {
        let dir = tempfile::tempdir().unwrap();
        tar::Archive::new(ARCHIVE).unpack(dir.path()).unwrap();
        assert!(holds_sources(dir.path()));
        for file in
            ["firmware/Cargo.lock", "firmware/.cargo/config.toml", "firmware/boards.toml", "host/build/src/code.rs"]
        {
            assert!(dir.path().join(file).is_file(), "{file} is built in");
        }
        assert!(!dir.path().join("firmware/target").exists() && !dir.path().join("firmware/expected").exists());
        let workspace = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        assert!(workspace.contains("members = [\"shared\", \"shared/link\", \"host/build\", \"host/boards/list\"]"));
        assert!(workspace.contains("[workspace.package]"), "the manifests inherit from it");
    }
}
