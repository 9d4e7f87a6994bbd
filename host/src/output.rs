//! Everything a command writes, under one policy: an existing output is refused unless
//! `--overwrite`; an output may not be one of the command's inputs or another of its outputs; a
//! replaced file keeps its mode; files and run directories are written to a partial path beside
//! the target (`.NAME.partial-PID…`) and renamed into place, so the target is either as it was or
//! complete. Partials are removed on every error path, by the SIGINT/SIGTERM handler (which then
//! exits 130/143), and, if a process died without cleaning up, by the next run that writes there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Partial paths this process is writing now; the signal handler removes them.
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PARTIALS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remove(path: &Path) {
    let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
}

/// On SIGINT or SIGTERM, removes every partial output of this process and exits with 128 + the
/// signal's number (130, 143). Call once, first thing in `main`.
pub fn clean_up_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let partials: Vec<PathBuf> = registry().clone();
            // the main thread may still be writing into a partial directory: retry briefly
            for _ in 0..50 {
                partials.iter().for_each(|p| remove(p));
                if !partials.iter().any(|p| p.exists()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// A partial file or directory beside its target; removed when dropped unless [`Partial::finish`]
/// moved it into place.
struct Partial {
    path: PathBuf,
}

impl Partial {
    /// A fresh partial path for `target`, registered for removal.
    fn beside(target: &Path) -> Result<(Self, PathBuf)> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let parent = parent_of(target);
        std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
        remove_stale_partials(target);
        let name = name_of(target)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{}{}-{n}", partial_prefix(&name), std::process::id()));
        registry().push(path.clone());
        Ok((Self { path: path.clone() }, path))
    }

    /// Renames the partial onto `target`.
    fn finish(self, target: &Path) -> Result<()> {
        std::fs::rename(&self.path, target).with_context(|| format!("cannot write {}", target.display()))?;
        registry().retain(|p| p != &self.path);
        std::mem::forget(self);
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        remove(&self.path);
        registry().retain(|p| p != &self.path);
    }
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

fn name_of(path: &Path) -> Result<String> {
    Ok(path.file_name().with_context(|| format!("{} names no file", path.display()))?.to_string_lossy().into_owned())
}

fn partial_prefix(name: &str) -> String {
    format!(".{name}.partial-")
}

/// Removes partials of `target` left by processes that no longer run (killed, or out of memory).
fn remove_stale_partials(target: &Path) {
    let (Ok(name), Ok(entries)) = (name_of(target), std::fs::read_dir(parent_of(target))) else {
        return;
    };
    let prefix = partial_prefix(&name);
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = pid.parse::<u32>().is_ok_and(|p| p == std::process::id() || Path::new("/proc").join(&pid).exists());
        if !alive {
            remove(&entry.path());
        }
    }
}

/// True when `a` and `b` are the same file, or would be (neither exists yet, same path).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => ma.dev() == mb.dev() && ma.ino() == mb.ino(),
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// Checks a command's outputs before it computes anything: each is new (or `overwrite`), none is
/// one of `inputs`, no two are the same.
pub fn check_outputs(outputs: &[&Path], inputs: &[&Path], overwrite: bool) -> Result<()> {
    for (i, output) in outputs.iter().enumerate() {
        if let Some(input) = inputs.iter().find(|input| same_file(output, input)) {
            let also = if input == output { String::new() } else { format!(" (as {})", input.display()) };
            bail!("{} is an input of this command{also}: choose another output path", output.display());
        }
        if let Some(other) = outputs[..i].iter().find(|other| same_file(output, other)) {
            bail!("{} and {} are the same file: give two outputs two paths", other.display(), output.display());
        }
        if output.exists() && !overwrite {
            bail!("{} already exists: choose another output path or pass --overwrite", output.display());
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a partial file and a rename. A file that is replaced keeps
/// its mode; a new one gets the usual mode (umask applied).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let existing = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("{} is a directory, not a file", path.display()),
        Ok(m) => Some(m.permissions()),
        Err(_) => None,
    };
    let (partial, tmp) = Partial::beside(path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot write in {}", parent_of(path).display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(permissions) = existing {
        file.set_permissions(permissions).with_context(|| format!("cannot keep the mode of {}", path.display()))?;
    }
    partial.finish(path)
}

/// A directory being written (a run, a comparison, a sweep); removed on drop unless
/// [`Staging::commit`] moved it into place.
pub struct Staging {
    partial: Option<Partial>,
    tmp: PathBuf,
    target: PathBuf,
}

impl Staging {
    /// Prepares to write the directory `target`, refusing an existing one unless `overwrite`,
    /// anything at `target` that is not a directory, and a directory holding one of `inputs`.
    pub fn new(target: &Path, overwrite: bool, inputs: &[&Path]) -> Result<Self> {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        if let Some(input) = inputs.iter().find(|i| absolute(i).starts_with(absolute(target))) {
            bail!("{} holds {}, an input of this command: choose another --out", target.display(), input.display());
        }
        match std::fs::metadata(target) {
            Ok(m) if !m.is_dir() => {
                bail!("{} is a file, not an output directory: choose another --out", target.display())
            }
            Ok(_) if !overwrite => {
                bail!("{} already exists: choose another --out or pass --overwrite", target.display())
            }
            _ => {}
        }
        let (partial, tmp) = Partial::beside(target)?;
        std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self { partial: Some(partial), tmp, target: target.to_path_buf() })
    }

    /// Where to write files now.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished directory into place, replacing an old one only now.
    pub fn commit(mut self) -> Result<PathBuf> {
        let partial = self.partial.take().expect("committed once");
        if self.target.exists() {
            let (old, old_path) = Partial::beside(&self.target)?;
            std::fs::rename(&self.target, &old_path)
                .with_context(|| format!("cannot move the old {} aside", self.target.display()))?;
            partial.finish(&self.target)?;
            drop(old);
        } else {
            partial.finish(&self.target)?;
        }
        Ok(self.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_replaced_file_keeps_its_mode_and_nothing_partial_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.dsm");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_file(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_file(dir.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn outputs_may_not_be_inputs_twins_or_existing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("c.dsm");
        std::fs::write(&input, b"x").unwrap();
        let new = dir.path().join("new.dsm");
        let e = |r: Result<()>| r.unwrap_err().to_string();
        assert!(e(check_outputs(&[&input], &[&input], true)).contains("is an input"));
        assert!(e(check_outputs(&[&new, &new], &[], false)).contains("the same file"));
        assert!(e(check_outputs(&[&input], &[], false)).contains("already exists"));
        check_outputs(&[&input], &[], true).unwrap();
        check_outputs(&[&new], &[&input], false).unwrap();
    }

    #[test]
    fn partials_of_dead_processes_are_removed_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        // no process has this id (above the kernel's pid_max)
        let stale = dir.path().join(".run.partial-4999999-0");
        std::fs::create_dir(&stale).unwrap();
        let staging = Staging::new(&target, false, &[]).unwrap();
        assert!(!stale.exists(), "the stale partial was removed");
        std::fs::write(staging.path().join("a"), b"1").unwrap();
        staging.commit().unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"1");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("run")]);
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(Staging::new(&file, true, &[]).err().unwrap().to_string().contains("is a file"));
        let data = target.join("data.csv");
        std::fs::write(&data, b"a,label\n").unwrap();
        let e = Staging::new(&target, true, &[&data]).err().unwrap().to_string();
        assert!(e.contains("an input of this command"), "{e}");
    }
}
