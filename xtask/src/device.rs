//! Running the QEMU firmware and decoding its defmt output into what the device computed.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// One vector as the device reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceVector {
    /// Vector index.
    pub index: usize,
    /// Predicted class.
    pub class: usize,
    /// The host's class, as embedded.
    pub host_class: usize,
    /// The device's own verdict (class and logit bits equal to the host's).
    pub matched: bool,
    /// The logits' f32 bit patterns.
    pub logits_bits: Vec<u32>,
}

/// A whole QEMU run.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRun {
    /// Every decoded log line, in order.
    pub lines: Vec<String>,
    /// Vectors in order.
    pub vectors: Vec<DeviceVector>,
    /// The device's `N/M match host` line, as (N, M).
    pub summary: Option<(usize, usize)>,
    /// Instructions per inference (from SysTick under -icount).
    pub instructions_per_inference: Option<f64>,
    /// Instructions per multiply-accumulate.
    pub instructions_per_mac: Option<f64>,
    /// QEMU exited 0 (the firmware's semihosting exit on a full match).
    pub exit_success: bool,
}

/// The QEMU command line for the embedded default.
pub fn qemu_command(elf: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(elf);
    cmd
}

/// Runs the firmware under QEMU (at most `timeout_s` seconds) and decodes its defmt frames.
pub fn run_qemu(elf: &Path, timeout_s: u32) -> Result<DeviceRun> {
    let mut cmd = Command::new("timeout");
    let qemu = qemu_command(elf);
    cmd.arg(timeout_s.to_string()).arg(qemu.get_program()).args(qemu.get_args());
    let out = cmd.stdin(Stdio::null()).output().context("cannot run qemu-system-arm")?;
    if out.status.code() == Some(124) {
        bail!("QEMU did not exit within {timeout_s} s");
    }
    let elf_bytes = std::fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let mut run = decode(&elf_bytes, &out.stdout)?;
    run.exit_success = out.status.success();
    if run.lines.is_empty() {
        bail!("QEMU printed no defmt frames (exit {:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(run)
}

/// Decodes raw defmt frames with the ELF's table and parses the firmware's lines.
pub fn decode(elf: &[u8], frames: &[u8]) -> Result<DeviceRun> {
    let table = defmt_decoder::Table::parse(elf)?.context("the ELF has no .defmt section")?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(frames);
    let mut run = DeviceRun {
        lines: Vec::new(),
        vectors: Vec::new(),
        summary: None,
        instructions_per_inference: None,
        instructions_per_mac: None,
        exit_success: false,
    };
    loop {
        match decoder.decode() {
            Ok(frame) => run.lines.push(frame.display_message().to_string()),
            Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
            Err(defmt_decoder::DecodeError::Malformed) => {
                bail!("malformed defmt frame after {} lines", run.lines.len())
            }
        }
    }
    let lines = std::mem::take(&mut run.lines);
    for line in &lines {
        parse_line(line, &mut run)?;
    }
    run.lines = lines;
    Ok(run)
}

fn parse_line(line: &str, run: &mut DeviceRun) -> Result<()> {
    if let Some(rest) = line.strip_prefix("vector ") {
        // vector 3: class 7 host 7 true logits [1, 2, ...]
        let (head, logits) = rest.split_once(" logits ").with_context(|| format!("unexpected line: {line}"))?;
        let words: Vec<&str> = head.split_whitespace().collect();
        let [index, "class", class, "host", host, matched] = words.as_slice() else {
            bail!("unexpected line: {line}");
        };
        let logits_bits = logits
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("bad logits in: {line}"))?;
        run.vectors.push(DeviceVector {
            index: index.trim_end_matches(':').parse()?,
            class: class.parse()?,
            host_class: host.parse()?,
            matched: *matched == "true",
            logits_bits,
        });
    } else if let Some(head) = line.strip_suffix(" match host") {
        let (n, m) = head.split_once('/').with_context(|| format!("unexpected line: {line}"))?;
        run.summary = Some((n.parse()?, m.parse()?));
    } else if let Some(rest) = line.strip_prefix("cost: ") {
        let numbers: Vec<f64> = rest.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        run.instructions_per_inference = numbers.first().copied();
        run.instructions_per_mac = numbers.get(1).copied();
    }
    Ok(())
}
