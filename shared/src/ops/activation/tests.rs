use super::*;

/// Distance in units in the last place between an f32 and the exact value.
fn ulps(got: f32, exact: f64) -> f64 {
    let rounded = exact as f32;
    let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
    (got as f64 - exact).abs() / ulp
}

/// `n` f32s spread evenly over the bit patterns between `lo` and `hi` (same sign), both ends in.
fn spread(lo: f32, hi: f32, n: u32) -> impl Iterator<Item = f32> {
    let (a, b) = (lo.to_bits().min(hi.to_bits()), lo.to_bits().max(hi.to_bits()));
    (0..=n).map(move |i| f32::from_bits(a + ((b - a) as u64 * i as u64 / n as u64) as u32))
}

fn exact_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

/// Largest ulp error of `f` against `exact` over `inputs`, with the input where it happens.
fn worst(inputs: impl Iterator<Item = f32>, f: fn(f32) -> f32, exact: fn(f64) -> f64) -> (f64, f32) {
    inputs.fold((0.0, 0.0), |(w, at), x| {
        let e = ulps(f(x), exact(x as f64));
        if e > w {
            (e, x)
        } else {
            (w, at)
        }
    })
}

#[test]
fn each_formula_is_within_its_stated_error_of_the_exact_function() {
    let n = 1_000_000;
    let (e, at) = worst(spread(-0.0, EXP_FLOOR, n), exp_nonpositive, f64::exp);
    eprintln!("exp: {e} ulp at {at}");
    assert!(e <= 1.5, "exp: {e} ulp at {at}");
    let sig = |lo, hi| worst(spread(lo, hi, n), sigmoid, exact_sigmoid);
    for (e, at) in [sig(-0.0, EXP_FLOOR), sig(0.0, 20.0)] {
        eprintln!("sigmoid: {e} ulp at {at}");
        assert!(e <= 2.5, "sigmoid: {e} ulp at {at}");
    }
    let th = |lo, hi| worst(spread(lo, hi, n), tanh, f64::tanh);
    for (e, at) in [th(1e-30, 10.0), th(-1e-30, -10.0)] {
        eprintln!("tanh: {e} ulp at {at}");
        assert!(e <= 3.0, "tanh: {e} ulp at {at}");
    }
    let (e, at) =
        worst(spread(-10.0, -0.0, n).chain(spread(0.0, 10.0, n)), hard_sigmoid, |x| (x + 3.0).clamp(0.0, 6.0) / 6.0);
    assert!(e <= 1.0, "hard-sigmoid: {e} ulp at {at}");
}

#[test]
fn the_edges_give_the_specified_values() {
    let bits = |v: f32| v.to_bits();
    let tiny = f32::from_bits(1); // the smallest subnormal
    let sub = f32::from_bits(0x0040_0000); // a subnormal of 2^-127
                                           // ±0
    assert_eq!((bits(sigmoid(0.0)), bits(sigmoid(-0.0))), (bits(0.5), bits(0.5)));
    assert_eq!((bits(tanh(0.0)), bits(tanh(-0.0))), (bits(0.0), bits(-0.0)));
    assert_eq!((bits(hard_sigmoid(0.0)), bits(hard_sigmoid(-0.0))), (bits(0.5), bits(0.5)));
    assert_eq!(bits(exp_nonpositive(0.0)), bits(1.0));
    assert_eq!(bits(exp_nonpositive(-0.0)), bits(1.0));
    // subnormals: sigmoid is 0.5, tanh is odd and returns them as they are
    for s in [tiny, sub, -tiny, -sub] {
        assert_eq!(bits(sigmoid(s)), bits(0.5));
        assert_eq!(bits(tanh(s)), bits(s));
        assert_eq!(bits(hard_sigmoid(s)), bits(0.5));
    }
    // large magnitudes and infinities
    for big in [88.0, 1e30, f32::MAX, f32::INFINITY] {
        assert_eq!((sigmoid(big), sigmoid(-big)), (1.0, 0.0), "{big}");
        assert_eq!((tanh(big), tanh(-big)), (1.0, -1.0), "{big}");
        assert_eq!((hard_sigmoid(big), hard_sigmoid(-big)), (1.0, 0.0), "{big}");
        assert_eq!(exp_nonpositive(-big), 0.0);
    }
    // just above the floor the result is a normal number, below it 0
    assert!(exp_nonpositive(-87.0).is_normal() && sigmoid(-87.0).is_normal());
    assert_eq!((exp_nonpositive(-87.01), sigmoid(-87.01)), (0.0, 0.0));
    // hard-sigmoid's corners
    assert_eq!((hard_sigmoid(-3.0), hard_sigmoid(3.0), hard_sigmoid(1.5)), (0.0, 1.0, 0.75));
    // NaN of any payload and sign gives the canonical NaN; ReLU gives +0
    for nan in [f32::NAN, -f32::NAN, f32::from_bits(0x7fc0_1234), f32::from_bits(0xff80_0001)] {
        for a in [Activation::Sigmoid, Activation::Tanh, Activation::HardSigmoid] {
            assert_eq!(bits(a.apply(nan)), 0x7fc0_0000, "{a}");
        }
        assert_eq!(bits(Activation::Relu.apply(nan)), 0);
    }
}

#[test]
fn softmax_sums_to_one_and_handles_its_edges() {
    let mut v = [1.0f32, 2.0, 3.0, -1e30];
    softmax(&mut v);
    let exact: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|x| (x - 3.0).exp()).collect();
    let total: f64 = exact.iter().sum();
    for (got, e) in v.iter().zip(&exact) {
        assert!(ulps(*got, e / total) <= 4.0, "{got} vs {}", e / total);
    }
    assert_eq!(v[3], 0.0);
    assert!((v.iter().map(|x| *x as f64).sum::<f64>() - 1.0).abs() < 1e-6);
    // equal logits: uniform; a shift common to all changes nothing
    let mut a = [5.0f32, 5.0, 5.0, 5.0];
    softmax(&mut a);
    assert_eq!(a, [0.25; 4]);
    let (mut b, mut c) = ([0.5f32, -2.0, 1.25], [100.5f32, 98.0, 101.25]);
    softmax(&mut b);
    softmax(&mut c);
    assert_eq!(b, c);
    // +inf takes all the mass, shared between the infinite entries; -inf only is uniform
    let mut d = [f32::INFINITY, 1.0, f32::INFINITY];
    softmax(&mut d);
    assert_eq!(d, [0.5, 0.0, 0.5]);
    let mut e = [f32::NEG_INFINITY; 2];
    softmax(&mut e);
    assert_eq!(e, [0.5, 0.5]);
    // a NaN anywhere: every output is the canonical NaN
    let mut f = [1.0, f32::from_bits(0xffc0_0001), 2.0];
    softmax(&mut f);
    assert!(f.iter().all(|v| v.to_bits() == 0x7fc0_0000));
    // through apply_layer, and apply leaves it to apply_layer
    let mut g = [0.0f32, 0.0];
    Activation::Softmax.apply_layer(&mut g);
    assert_eq!(g, [0.5, 0.5]);
    assert_eq!(Activation::Softmax.apply(3.0), 3.0);
}
