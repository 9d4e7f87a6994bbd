//! `dropship validate`: runs every row of a CSV on a device that serves the model (QEMU, or a
//! flashed board on a serial port) and compares every logit with the host's `shared` core, bit for
//! bit.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dropship_boards::firmware::{self, Board, Image};
use dropship_boards::toolchain;
use dropship_shared::Task;

use crate::data::{self, Header};
use crate::deploy::device_link::{DeviceInfo, Link, QemuSession};
use crate::network::{HostNetwork, InputForm};

/// Where the model runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Build this board's serving firmware for the artifact and run it under QEMU.
    Qemu(Board),
    /// Run a serving firmware already built (a user's own, serving through `dropship_link::serve`)
    /// under QEMU's machine for this board.
    QemuElf {
        /// The board QEMU emulates.
        board: Board,
        /// The firmware's ELF.
        elf: std::path::PathBuf,
    },
    /// A board already flashed with the serving firmware, on this serial port.
    Port {
        /// `/dev/ttyACM0` and the like.
        path: String,
        /// Baud rate.
        baud: u32,
    },
}

/// What a validation found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The artifact validated against.
    pub artifact: PathBuf,
    /// The rows' file.
    pub csv: PathBuf,
    /// The device, as it introduced itself.
    pub device: DeviceInfo,
    /// Rows run.
    pub rows: usize,
    /// Rows whose every logit (and so the class) is bit-identical to the host's.
    pub identical_rows: usize,
    /// The first rows that differ (0-based), at most 20.
    pub differing_rows: Vec<usize>,
    /// Largest difference of a logit from the host's, in units in the last place (0 when identical).
    pub max_ulp: u64,
    /// Rows where the device's class differs from the host's.
    pub class_differences: usize,
    /// Accuracy of the device's classes (a binary model's at its threshold), when the CSV has labels.
    pub device_accuracy: Option<f64>,
    /// Accuracy of the host's classes, when the CSV has labels.
    pub host_accuracy: Option<f64>,
    /// Mean cost of one inference on the device, in `device.cost_unit`.
    pub cost_per_inference: f64,
    /// The same per multiply-accumulate.
    pub cost_per_mac: f64,
    /// Rows per second over the link (all of them, round trip).
    pub rows_per_second: f64,
    /// Requests sent again after a corrupted, lost or late answer.
    pub retries: usize,
    /// What each stage of an inference cost on the device, on average (the input, each layer, the
    /// outputs); empty when the firmware does not count them.
    pub profile: Vec<StageCost>,
}

/// The mean cost of one stage of an inference on the device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageCost {
    /// `input` (standardizing, quantizing), `layer <i>: Dense(<in> -> <out>) <activation>`, or
    /// `outputs` (dequantizing, the class).
    pub stage: String,
    /// Its multiply-accumulates (0 but for layers).
    pub macs: usize,
    /// Its mean cost, in the device's `cost_unit`.
    pub cost: f64,
    /// Cost per multiply-accumulate (layers only).
    pub per_mac: Option<f64>,
}

impl Report {
    /// True when every row was bit-identical.
    pub fn all_identical(&self) -> bool {
        self.rows > 0 && self.identical_rows == self.rows
    }

    /// The profile as a table: each stage's mean cost, per MAC and share, and the total; `None`
    /// when the firmware does not count stages.
    pub fn profile_table(&self) -> Option<String> {
        if self.profile.is_empty() {
            return None;
        }
        let unit = &self.device.cost_unit;
        let total: f64 = self.profile.iter().map(|s| s.cost).sum();
        let width = self.profile.iter().map(|s| s.stage.len()).max().unwrap_or(0).max(5);
        let mut t = format!("profile ({unit} per inference, mean over {} rows):\n", self.rows);
        t += &format!("  {:<width$} {:>9} {:>12} {:>8} {:>6}\n", "stage", "MACs", unit, "per MAC", "share");
        for s in &self.profile {
            let per_mac = s.per_mac.map_or(String::new(), |p| format!("{p:.2}"));
            let macs = if s.macs > 0 { s.macs.to_string() } else { String::new() };
            let share = 100.0 * s.cost / total.max(1e-9);
            t += &format!("  {:<width$} {macs:>9} {:>12.0} {per_mac:>8} {share:>5.1}%\n", s.stage, s.cost);
        }
        let macs = self.device.macs;
        t += &format!(
            "  {:<width$} {macs:>9} {total:>12.0} {:>8.2} {:>5.1}%\n",
            "total",
            total / macs.max(1) as f64,
            100.0
        );
        Some(t)
    }

