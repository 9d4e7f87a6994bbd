//! The artifact and vector formats: round trips and every way bytes can be wrong.

use dropship_shared::artifact::{Activation, ArtifactSpec, LayerSpec, Section};
use dropship_shared::vectors::Vectors;
use dropship_shared::{Artifact, FormatError, OneHidden, Scratch};

fn sample() -> Vec<u8> {
    let w1: Vec<f32> = (0..3 * 4).map(|i| i as f32 * 0.25 - 1.0).collect();
    let w2: Vec<f32> = (0..4 * 2).map(|i| 0.5 - i as f32 * 0.125).collect();
    let layers = [
        LayerSpec { weights: &w1, bias: &[0.1, 0.2, 0.3, 0.4], activation: Activation::Relu },
        LayerSpec { weights: &w2, bias: &[0.0, -0.5], activation: Activation::Linear },
    ];
    let spec = ArtifactSpec {
        input: 3,
        layers: &layers,
        standardization: Some((&[1.0, 2.0, 3.0], &[1.0, 0.5, 2.0])),
        class_names: "cat\ndog",
        provenance: "run: test",
    };
    let mut out = vec![0; spec.encoded_len()];
    let len = spec.write(&mut out).unwrap();
    assert_eq!(len, out.len());
    out
}

/// Rewrites the trailing checksum so that a deliberate corruption reaches the structural checks.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip_keeps_every_value_and_loads_into_the_fixed_network() {
    let bytes = sample();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!((a.input(), a.classes(), a.parameters()), (3, 2, 26));
    assert_eq!(a.class_names(), "cat\ndog");
    assert_eq!(a.provenance(), "run: test");
    let mut net = OneHidden::<3, 4, 2>::ZERO;
    a.load_into(&mut net).unwrap();
    assert_eq!(net.layers.head.weights[1], [0.0, 0.25, 0.5, 0.75]);
    assert_eq!(net.layers.head.activation, Activation::Relu);
    assert_eq!(net.layers.tail.bias, [0.0, -0.5]);
    assert_eq!(net.layers.tail.activation, Activation::Linear);
    assert_eq!(net.standardization.as_ref().unwrap().scale, [1.0, 0.5, 2.0]);
    let mut logits = [0.0; 2];
    net.logits(&[1.0, 2.0, 3.0], &mut Scratch::<3, 4>::new(), &mut logits);
    // standardized input is 0, so hidden = relu(bias) and logits = bias · W2 + b2
    let expected0 = 0.1 * 0.5 + 0.2 * 0.25 + 0.3 * 0.0 + 0.4 * -0.25;
    assert!((logits[0] - expected0).abs() < 1e-6);
}

#[test]
fn shape_not_matching_the_type_is_refused() {
    let bytes = sample();
    let a = Artifact::parse(&bytes).unwrap();
    let mut wider = OneHidden::<3, 5, 2>::ZERO;
    let err = a.load_into(&mut wider).unwrap_err();
    assert_eq!(err, FormatError::LayerShape { layer: 0, expected: (3, 5), found: (3, 4) });
    let mut deeper = dropship_shared::TwoHidden::<3, 4, 4, 2>::ZERO;
    let err = a.load_into(&mut deeper).unwrap_err();
    assert_eq!(err, FormatError::ShapeMismatch { what: "layer count", expected: 3, found: 2 });
    let mut longer = OneHidden::<4, 4, 2>::ZERO;
    let err = a.load_into(&mut longer).unwrap_err();
    assert!(matches!(err, FormatError::ShapeMismatch { what: "input width", .. }));
}

#[test]
fn every_kind_of_corruption_has_its_own_error() {
    let good = sample();
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(Artifact::parse(&bad).unwrap_err(), FormatError::BadMagic);

    let mut bad = good.clone();
    bad[4] = 2;
    assert_eq!(Artifact::parse(&bad).unwrap_err(), FormatError::UnsupportedVersion { found: 2, supported: 1 });

    // a cut file fails its checksum before any size is believed
    assert!(matches!(Artifact::parse(&good[..good.len() - 9]), Err(FormatError::ChecksumMismatch { .. })));
    assert!(matches!(Artifact::parse(&good[..10]), Err(FormatError::ChecksumMismatch { .. })));
    assert_eq!(Artifact::parse(&[]).unwrap_err(), FormatError::BadMagic);
    // ... and so does one flipped byte of a size in the header
    let mut bad = good.clone();
    bad[12] ^= 0x01;
    assert!(matches!(Artifact::parse(&bad), Err(FormatError::ChecksumMismatch { .. })));
    // sizes that disagree with the length, under a valid checksum
    let mut bad = good[..good.len() - 9].to_vec();
    reseal(&mut bad);
    assert!(matches!(Artifact::parse(&bad), Err(FormatError::Truncated { .. })));

    let mut bad = good.clone();
    bad.push(0);
    reseal(&mut bad);
    assert!(matches!(Artifact::parse(&bad), Err(FormatError::TrailingBytes { .. })));

    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] ^= 0x40;
    assert!(matches!(Artifact::parse(&bad), Err(FormatError::ChecksumMismatch { .. })));

    // a NaN in the last bias, with a valid checksum
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 8..n - 4].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut bad);
    assert_eq!(Artifact::parse(&bad).unwrap_err(), FormatError::NonFinite { section: Section::Bias(1), index: 1 });

    // input width far above the limit
    let mut bad = good.clone();
    bad[12..16].copy_from_slice(&1_000_000u32.to_le_bytes());
    reseal(&mut bad);
    assert!(matches!(Artifact::parse(&bad), Err(FormatError::TooLarge { what: "input width", .. })));

    // unknown activation code on layer 1
    let mut bad = good.clone();
    bad[32..36].copy_from_slice(&7u32.to_le_bytes());
    reseal(&mut bad);
    assert_eq!(Artifact::parse(&bad).unwrap_err(), FormatError::BadActivation { layer: 1, code: 7 });
}

#[test]
fn every_prefix_and_every_single_byte_flip_is_an_error_not_a_panic() {
    let good = sample();
    for len in 0..good.len() {
        assert!(Artifact::parse(&good[..len]).is_err(), "prefix {len}");
    }
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            assert!(Artifact::parse(&bad).is_err(), "byte {i} bit {bit}");
            // past the checksum, the structure checks: an error or a valid artifact, never a panic
            reseal(&mut bad);
            if let Ok(a) = Artifact::parse(&bad) {
                assert_eq!(a.len_bytes(), bad.len());
            }
        }
    }
}

#[test]
fn vectors_round_trip_and_reject_corruption() {
    let records = [([1.0f32, 2.0], 1usize, [0.5f32, 0.75, -1.0]), ([3.0, 4.0], 2, [0.0, 0.0, 9.0])];
    let mut out = vec![0; Vectors::encoded_len(2, 2, 3)];
    let len = Vectors::write(&mut out, 2, 3, records.iter().map(|(x, c, l)| (&x[..], *c, &l[..]))).unwrap();
    assert_eq!(len, out.len());
    let v = Vectors::parse(&out).unwrap();
    assert_eq!(v.len(), 2);
    let second = v.get(1).unwrap();
    assert_eq!(second.class, 2);
    assert_eq!(second.logits.iter().collect::<Vec<_>>(), vec![0.0, 0.0, 9.0]);
    let mut bad = out.clone();
    bad[30] ^= 1;
    assert!(matches!(Vectors::parse(&bad), Err(FormatError::ChecksumMismatch { .. })));
    assert!(Vectors::parse(&out[..out.len() - 1]).is_err());
}
