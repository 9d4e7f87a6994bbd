//! The serving firmware's board-independent half: the hello a board sends, and the adapter from
//! its inference closure to `dropship-link`'s [`Model`].

use dropship_link::{CostUnit, Hello, Model};

use crate::ModelShape;

/// The hello of a firmware running `shape` (built from the artifact with digest `digest`) on `board`.
pub fn hello(shape: &ModelShape, digest: u64, board: &'static str, cost_unit: CostUnit) -> Hello<'static> {
    let last = shape.widths.len().saturating_sub(1);
    Hello {
        protocol: dropship_link::PROTOCOL_VERSION,
        firmware: env!("CARGO_PKG_VERSION"),
        board,
        digest,
        input: shape.widths.first().copied().unwrap_or(0) as u32,
        classes: shape.widths.get(last).copied().unwrap_or(0) as u32,
        layers: shape.depth() as u32,
        macs: shape.macs as u32,
        cost_unit,
        max_frame: 0,
    }
}

/// A board's inference (`infer` returns the class and what the inference cost) served over a link.
pub struct Serving<F> {
    hello: Hello<'static>,
    infer: F,
}

impl<F> Serving<F> {
    /// Serves `infer`, introducing itself with `hello`.
    pub fn new(hello: Hello<'static>, infer: F) -> Self {
        Self { hello, infer }
    }
}

impl<F, const IN: usize, const CLASSES: usize> Model<IN, CLASSES> for Serving<F>
where
    F: FnMut(&[f32; IN], &mut [f32; CLASSES]) -> (usize, u32),
{
    fn hello(&self) -> Hello<'static> {
        self.hello
    }

    fn infer(&mut self, input: &[f32; IN], logits: &mut [f32; CLASSES]) -> (usize, u32) {
        (self.infer)(input, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_describes_the_shape() {
        const LAYERS: [dropship_shared::LayerShape; 2] = [
            dropship_shared::LayerShape::dense(32, dropship_shared::Activation::Relu),
            dropship_shared::LayerShape::dense(10, dropship_shared::Activation::Linear),
        ];
        let shape = ModelShape {
            widths: &[64, 32, 10],
            layers: &LAYERS,
            parameters: 2410,
            macs: 2368,
            weight_bytes: 9640,
            activation_bytes: 384,
        };
        let h = hello(&shape, 7, "qemu", CostUnit::Instructions);
        assert_eq!((h.input, h.classes, h.layers, h.macs, h.digest, h.board), (64, 10, 2, 2368, 7, "qemu"));
        let mut served = Serving::new(h, |x: &[f32; 1], l: &mut [f32; 1]| {
            l[0] = x[0] * 2.0;
            (0, 5)
        });
        let mut logits = [0.0];
        assert_eq!(Model::infer(&mut served, &[1.5], &mut logits), (0, 5));
        assert_eq!(logits, [3.0]);
        assert_eq!(Model::<1, 1>::hello(&served).digest, 7);
    }
}
