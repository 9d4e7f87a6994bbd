//! Golden device output: the decoded QEMU log and the firmware sizes of one fixed model, committed
//! under `firmware/expected/` and diffed by `cargo xtask test`; `cargo xtask bless` accepts a change
//! on purpose (the habit of defmt's snapshots and rtic's `ci/expected`).
//!
//! The model and vectors are committed files too (`model.dsm`, `vectors.dsv`), so the golden output
//! depends only on the firmware and the compiler, never on a training run. The first line of every
//! expected file names the compiler that produced it: with another compiler, code size and
//! instruction counts legitimately differ, so only the compiler-independent lines are compared (the
//! logits are bit-identical by design, whatever compiles them).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::elf::{self, Region};
use crate::firmware::{self, Board, Image};
use crate::toolchain::{self, Route};
use crate::{device, root};

/// The folder of the golden inputs and expected files.
pub fn dir() -> PathBuf {
    root().join("firmware/expected")
}

/// One expected file and what this build produced for it.
pub struct Output {
    /// File name under [`dir`].
    pub name: String,
    /// What the build and run produced now.
    pub text: String,
}

/// Builds both boards' self-test and serving firmwares with the golden model, runs the QEMU
/// self-test, and renders the expected files.
pub fn produce(route: &Route) -> Result<Vec<Output>> {
    let header = format!("# {} ({})\n", toolchain::rustc_version(route), toolchain::describe(route));
    let (artifact, vectors) = (dir().join("model.dsm"), dir().join("vectors.dsv"));
    let mut outputs = Vec::new();
    let images = [(Image::SelfTest { vectors: &vectors }, ""), (Image::Serve, "-serve")];
    for (board, (image, suffix)) in Board::all().iter().copied().flat_map(|b| images.map(|i| (b, i))) {
        let elf_path = firmware::build(route, board, &artifact, &image)?;
        let mut text = header.clone();
        for s in elf::sections(&elf_path)? {
            let region = match s.region {
                Region::Flash => "flash",
                Region::Ram => "ram",
                Region::FlashAndRam => "flash+ram",
            };
            text.push_str(&format!("{:<24} {:>8} {region}\n", s.name, s.size));
        }
        let f = elf::footprint(&elf_path)?;
        text.push_str(&format!("flash {} B, static RAM {} B, weights {} B\n", f.flash, f.static_ram, f.weights));
        outputs.push(Output { name: format!("{}{suffix}.size", board.name()), text });
        if board.spec().qemu.is_some() && suffix.is_empty() {
            let run = device::run_qemu(board, &elf_path, 120)?;
            let mut text = header.clone();
            for line in &run.lines {
                text.push_str(line);
                text.push('\n');
            }
            text.push_str(&format!("exit {}\n", if run.exit_success { 0 } else { 1 }));
            outputs.push(Output { name: format!("{}.run", board.name()), text });
        }
    }
    Ok(outputs)
}

/// The lines of an expected file that do not depend on the compiler: of a size file, which
/// sections there are and where they go (without their sizes) and the weights' bytes (the model's,
/// whatever compiled the code); every line of a log but its `cost:` line.
fn compiler_independent(name: &str, text: &str) -> String {
    let lines = text.lines().skip(1);
    if name.ends_with(".size") {
        return lines
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                [section, _, region] => Some(format!("{section} {region}\n")),
                [.., "weights", bytes, "B"] => Some(format!("weights {bytes} B\n")),
                _ => None,
            })
            .collect();
    }
    lines.filter(|l| !l.starts_with("cost: ")).map(|l| format!("{l}\n")).collect()
}

/// How a produced file compares with its expected one.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Identical, same compiler.
    Same,
    /// Another compiler, and every compiler-independent line identical.
    SameIndependentLines,
    /// Differences, as `-expected` / `+produced` lines.
    Differs(Vec<String>),
}

/// Bytes a section may move without counting as a change: the linker orders functions by names
/// whose hashes include the checkout's path, so alignment padding shifts by a few bytes from one
/// clone to another (seen: 4 bytes of `.text`). Anything larger is a real change.
pub const SIZE_SLACK: u64 = 64;

/// True when `a` and `b` have the same lines but for numbers that differ by at most `slack`.
fn sizes_within(a: &str, b: &str, slack: u64) -> bool {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    la.len() == lb.len()
        && la.iter().zip(&lb).all(|(x, y)| {
            let (wx, wy): (Vec<&str>, Vec<&str>) = (x.split_whitespace().collect(), y.split_whitespace().collect());
            wx.len() == wy.len()
                && wx.iter().zip(&wy).all(|(p, q)| match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.abs_diff(n) <= slack,
                    _ => p == q,
                })
        })
}

