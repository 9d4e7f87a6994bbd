//! Everything a command writes, under one policy: an existing output is refused unless
//! `--overwrite`; an output may not be one of the command's inputs, lie inside an input directory,
//! hold an input, or be another of its outputs — compared as the file system resolves them
//! (symbolic links, `..`) and by file identity, never by spelling; only regular files and
//! directories are replaced. Files and run directories are written to a partial path beside the
//! target (`.NAME.partial-PID…`) and moved into place in one step (a rename for a file, an atomic
//! exchange for a directory), so the target is either as it was or complete, and an old directory
//! is removed only once the new one is in place. Partials, and the parent directories a command
//! created, are removed on every error path, by the SIGINT/SIGTERM handler (which then exits
//! 130/143), and, if a process died without cleaning up, by the next run that writes there.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// What the signal handler undoes for this process.
#[derive(Clone, Debug, PartialEq)]
enum Undo {
    /// A partial file or directory: removed.
    Remove(PathBuf),
    /// A directory this process created for an output's parent: removed if still empty.
    EmptyDir(PathBuf),
    /// A child process (QEMU): killed.
    Kill(u32),
    /// An old output moved aside while the new one moves into place (where the file system has no
    /// atomic exchange): moved back if the target is missing, else removed.
    Restore { aside: PathBuf, target: PathBuf },
}

/// What this process would undo now; the signal handler does it.
static PENDING: Mutex<Vec<Undo>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<Undo>> {
    PENDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remove(path: &Path) {
    let _ = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        _ => std::fs::remove_file(path),
    };
}