    /// The summary lines `dropship validate` prints.
    pub fn summary(&self) -> String {
        let d = &self.device;
        let mut s = format!(
            "device: {} firmware {} (protocol {}), model {:016x}: {} layers, {} inputs, {} classes, {} MACs\n",
            d.board, d.firmware, d.protocol, d.digest, d.layers, d.input, d.classes, d.macs
        );
        s += &format!("rows: {}, bit-identical to the host: {}", self.rows, self.identical_rows);
        if self.identical_rows < self.rows {
            s += &format!(
                " ({} differ, max {} ULP, {} with another class; first: {:?})",
                self.rows - self.identical_rows,
                self.max_ulp,
                self.class_differences,
                self.differing_rows
            );
        }
        s.push('\n');
        if let (Some(dev), Some(host)) = (self.device_accuracy, self.host_accuracy) {
            s += &format!("accuracy: device {dev:.4}, host {host:.4}\n");
        }
        if d.cost_unit == dropship_link::CostUnit::Uncounted.name() {
            s += "cost: not counted by this firmware\n";
        } else {
            s += &format!(
                "cost: {:.0} {} per inference, {:.2} per MAC\n",
                self.cost_per_inference, d.cost_unit, self.cost_per_mac
            );
        }
        s += &format!(
            "link: {:.1} rows/s{}\n",
            self.rows_per_second,
            if self.retries > 0 { format!(" ({} requests sent again)", self.retries) } else { String::new() }
        );
        s
    }
}

/// Options of one validation.
#[derive(Clone, Debug)]
pub struct Options {
    /// Name of the label column, if not the extra last one.
    pub label_column: Option<String>,
    /// Header detection.
    pub header: Header,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// Validates `artifact` on `target` with every row of `csv`.
pub fn validate(artifact: &Path, csv: &Path, target: &Target, options: &Options) -> Result<Report> {
    let (net, artifact_bytes) = HostNetwork::load(artifact)?;
    let data = data::load_csv_for_model(csv, net.input(), options.label_column.as_ref(), options.header)?;
    if let Some(note) = data::header_note(&data, options.header) {
        eprintln!("{note}");
    }
    let rows = Rows { net: &net, artifact, artifact_bytes: &artifact_bytes, data: &data, csv };
    if data.rows() == 0 {
        bail!("{} has no rows to validate", csv.display());
    }
    match target {
        Target::Qemu(board) => {
            let route = toolchain::find()?;
            eprintln!("building the {} serving firmware for {}", board.name(), artifact.display());
            let elf = firmware::build(&route, *board, artifact, &Image::Serve)?;
            run_under_qemu(*board, &elf, &rows, options)
        }
        Target::QemuElf { board, elf } => {
            if !elf.is_file() {
                bail!("{} is not a firmware file (build it first)", elf.display());
            }
            run_under_qemu(*board, elf, &rows, options)
        }
        Target::Port { path, baud } => {
            let port = serialport::new(path, *baud)
                .timeout(Duration::from_millis(50))
                .open()
                .with_context(|| format!("cannot open the serial port {path}"))?;
            run(&mut Link::new(port, options.timeout), &rows, options.progress)
                .with_context(|| format!("validating on the board at {path}"))
        }
    }
}

/// Runs `elf` on `board` under QEMU and validates `rows` over its UART0.
fn run_under_qemu(board: Board, elf: &Path, rows: &Rows<'_>, options: &Options) -> Result<Report> {
    let (mut session, stream) = QemuSession::start(board, elf)?;
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    let result = run(&mut Link::new(stream, options.timeout), rows, options.progress);
    result.with_context(|| format!("validating under QEMU ({})", session.report()))
}

/// The host's side of one validation.
pub struct Rows<'a> {
    /// The network (f32 or int8), for the host's logits.
    pub net: &'a HostNetwork,
    /// Its artifact's path.
    pub artifact: &'a Path,
    /// Its artifact's bytes (for the digest).
    pub artifact_bytes: &'a [u8],
    /// The rows and their labels, if any.
    pub data: &'a data::Dataset,
    /// The rows' file.
    pub csv: &'a Path,
}

