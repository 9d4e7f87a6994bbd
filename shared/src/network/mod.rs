//! Fixed-size networks of any depth: `Dense<IN, OUT>` layers chained into a [`Network`].
//!
//! Shapes are const generics, so a shape mismatch is a compile error and inference needs no error
//! type. A network is a chain of layers, `Chain<Dense<64, 64>, Chain<Dense<64, 32>, Dense<32, 10>>>`
//! for 64 → 64 → 32 → 10; the activations live in a [`Scratch`] of two buffers whose sizes the
//! chain computes ([`Layers::BUFFER_A`], [`Layers::BUFFER_B`]). All arithmetic goes through
//! [`crate::ops`], the one place that defines it. [`int8`] runs int8 networks, [`graph`] f32
//! networks of any layer kind (convolutions, pooling).

pub mod graph;
pub mod int8;

use crate::ops::activation::Activation;
use crate::ops::dense as kernel;
use crate::ops::output::{argmax, canonical_nans};
use crate::ops::standardize::standardize;

/// A dense layer, kernel input-major (`weights[i][o]`, see the crate docs), and what follows it.
///
/// `CURVES` says whether the layer's code can apply every activation (the default) or only the
/// ones fused into the kernel, linear and ReLU: the firmware generator writes `Dense<IN, OUT,
/// false>` for those layers, so a firmware whose layers are all linear and ReLU links no sigmoid,
/// tanh or softmax code. Such a layer applies any other activation as linear;
/// [`crate::artifact::Artifact::load_into`] refuses to load one into it.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<const IN: usize, const OUT: usize, const CURVES: bool = true> {
    /// `weights[i][o]`: from input `i` to output `o`.
    pub weights: [[f32; OUT]; IN],
    /// One bias per output.
    pub bias: [f32; OUT],
    /// Applied to the outputs: ReLU on hidden layers, nothing on the logits.
    pub activation: Activation,
}

impl<const IN: usize, const OUT: usize, const CURVES: bool> Dense<IN, OUT, CURVES> {
    /// A layer of zeros, no activation.
    pub const ZERO: Self = Self { weights: [[0.0; OUT]; IN], bias: [0.0; OUT], activation: Activation::Linear };

    /// `output = input · weights + bias`, then the activation. `input` holds at least `IN` values
    /// and `output` at least `OUT` (the chain's buffer sizes guarantee it; extra values are unused).
    pub fn forward(&self, input: &[f32], output: &mut [f32]) {
        let (Some(input), Some(output)) = (input.get(..IN), output.get_mut(..OUT)) else {
            return;
        };
        let weights = self.weights.as_flattened();
        match (CURVES, OUT <= 16) {
            // Narrow layers (the classes) keep all their accumulators in registers at once.
            (true, true) => kernel::dense_blocked::<OUT>(input, weights, &self.bias, output, self.activation),
            (true, false) => kernel::dense(input, weights, &self.bias, output, self.activation),
            (false, true) => kernel::dense_fused::<OUT>(input, weights, &self.bias, output, self.activation),
            (false, false) => kernel::dense_fused::<16>(input, weights, &self.bias, output, self.activation),
        }
    }
}

/// `Head`, then the layers of `Tail`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain<Head, Tail> {
    /// The first layer.
    pub head: Head,
    /// Everything after it.
    pub tail: Tail,
}

/// A stack of dense layers: its shape as constants, and the forward pass over two buffers.
///
/// The input is in buffer `a`; the first layer writes buffer `b`, the next reads `b` and writes
/// `a`, and so on; the last layer writes the caller's output. [`Layers::BUFFER_A`] and
/// [`Layers::BUFFER_B`] are the widths each buffer must hold.
pub trait Layers {
    /// Input width.
    const INPUT: usize;
    /// Output width (the classes, for a whole network).
    const OUTPUT: usize;
    /// Number of dense layers.
    const DEPTH: usize;
    /// Weights and biases.
    const PARAMETERS: usize;
    /// Multiply-accumulates per inference.
    const MACS: usize;
    /// Values buffer `a` must hold (the input, then every second layer's output).
    const BUFFER_A: usize;
    /// Values buffer `b` must hold.
    const BUFFER_B: usize;
    /// Every weight and bias zero.
    const ZERO: Self;

    /// Runs the layers on `a[..INPUT]`, using `b` and then `a` again for the activations between
    /// them, and writes `output[..OUTPUT]`.
    fn forward(&self, a: &mut [f32], b: &mut [f32], output: &mut [f32]) {
        self.forward_marked(a, b, output, &mut || {});
    }

