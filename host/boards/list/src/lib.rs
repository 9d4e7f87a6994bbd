//! The one list of boards, `firmware/boards.toml`, compiled in: every board's name, target,
//! memory and QEMU machine. The host tools read it through [`boards`]; each board crate's build
//! script calls [`configure_board`], which writes its `memory.x` from the list and refuses a model
//! that does not fit (the model crate's build script reports the model's footprint).

use std::sync::OnceLock;

/// The list as written.
pub const BOARDS_TOML: &str = include_str!("../../../../firmware/boards.toml");

/// A memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Start address.
    pub origin: u64,
    /// Length in bytes.
    pub length: u64,
}

/// How QEMU emulates a board.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// `-machine`.
    pub machine: String,
    /// `-cpu`.
    pub cpu: String,
}

/// One board.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSpec {
    /// Short name: the `--board`/`--device` value and `firmware/<name>/`.
    pub name: String,
    /// One line for help texts.
    pub description: String,
    /// The Rust target its firmware is built for.
    pub target: String,
    /// Flash.
    pub flash: Region,
    /// RAM.
    pub ram: Region,
    /// The QEMU machine that emulates it, if any.
    #[serde(default)]
    pub qemu: Option<Qemu>,
    /// A region before the flash for a second-stage bootloader (the RP2040's boot2), which the
    /// firmware puts in a `.boot2` section.
    #[serde(default)]
    pub boot: Option<Region>,
}

impl BoardSpec {
    /// The firmware package, which is also its self-test binary: `dropship-<name>`.
    pub fn package(&self) -> String {
        format!("dropship-{}", self.name)
    }

    /// The serving firmware's binary: `dropship-<name>-serve`.
    pub fn serve_binary(&self) -> String {
        format!("{}-serve", self.package())
    }

    /// The linker script of its memory, as cortex-m-rt reads it (and riscv-rt, with the regions
    /// it places each section in).
    pub fn memory_x(&self) -> String {
        let mut x = format!(
            "/* {}: generated from firmware/boards.toml */\nMEMORY\n{{\n  FLASH : ORIGIN = {:#010x}, LENGTH = {}\n  RAM   : ORIGIN = {:#010x}, LENGTH = {}\n}}\n",
            self.description, self.flash.origin, self.flash.length, self.ram.origin, self.ram.length
        );
        if let Some(boot) = self.boot {
            x = x.replacen(
                "MEMORY\n{\n",
                &format!("MEMORY\n{{\n  BOOT2 : ORIGIN = {:#010x}, LENGTH = {}\n", boot.origin, boot.length),
                1,
            );
            x.push_str("SECTIONS {\n  .boot2 ORIGIN(BOOT2) : { KEEP(*(.boot2)); } > BOOT2\n} INSERT BEFORE .text;\n");
        }
        if self.is_riscv() {
            for (region, memory) in [
                ("TEXT", "FLASH"),
                ("RODATA", "FLASH"),
                ("DATA", "RAM"),
                ("BSS", "RAM"),
                ("HEAP", "RAM"),
                ("STACK", "RAM"),
            ] {
                x.push_str(&format!("REGION_ALIAS(\"REGION_{region}\", {memory});\n"));
            }
        }
        x
    }

    /// Whether its target is a RISC-V one (else an Arm Cortex-M one).
    pub fn is_riscv(&self) -> bool {
        self.target.starts_with("riscv")
    }

    /// The QEMU program that emulates its architecture.
    pub fn qemu_system(&self) -> &'static str {
        if self.is_riscv() {
            "qemu-system-riscv32"
        } else {
            "qemu-system-arm"
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    board: Vec<BoardSpec>,
}

/// Parses a board list; names must be unique.
pub fn parse(text: &str) -> Result<Vec<BoardSpec>, String> {
    let list: List = toml::from_str(text).map_err(|e| format!("firmware/boards.toml: {e}"))?;
    for (i, b) in list.board.iter().enumerate() {
        if list.board[..i].iter().any(|other| other.name == b.name) {
            return Err(format!("firmware/boards.toml: board `{}` is listed twice", b.name));
        }
    }
    Ok(list.board)
}

/// Every board, in the list's order.
pub fn boards() -> &'static [BoardSpec] {
    static BOARDS: OnceLock<Vec<BoardSpec>> = OnceLock::new();
    BOARDS.get_or_init(|| parse(BOARDS_TOML).unwrap_or_else(|e| panic!("{e}")))
}

/// Flash the firmware's code, vector table and log strings take besides the model (measured: 8 to
/// 10 KiB), rounded up.
pub const CODE_FLASH: u64 = 16 * 1024;
/// RAM the firmware needs besides the activations: stack, defmt and peripheral state.
pub const BASE_RAM: u64 = 8 * 1024;

