//! Writing an artifact (always the newest version) from parameters borrowed from the writer's
//! memory; the result is parsed back before it is returned, so nothing written fails to load.

use super::read::{padded, FLAG_IMAGE, FLAG_INPUT_QUANTIZATION, FLAG_STANDARDIZATION, FLAG_TASK};
use super::{Activation, Artifact, Dims, FormatError, LayerShape, Precision, Task, MAGIC, VERSION};
use crate::ops::activation::int8::Lookup;
use crate::ops::dense::int8::Requant;
use crate::wire::Writer;

/// The int8 parameters of a layer to write.
#[derive(Clone, Copy, Debug)]
pub struct Int8Spec<'a> {
    /// `output * input` weights, output-major, each in -127..=127.
    pub weights: &'a [i8],
    /// Folded biases, one per output.
    pub bias: &'a [i32],
    /// Requantization per output.
    pub requant: &'a [Requant],
    /// Weight scale per output.
    pub weight_scales: &'a [f32],
    /// Scale of the output tensor.
    pub output_scale: f32,
    /// Zero point of the output tensor.
    pub output_zero: i8,
    /// The activation's table: present exactly for sigmoid, tanh, hard-sigmoid and softmax.
    pub lookup: Option<LookupSpec<'a>>,
}

/// An int8 activation table to write ([`crate::ops::activation::int8`]).
#[derive(Clone, Copy, Debug)]
pub struct LookupSpec<'a> {
    /// Scale of the requantized sums the table takes.
    pub pre_scale: f32,
    /// Their zero point.
    pub pre_zero: i8,
    /// The table: [`Lookup::Table`] for sigmoid, tanh and hard-sigmoid, [`Lookup::Softmax`] for
    /// softmax.
    pub table: Lookup<'a>,
}

impl LookupSpec<'_> {
    fn encoded_len(&self) -> usize {
        8 + match self.table {
            Lookup::Fused => 0,
            Lookup::Table(_) => 256,
            Lookup::Softmax(_) => 4 * 256,
        }
    }

    /// Whether this is the table `activation` needs.
    fn suits(&self, activation: Activation) -> bool {
        match self.table {
            Lookup::Fused => false,
            Lookup::Table(_) => activation.int8_output().is_some() && activation.is_elementwise(),
            Lookup::Softmax(_) => activation == Activation::Softmax,
        }
    }
}

/// A layer's parameters to write, in its precision.
#[derive(Clone, Copy, Debug)]
pub enum ParamsSpec<'a> {
    /// A layer without parameters (pooling, Flatten): it has the network's precision.
    None,
    /// f32 weights, input-major, and biases.
    F32 {
        /// `input * output` weights, input-major.
        weights: &'a [f32],
        /// `output` biases.
        bias: &'a [f32],
    },
    /// int8 weights and their quantization.
    Int8(Int8Spec<'a>),
}

/// A layer to write.
#[derive(Clone, Copy, Debug)]
pub struct LayerSpec<'a> {
    /// What it computes, its units, window and activation.
    pub shape: LayerShape,
    /// Its parameters.
    pub params: ParamsSpec<'a>,
}

impl<'a> LayerSpec<'a> {
    /// An f32 dense layer.
    pub fn dense_f32(weights: &'a [f32], bias: &'a [f32], activation: Activation) -> Self {
        Self { shape: LayerShape::dense(bias.len(), activation), params: ParamsSpec::F32 { weights, bias } }
    }

    /// An int8 dense layer.
    pub fn dense_int8(params: Int8Spec<'a>, activation: Activation) -> Self {
        Self { shape: LayerShape::dense(params.bias.len(), activation), params: ParamsSpec::Int8(params) }
    }

    fn precision(&self, network: Precision) -> Precision {
        match self.params {
            ParamsSpec::None => network,
            ParamsSpec::F32 { .. } => Precision::F32,
            ParamsSpec::Int8(_) => Precision::Int8,
        }
    }

