//! Any bytes: `Artifact::parse` (every format version, f32 and int8 layers) and `Vectors::parse`
//! return a value or an error, never panic; whatever parses also runs: through the host network
//! (the shared core's f32 kernel or its int8 network, as the layers' precision says), and into the
//! fixed 2-3-2 f32 network of its seed or a typed error.
//!
//! The parsers check the CRC-32 before anything else, so almost every mutation would stop there:
//! each input is also parsed with its last four bytes rewritten to the right checksum, which lets
//! the mutations reach the structure checks behind it.
#![no_main]

use dropship_formats::network::{HostNetwork, InputForm};
use dropship_shared::vectors::Vectors;
use dropship_shared::{Artifact, OneHidden, Scratch};
use libfuzzer_sys::fuzz_target;

fn exercise(data: &[u8]) {
    if let Ok(artifact) = Artifact::parse(data) {
        let _ = (artifact.parameters(), artifact.macs(), dropship_shared::footprint::Footprint::of(&artifact));
        let host = HostNetwork::from_artifact(&artifact);
        let _ = host.logits(&vec![0.5; host.input()], InputForm::Raw);
        let mut net = Box::new(OneHidden::<2, 3, 2>::ZERO);
        if artifact.load_into(&mut net).is_ok() {
            let mut logits = [0.0; 2];
            net.predict(&[0.5; 2], &mut Scratch::<2, 3>::new(), &mut logits);
        }
    }
    if let Ok(vectors) = Vectors::parse(data) {
        for v in vectors.iter() {
            let _ = v.input.iter().sum::<f32>();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= 12 {
        let mut sealed = data.to_vec();
        let n = sealed.len();
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&sealed[..n - 4]);
        sealed[n - 4..].copy_from_slice(&crc.to_le_bytes());
        exercise(&sealed);
    }
});
