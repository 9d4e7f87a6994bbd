//! Puts this board's memory.x and device.x (its interrupt names, for cortex-m-rt) on the linker
//! search path.
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x is beside build.rs");
    std::fs::copy("device.x", out.join("device.x")).expect("device.x is beside build.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=device.x");
}
