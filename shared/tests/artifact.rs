//! The artifact and vector formats: round trips and every way bytes can be wrong.

use dropship_shared::artifact::{Activation, ArtifactSpec, Int8Spec, LayerSpec, Precision, Section};
use dropship_shared::ops::dense::int8::Requant;
use dropship_shared::vectors::Vectors;
use dropship_shared::{Artifact, FormatError, OneHidden, Scratch, TwoHidden};

fn sample() -> Vec<u8> {
    let w1: Vec<f32> = (0..3 * 4).map(|i| i as f32 * 0.25 - 1.0).collect();
    let w2: Vec<f32> = (0..4 * 2).map(|i| 0.5 - i as f32 * 0.125).collect();
    let layers = [
        LayerSpec::dense_f32(&w1, &[0.1, 0.2, 0.3, 0.4], Activation::Relu),
        LayerSpec::dense_f32(&w2, &[0.0, -0.5], Activation::Linear),
    ];
    let spec = ArtifactSpec {
        image: None,
        input: 3,
        input_quantization: None,
        layers: &layers,
        standardization: Some((&[1.0, 2.0, 3.0], &[1.0, 0.5, 2.0])),
        task: None,
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
    bad[4] = 4;
    let err = Artifact::parse(&bad).unwrap_err();
    assert_eq!(err, FormatError::UnsupportedVersion { found: 4, supported: 3 });
    assert!(err.to_string().contains("a newer dropship wrote it"), "{err}");

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

    // layer 1's record starts at byte 148: kind, activation, precision, width
    assert_eq!(u32::from_le_bytes(good[160..164].try_into().unwrap()), 2, "layer 1's width");
    let at = |offset: usize, value: u32| {
        let mut bad = good.clone();
        bad[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        reseal(&mut bad);
        Artifact::parse(&bad).unwrap_err()
    };
    let unknown_kind = at(148, 9);
    assert_eq!(unknown_kind, FormatError::UnknownCode { layer: 1, what: "layer kind", code: 9 });
    assert_eq!(
        unknown_kind.to_string(),
        "layer 1 has layer kind code 9, which this build does not know: a newer dropship wrote it"
    );
    assert_eq!(at(152, 7), FormatError::UnknownCode { layer: 1, what: "activation", code: 7 });
    assert_eq!(at(156, 5), FormatError::UnknownCode { layer: 1, what: "precision", code: 5 });
    assert_eq!(
        at(156, Precision::Int8.code()),
        FormatError::MixedPrecision { layer: 1, expected: Precision::F32, found: Precision::Int8 }
    );
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

fn int8_sample(weights: &[i8], bias: &[i32]) -> Result<Vec<u8>, FormatError> {
    let requant = [Requant::from_real(0.01).unwrap(); 2];
    let params = Int8Spec {
        weights,
        bias,
        requant: &requant,
        weight_scales: &[0.5, 0.25],
        output_scale: 0.1,
        output_zero: -3,
        lookup: None,
    };
    let layers = [LayerSpec::dense_int8(params, Activation::Relu)];
    let spec = ArtifactSpec {
        image: None,
        input: 3,
        input_quantization: Some((0.02, 5)),
        layers: &layers,
        standardization: Some((&[0.0, 1.0, 2.0], &[1.0, 1.0, 2.0])),
        task: None,
        class_names: "",
        provenance: "test",
    };
    let mut out = vec![0; spec.encoded_len()];
    let len = spec.write(&mut out)?;
    assert_eq!(len, out.len());
    Ok(out)
}

#[test]
fn int8_layers_write_what_they_parse_and_out_of_range_integers_are_refused() {
    let bytes = int8_sample(&[1, -2, 3, 127, -127, 0], &[100, -100]).unwrap();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!((a.input(), a.classes(), a.parameters(), a.input_quantization()), (3, 2, 8, Some((0.02, 5))));
    assert_eq!((a.precision(), a.format_version()), (Precision::Int8, 3));
    let l = a.layers().next().unwrap();
    let p = l.int8_params().unwrap();
    assert_eq!(p.weights_i8().collect::<Vec<_>>(), [1, -2, 3, 127, -127, 0]);
    assert_eq!(
        (p.output_zero, l.activation, p.bias.iter().collect::<Vec<_>>()),
        (-3, Activation::Relu, vec![100, -100])
    );
    // an int8 artifact does not load into the f32 network type
    let mut f32_net = dropship_shared::Network::<dropship_shared::Dense<3, 2>, 3, 2>::ZERO;
    let err = a.load_into(&mut f32_net).unwrap_err();
    assert_eq!(err, FormatError::MixedPrecision { layer: 0, expected: Precision::F32, found: Precision::Int8 });
    // -128 is outside the symmetric range; a bias that could overflow an accumulator is refused
    assert!(matches!(
        int8_sample(&[-128, 0, 0, 0, 0, 0], &[0, 0]),
        Err(FormatError::BadQuantization { what: "weight", .. })
    ));
    assert!(matches!(int8_sample(&[0; 6], &[i32::MAX, 0]), Err(FormatError::BadQuantization { what: "bias", .. })));
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(Artifact::parse(&b).is_err(), "bit {bit}");
        reseal(&mut b);
        if let Ok(a) = Artifact::parse(&b) {
            assert_eq!(a.len_bytes(), b.len());
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

/// Files earlier releases wrote (format versions 1 and 2) read as they were written; the f32 one
/// gives, on the fixed-size network, the logits that release computed, bit for bit.
#[test]
fn version_1_and_2_files_of_earlier_releases_still_read() {
    let v1 = fixture("v1.dsm");
    let a = Artifact::parse(&v1).unwrap();
    assert_eq!(
        (a.format_version(), a.precision(), a.widths().collect::<Vec<_>>()),
        (1, Precision::F32, vec![64, 16, 12, 10])
    );
    let mut net = TwoHidden::<64, 16, 12, 10>::ZERO;
    a.load_into(&mut net).unwrap();
    let vectors = fixture("v1.dsv");
    let vectors = Vectors::parse(&vectors).unwrap();
    assert_eq!(vectors.len(), 40);
    for v in vectors.iter() {
        let mut input = [0.0f32; 64];
        v.input.copy_to(&mut input).unwrap();
        let mut logits = [0.0f32; 10];
        let class = net.predict(&input, &mut Scratch::<64, 16>::new(), &mut logits);
        let expected: Vec<u32> = v.logits.iter().map(f32::to_bits).collect();
        assert_eq!(logits.map(f32::to_bits).to_vec(), expected);
        assert_eq!(class, v.class);
    }
    let v2 = fixture("v2.dsm");
    let a = Artifact::parse(&v2).unwrap();
    assert_eq!((a.format_version(), a.precision(), a.layers().count()), (2, Precision::Int8, 3));
    assert!(a.provenance().contains("quantized to int8"));
}

/// The task record reads back; an unknown task code and a non-finite threshold are refused by
/// name, and a file without the record is a classifier's (`None`).
#[test]
fn the_task_and_its_threshold_read_back_and_unknown_tasks_are_refused() {
    use dropship_shared::artifact::Task;
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.1).collect();
    let layers = [LayerSpec::dense_f32(&w, &[0.5, -0.5], Activation::Linear)];
    let write = |task| {
        let spec = ArtifactSpec {
            image: None,
            input: 3,
            input_quantization: None,
            layers: &layers,
            standardization: None,
            task,
            class_names: "",
            provenance: "task",
        };
        let mut out = vec![0; spec.encoded_len()];
        let len = spec.write(&mut out).unwrap();
        assert_eq!(len, out.len());
        out
    };
    for task in Task::ALL {
        let bytes = write(Some((*task, 0.25)));
        assert_eq!(Artifact::parse(&bytes).unwrap().task(), Some((*task, 0.25)));
    }
    assert_eq!(Artifact::parse(&write(None)).unwrap().task(), None);
    // the task code sits after the header's texts: magic, version, flags, input, layers, 2 lengths + "task"
    let at = 4 + 4 * 4 + 4 + 4 + "task".len();
    let mut unknown = write(Some((Task::Binary, 0.5)));
    unknown[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    reseal(&mut unknown);
    let e = Artifact::parse(&unknown).unwrap_err().to_string();
    assert!(e.contains("task code 9") && e.contains("newer dropship"), "{e}");
    let mut nan = write(Some((Task::Binary, 0.5)));
    nan[at + 4..at + 8].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut nan);
    assert!(Artifact::parse(&nan).unwrap_err().to_string().contains("task threshold"));
}

/// A layer built for linear and ReLU only (`Dense<IN, OUT, false>`, what the firmware generator
/// writes for such layers) refuses an artifact whose layer needs another activation; the default
/// `Dense<IN, OUT>` takes it.
#[test]
fn a_fused_only_layer_refuses_another_activation() {
    use dropship_shared::{Dense, Network};
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.1).collect();
    for (activation, fused_ok) in [(Activation::Relu, true), (Activation::Linear, true), (Activation::Sigmoid, false)] {
        let layers = [LayerSpec::dense_f32(&w, &[0.5, -0.5], activation)];
        let spec = ArtifactSpec {
            image: None,
            input: 3,
            input_quantization: None,
            layers: &layers,
            standardization: None,
            task: None,
            class_names: "",
            provenance: "fused",
        };
        let mut out = vec![0; spec.encoded_len()];
        spec.write(&mut out).unwrap();
        let a = Artifact::parse(&out).unwrap();
        let mut fused: Network<Dense<3, 2, false>, 3, 2> = Network::ZERO;
        let mut full: Network<Dense<3, 2>, 3, 2> = Network::ZERO;
        assert_eq!(a.load_into(&mut fused).is_ok(), fused_ok, "{activation}");
        assert!(a.load_into(&mut full).is_ok(), "{activation}");
        if !fused_ok {
            let e = a.load_into(&mut fused).unwrap_err().to_string();
            assert!(e.contains("layer 0 has sigmoid") && e.contains("linear and ReLU only"), "{e}");
        }
    }
}

/// A small CNN: 6×5×2 image → Conv2D 3 filters 3×3 stride 2 same (ReLU) → DepthwiseConv2D 2×2
/// valid → MaxPool 2×1 → GlobalAveragePool → Dense 2; and the spec's parts for corrupting it.
fn conv_spec_bytes(
    edit: impl FnOnce(&mut Vec<LayerSpec<'_>>, &mut Option<dropship_shared::Dims>),
) -> Result<Vec<u8>, FormatError> {
    use dropship_shared::artifact::ParamsSpec;
    use dropship_shared::{Dims, LayerKind, LayerShape, Padding, Window};
    let k1: Vec<f32> = (0..3 * 3 * 2 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    let k2: Vec<f32> = (0..2 * 2 * 3).map(|i| (i as f32 * 0.51).cos()).collect();
    let d: Vec<f32> = (0..3 * 2).map(|i| i as f32 * 0.1).collect();
    let mut layers = vec![
        LayerSpec {
            shape: LayerShape::windowed(
                LayerKind::Conv2d,
                3,
                Window::new([3, 3], [2, 2], Padding::Same),
                Activation::Relu,
            ),
            params: ParamsSpec::F32 { weights: &k1, bias: &[0.1, 0.2, 0.3] },
        },
        LayerSpec {
            shape: LayerShape::windowed(
                LayerKind::DepthwiseConv2d,
                3,
                Window::new([2, 2], [1, 1], Padding::Valid),
                Activation::Tanh,
            ),
            params: ParamsSpec::F32 { weights: &k2, bias: &[0.0, -0.1, 0.1] },
        },
        LayerSpec {
            shape: LayerShape::windowed(
                LayerKind::MaxPool2d,
                3,
                Window::new([2, 1], [2, 1], Padding::Valid),
                Activation::Linear,
            ),
            params: ParamsSpec::None,
        },
        LayerSpec {
            shape: LayerShape { kind: LayerKind::GlobalAveragePool, ..LayerShape::dense(3, Activation::Linear) },
            params: ParamsSpec::None,
        },
        LayerSpec::dense_f32(&d, &[0.5, -0.5], Activation::Softmax),
    ];
    let mut image = Some(Dims::image(6, 5, 2));
    edit(&mut layers, &mut image);
    let spec = ArtifactSpec {
        image,
        input: 60,
        input_quantization: None,
        layers: &layers,
        standardization: None,
        task: None,
        class_names: "",
        provenance: "cnn",
    };
    let mut out = vec![0; spec.encoded_len()];
    let len = spec.write(&mut out)?;
    assert_eq!(len, out.len(), "encoded_len is exact");
    Ok(out)
}

#[test]
fn convolution_and_pooling_layers_round_trip_with_their_windows_and_maps() {
    use dropship_shared::{Dims, LayerKind, Padding};
    let bytes = conv_spec_bytes(|_, _| {}).unwrap();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.input_dims(), Dims::image(6, 5, 2));
    assert!(!a.is_dense_only());
    let maps: Vec<Dims> = a.layers().map(|l| l.output_dims).collect();
    assert_eq!(maps, [Dims::image(3, 3, 3), Dims::image(2, 2, 3), Dims::image(1, 2, 3), Dims::flat(3), Dims::flat(2)]);
    let first = a.layers().next().unwrap();
    assert_eq!(
        (first.kind, first.window.size, first.window.stride, first.window.padding),
        (LayerKind::Conv2d, [3, 3], [2, 2], Padding::Same)
    );
    assert_eq!(a.parameters(), (54 + 3) + (12 + 3) + 6 + 2);
    // MACs count every tap: 9 positions × 9 taps × 2 channels × 3 filters, 4 × 4 × 3, 3 × 2
    assert_eq!(a.macs(), 9 * 9 * 2 * 3 + 4 * 4 * 3 + 6);
    assert_eq!(a.widths().collect::<Vec<_>>(), [60, 27, 12, 6, 3, 2]);
    let mut net = OneHidden::<60, 3, 2>::ZERO;
    assert_eq!(
        a.load_into(&mut net).unwrap_err(),
        FormatError::BadLayer { layer: 0, what: "not Dense: a Dense-only network type cannot hold it" }
    );
}

#[test]
fn a_layer_that_cannot_take_its_input_map_is_refused_by_layer() {
    use dropship_shared::artifact::ParamsSpec;
    use dropship_shared::{Dims, LayerShape, Window};
    // write-side: the spec is checked before a byte is written
    let dense_after_map = conv_spec_bytes(|layers, _| {
        layers.remove(3);
    });
    assert!(matches!(dense_after_map, Err(FormatError::BadLayer { layer: 3, .. })), "{dense_after_map:?}");
    let too_big =
        conv_spec_bytes(|layers, _| layers[1].shape.window = Window { size: [4, 4], ..layers[1].shape.window });
    assert!(matches!(too_big, Err(FormatError::BadLayer { layer: 1, .. })), "{too_big:?}");
    let wrong_image = conv_spec_bytes(|_, image| *image = Some(Dims::image(5, 6, 2)));
    assert!(wrong_image.is_ok(), "6×5 and 5×6 both hold 60 values: {wrong_image:?}");
    let wrong_len = conv_spec_bytes(|_, image| *image = Some(Dims::image(5, 5, 2)));
    assert!(wrong_len.is_err());
    // read-side, on bytes a writer could not make: a pool with an activation, softmax on a map
    let good = conv_spec_bytes(|_, _| {}).unwrap();
    assert!(Artifact::parse(&good).is_ok());
    let pool_record = good.len() - 4 - (16 + 4 * (6 + 2)) /* Dense */ - 16 /* GAP */ - (16 + 20) /* pool */;
    assert_eq!(u32::from_le_bytes(good[pool_record..pool_record + 4].try_into().unwrap()), 4, "the pool's kind tag");
    let mut bad = good.clone();
    bad[pool_record + 4] = Activation::Relu.code() as u8;
    reseal(&mut bad);
    assert!(
        matches!(Artifact::parse(&bad), Err(FormatError::BadLayer { layer: 2, what }) if what.contains("without weights"))
    );
    let mut bad = good.clone();
    bad[pool_record + 16 + 16] = 7; // padding code 7
    reseal(&mut bad);
    assert_eq!(Artifact::parse(&bad).unwrap_err(), FormatError::UnknownCode { layer: 2, what: "padding", code: 7 });
    let mut bad = good.clone();
    bad[pool_record + 16] = 0; // a window of no rows
    reseal(&mut bad);
    assert!(matches!(Artifact::parse(&bad), Err(FormatError::ShapeMismatch { .. })));
    let softmax_map = conv_spec_bytes(|layers, _| {
        layers[0].shape = LayerShape { activation: Activation::Softmax, ..layers[0].shape };
    });
    assert!(softmax_map.is_err(), "softmax is only a last layer's");
    let missing_weights = conv_spec_bytes(|layers, _| layers[1].params = ParamsSpec::None);
    assert!(matches!(missing_weights, Err(FormatError::ShapeMismatch { what: "layer weights", .. })));
}
