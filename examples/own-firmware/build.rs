//! Generates the model from its artifact (`model.dsm` beside this file, or `DROPSHIP_ARTIFACT`)
//! and puts memory.x on the linker's search path.

use std::path::PathBuf;

fn main() -> Result<(), dropship_build::Error> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x is beside build.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=DROPSHIP_ARTIFACT");
    let artifact = std::env::var_os("DROPSHIP_ARTIFACT").map_or_else(|| PathBuf::from("model.dsm"), PathBuf::from);
    dropship_build::Model::from_artifact(artifact).serving(true).generate()
}
