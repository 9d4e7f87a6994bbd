//! Any bytes: `Artifact::parse`, `QuantArtifact::parse` (int8, format version 2) and
//! `Vectors::parse` return a value or an error, never panic; whatever parses also runs: an f32
//! artifact of any shape through the f32 kernel (the runtime-shaped network the host runs), and
//! into the fixed 2-3-2 network of its seed or a typed error; an int8 one through the int8 kernel
//! with the scratch it needs.
//!
//! The parsers check the CRC-32 before anything else, so almost every mutation would stop there:
//! each input is also parsed with its last four bytes rewritten to the right checksum, which lets
//! the mutations reach the structure checks behind it.
#![no_main]

use dropship_formats::network::{HostNetwork, InputForm};
use dropship_shared::quant;
use dropship_shared::quant_artifact::QuantArtifact;
use dropship_shared::vectors::Vectors;
use dropship_shared::{Artifact, OneHidden, Scratch};
use libfuzzer_sys::fuzz_target;

fn exercise(data: &[u8]) {
    if let Ok(artifact) = Artifact::parse(data) {
        let _ = artifact.parameters();
        let host = HostNetwork::from_artifact(&artifact);
        let _ = host.logits(&vec![0.5; host.input], InputForm::Raw);
        let mut net = Box::new(OneHidden::<2, 3, 2>::ZERO);
        if artifact.load_into(&mut net).is_ok() {
            let mut logits = [0.0; 2];
            net.predict(&[0.5; 2], &mut Scratch::<2, 3>::new(), &mut logits);
        }
    }
    if let Ok(q) = QuantArtifact::parse(data) {
        let layers: Vec<_> = q.layers().collect();
        let kernel: Vec<(Vec<i8>, Vec<i32>, Vec<i32>, Vec<i8>)> = layers
            .iter()
            .map(|l| {
                let plain: Vec<i8> = l.weights_i8().collect();
                let mut blocked = vec![0; plain.len()];
                quant::block_weights(&plain, l.input, l.output, &mut blocked);
                (blocked, l.bias.iter().collect(), l.multipliers.iter().collect(), l.shifts.iter().map(|s| s as i8).collect())
            })
            .collect();
        let quant_layers: Vec<quant::QuantLayer<'_>> = layers
            .iter()
            .zip(&kernel)
            .map(|(l, (weights, bias, multipliers, shifts))| quant::QuantLayer {
                weights,
                bias,
                multipliers,
                shifts,
                output_zero: l.output_zero,
                relu: l.activation == dropship_shared::Activation::Relu,
                form: quant::WeightForm::Blocked,
            })
            .collect();
        let standardization: Option<(Vec<f32>, Vec<f32>)> =
            q.standardization().map(|(m, s)| (m.iter().collect(), s.iter().collect()));
        let (input_scale, input_zero) = q.input_quantization();
        let net = quant::QuantNetwork {
            standardization: standardization.as_ref().map(|(m, s)| (&m[..], &s[..])),
            input_scale,
            input_zero,
            layers: &quant_layers,
            output_scale: layers.last().map_or(1.0, |l| l.output_scale),
        };
        let widest = q.widths().max().unwrap_or(0);
        let row = vec![0.5f32; q.input()];
        let (mut z, mut a, mut b, mut logits) = (vec![0.0; q.input()], vec![0; widest], vec![0; widest], vec![0.0; q.classes()]);
        net.predict_in(&row, &mut z, &mut a, &mut b, &mut logits);
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
