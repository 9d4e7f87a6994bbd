//! Any bytes: `Artifact::parse` and `Vectors::parse` return a value or an error, never panic;
//! whatever parses also loads into the fixed network or fails with a typed error, and runs.
#![no_main]

use dropship_shared::vectors::Vectors;
use dropship_shared::{Artifact, Network, Scratch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(artifact) = Artifact::parse(data) {
        let _ = artifact.parameters();
        let mut net = Box::new(Network::<4, 8, 3>::ZERO);
        if artifact.load_into(&mut net).is_ok() {
            let mut logits = [0.0; 3];
            net.predict(&[0.5; 4], &mut Scratch::new(), &mut logits);
        }
    }
    if let Ok(vectors) = Vectors::parse(data) {
        for v in vectors.iter() {
            let _ = v.input.iter().sum::<f32>();
        }
    }
});
