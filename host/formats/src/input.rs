//! Opening a user's input files: regular files only (a FIFO with no writer would block for ever,
//! a device such as `/dev/zero` never ends), read whole only below a size limit, and CSV lines
//! bounded so a file without line ends is refused instead of read into one huge line.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The largest input file read whole (an artifact, an ONNX model, a run's weights): 2 GiB, the
/// largest protobuf message and far above the largest artifact.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// The longest CSV line: 4,097 fields of up to 255 bytes.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Refuses anything at `path` that is not a regular file (following symbolic links), with a
/// message naming it; a path that does not exist gives the usual "cannot read" error later.
pub fn check_regular(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            let what = if m.is_dir() { "a directory" } else { "not a regular file (a device, FIFO or socket)" };
            Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} is {what}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Reads the regular file at `path` whole, refusing a larger one than [`MAX_FILE_BYTES`].
pub fn read(path: &Path) -> Result<Vec<u8>> {
    check_regular(path)?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!("{} is larger than {} GiB, more than any model dropship reads", path.display(), MAX_FILE_BYTES >> 30);
    }
    Ok(bytes)
}

/// A reader that fails once more than [`MAX_LINE_BYTES`] pass without a line end.
pub struct LineBound<R> {
    inner: R,
    since_line_end: usize,
    line: u64,
}

impl<R> LineBound<R> {
    /// Bounds the lines of `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, since_line_end: 0, line: 1 }
    }
}

impl<R: Read> Read for LineBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for b in &buf[..n] {
            if *b == b'\n' {
                self.since_line_end = 0;
                self.line += 1;
            } else {
                self.since_line_end += 1;
            }
        }
        if self.since_line_end > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} MiB: not a CSV file dropship reads",
                    self.line,
                    MAX_LINE_BYTES >> 20
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_and_lines_are_bounded() {
        assert!(check_regular(Path::new("/dev/zero")).unwrap_err().to_string().contains("not a regular file"));
        assert!(read(Path::new("/")).unwrap_err().to_string().contains("a directory"));
        let mut long = LineBound::new(std::io::repeat(b'1').take(3 << 20));
        let e = std::io::copy(&mut long, &mut std::io::sink()).unwrap_err().to_string();
        assert!(e.contains("line 1 is longer than 1 MiB"), "{e}");
        let ok = b"a,b\n".repeat(1 << 19);
        assert_eq!(std::io::copy(&mut LineBound::new(&ok[..]), &mut std::io::sink()).unwrap(), ok.len() as u64);
    }
}
