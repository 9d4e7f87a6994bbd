//! Training progress: an indicatif bar on a terminal, plain lines otherwise, nothing with `--quiet`.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::train::EpochRecord;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bars when stderr is a terminal, lines otherwise.
    Auto,
    /// Nothing.
    Quiet,
}

/// Shows the progress of the models trained in one command.
pub struct Reporter {
    bars: Option<MultiProgress>,
    quiet: bool,
}

impl Reporter {
    /// A reporter for `mode`, choosing bars or lines from the terminal.
    pub fn new(mode: Mode) -> Self {
        let quiet = mode == Mode::Quiet;
        let bars = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Self { bars, quiet }
    }

    /// Progress of one model over `epochs`.
    pub fn model(&self, name: &str, epochs: usize) -> Progress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(epochs as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>12} {bar:30} {pos:>3}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
            bar
        });
        Progress { name: name.to_string(), bar, lines: !self.quiet && self.bars.is_none(), epochs }
    }
}

/// A byte bar while a large CSV loads (files over 8 MiB, on a terminal, without `--quiet`).
pub struct LoadBar {
    bar: Option<ProgressBar>,
    name: String,
    enabled: bool,
}

impl LoadBar {
    /// Files smaller than this load without a bar.
    const MIN_BYTES: u64 = 8 << 20;

    /// A bar for loading `path`, shown once the file turns out to be large.
    pub fn new(path: &std::path::Path, quiet: bool) -> Self {
        let enabled = !quiet && std::io::stderr().is_terminal();
        Self { bar: None, name: path.display().to_string(), enabled }
    }

    /// `read` of `total` bytes are in.
    pub fn update(&mut self, read: u64, total: u64) {
        if !self.enabled || total < Self::MIN_BYTES {
            return;
        }
        let name = &self.name;
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("loading {prefix} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.clone());
            bar
        });
        bar.set_position(read);
    }

    /// The file is loaded (or failed): the bar goes away.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress of one model.
pub struct Progress {
    name: String,
    bar: Option<ProgressBar>,
    lines: bool,
    epochs: usize,
}

impl Progress {
    /// Called after every epoch.
    pub fn epoch(&self, r: &EpochRecord) {
        let msg = format!(
            "loss {:.4} acc {:.4} | val_loss {:.4} val_acc {:.4}",
            r.train_loss, r.train_score_running, r.val_loss, r.val_score
        );
        if let Some(bar) = &self.bar {
            bar.set_position(r.epoch as u64);
            bar.set_message(msg);
        } else if self.lines && (r.epoch.is_multiple_of(10) || r.epoch == 1 || r.epoch == self.epochs) {
            eprintln!("{:>12} epoch {:>3}/{}: {msg}", self.name, r.epoch, self.epochs);
        }
    }

    /// Called when the model is done.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
