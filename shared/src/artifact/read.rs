//! Reading every artifact version into one [`Artifact`]: the header, then one layer record at a
//! time, each validated before the next is read.

use super::{
    Activation, Artifact, Dims, F32s, FormatError, I32s, Int8Lookup, Int8Params, Int8Table, LayerKind, LayerShape,
    LayerView, Padding, Params, Precision, Section, Task, Window, MAGIC, MAX_LAYERS, MAX_MAP, MAX_PARAMETERS, MAX_TEXT,
    MAX_WIDTH, MAX_WINDOW, OLDEST_VERSION, VERSION,
};
use crate::ops::conv::int8::MAX_COLUMN;
use crate::ops::dense::int8::Requant;
use crate::wire::Reader;

pub(super) const FLAG_STANDARDIZATION: u32 = 1;
pub(super) const FLAG_INPUT_QUANTIZATION: u32 = 2;
pub(super) const FLAG_TASK: u32 = 4;
pub(super) const FLAG_IMAGE: u32 = 8;

fn limit(what: &'static str, value: usize, limit: usize) -> Result<usize, FormatError> {
    if value > limit {
        Err(FormatError::TooLarge { what, value, limit })
    } else if value == 0 {
        Err(FormatError::ShapeMismatch { what, expected: 1, found: 0 })
    } else {
        Ok(value)
    }
}

fn text<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, FormatError> {
    let len = r.u32()? as usize;
    if len > MAX_TEXT {
        return Err(FormatError::TooLarge { what, value: len, limit: MAX_TEXT });
    }
    core::str::from_utf8(r.take(len)?).map_err(|_| FormatError::BadText { what })
}

fn finite(values: F32s<'_>, section: Section) -> Result<(), FormatError> {
    match values.first_non_finite() {
        Some(index) => Err(FormatError::NonFinite { section, index }),
        None => Ok(()),
    }
}

/// A value of one of the layer vocabulary's coded enums, or the error naming the unknown code.
fn code<T>(layer: usize, what: &'static str, code: u32, from: fn(u32) -> Option<T>) -> Result<T, FormatError> {
    from(code).ok_or(FormatError::UnknownCode { layer, what, code })
}

fn bad(layer: usize, what: &'static str, index: usize) -> FormatError {
    FormatError::BadQuantization { layer, what, index }
}

fn scale(value: f32, layer: usize, what: &'static str) -> Result<f32, FormatError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(bad(layer, what, 0))
    }
}

fn zero_point(value: u32, layer: usize, what: &'static str) -> Result<i8, FormatError> {
    i8::try_from(value as i32).map_err(|_| bad(layer, what, 0))
}

/// Bytes int8 weights take in a file: padded with zeros to a multiple of 4.
pub(super) fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Largest |bias| that keeps every accumulator of a layer with `fan_in` inputs within i32.
fn bias_limit(fan_in: usize) -> u64 {
    (i32::MAX as u64).saturating_sub(128 * 127 * fan_in as u64)
}

fn f32_params<'a>(r: &mut Reader<'a>, layer: usize, weights: usize, biases: usize) -> Result<Params<'a>, FormatError> {
    let weights = r.f32s(weights)?;
    let bias = r.f32s(biases)?;
    finite(weights, Section::Weights(layer))?;
    finite(bias, Section::Bias(layer))?;
    Ok(Params::F32 { weights, bias })
}

fn int8_params<'a>(
    r: &mut Reader<'a>,
    layer: usize,
    (fan_in, output): (usize, usize),
    activation: Activation,
) -> Result<Params<'a>, FormatError> {
    let output_scale = scale(f32::from_bits(r.u32()?), layer, "output scale")?;
    let output_zero = zero_point(r.u32()?, layer, "output zero point")?;
    if activation.int8_output().is_some_and(|fixed| fixed != (output_scale, output_zero)) {
        return Err(bad(layer, "output quantization (fixed by its activation)", 0));
    }
    let weight_scales = r.f32s(output)?;
    if let Some(index) = weight_scales.iter().position(|s| !(s.is_finite() && s > 0.0)) {
        return Err(bad(layer, "weight scale", index));
    }
    let (multipliers, shifts, bias) = (r.i32s(output)?, r.i32s(output)?, r.i32s(output)?);
    let bad_requant =
        multipliers.iter().zip(shifts.iter()).position(|(multiplier, shift)| !Requant { multiplier, shift }.is_valid());
    if let Some(index) = bad_requant {
        return Err(bad(layer, "requantization", index));
    }
    if let Some(index) = bias.iter().position(|b| b.unsigned_abs() as u64 > bias_limit(fan_in)) {
        return Err(bad(layer, "bias", index));
    }
    let weights = r.take(fan_in * output)?;
    if let Some(index) = weights.iter().position(|w| *w as i8 == i8::MIN) {
        return Err(bad(layer, "weight", index));
    }
    if let Some(index) = r.take(padded(fan_in * output) - fan_in * output)?.iter().position(|b| *b != 0) {
        return Err(bad(layer, "weight padding byte", index));
    }
    let lookup = match activation {
        Activation::Linear | Activation::Relu => None,
        _ => Some(lookup(r, layer, activation)?),
    };
    let params = Int8Params { output_scale, output_zero, weight_scales, multipliers, shifts, bias, weights, lookup };
    Ok(Params::Int8(params))
}

