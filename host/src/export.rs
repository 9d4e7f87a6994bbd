//! `dropship export`: a trained run becomes an artifact, dropout gone, nothing rescaled, no L2 trace.
//!
//! Inverted dropout scales the kept units by `1/(1-p)` during training, so the trained weights
//! are already the inference weights: export copies them as they are. The artifact format has no
//! field for dropout or for a regularizer; the run's regularizer survives only as provenance text.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::infer::HostNetwork;
use crate::run::SavedModel;

/// Encodes a saved model (with its standardization) as an artifact.
pub fn artifact_bytes(saved: &SavedModel, class_names: &str, provenance: &str) -> Result<Vec<u8>> {
    HostNetwork::from_saved(saved).to_artifact(class_names, provenance)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// `path` is either untouched or complete.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
