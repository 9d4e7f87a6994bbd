//! Packs the sources the firmware builds from (the firmware workspace, the `no_std` core, the
//! generator and the board list it uses) into a tar archive in `OUT_DIR`: an installed `dropship`
//! whose checkout is gone unpacks them to build firmware (`dropship_boards::sources`).

use std::path::{Path, PathBuf};

/// What the firmware build reads, relative to the repository root.
const TREES: [&str; 5] = ["firmware", "shared/src", "shared/link/src", "host/build/src", "host/boards/list/src"];
const MANIFESTS: [&str; 4] =
    ["shared/Cargo.toml", "shared/link/Cargo.toml", "host/build/Cargo.toml", "host/boards/list/Cargo.toml"];
/// Not sources: build output, golden files.
const SKIPPED: [&str; 2] = ["target", "expected"];
/// Not sources either: models and vectors a local build left beside them, built firmware.
const SKIPPED_EXTENSIONS: [&str; 3] = ["dsm", "dsv", "elf"];

fn add_tree(archive: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("a source directory").map(|e| e.expect("an entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !SKIPPED.contains(&name) {
                add_tree(archive, root, &path);
            }
        } else if !path.extension().and_then(|e| e.to_str()).is_some_and(|e| SKIPPED_EXTENSIONS.contains(&e)) {
            add_file(archive, root, &path);
        }
    }
}

fn add_file(archive: &mut tar::Builder<Vec<u8>>, root: &Path, path: &Path) {
    let bytes = std::fs::read(path).expect("a source file");
    add_bytes(archive, path.strip_prefix(root).expect("under the root"), &bytes);
}

fn add_bytes(archive: &mut tar::Builder<Vec<u8>>, name: &Path, bytes: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, name, bytes).expect("an in-memory archive");
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.ancestors().nth(2).expect("dropship-boards lives in host/boards").to_path_buf();
    let mut archive = tar::Builder::new(Vec::new());
    for tree in TREES {
        add_tree(&mut archive, &root, &root.join(tree));
        println!("cargo:rerun-if-changed={}", root.join(tree).display());
    }
    for file in MANIFESTS {
        add_file(&mut archive, &root, &root.join(file));
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    // the workspace the core's manifests inherit their version, edition and licence from, with
    // only the members that are there
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("the root manifest");
    let members = MANIFESTS.map(|m| format!("\"{}\"", m.trim_end_matches("/Cargo.toml"))).join(", ");
    let start = workspace.find("members = [").expect("the root manifest lists its members");
    let end = start + workspace[start..].find(']').expect("a closed list") + 1;
    let workspace = format!("{}members = [{members}]{}", &workspace[..start], &workspace[end..]);
    add_bytes(&mut archive, Path::new("Cargo.toml"), workspace.as_bytes());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.toml").display());
    let bytes = archive.into_inner().expect("an in-memory archive");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("sources.tar"), bytes).expect("OUT_DIR is writable");
}