/// The int8 "parameters" of a pooling or Flatten layer: none stored, its output keeps its input's
/// `(scale, zero point)`.
fn passthrough<'a>((output_scale, output_zero): (f32, i8)) -> Params<'a> {
    Params::Int8(Int8Params {
        output_scale,
        output_zero,
        weight_scales: F32s::EMPTY,
        multipliers: I32s::EMPTY,
        shifts: I32s::EMPTY,
        bias: I32s::EMPTY,
        weights: &[],
        lookup: None,
    })
}

/// An int8 activation table ([`crate::ops::activation::int8`]).
fn lookup<'a>(r: &mut Reader<'a>, layer: usize, activation: Activation) -> Result<Int8Lookup<'a>, FormatError> {
    let pre_scale = scale(f32::from_bits(r.u32()?), layer, "pre-activation scale")?;
    let pre_zero = zero_point(r.u32()?, layer, "pre-activation zero point")?;
    let table = if activation == Activation::Softmax {
        let exp = r.i32s(256)?;
        let mut previous = 1 << 15;
        for (index, e) in exp.iter().enumerate() {
            if (index == 0 && e != 1 << 15) || !(0..=previous).contains(&e) {
                return Err(bad(layer, "softmax exponential", index));
            }
            previous = e;
        }
        Int8Table::Exponentials(exp)
    } else {
        Int8Table::Values(r.take(256)?)
    };
    Ok(Int8Lookup { pre_scale, pre_zero, table })
}

/// A windowed layer's window: sizes, strides, padding.
fn window(r: &mut Reader<'_>, layer: usize) -> Result<Window, FormatError> {
    let mut sides = [0; 4];
    for side in &mut sides {
        *side = limit("window size or stride", r.u32()? as usize, MAX_WINDOW)?;
    }
    let padding = code(layer, "padding", r.u32()?, Padding::from_code)?;
    Ok(Window::new([sides[0], sides[1]], [sides[2], sides[3]], padding))
}

/// The map `shape` makes of `input`, or why the layer cannot take it.
fn output_dims(layer: usize, shape: &LayerShape, input: Dims, precision: Precision) -> Result<Dims, FormatError> {
    let bad = |what| Err(FormatError::BadLayer { layer, what });
    if precision == Precision::Int8
        && shape.kind == LayerKind::Conv2d
        && shape.weights(input) / shape.units.max(1) > MAX_COLUMN
    {
        return bad("an int8 convolution whose window (rows × cols × channels) is wider than its kernel takes");
    }
    if !LayerShape::has_weights(shape.kind) && shape.activation != Activation::Linear {
        return bad("an activation on a layer without weights (pooling and Flatten have none)");
    }
    if shape.kind != LayerKind::Dense && shape.activation == Activation::Softmax {
        return bad("softmax over a map (only a Dense layer may end in softmax)");
    }
    match shape.output_dims(input) {
        Some(out) if out.len() <= MAX_MAP => Ok(out),
        Some(_) => bad("an output map above the limit"),
        None if shape.kind == LayerKind::Dense => bad("a Dense layer after a map (Flatten or pool it first)"),
        None => bad("a window or channel count its input map cannot take"),
    }
}