/// For a board crate's build script: writes the board's `memory.x` (from the list, found by the
/// crate's package name) to `OUT_DIR`, puts it on the linker search path, and refuses a model that
/// does not fit, with the numbers and what to change. The footprint comes from the
/// `dropship-model` crate's build script (`links = "dropship-model"`).
pub fn configure_board() {
    let package = std::env::var("CARGO_PKG_NAME").expect("cargo sets it");
    let Some(board) = boards().iter().find(|b| b.package() == package) else {
        panic!("{package} is not in firmware/boards.toml: add its entry (ARCHITECTURE.md, \"Adding a board\")");
    };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("memory.x"), board.memory_x()).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    let model = |key: &str| -> u64 {
        let var = format!("DEP_DROPSHIP_MODEL_{key}");
        std::env::var(&var).ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{var} is not set"))
    };
    let (weights, vectors, activations) = (model("WEIGHTS"), model("VECTORS"), model("ACTIVATIONS"));
    let widths = std::env::var("DEP_DROPSHIP_MODEL_WIDTHS").unwrap_or_default();
    let artifact = std::env::var("DEP_DROPSHIP_MODEL_ARTIFACT").unwrap_or_default();
    if let Err(message) = check_fit(board, weights, vectors, activations) {
        eprintln!("\nerror: the model in {artifact} does not fit the {} board", board.name);
        eprintln!("  layers [{widths}]");
        eprintln!("{message}");
        eprintln!("Make the hidden layers fewer or narrower (`dropship train --hidden ...`), or embed fewer test");
        eprintln!("vectors (`dropship vectors <artifact> <csv with fewer rows>`).\n");
        std::process::exit(1);
    }
}

/// Whether a model of these bytes fits `board`; the numbers when it does not.
pub fn check_fit(board: &BoardSpec, weights: u64, vectors: u64, activations: u64) -> Result<(), String> {
    let flash_needed = weights + vectors + CODE_FLASH;
    let ram_needed = activations + BASE_RAM;
    let (flash, ram) = (board.flash.length, board.ram.length);
    if flash_needed <= flash && ram_needed <= ram {
        return Ok(());
    }
    Err(format!(
        "  flash: {flash_needed} bytes needed ({weights} weights + {vectors} test vectors + about {CODE_FLASH} of code), {flash} available\n  RAM:   {ram_needed} bytes needed ({activations} activations + about {BASE_RAM} of stack and state), {ram} available"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parses_and_describes_each_board() {
        let names: Vec<&str> = boards().iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["qemu", "nrf52840dk", "qemu-m33", "qemu-m0", "qemu-riscv", "pico"]);
        let pico = &boards()[5];
        assert!(pico.memory_x().contains("BOOT2 : ORIGIN = 0x10000000, LENGTH = 256"), "{}", pico.memory_x());
        assert!(pico.memory_x().contains("KEEP(*(.boot2))"));
        let riscv = &boards()[4];
        assert!(riscv.memory_x().contains("REGION_ALIAS(\"REGION_STACK\", RAM);"), "{}", riscv.memory_x());
        assert!(!qemu_x_has_regions(&boards()[0]));
        assert_eq!((riscv.qemu_system(), boards()[3].qemu_system()), ("qemu-system-riscv32", "qemu-system-arm"));
        let qemu = &boards()[0];
        assert_eq!((qemu.package(), qemu.serve_binary()), ("dropship-qemu".into(), "dropship-qemu-serve".into()));
        assert_eq!(qemu.qemu.as_ref().map(|q| q.machine.as_str()), Some("mps2-an386"));
        assert!(qemu.memory_x().contains("LENGTH = 4194304"), "{}", qemu.memory_x());
        let nrf = &boards()[1];
        assert_eq!((nrf.flash.length, nrf.ram.length), (1 << 20, 256 << 10));
        assert!(check_fit(nrf, 1_587_240, 25_920, 8744).unwrap_err().contains("1629544 bytes needed"));
        assert!(check_fit(nrf, 38_964, 1_840, 808).is_ok());
    }

    fn qemu_x_has_regions(board: &BoardSpec) -> bool {
        board.memory_x().contains("REGION_ALIAS")
    }

    #[test]
    fn a_bad_list_is_an_error_naming_the_file() {
        let twice = format!("{BOARDS_TOML}\n[[board]]\nname = \"qemu\"\ndescription = \"\"\ntarget = \"t\"\nflash = {{ origin = 0, length = 1 }}\nram = {{ origin = 0, length = 1 }}\n");
        assert!(parse(&twice).unwrap_err().contains("`qemu` is listed twice"));
        assert!(parse("[[board]]\nname = 3").unwrap_err().starts_with("firmware/boards.toml"));
    }
}
