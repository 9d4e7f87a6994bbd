//! Flash and RAM of a firmware, read from its ELF.

use std::path::Path;

use anyhow::{Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags};

/// Where a firmware's bytes go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes in flash: code, read-only data, initial values of `.data`.
    pub flash: u64,
    /// Bytes of static RAM: `.data`, `.bss`, `.uninit`.
    pub static_ram: u64,
    /// Of the flash, the network's weights and standardization (`NETWORK`; for an int8 model also
    /// its per-layer tables `L<i>_*`, `MEAN`, `SCALE` and `LAYERS`).
    pub weights: u64,
    /// Of the flash, the embedded test vectors (`VECTORS`).
    pub vectors: u64,
}

impl Footprint {
    /// Flash without the test vectors: what a deployment of the model needs.
    pub fn flash_without_vectors(&self) -> u64 {
        self.flash - self.vectors
    }
}

/// Where a section's bytes live on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// Flash only: code and read-only data.
    Flash,
    /// RAM only: zeroed or uninitialized statics.
    Ram,
    /// Both: `.data`, whose initial values are copied from flash to RAM at boot.
    FlashAndRam,
}

/// One allocated section of a firmware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Its name (`.text`, `.rodata`, ...).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where it lives.
    pub region: Region,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<object::File<'a>> {
    object::File::parse(bytes).with_context(|| format!("{} is not an ELF file", path.display()))
}

/// The allocated, non-empty sections of the ELF at `path`, in file order.
pub fn sections(path: &Path) -> Result<Vec<Section>> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let mut found = Vec::new();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            continue;
        };
        let alloc = sh_flags & u64::from(object::elf::SHF_ALLOC) != 0;
        if !alloc || section.size() == 0 {
            continue;
        }
        let name = section.name().unwrap_or("").to_string();
        let writable = sh_flags & u64::from(object::elf::SHF_WRITE) != 0;
        let nobits = section.kind() == object::SectionKind::UninitializedData;
        let region = if name == ".data" {
            Region::FlashAndRam
        } else if writable || nobits || name == ".bss" || name == ".uninit" {
            Region::Ram
        } else {
            Region::Flash
        };
        found.push(Section { name, size: section.size(), region });
    }
    Ok(found)
}

/// Reads the footprint of the ELF at `path`.
pub fn footprint(path: &Path) -> Result<Footprint> {
    let mut f = Footprint::default();
    for s in sections(path)? {
        if s.region != Region::Ram {
            f.flash += s.size;
        }
        // riscv-rt reserves the RAM it leaves over as `.stack` (and `.heap`): not statics
        if s.region != Region::Flash && s.name != ".stack" && s.name != ".heap" {
            f.static_ram += s.size;
        }
    }
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    for symbol in file.symbols() {
        let name = symbol.name().unwrap_or("");
        let tables = ["NETWORK", "LAYERS", "MEAN", "SCALE", "_WEIGHTS", "_BIAS", "_MULTIPLIERS", "_SHIFTS"];
        if name.contains("dropship_model") && tables.iter().any(|t| name.contains(t)) {
            f.weights += symbol.size();
        } else if name.contains("dropship_model") && name.contains("VECTORS") {
            f.vectors += symbol.size();
        }
    }
    Ok(f)
}
