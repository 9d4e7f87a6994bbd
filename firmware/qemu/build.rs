//! Writes this board's memory.x from firmware/boards.toml and checks the model fits it; puts
//! device.x (its interrupt names, for cortex-m-rt) on the linker search path too.
fn main() {
    dropship_board_list::configure_board();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::copy("device.x", out.join("device.x")).expect("device.x is beside build.rs");
    println!("cargo:rerun-if-changed=device.x");
}