    /// Bytes of the layer record after an `input` map.
    fn encoded_len(&self, input: Dims) -> usize {
        let window = if LayerShape::has_window(self.shape.kind) { 20 } else { 0 };
        16 + window
            + match self.params {
                ParamsSpec::None => 0,
                ParamsSpec::F32 { .. } => 4 * self.shape.parameters(input),
                ParamsSpec::Int8(p) => {
                    8 + 16 * self.shape.biases()
                        + padded(self.shape.weights(input))
                        + p.lookup.as_ref().map_or(0, LookupSpec::encoded_len)
                }
            }
    }
}

/// Everything an artifact holds, borrowed from the writer's memory.
#[derive(Clone, Copy, Debug)]
pub struct ArtifactSpec<'a> {
    /// Input width.
    pub input: usize,
    /// The input as an image (`height × width × channels = input`); `None`: a flat vector.
    pub image: Option<Dims>,
    /// `(scale, zero point)` of the quantized input, for int8 layers.
    pub input_quantization: Option<(f32, i8)>,
    /// Layers in order; the last one's width is the output (class) count.
    pub layers: &'a [LayerSpec<'a>],
    /// `(mean, scale)` per input feature.
    pub standardization: Option<(&'a [f32], &'a [f32])>,
    /// What the outputs are, and their threshold (binary, autoencode).
    pub task: Option<(Task, f32)>,
    /// Class names, one per line, or empty.
    pub class_names: &'a str,
    /// Free text about the model's origin.
    pub provenance: &'a str,
}

impl ArtifactSpec<'_> {
    /// Exact size of the encoded artifact.
    pub fn encoded_len(&self) -> usize {
        let header = 4 + 4 * 4 + 8 + self.class_names.len() + self.provenance.len();
        let standardization = self.standardization.map_or(0, |(m, s)| 4 * (m.len() + s.len()));
        let quantization = if self.input_quantization.is_some() { 8 } else { 0 };
        let quantization = quantization + if self.task.is_some() { 8 } else { 0 };
        let image = if self.image.is_some() { 12 } else { 0 };
        let mut map = self.input_dims();
        let mut layers = 0;
        for layer in self.layers {
            layers += layer.encoded_len(map);
            map = layer.shape.output_dims(map).unwrap_or(Dims::flat(0));
        }
        header + standardization + quantization + image + layers + 4
    }

    /// The input map.
    fn input_dims(&self) -> Dims {
        self.image.unwrap_or(Dims::flat(self.input))
    }

    /// Checks every layer's parameter lengths against its shape.
    fn check_shapes(&self) -> Result<(), FormatError> {
        let mut map = self.input_dims();
        for (index, layer) in self.layers.iter().enumerate() {
            let shape = layer.shape;
            let Some(out) = shape.output_dims(map) else {
                return Err(FormatError::BadLayer { layer: index, what: "a shape its input map cannot take" });
            };
            let (weights, biases) = (shape.weights(map), shape.biases());
            let lengths = match layer.params {
                ParamsSpec::None => [("layer weights", 0, weights); 4],
                ParamsSpec::F32 { weights: w, bias } => {
                    [("layer weights", w.len(), weights), ("layer biases", bias.len(), biases), ("", 0, 0), ("", 0, 0)]
                }
                ParamsSpec::Int8(p) => [
                    ("layer weights", p.weights.len(), weights),
                    ("layer biases", p.bias.len(), biases),
                    ("layer requantization", p.requant.len(), out.channels),
                    ("layer weight scales", p.weight_scales.len(), out.channels),
                ],
            };
            for (what, found, expected) in lengths {
                if found != expected {
                    return Err(FormatError::ShapeMismatch { what, expected, found });
                }
            }
            map = out;
        }
        if let Some((what, v)) = self.standardization.and_then(|(m, s)| {
            [("mean length", m), ("scale length", s)].into_iter().find(|(_, v)| v.len() != self.input)
        }) {
            return Err(FormatError::ShapeMismatch { what, expected: self.input, found: v.len() });
        }
        Ok(())
    }

    /// Encodes into `out` (at least [`ArtifactSpec::encoded_len`] bytes), then validates the result
    /// with [`Artifact::parse`], so nothing this writes fails to load. Returns the length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FormatError> {
        self.check_shapes()?;
        let mut w = Writer::new(out);
        w.bytes(&MAGIC)?;
        w.u32(VERSION)?;
        let mut flags = 0;
        if self.standardization.is_some() {
            flags |= FLAG_STANDARDIZATION;
        }
        if self.input_quantization.is_some() {
            flags |= FLAG_INPUT_QUANTIZATION;
        }
        if self.task.is_some() {
            flags |= FLAG_TASK;
        }
        if self.image.is_some() {
            flags |= FLAG_IMAGE;
        }
        w.u32(flags)?;
        w.u32(self.input as u32)?;
        w.u32(self.layers.len() as u32)?;
        for text in [self.class_names, self.provenance] {
            w.u32(text.len() as u32)?;
            w.bytes(text.as_bytes())?;
        }
        if let Some((mean, scale)) = self.standardization {
            w.f32s(mean)?;
            w.f32s(scale)?;
        }
        if let Some((scale, zero)) = self.input_quantization {
            w.f32s(&[scale])?;
            w.i32s(core::iter::once(zero as i32))?;
        }
        if let Some((task, threshold)) = self.task {
            w.u32(task.code())?;
            w.f32s(&[threshold])?;
        }
        if let Some(image) = self.image {
            for side in [image.height, image.width, image.channels] {
                w.u32(side as u32)?;
            }
        }
        let network = if self.input_quantization.is_some() { Precision::Int8 } else { Precision::F32 };
        for (index, layer) in self.layers.iter().enumerate() {
            let shape = layer.shape;
            for code in
                [shape.kind.code(), shape.activation.code(), layer.precision(network).code(), shape.units as u32]
            {
                w.u32(code)?;
            }
            if LayerShape::has_window(shape.kind) {
                let [rows, cols] = shape.window.size;
                let [row_stride, col_stride] = shape.window.stride;
                for side in [rows, cols, row_stride, col_stride] {
                    w.u32(side as u32)?;
                }
                w.u32(shape.window.padding.code())?;
            }
            match layer.params {
                ParamsSpec::None => {}
                ParamsSpec::F32 { weights, bias } => {
                    w.f32s(weights)?;
                    w.f32s(bias)?;
                }
                ParamsSpec::Int8(p) => write_int8(&mut w, &p, index, shape.activation)?,
            }
        }
        let len = w.finish_with_checksum()?;
        Artifact::parse(&out[..len])?;
        Ok(len)
    }
}