/// Checks that the device runs this model, then runs and compares every row.
pub fn run<T: Read + Write>(link: &mut Link<T>, rows: &Rows<'_>, progress: bool) -> Result<Report> {
    let retries_before = link.retries;
    let device = link.hello()?;
    check_device(&device, rows)?;
    let n = rows.data.rows();
    let bar = if progress { indicatif::ProgressBar::new(n as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("validating {bar:30} {pos}/{len} rows {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut report = Report {
        artifact: rows.artifact.to_path_buf(),
        csv: rows.csv.to_path_buf(),
        device,
        rows: n,
        identical_rows: 0,
        differing_rows: Vec::new(),
        max_ulp: 0,
        class_differences: 0,
        device_accuracy: None,
        host_accuracy: None,
        cost_per_inference: 0.0,
        cost_per_mac: 0.0,
        rows_per_second: 0.0,
        retries: 0,
        profile: Vec::new(),
    };
    let layers = rows.net.layers();
    let mut stage_sums: Option<Vec<u64>> = Some(vec![0; layers.len() + 2]);
    let (mut device_correct, mut host_correct, mut labelled, mut cost) = (0usize, 0usize, 0usize, 0u64);
    let start = Instant::now();
    for i in 0..n {
        let row = rows.data.row(i);
        let host = rows.net.logits(row, InputForm::Raw);
        let host_class = dropship_shared::ops::output::argmax(&host);
        let answer = link.infer(i as u32, row)?;
        if answer.logits.len() != host.len() {
            bail!("row {i}: the device sent {} logits, the model has {}", answer.logits.len(), host.len());
        }
        cost += u64::from(answer.cost);
        // every answer must carry every stage for a profile
        stage_sums = stage_sums.filter(|s| s.len() == answer.stages.len()).map(|mut sums| {
            sums.iter_mut().zip(&answer.stages).for_each(|(sum, c)| *sum += u64::from(*c));
            sums
        });
        let ulp = host.iter().zip(&answer.logits).map(|(h, d)| ulp_distance(*h, *d)).max().unwrap_or(0);
        if ulp == 0 && answer.class == host_class {
            report.identical_rows += 1;
        } else if report.differing_rows.len() < 20 {
            report.differing_rows.push(i);
        }
        report.max_ulp = report.max_ulp.max(ulp);
        report.class_differences += usize::from(answer.class != host_class);
        let (task, threshold) = rows.net.task_or_classify();
        let decide = |outputs: &[f32], class: usize| match task {
            Task::Classify => Some(class),
            Task::Binary => Some(usize::from(outputs[0] > threshold)),
            Task::Regress | Task::Autoencode => None,
        };
        if let (Some(label), Some(device), Some(host_decision)) =
            (rows.data.labels.get(i), decide(&answer.logits, answer.class), decide(&host, host_class))
        {
            labelled += 1;
            device_correct += usize::from(*label as usize == device);
            host_correct += usize::from(*label as usize == host_decision);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    if labelled > 0 {
        report.device_accuracy = Some(device_correct as f64 / labelled as f64);
        report.host_accuracy = Some(host_correct as f64 / labelled as f64);
    }
    report.cost_per_inference = cost as f64 / n.max(1) as f64;
    report.cost_per_mac = report.cost_per_inference / report.device.macs.max(1) as f64;
    report.rows_per_second = n as f64 / seconds.max(1e-9);
    report.retries = link.retries - retries_before;
    let counted = report.device.cost_unit != dropship_link::CostUnit::Uncounted.name();
    if let Some(sums) = stage_sums.filter(|_| n > 0 && counted) {
        report.profile = sums
            .iter()
            .enumerate()
            .map(|(i, sum)| {
                let cost = *sum as f64 / n as f64;
                let (stage, macs) = match i.checked_sub(1).and_then(|l| layers.get(l).map(|layer| (l, layer))) {
                    Some((l, layer)) => (
                        format!("layer {l}: {} {}", layer.shape().describe(layer.input_dims), layer.activation.name()),
                        layer.shape().macs(layer.input_dims),
                    ),
                    None if i == 0 => ("input".to_string(), 0),
                    None => ("outputs".to_string(), 0),
                };
                StageCost { stage, macs, cost, per_mac: (macs > 0).then(|| cost / macs as f64) }
            })
            .collect();
    }
    Ok(report)
}

/// Refuses a device that speaks another protocol or runs another model.
fn check_device(device: &DeviceInfo, rows: &Rows<'_>) -> Result<()> {
    if device.protocol != dropship_link::PROTOCOL_VERSION {
        bail!(
            "the device speaks protocol {}, this dropship speaks {}: flash a serving firmware built by this version",
            device.protocol,
            dropship_link::PROTOCOL_VERSION
        );
    }
    let digest = dropship_link::model_digest(rows.artifact_bytes);
    if device.digest != digest {
        bail!(
            "the device runs another model: its digest is {:016x}, {} has {digest:016x}. Flash the serving firmware built with this artifact (see the README, \"Validate on a board\")",
            device.digest,
            rows.artifact.display()
        );
    }
    if device.input != rows.net.input() || device.classes != rows.net.classes() {
        bail!(
            "the device's model takes {} inputs to {} classes, {} takes {} to {}",
            device.input,
            device.classes,
            rows.artifact.display(),
            rows.net.input(),
            rows.net.classes()
        );
    }
    Ok(())
}

/// Distance between two f32 values in units in the last place (their positions in the ordered
/// sequence of f32 values); different NaNs count as far apart.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    fn ordered(v: f32) -> i64 {
        let bits = v.to_bits() as i32;
        i64::from(if bits < 0 { i32::MIN - bits } else { bits })
    }
    if a.to_bits() == b.to_bits() {
        return 0;
    }
    ordered(a).abs_diff(ordered(b)).max(1)
}

#[cfg(test)]
mod tests {
    use super::ulp_distance;

    #[test]
    fn ulp_distances() {
        assert_eq!(ulp_distance(1.0, 1.0), 0);
        assert_eq!(ulp_distance(1.0, f32::from_bits(1.0f32.to_bits() + 3)), 3);
        assert_eq!(ulp_distance(0.0, -0.0), 1, "a different bit is a difference");
        assert_eq!(ulp_distance(f32::from_bits(1), -f32::from_bits(1)), 2);
        assert_eq!(ulp_distance(-1.0, f32::from_bits((-1.0f32).to_bits() + 2)), 2);
    }
}