/// Parses any version from [`OLDEST_VERSION`] to [`VERSION`].
pub(super) fn parse(bytes: &[u8]) -> Result<Artifact<'_>, FormatError> {
    let (mut r, version) = Reader::after_header(bytes, MAGIC, OLDEST_VERSION..=VERSION)?;
    let flags = r.u32()?;
    let known = if version >= 3 {
        FLAG_STANDARDIZATION | FLAG_INPUT_QUANTIZATION | FLAG_TASK | FLAG_IMAGE
    } else {
        FLAG_STANDARDIZATION
    };
    if flags & !known != 0 {
        return Err(FormatError::UnknownFlags { flags });
    }
    let input = limit("input width", r.u32()? as usize, if flags & FLAG_IMAGE != 0 { MAX_MAP } else { MAX_WIDTH })?;
    let layer_count = limit("layer count", r.u32()? as usize, MAX_LAYERS)?;
    // Versions 1 and 2 list every layer's width and activation before the texts; all are Dense.
    let mut legacy = [LayerShape::dense(0, Activation::Linear); MAX_LAYERS];
    if version < 3 {
        for (layer, shape) in legacy.iter_mut().take(layer_count).enumerate() {
            let units = limit("layer width", r.u32()? as usize, MAX_WIDTH)?;
            *shape = LayerShape::dense(units, code(layer, "activation", r.u32()?, Activation::from_code)?);
        }
    }
    let class_names = text(&mut r, "class names")?;
    let provenance = text(&mut r, "provenance")?;
    let standardization = if flags & FLAG_STANDARDIZATION != 0 {
        let (mean, scale) = (r.f32s(input)?, r.f32s(input)?);
        finite(mean, Section::Mean)?;
        finite(scale, Section::Scale)?;
        if let Some(index) = scale.iter().position(|s| s <= 0.0) {
            return Err(FormatError::BadScale { index });
        }
        Some((mean, scale))
    } else {
        None
    };
    let input_quantization = if version == 2 || flags & FLAG_INPUT_QUANTIZATION != 0 {
        let input_scale = scale(f32::from_bits(r.u32()?), usize::MAX, "scale")?;
        Some((input_scale, zero_point(r.u32()?, usize::MAX, "zero point")?))
    } else {
        None
    };
    let task = if flags & FLAG_TASK != 0 {
        let task = code(usize::MAX, "task", r.u32()?, Task::from_code)?;
        let threshold = f32::from_bits(r.u32()?);
        if !threshold.is_finite() {
            return Err(FormatError::NonFinite { section: Section::Task, index: 0 });
        }
        Some((task, threshold))
    } else {
        None
    };
    let input_dims = if flags & FLAG_IMAGE != 0 {
        let mut sides = [0; 3];
        for side in &mut sides {
            *side = limit("image side", r.u32()? as usize, MAX_WIDTH)?;
        }
        let dims = Dims::image(sides[0], sides[1], sides[2]);
        if dims.len() != input {
            return Err(FormatError::ShapeMismatch {
                what: "image height × width × channels",
                expected: input,
                found: dims.len(),
            });
        }
        dims
    } else {
        Dims::flat(input)
    };
    let precision = if input_quantization.is_some() { Precision::Int8 } else { Precision::F32 };
    let mut layers = [None; MAX_LAYERS];
    let (mut map, mut parameters) = (input_dims, 0usize);
    // the quantization of each int8 layer's input: what a pooling or Flatten passes on
    let mut quantization = input_quantization.unwrap_or((1.0, 0));
    for (layer, slot) in layers.iter_mut().take(layer_count).enumerate() {
        let (shape, found) = if version < 3 {
            (legacy[layer], precision)
        } else {
            let kind = code(layer, "layer kind", r.u32()?, LayerKind::from_code)?;
            let activation = code(layer, "activation", r.u32()?, Activation::from_code)?;
            let found = code(layer, "precision", r.u32()?, Precision::from_code)?;
            let units = r.u32()? as usize;
            let units = limit("layer width", units, if kind == LayerKind::Flatten { MAX_MAP } else { MAX_WIDTH })?;
            let window = if LayerShape::has_window(kind) { window(&mut r, layer)? } else { Window::NONE };
            (LayerShape { kind, units, activation, window }, found)
        };
        if found != precision {
            return Err(FormatError::MixedPrecision { layer, expected: precision, found });
        }
        let output_dims = output_dims(layer, &shape, map, precision)?;
        parameters = parameters.saturating_add(shape.parameters(map));
        limit("parameter count", parameters, MAX_PARAMETERS)?;
        let (fan_in, output) = (map.len(), output_dims.len());
        let params = match (precision, LayerShape::has_weights(shape.kind)) {
            (Precision::Int8, true) => {
                // each output channel's weights: a Dense row, a convolution's window
                let channel_fan_in = shape.weights(map) / shape.biases().max(1);
                int8_params(&mut r, layer, (channel_fan_in, shape.biases()), shape.activation)?
            }
            (Precision::Int8, false) => passthrough(quantization),
            (Precision::F32, _) => f32_params(&mut r, layer, shape.weights(map), shape.biases())?,
        };
        if let Params::Int8(p) = params {
            quantization = (p.output_scale, p.output_zero);
        }
        *slot = Some(LayerView {
            kind: shape.kind,
            input: fan_in,
            output,
            input_dims: map,
            output_dims,
            window: shape.window,
            activation: shape.activation,
            params,
        });
        map = output_dims;
    }
    let fan_in = map.len();
    if let Some(layer) = (0..layer_count.saturating_sub(1))
        .find(|l| layers[*l].is_some_and(|v: LayerView<'_>| !v.activation.is_elementwise()))
    {
        return Err(FormatError::NotLast { layer, what: "softmax" });
    }
    if !class_names.is_empty() && class_names.lines().count() != fan_in {
        return Err(FormatError::BadText { what: "class names (one per class)" });
    }
    let expected = r.position() + 4;
    if bytes.len() != expected {
        return Err(FormatError::TrailingBytes { expected, len: bytes.len() });
    }
    Ok(Artifact {
        version,
        input,
        input_dims,
        input_quantization,
        task,
        layers,
        layer_count,
        standardization,
        class_names,
        provenance,
        len: bytes.len(),
    })
}