/// Compares the expected text of the file `name` with what was produced now.
pub fn verdict(name: &str, expected: &str, produced: &str) -> Verdict {
    let same_compiler = expected.lines().next() == produced.lines().next();
    let (old, new) = if same_compiler {
        (expected.to_string(), produced.to_string())
    } else {
        (compiler_independent(name, expected), compiler_independent(name, produced))
    };
    if old == new {
        return if same_compiler { Verdict::Same } else { Verdict::SameIndependentLines };
    }
    if same_compiler && name.ends_with(".size") && sizes_within(&old, &new, SIZE_SLACK) {
        return Verdict::Same;
    }
    let changes = similar::TextDiff::from_lines(&old, &new)
        .iter_all_changes()
        .filter_map(|change| match change.tag() {
            similar::ChangeTag::Equal => None,
            similar::ChangeTag::Delete => Some(format!("-{}", change.value().trim_end())),
            similar::ChangeTag::Insert => Some(format!("+{}", change.value().trim_end())),
        })
        .collect();
    Verdict::Differs(changes)
}

/// Compares what this build produces with the expected files; fails with a diff and the command
/// that accepts the change.
pub fn check(route: &Route) -> Result<()> {
    let mut failed = Vec::new();
    for out in produce(route)? {
        let path = dir().join(&out.name);
        let expected = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}: run `cargo xtask bless` to create it", path.display()))?;
        match verdict(&out.name, &expected, &out.text) {
            Verdict::Same => println!("{}: as expected", out.name),
            Verdict::SameIndependentLines => {
                println!("{}: as expected (another compiler: compiler-independent lines only)", out.name)
            }
            Verdict::Differs(changes) => {
                println!("{} differs from what this build produces:", path.display());
                for change in changes {
                    println!("{change}");
                }
                failed.push(out.name);
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "golden device output differs ({}): if the change is intended, run `cargo xtask bless` and commit the files",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Writes what this build produces as the expected files.
pub fn bless(route: &Route) -> Result<()> {
    for out in produce(route)? {
        let path = dir().join(&out.name);
        std::fs::write(&path, &out.text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "# rustc 1\nmodel: x\nvector 0: class 1\ncost: 100 instructions\nexit 0\n";

    #[test]
    fn same_compiler_compares_every_line() {
        assert_eq!(verdict("qemu.run", RUN, RUN), Verdict::Same);
        let cheaper = RUN.replace("cost: 100", "cost: 99");
        assert_eq!(
            verdict("qemu.run", RUN, &cheaper),
            Verdict::Differs(vec!["-cost: 100 instructions".into(), "+cost: 99 instructions".into()])
        );
        let size = "# rustc 1\n.text 7300 flash\nflash 49232 B\n";
        let padded = "# rustc 1\n.text 7296 flash\nflash 49228 B\n";
        assert_eq!(verdict("qemu.size", size, padded), Verdict::Same, "a few bytes of padding are not a change");
        let grown = "# rustc 1\n.text 7400 flash\nflash 49332 B\n";
        assert!(matches!(verdict("qemu.size", size, grown), Verdict::Differs(_)), "100 bytes more are");
        let renamed = "# rustc 1\n.text2 7300 flash\nflash 49232 B\n";
        assert!(matches!(verdict("qemu.size", size, renamed), Verdict::Differs(_)));
    }

    #[test]
    fn another_compiler_still_compares_the_logits_but_not_costs_or_sizes() {
        let other = RUN.replace("# rustc 1", "# rustc 2").replace("cost: 100", "cost: 90");
        assert_eq!(verdict("qemu.run", RUN, &other), Verdict::SameIndependentLines);
        let wrong_class = other.replace("class 1", "class 2");
        assert!(matches!(verdict("qemu.run", RUN, &wrong_class), Verdict::Differs(_)));
        let size = "# rustc 1\n.text 10 flash\n.bss 8 ram\nflash 10 B, static RAM 8 B, weights 4 B\n";
        let other = "# rustc 2\n.text 12 flash\n.bss 9 ram\nflash 12 B, static RAM 9 B, weights 4 B\n";
        assert_eq!(verdict("qemu.size", size, other), Verdict::SameIndependentLines);
        // what another compiler cannot change: the sections present, their regions, the weights
        for changed in [
            other.replace(".bss 9 ram\n", ""),
            other.replace(".bss 9 ram", ".bss 9 flash"),
            other.replace("weights 4 B", "weights 5 B"),
            other.replace(".text", ".text.moved"),
        ] {
            assert!(matches!(verdict("qemu.size", size, &changed), Verdict::Differs(_)), "{changed}");
        }
    }
}
