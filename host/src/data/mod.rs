//! Stage 1, data: CSV data sets (`dropship-formats`' loader, re-exported here), the split and
//! the standardization, augmentation of training rows. Depends only on the foundation
//! (`output`, `rng`, `input`, `limits`).

pub use dropship_formats::data::*;

/// The bundled digits, built into the program for a dropship installed without its checkout.
static DIGITS_CSV: &[u8] = include_bytes!("../../../data/digits.csv");

/// Where the bundled digits are read from: the checkout's `data/digits.csv`, or, once the checkout
/// is gone, the copy built into the program, written to the user's cache directory on first use.
pub fn bundled_digits() -> anyhow::Result<std::path::PathBuf> {
    let checkout = std::path::PathBuf::from(BUNDLED_DIGITS);
    if checkout.is_file() {
        return Ok(checkout);
    }
    let dir = dropship_boards::cache_dir()?.join(concat!("data-", env!("CARGO_PKG_VERSION")));
    let path = dir.join("digits.csv");
    if std::fs::read(&path).is_ok_and(|bytes| bytes == DIGITS_CSV) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    crate::output::write_file(&path, DIGITS_CSV)?;
    Ok(path)
}

pub mod augment;
pub mod split;
pub mod synthetic;