fn write_int8(w: &mut Writer<'_>, p: &Int8Spec<'_>, layer: usize, activation: Activation) -> Result<(), FormatError> {
    let needs_table = activation.int8_output().is_some();
    if needs_table != p.lookup.is_some_and(|l| l.suits(activation)) {
        let what = "activation table (missing, or not the activation's)";
        return Err(FormatError::BadQuantization { layer, what, index: 0 });
    }
    w.f32s(&[p.output_scale])?;
    w.i32s(core::iter::once(p.output_zero as i32))?;
    w.f32s(p.weight_scales)?;
    w.i32s(p.requant.iter().map(|r| r.multiplier))?;
    w.i32s(p.requant.iter().map(|r| r.shift))?;
    w.i32s(p.bias.iter().copied())?;
    for chunk in p.weights.chunks(64) {
        let mut buf = [0u8; 64];
        for (b, v) in buf.iter_mut().zip(chunk) {
            *b = *v as u8;
        }
        w.bytes(&buf[..chunk.len()])?;
    }
    let bytes = p.weights.len();
    w.bytes(&[0u8; 3][..padded(bytes) - bytes])?;
    if let Some(l) = p.lookup {
        w.f32s(&[l.pre_scale])?;
        w.i32s(core::iter::once(l.pre_zero as i32))?;
        match l.table {
            Lookup::Fused => {}
            Lookup::Table(values) => {
                let mut buf = [0u8; 256];
                for (b, v) in buf.iter_mut().zip(values) {
                    *b = *v as u8;
                }
                w.bytes(&buf)?;
            }
            Lookup::Softmax(exp) => w.i32s(exp.iter().map(|e| *e as i32))?,
        }
    }
    Ok(())
}