fn undo(action: &Undo) {
    match action {
        Undo::Remove(path) => remove(path),
        Undo::EmptyDir(path) => {
            let _ = std::fs::remove_dir(path);
        }
        Undo::Restore { aside, target } => {
            if target.symlink_metadata().is_err() {
                let _ = std::fs::rename(aside, target);
            } else {
                remove(aside);
            }
        }
        Undo::Kill(pid) => {
            // SAFETY: `kill` has no memory preconditions; the pid is a child this process started
            // and has not waited for, so it cannot have been reused
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// On SIGINT or SIGTERM, undoes what this process has pending (partial outputs removed, created
/// parent directories removed when empty, child processes killed) and exits with 128 + the
/// signal's number (130, 143). Call once, first thing in `main`.
pub fn clean_up_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // holding the lock keeps the main thread from moving a partial into place meanwhile
            let actions = pending();
            // the main thread may still be writing into a partial directory: retry briefly
            for _ in 0..50 {
                actions.iter().rev().for_each(undo);
                let left = actions.iter().any(|a| matches!(a, Undo::Remove(p) if p.symlink_metadata().is_ok()));
                if !left {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// A child process killed if this process is interrupted (SIGINT/SIGTERM) while it runs, and
/// when the guard is dropped, on any exit path.
pub struct KillOnExit {
    child: std::process::Child,
}

impl KillOnExit {
    /// Guards `child`.
    pub fn new(child: std::process::Child) -> Self {
        pending().push(Undo::Kill(child.id()));
        Self { child }
    }

    /// The child's exit status if it has exited (it is then no longer killed on a signal: its
    /// process id may be reused).
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            let pid = self.child.id();
            pending().retain(|a| a != &Undo::Kill(pid));
        }
        Ok(status)
    }
}

impl Drop for KillOnExit {
    fn drop(&mut self) {
        let pid = self.child.id();
        pending().retain(|a| a != &Undo::Kill(pid));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed if this process is interrupted (SIGINT/SIGTERM); its owner
/// removes it otherwise (a `tempfile::TempDir` on drop).
pub struct RemoveOnSignal(PathBuf);

impl RemoveOnSignal {
    /// Registers `dir`.
    pub fn new(dir: &Path) -> Self {
        pending().push(Undo::Remove(dir.to_path_buf()));
        Self(dir.to_path_buf())
    }
}

impl Drop for RemoveOnSignal {
    fn drop(&mut self) {
        pending().retain(|a| a != &Undo::Remove(self.0.clone()));
    }
}

/// `path` as the file system resolves it: absolute, its longest existing ancestor canonicalized
/// (symbolic links and `..` resolved), the components after it normalized. A symbolic link that
/// leads nowhere, on the way or at the end, is an error: no one can tell what writing there means.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let components: Vec<Component<'_>> = absolute.components().collect();
    // the longest prefix that exists (the root always does)
    let mut existing = components.len();
    while existing > 1 {
        let prefix: PathBuf = components[..existing].iter().collect();
        match std::fs::symlink_metadata(&prefix) {
            Ok(m) if m.file_type().is_symlink() && std::fs::metadata(&prefix).is_err() => {
                bail!("{} leads through {}, a symbolic link to nothing", path.display(), prefix.display())
            }
            Ok(_) => break,
            Err(_) => existing -= 1,
        }
    }
    let head: PathBuf = components[..existing].iter().collect();
    let mut resolved = std::fs::canonicalize(&head).with_context(|| format!("cannot resolve {}", head.display()))?;
    for component in &components[existing..] {
        match component {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => resolved.push(name),
            _ => {}
        }
    }
    Ok(resolved)
}

/// The (device, inode) of an existing file or directory.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One output of a command, resolved, with the spelling the user gave for messages.
struct Output<'a> {
    given: &'a Path,
    resolved: PathBuf,
}

/// A command's inputs with their resolved paths (an input that does not exist is its own error
/// later: it stands as spelled, made absolute).
fn resolve_inputs<'a>(inputs: &[&'a Path]) -> Vec<(&'a Path, PathBuf)> {
    inputs
        .iter()
        .map(|i| (*i, resolve(i).unwrap_or_else(|_| std::path::absolute(i).unwrap_or_else(|_| i.to_path_buf()))))
        .collect()
}

/// Refuses an output that is an input, lies inside an input directory or holds an input, or that
/// is an existing regular file or directory without `overwrite` (or anything else at all), or
/// whose nearest existing ancestor is not a directory.
fn check_one(output: &Output<'_>, inputs: &[(&Path, PathBuf)], overwrite: bool, kind: Kind) -> Result<()> {
    let shown = output.given.display();
    for (input, resolved) in inputs {
        let same =
            *resolved == output.resolved || identity(resolved).is_some_and(|id| identity(&output.resolved) == Some(id));
        let also = if *input == output.given { String::new() } else { format!(" (as {})", input.display()) };
        if same {
            bail!("{shown} is an input of this command{also}: choose another output path");
        }
        if output.resolved.starts_with(resolved) {
            bail!("{shown} is inside {}, an input of this command: choose another output path", input.display());
        }
        if resolved.starts_with(&output.resolved) {
            bail!("{shown} holds {}, an input of this command: choose another output path", input.display());
        }
    }
    match std::fs::symlink_metadata(&output.resolved) {
        Ok(m) => {
            let fits = match kind {
                Kind::File => m.is_file(),
                Kind::Directory => m.is_dir(),
            };
            if !fits {
                let what = if m.is_dir() {
                    "a directory"
                } else if m.is_file() {
                    "a file"
                } else {
                    "not a regular file"
                };
                bail!("{shown} is {what}, which this command does not replace: choose another output path");
            }
            if !overwrite {
                bail!("{shown} already exists: choose another output path or pass --overwrite");
            }
        }
        Err(_) => {
            let mut ancestor = output.resolved.parent();
            while let Some(dir) = ancestor {
                if let Ok(m) = std::fs::metadata(dir) {
                    if !m.is_dir() {
                        bail!("{shown} cannot be written: {} is not a directory", dir.display());
                    }
                    break;
                }
                ancestor = dir.parent();
            }
        }
    }
    Ok(())
}

/// What an output is.
#[derive(Clone, Copy)]
enum Kind {
    File,
    Directory,
}

/// Checks a command's file outputs before it computes or writes anything: each is new (or
/// `overwrite`, and a regular file), none is, holds or lies inside one of `inputs`, no two are the
/// same file, and each can be created where it is.
pub fn check_outputs(outputs: &[&Path], inputs: &[&Path], overwrite: bool) -> Result<()> {
    let inputs = resolve_inputs(inputs);
    let mut seen: Vec<Output<'_>> = Vec::new();
    for given in outputs {
        let output = Output { given, resolved: resolve(given)? };
        if let Some(other) = seen.iter().find(|o| o.resolved == output.resolved) {
            bail!("{} and {} are the same file: give two outputs two paths", other.given.display(), given.display());
        }
        check_one(&output, &inputs, overwrite, Kind::File)?;
        seen.push(output);
    }
    Ok(())
}

/// A partial file or directory beside its target, with the parent directories made for it;
/// removed (the parents when empty) when dropped unless [`Partial::finish`] moved it into place.
struct Partial {
    path: PathBuf,
    created: Vec<PathBuf>,
}

impl Partial {
    /// A fresh partial beside `target` (resolved), made as an empty `kind` (a new file is
    /// returned open) and registered for removal in one step under the signal handler's lock, so a
    /// signal finds it either not yet made or registered; its missing parent directories are
    /// created and registered too.
    fn beside(target: &Path, kind: Kind) -> Result<(Self, Option<std::fs::File>)> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let parent = target.parent().context("an output needs a parent directory")?;
        let created = create_parents(parent)?;
        remove_stale_partials(target);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{}{}-{n}", partial_prefix(target), std::process::id()));
        let mut actions = pending();
        let made = match kind {
            Kind::File => std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map(Some),
            Kind::Directory => std::fs::create_dir(&path).map(|()| None),
        };
        let partial = Self { path, created };
        match made {
            Ok(file) => {
                actions.push(Undo::Remove(partial.path.clone()));
                Ok((partial, file))
            }
            Err(e) => {
                drop(actions);
                Err(e).with_context(|| format!("cannot write in {}", parent.display()))
            }
        }
    }

    /// Moves the partial onto `target` with `rename` (a file, or a directory where none is), or
    /// exchanges it with the directory there, which then becomes the partial and is removed:
    /// the old output stays whole until the new one is in place.
    fn finish(mut self, target: &Path, exchange: bool) -> Result<()> {
        let held = pending(); // the signal handler waits: the partial is either here or in place
        if exchange {
            match rename_exchange(&self.path, target) {
                Ok(()) => {}
                // a file system without the exchange (EINVAL), or a kernel without renameat2
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                    drop(held);
                    return self.finish_aside(target);
                }
                Err(e) => return Err(e).with_context(|| format!("cannot replace {}", target.display())),
            }
        } else {
            std::fs::rename(&self.path, target).with_context(|| format!("cannot write {}", target.display()))?;
        }
        drop(held);
        self.keep_parents();
        // dropping removes what is at the partial path now: nothing after a rename, the old
        // directory after an exchange
        Ok(())
    }

    /// [`Partial::finish`]'s exchange in two renames: the old directory moves aside (registered to
    /// be moved back on a signal), the new one into place, and the old one is removed only then;
    /// if the second rename fails, the old one moves back.
    fn finish_aside(mut self, target: &Path) -> Result<()> {
        let aside = self.path.with_file_name(format!(
            "{}-old",
            self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        let restore = Undo::Restore { aside: aside.clone(), target: target.to_path_buf() };
        {
            let mut actions = pending();
            std::fs::rename(target, &aside)
                .with_context(|| format!("cannot move the old {} aside", target.display()))?;
            actions.push(restore.clone());
        }
        let moved = std::fs::rename(&self.path, target);
        let mut actions = pending();
        actions.retain(|a| a != &restore);
        drop(actions);
        undo(&restore); // back into place if the new one is not there, else removed
        moved.with_context(|| format!("cannot write {}", target.display()))?;
        self.keep_parents();
        Ok(())
    }

    /// The parent directories made for this partial now hold the output: they stay.
    fn keep_parents(&mut self) {
        let created = std::mem::take(&mut self.created);
        pending().retain(|a| !matches!(a, Undo::EmptyDir(d) if created.contains(d)));
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        remove(&self.path);
        pending().retain(|a| a != &Undo::Remove(self.path.clone()));
        remove_empty(&self.created);
    }
}

/// Removes those of `dirs` that are empty, innermost first, and forgets them.
fn remove_empty(dirs: &[PathBuf]) {
    dirs.iter().rev().for_each(|d| undo(&Undo::EmptyDir(d.clone())));
    pending().retain(|a| !matches!(a, Undo::EmptyDir(d) if dirs.contains(d)));
}

/// Creates `dir` and its missing ancestors; returns the ones created, outermost first, each
/// registered for removal while empty.
fn create_parents(dir: &Path) -> Result<Vec<PathBuf>> {
    let missing: Vec<PathBuf> =
        dir.ancestors().take_while(|a| a.symlink_metadata().is_err()).map(Path::to_path_buf).collect();
    let mut created = Vec::new();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {
                pending().push(Undo::EmptyDir(d.clone()));
                created.push(d);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                remove_empty(&created);
                return Err(e).with_context(|| format!("cannot create {}", d.display()));
            }
        }
    }
    Ok(created)
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`).
fn rename_exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are NUL-terminated strings that outlive the call; AT_FDCWD with absolute or
    // working-directory-relative paths needs no open descriptor
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The longest file name most file systems take, in bytes.
const NAME_MAX: usize = 255;

/// `.NAME.partial-` for a target's file name; a name too long to leave room for the suffix is
/// shortened and given a digest of the whole name, so a 255-byte name can still be written.
fn partial_prefix(target: &Path) -> String {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // ".", ".partial-", a 10-digit pid, "-" and a counter: 40 bytes leave room
    if name.len() + 40 <= NAME_MAX {
        return format!(".{name}.partial-");
    }
    let digest = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut cut = NAME_MAX - 40 - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}~{digest:016x}.partial-", &name[..cut])
}

/// Removes partials of `target` left by processes that no longer run (killed, or out of memory).
fn remove_stale_partials(target: &Path) {
    let Ok(entries) = std::fs::read_dir(target.parent().unwrap_or(Path::new("/"))) else {
        return;
    };
    let prefix = partial_prefix(target);
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = pid.parse::<u32>().is_ok_and(|p| p == std::process::id() || Path::new("/proc").join(&pid).exists());
        if !alive {
            if file_name.ends_with("-old") {
                // an old output moved aside by a process killed before it put the new one in place
                undo(&Undo::Restore { aside: entry.path(), target: target.to_path_buf() });
            } else {
                remove(&entry.path());
            }
        }
    }
}

/// Writes `bytes` to `path` through a partial file and a rename. A file that is replaced keeps
/// its mode; a new one gets the usual mode (umask applied). A symbolic link at `path` is written
/// through (the file it names is replaced, the link stays).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = resolve(path)?;
    let existing = match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_file() => Some(m.permissions()),
        Ok(m) if m.is_dir() => bail!("{} is a directory, not a file", path.display()),
        Ok(_) => bail!("{} is not a regular file, which this command does not replace", path.display()),
        Err(_) => None,
    };
    let (partial, file) = Partial::beside(&target, Kind::File)?;
    let mut file = file.context("a partial file is opened")?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(permissions) = existing {
        file.set_permissions(permissions).with_context(|| format!("cannot keep the mode of {}", path.display()))?;
    }
    partial.finish(&target, false)
}

/// A directory being written (a run, a comparison, a sweep); removed on drop unless
/// [`Staging::commit`] moved it into place.
pub struct Staging {
    partial: Option<Partial>,
    target: PathBuf,
    given: PathBuf,
}

impl Staging {
    /// Prepares to write the directory `target`, refusing an existing one unless `overwrite`,
    /// anything at `target` that is not a directory, and a directory that holds, is or lies inside
    /// one of `inputs` (however they are spelled).
    pub fn new(target: &Path, overwrite: bool, inputs: &[&Path]) -> Result<Self> {
        let output = Output { given: target, resolved: resolve(target)? };
        check_one(&output, &resolve_inputs(inputs), overwrite, Kind::Directory).map_err(|e| {
            let text = e.to_string().replace("choose another output path", "choose another --out");
            anyhow::anyhow!(text)
        })?;
        let (partial, _) = Partial::beside(&output.resolved, Kind::Directory)?;
        Ok(Self { partial: Some(partial), target: output.resolved, given: target.to_path_buf() })
    }

    /// Where to write files now.
    pub fn path(&self) -> &Path {
        &self.partial.as_ref().expect("not committed yet").path
    }

    /// Moves the finished directory into place; an old one is exchanged with it atomically and
    /// removed only then. Returns the path as the user gave it.
    pub fn commit(mut self) -> Result<PathBuf> {
        let partial = self.partial.take().expect("committed once");
        let exchange = self.target.symlink_metadata().is_ok();
        partial.finish(&self.target, exchange)?;
        Ok(self.given.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

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

    /// Every spelling of the same place is the same place: `..`, a symbolic link to a directory,
    /// a hard link; an input inside the output directory is never lost (issue: `--out adir/../adir`
    /// deleted `adir` and the CSV in it).
    #[test]
    fn outputs_are_compared_as_the_file_system_resolves_them() {
        let dir = tempfile::tempdir().unwrap();
        let adir = dir.path().join("adir");
        std::fs::create_dir(&adir).unwrap();
        let data = adir.join("data.csv");
        std::fs::write(&data, b"a,label\n").unwrap();
        std::os::unix::fs::symlink(&adir, dir.path().join("alink")).unwrap();
        let dotted = adir.join("..").join("adir");
        for (out, input) in [(&dotted, data.clone()), (&adir, dir.path().join("alink/data.csv"))] {
            let e = Staging::new(out, true, &[&input]).err().unwrap().to_string();
            assert!(e.contains("an input of this command"), "{e}");
        }
        assert!(data.exists());
        // file outputs: the input itself through `..`, a symbolic link, a hard link; inside an input directory
        let hard = dir.path().join("hard.csv");
        std::fs::hard_link(&data, &hard).unwrap();
        let soft = dir.path().join("soft.csv");
        std::os::unix::fs::symlink(&data, &soft).unwrap();
        for out in [adir.join("../adir/data.csv"), hard, soft, adir.join("x.dsm")] {
            let e = check_outputs(&[&out], &[&data, &adir], true).unwrap_err().to_string();
            assert!(e.contains("an input of this command"), "{}: {e}", out.display());
        }
        // two outputs that are one file, spelled differently, neither existing yet
        let (x, x_dotted) = (dir.path().join("x.bin"), adir.join("../x.bin"));
        let e = check_outputs(&[&x_dotted, &x], &[], false).unwrap_err().to_string();
        assert!(e.contains("are the same file"), "{e}");
        // an output below a file is refused before anything is written
        let e = check_outputs(&[&x, &data.join("x.onnx")], &[], true).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
        assert!(!x.exists());
    }

    #[test]
    fn a_directory_is_replaced_in_one_step_and_the_old_one_only_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("old"), b"1").unwrap();
        let staging = Staging::new(&run.join("..").join("run"), true, &[]).unwrap();
        std::fs::write(staging.path().join("new"), b"2").unwrap();
        // until the commit, the old run is whole
        assert!(run.join("old").exists());
        staging.commit().unwrap();
        assert!(run.join("new").exists() && !run.join("old").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("run")]);
        // a failed run leaves neither a partial nor the parents it created
        let deep = dir.path().join("a/b/run");
        let staging = Staging::new(&deep, false, &[]).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        drop(staging);
        assert!(!dir.path().join("a").exists());
        assert!(pending()
            .iter()
            .all(|a| !matches!(a, Undo::Remove(p) | Undo::EmptyDir(p) if p.starts_with(dir.path()))));
    }

    /// Where the file system has no atomic exchange: the old directory moves aside and back if
    /// the new one cannot move in; one left aside by a killed process is put back by the next
    /// writer, never removed.
    #[test]
    fn without_an_exchange_the_old_directory_moves_aside_and_is_never_lost() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("old"), b"1").unwrap();
        let (partial, _) = Partial::beside(&run, Kind::Directory).unwrap();
        std::fs::write(partial.path.join("new"), b"2").unwrap();
        partial.finish_aside(&run).unwrap();
        assert!(run.join("new").exists() && !run.join("old").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing left aside");
        // a process killed between its two renames left the old run aside and no run
        let aside = dir.path().join(".run.partial-4999999-0-old");
        std::fs::rename(&run, &aside).unwrap();
        let staging = Staging::new(&run, true, &[]).unwrap();
        assert!(run.join("new").exists(), "the next writer put the old run back");
        drop(staging);
        assert!(run.join("new").exists() && !aside.exists());
    }

    #[test]
    fn links_to_nothing_devices_and_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let dangling = dir.path().join("dangling.dsm");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for overwrite in [false, true] {
            let e = check_outputs(&[&dangling], &[], overwrite).unwrap_err().to_string();
            assert!(e.contains("symbolic link to nothing"), "{e}");
        }
        assert!(write_file(&dangling, b"x").is_err());
        assert!(dangling.symlink_metadata().unwrap().file_type().is_symlink());
        let e = check_outputs(&[Path::new("/dev/null")], &[], true).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(write_file(Path::new("/dev/null"), b"x").is_err());
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        // a link to a file is written through: the link stays
        let real = dir.path().join("real.dsm");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.dsm");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_file(&link, b"new").unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // the longest name the file system takes
        let long = dir.path().join("m".repeat(250) + ".dsm");
        write_file(&long, b"x").unwrap();
        assert_eq!(std::fs::read(&long).unwrap(), b"x");
        let long_dir = dir.path().join("r".repeat(255));
        let staging = Staging::new(&long_dir, false, &[]).unwrap();
        staging.commit().unwrap();
        assert!(long_dir.is_dir());
    }
}