    /// [`Layers::forward`], calling `mark` after each layer (a firmware reads its cycle counter
    /// there, for the cost of each layer).
    fn forward_marked<M: FnMut()>(&self, a: &mut [f32], b: &mut [f32], output: &mut [f32], mark: &mut M);

    /// The layers in order, as `(input width, weights, bias, activation)`, for loading and listing.
    fn for_each_layer_mut(&mut self, index: usize, f: &mut dyn FnMut(usize, LayerMut<'_>));
}

/// One layer's parameters, borrowed for loading.
pub struct LayerMut<'a> {
    /// Input width.
    pub input: usize,
    /// `input * output` weights, input-major.
    pub weights: &'a mut [f32],
    /// `output` biases.
    pub bias: &'a mut [f32],
    /// What follows the layer.
    pub activation: &'a mut Activation,
    /// Whether the layer's code applies every activation (`Dense`'s `CURVES`), or only linear
    /// and ReLU.
    pub curves: bool,
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

impl<const IN: usize, const OUT: usize, const CURVES: bool> Layers for Dense<IN, OUT, CURVES> {
    const INPUT: usize = IN;
    const OUTPUT: usize = OUT;
    const DEPTH: usize = 1;
    const PARAMETERS: usize = IN * OUT + OUT;
    const MACS: usize = IN * OUT;
    const BUFFER_A: usize = IN;
    const BUFFER_B: usize = 0;
    const ZERO: Self = Self::ZERO;

    fn forward_marked<M: FnMut()>(&self, a: &mut [f32], _: &mut [f32], output: &mut [f32], mark: &mut M) {
        Dense::forward(self, a, output);
        mark();
    }

    fn for_each_layer_mut(&mut self, index: usize, f: &mut dyn FnMut(usize, LayerMut<'_>)) {
        let layer = LayerMut {
            input: IN,
            weights: self.weights.as_flattened_mut(),
            bias: &mut self.bias,
            activation: &mut self.activation,
            curves: CURVES,
        };
        f(index, layer);
    }
}

impl<const IN: usize, const OUT: usize, const CURVES: bool, Tail: Layers> Layers
    for Chain<Dense<IN, OUT, CURVES>, Tail>
{
    const INPUT: usize = IN;
    const OUTPUT: usize = Tail::OUTPUT;
    const DEPTH: usize = 1 + Tail::DEPTH;
    const PARAMETERS: usize = IN * OUT + OUT + Tail::PARAMETERS;
    const MACS: usize = IN * OUT + Tail::MACS;
    // The head reads `a` and writes `b`; the tail then reads `b` and writes `a`.
    const BUFFER_A: usize = max(IN, Tail::BUFFER_B);
    const BUFFER_B: usize = max(OUT, Tail::BUFFER_A);
    const ZERO: Self = {
        // A chain whose widths do not meet fails to compile here.
        assert!(Tail::INPUT == OUT, "a layer's outputs must be the next layer's inputs");
        Self { head: Dense::ZERO, tail: Tail::ZERO }
    };

    fn forward_marked<M: FnMut()>(&self, a: &mut [f32], b: &mut [f32], output: &mut [f32], mark: &mut M) {
        self.head.forward(a, b);
        mark();
        self.tail.forward_marked(b, a, output, mark);
    }

    fn for_each_layer_mut(&mut self, index: usize, f: &mut dyn FnMut(usize, LayerMut<'_>)) {
        self.head.for_each_layer_mut(index, f);
        self.tail.for_each_layer_mut(index + 1, f);
    }
}

/// The widths `(a, b)` the two scratch buffers of a network need, given its widths from the input
/// to the classes: buffer `a` holds the input and every second layer's output, `b` the others; the
/// last layer writes the caller's logits. The same values as [`Layers::BUFFER_A`] and
/// [`Layers::BUFFER_B`], for shapes known only at run time (an artifact being inspected or built).
pub const fn scratch_widths(widths: &[usize]) -> (usize, usize) {
    let (mut a, mut b) = (0, 0);
    let mut i = 0;
    while i + 1 < widths.len() {
        if i % 2 == 0 {
            a = max(a, widths[i]);
        } else {
            b = max(b, widths[i]);
        }
        i += 1;
    }
    (a, b)
}

/// Bytes of RAM one inference needs for its activations (both scratch buffers and the logits).
pub const fn activation_bytes(widths: &[usize]) -> usize {
    let (a, b) = scratch_widths(widths);
    let classes = if let [.., last] = widths { *last } else { 0 };
    (a + b + classes) * core::mem::size_of::<f32>()
}

/// The input standardization fitted on the training rows: `(x - mean) / scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardization<const N: usize> {
    /// Per-feature mean of the training rows.
    pub mean: [f32; N],
    /// Per-feature standard deviation of the training rows (1 for a constant feature).
    pub scale: [f32; N],
}

impl<const N: usize> Standardization<N> {
    /// The identity: mean 0, scale 1.
    pub const IDENTITY: Self = Self { mean: [0.0; N], scale: [1.0; N] };
}

/// `standardize → layers`: a classifier taking `IN` raw features and giving `CLASSES` logits.
///
/// There is no dropout here, and no place for it: dropout is a training-time operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<L, const IN: usize, const CLASSES: usize> {
    /// Applied to raw inputs by [`Network::logits`]; `None` for models that take standardized input.
    pub standardization: Option<Standardization<IN>>,
    /// The dense layers.
    pub layers: L,
}

/// The course's classifier: `Dense(IN → HIDDEN)`, ReLU, `Dense(HIDDEN → CLASSES)`.
pub type OneHidden<const IN: usize, const HIDDEN: usize, const CLASSES: usize> =
    Network<Chain<Dense<IN, HIDDEN>, Dense<HIDDEN, CLASSES>>, IN, CLASSES>;

/// Two hidden layers: `Dense(IN → H1)`, ReLU, `Dense(H1 → H2)`, ReLU, `Dense(H2 → CLASSES)`.
pub type TwoHidden<const IN: usize, const H1: usize, const H2: usize, const CLASSES: usize> =
    Network<Chain<Dense<IN, H1>, Chain<Dense<H1, H2>, Dense<H2, CLASSES>>>, IN, CLASSES>;

/// Working memory for one inference: the activations, and nothing else. `A` and `B` are the
/// network's [`Layers::BUFFER_A`] and [`Layers::BUFFER_B`] (larger is allowed, smaller does not
/// compile).
#[derive(Clone, Debug)]
pub struct Scratch<const A: usize, const B: usize> {
    a: [f32; A],
    b: [f32; B],
}

impl<const A: usize, const B: usize> Scratch<A, B> {
    /// Zeroed scratch space.
    pub const fn new() -> Self {
        Self { a: [0.0; A], b: [0.0; B] }
    }
}

impl<const A: usize, const B: usize> Default for Scratch<A, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: Layers, const IN: usize, const CLASSES: usize> Network<L, IN, CLASSES> {
    /// A network of zeros without standardization.
    pub const ZERO: Self = {
        assert!(L::INPUT == IN && L::OUTPUT == CLASSES, "the layers' input and output widths are IN and CLASSES");
        Self { standardization: None, layers: L::ZERO }
    };

    /// Weights and biases of every layer.
    pub const PARAMETERS: usize = L::PARAMETERS;

    /// Multiply-accumulates per inference.
    pub const MACS: usize = L::MACS;

    /// Bytes of activations one inference needs: both scratch buffers and the logits.
    pub const ACTIVATION_BYTES: usize = (L::BUFFER_A + L::BUFFER_B + CLASSES) * core::mem::size_of::<f32>();

    /// Writes the logits for a raw (unstandardized) input.
    pub fn logits<const A: usize, const B: usize>(
        &self,
        input: &[f32; IN],
        scratch: &mut Scratch<A, B>,
        logits: &mut [f32; CLASSES],
    ) {
        self.logits_marked(input, scratch, logits, &mut || {});
    }

    /// [`Network::logits`], calling `mark` once the input is standardized and after each layer.
    pub fn logits_marked<const A: usize, const B: usize, M: FnMut()>(
        &self,
        input: &[f32; IN],
        scratch: &mut Scratch<A, B>,
        logits: &mut [f32; CLASSES],
        mark: &mut M,
    ) {
        const {
            assert!(L::INPUT == IN && L::OUTPUT == CLASSES, "the layers' input and output widths are IN and CLASSES");
            assert!(A >= L::BUFFER_A && B >= L::BUFFER_B, "the scratch is smaller than the network's activations");
        }
        let Some(a) = scratch.a.get_mut(..IN) else { return };
        match &self.standardization {
            Some(s) => standardize(input, &s.mean, &s.scale, a),
            None => a.copy_from_slice(input),
        }
        mark();
        self.layers.forward_marked(&mut scratch.a, &mut scratch.b, logits, mark);
        canonical_nans(logits);
    }

    /// The predicted class for a raw input, with its logits.
    pub fn predict<const A: usize, const B: usize>(
        &self,
        input: &[f32; IN],
        scratch: &mut Scratch<A, B>,
        logits: &mut [f32; CLASSES],
    ) -> usize {
        self.logits(input, scratch, logits);
        argmax(logits)
    }

    /// [`Network::predict`], calling `mark` once the input is standardized and after each layer:
    /// the stages of one inference, for a firmware that reports what each cost.
    pub fn predict_marked<const A: usize, const B: usize, M: FnMut()>(
        &self,
        input: &[f32; IN],
        scratch: &mut Scratch<A, B>,
        logits: &mut [f32; CLASSES],
        mark: &mut M,
    ) -> usize {
        self.logits_marked(input, scratch, logits, mark);
        argmax(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_network_by_hand() {
        // x = [3, 1] standardized with mean [1, 1], scale [2, 1] -> [1, 0]
        // hidden = relu([1, 0] · [[1, -1], [5, 5]] + [0, 0]) = relu([1, -1]) = [1, 0]
        // logits = [1, 0] · [[2, 0, 1], [9, 9, 9]] + [0, 0.5, 0] = [2, 0.5, 1]
        let net = OneHidden::<2, 2, 3> {
            standardization: Some(Standardization { mean: [1.0, 1.0], scale: [2.0, 1.0] }),
            layers: Chain {
                head: Dense { weights: [[1.0, -1.0], [5.0, 5.0]], bias: [0.0; 2], activation: Activation::Relu },
                tail: Dense {
                    weights: [[2.0, 0.0, 1.0], [9.0, 9.0, 9.0]],
                    bias: [0.0, 0.5, 0.0],
                    activation: Activation::Linear,
                },
            },
        };
        let mut logits = [0.0; 3];
        let class = net.predict(&[3.0, 1.0], &mut Scratch::<2, 2>::new(), &mut logits);
        assert_eq!(logits, [2.0, 0.5, 1.0]);
        assert_eq!(class, 0);
        assert_eq!(OneHidden::<64, 128, 10>::PARAMETERS, 9610);
        assert_eq!(OneHidden::<64, 128, 10>::ACTIVATION_BYTES, 808, "64 standardized + 128 hidden + 10 logits");
    }

    #[test]
    fn a_deep_chain_alternates_its_buffers_and_sizes_them_by_the_widest_layer() {
        type DeepLayers = Chain<Dense<3, 5>, Chain<Dense<5, 2>, Dense<2, 4>>>;
        type Deep = Network<DeepLayers, 3, 4>;
        // a: the input (3), then the second hidden layer (2); b: the first hidden layer (5).
        assert_eq!((DeepLayers::BUFFER_A, DeepLayers::BUFFER_B, DeepLayers::DEPTH), (3, 5, 3));
        assert_eq!(scratch_widths(&[3, 5, 2, 4]), (3, 5), "the run-time rule agrees with the types");
        assert_eq!(activation_bytes(&[3, 5, 2, 4]), Deep::ACTIVATION_BYTES);
        type Wide = Chain<Dense<4, 9>, Chain<Dense<9, 16>, Chain<Dense<16, 3>, Dense<3, 2>>>>;
        assert_eq!(scratch_widths(&[4, 9, 16, 3, 2]), (Wide::BUFFER_A, Wide::BUFFER_B));
        assert_eq!(scratch_widths(&[4, 9, 16, 3, 2]), (16, 9));
        assert_eq!(scratch_widths(&[7, 2]), (<Dense<7, 2>>::BUFFER_A, <Dense<7, 2>>::BUFFER_B));
        assert_eq!(activation_bytes(&[64, 128, 10]), OneHidden::<64, 128, 10>::ACTIVATION_BYTES);
        assert_eq!(Deep::PARAMETERS, 3 * 5 + 5 + 5 * 2 + 2 + 2 * 4 + 4);
        assert_eq!(Deep::MACS, 15 + 10 + 8);
        let mut net = Deep::ZERO;
        // Identity-like weights: each layer passes (a sum of) its inputs on, so the result is known.
        net.layers.for_each_layer_mut(0, &mut |index, layer| {
            let outputs = layer.bias.len();
            for (i, row) in layer.weights.chunks_exact_mut(outputs).enumerate() {
                row[i % outputs] = 1.0;
            }
            layer.bias.fill(index as f32);
            *layer.activation = if index < 2 { Activation::Relu } else { Activation::Linear };
        });
        let mut logits = [0.0; 4];
        net.logits(&[1.0, 2.0, -4.0], &mut Scratch::<3, 5>::new(), &mut logits);
        // layer 0: [1, 2, 0 (relu of -4), 0, 0]; layer 1: [1+0+0 +1, 2+0 +1] = [2, 3];
        // layer 2: [2 + 2, 3 + 2, 2, 2]
        assert_eq!(logits, [4.0, 5.0, 2.0, 2.0]);
    }
}
