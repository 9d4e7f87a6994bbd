//! Running the QEMU firmware, decoding its defmt output into what the device computed (the line
//! format is the one `firmware/app` logs), and comparing that with the host's vectors.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use dropship_shared::vectors::Vectors;

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

/// Runs the firmware under QEMU (at most `timeout_s` seconds) and decodes its defmt frames.
pub fn run_qemu(board: crate::firmware::Board, elf: &Path, timeout_s: u32) -> Result<DeviceRun> {
    let mut cmd = Command::new("timeout");
    let qemu = crate::qemu::command(board, elf);
    cmd.arg(timeout_s.to_string()).arg(qemu.get_program()).args(qemu.get_args());
    let out =
        cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {}", board.spec().qemu_system()))?;
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
    let mut run = DeviceRun {
        lines: dropship_boards::qemu::defmt_lines(elf, frames)?,
        vectors: Vec::new(),
        summary: None,
        instructions_per_inference: None,
        instructions_per_mac: None,
        exit_success: false,
    };
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

/// How a device run compares with the host's vectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// Vectors the host wrote.
    pub total: usize,
    /// Vectors whose device logits are bit-identical to the host's, with the host's class, and
    /// that the device itself reported as matching.
    pub identical: usize,
    /// What differed, one line per vector (and a count mismatch), for the error message.
    pub differences: Vec<String>,
}

impl Agreement {
    /// True when every host vector came back identical and the firmware exited 0.
    pub fn complete(&self) -> bool {
        self.differences.is_empty() && self.identical == self.total && self.total > 0
    }
}

/// Compares every vector the device reported with the host's: logits bit for bit, class, the
/// host class the firmware embedded, and the device's own verdict.
pub fn compare_with_host(host: &Vectors<'_>, run: &DeviceRun) -> Agreement {
    let mut differences = Vec::new();
    if run.vectors.len() != host.len() {
        differences.push(format!("the device reported {} vectors, the host wrote {}", run.vectors.len(), host.len()));
    }
    if !run.exit_success {
        differences.push("the firmware did not exit 0".to_string());
    }
    let mut identical = 0;
    for (i, (h, d)) in host.iter().zip(&run.vectors).enumerate() {
        let host_bits: Vec<u32> = h.logits.iter().map(f32::to_bits).collect();
        let problem = if d.index != i {
            Some(format!("line {i} reports vector {}", d.index))
        } else if d.logits_bits != host_bits {
            Some(format!("vector {i}: logits {:?}, host {:?}", d.logits_bits, host_bits))
        } else if d.class != h.class || d.host_class != h.class {
            Some(format!("vector {i}: class {} (embedded host class {}), host {}", d.class, d.host_class, h.class))
        } else if !d.matched {
            Some(format!("vector {i}: the device flagged a mismatch"))
        } else {
            None
        };
        match problem {
            Some(p) => differences.push(p),
            None => identical += 1,
        }
    }
    Agreement { total: host.len(), identical, differences }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_vectors() -> Vec<u8> {
        let rows = [([1.0f32, 2.0], 1, [0.5f32, 1.5]), ([3.0, 4.0], 0, [2.0, -1.0])];
        let records = rows.iter().map(|(x, c, l)| (&x[..], *c, &l[..]));
        let mut bytes = vec![0; Vectors::encoded_len(2, 2, 2)];
        Vectors::write(&mut bytes, 2, 2, records).unwrap();
        bytes
    }

    fn device(vectors: &[(usize, [f32; 2])]) -> DeviceRun {
        DeviceRun {
            lines: Vec::new(),
            vectors: vectors
                .iter()
                .enumerate()
                .map(|(index, (class, logits))| DeviceVector {
                    index,
                    class: *class,
                    host_class: *class,
                    matched: true,
                    logits_bits: logits.iter().map(|v| v.to_bits()).collect(),
                })
                .collect(),
            summary: None,
            instructions_per_inference: None,
            instructions_per_mac: None,
            exit_success: true,
        }
    }

    #[test]
    fn every_bit_class_and_count_must_agree() {
        let bytes = host_vectors();
        let host = Vectors::parse(&bytes).unwrap();
        let same = device(&[(1, [0.5, 1.5]), (0, [2.0, -1.0])]);
        assert!(compare_with_host(&host, &same).complete());
        let one_ulp = device(&[(1, [0.5, f32::from_bits(1.5f32.to_bits() + 1)]), (0, [2.0, -1.0])]);
        let a = compare_with_host(&host, &one_ulp);
        assert_eq!((a.identical, a.total, a.complete()), (1, 2, false));
        let short = device(&[(1, [0.5, 1.5])]);
        assert!(!compare_with_host(&host, &short).complete(), "a missing vector is not a match");
        let mut flagged = same.clone();
        flagged.vectors[1].matched = false;
        assert!(!compare_with_host(&host, &flagged).complete());
        let mut wrong_embedded = same.clone();
        wrong_embedded.vectors[0].host_class = 0;
        assert!(!compare_with_host(&host, &wrong_embedded).complete());
        let mut failed = same;
        failed.exit_success = false;
        assert!(!compare_with_host(&host, &failed).complete());
    }
}
