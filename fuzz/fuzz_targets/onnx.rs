//! Any bytes as an ONNX file: the importer returns a network or an error, never panics or loops;
//! a network it returns encodes as an artifact that parses back (or is refused by its limits).
#![no_main]

use dropship_formats::onnx_graph::import_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(imported) = import_bytes(data) {
        if let Ok(bytes) = imported.network.to_artifact("", "fuzz") {
            assert!(dropship_shared::Artifact::parse(&bytes).is_ok());
        }
    }
});
