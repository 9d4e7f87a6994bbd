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
    /// Of the flash, the network's weights and standardization (`NETWORK`).
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

/// Reads the footprint of the ELF at `path`.
pub fn footprint(path: &Path) -> Result<Footprint> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = object::File::parse(&*bytes).with_context(|| format!("{} is not an ELF file", path.display()))?;
    let mut f = Footprint::default();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            continue;
        };
        let alloc = sh_flags & u64::from(object::elf::SHF_ALLOC) != 0;
        if !alloc || section.size() == 0 {
            continue;
        }
        let name = section.name().unwrap_or("");
        let writable = sh_flags & u64::from(object::elf::SHF_WRITE) != 0;
        let nobits = section.kind() == object::SectionKind::UninitializedData;
        if name == ".data" {
            f.flash += section.size();
            f.static_ram += section.size();
        } else if writable || nobits || name == ".bss" || name == ".uninit" {
            f.static_ram += section.size();
        } else {
            f.flash += section.size();
        }
    }
    for symbol in file.symbols() {
        let name = symbol.name().unwrap_or("");
        if name.contains("dropship_model") && name.contains("NETWORK") {
            f.weights += symbol.size();
        } else if name.contains("dropship_model") && name.contains("VECTORS") {
            f.vectors += symbol.size();
        }
    }
    Ok(f)
}
