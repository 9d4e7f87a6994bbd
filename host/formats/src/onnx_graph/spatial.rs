//! The image part of an import: ONNX's channels-first `Conv` (groups 1 or one per channel),
//! `MaxPool`, `AveragePool`, `GlobalAveragePool` and the `Transpose`s tf2onnx puts around them,
//! read into the artifact's channels-last (NHWC) layers.
//!
//! ONNX defines these operators on NCHW values; the artifact stores maps NHWC. The walk keeps
//! which logical layout the chain's value has ([`Image`]) and converts weights, not data: a
//! convolution's kernel `[out, in, rows, cols]` becomes Keras's `(rows, cols, in, out)`, and a
//! Dense layer after a channels-first `Flatten` gets its rows reordered from `(c, h, w)` to
//! `(h, w, c)`. Padding must be one of Keras's two rules (explicit pads equal to what `same`
//! gives, or none); PyTorch's symmetric padding at stride 2 on an even input is refused by name.

use dropship_shared::{Dims, LayerKind, LayerShape, Padding, Window};
use tract_onnx::pb;

/// The chain's value when it is a 4-D map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Image {
    /// The graph's input, `[batch, a, b, c]`, before an operator says which layout it has.
    Input([usize; 3]),
    /// Logically `[batch, channels, rows, cols]`, as ONNX's image operators take it.
    ChannelsFirst(Dims),
    /// Logically `[batch, rows, cols, channels]` (tf2onnx's values between its `Transpose`s).
    ChannelsLast(Dims),
}

impl Image {
    /// The map an image operator reads: channels-first, or the input with one channel (whose
    /// rows are the same in either layout). `None` for a channels-first input of several
    /// channels, whose rows are not the artifact's NHWC order.
    pub(super) fn channels_first(self) -> Result<Dims, String> {
        match self {
            Image::ChannelsFirst(d) => Ok(d),
            Image::Input([1, h, w]) => Ok(Dims::image(h, w, 1)),
            Image::Input([c, _, _]) => Err(format!(
                "a channels-first input of {c} channels: dropship's image rows are channels-last (NHWC); \
                 export the model with an NHWC input and a Transpose (as tf2onnx does), or one channel"
            )),
            Image::ChannelsLast(_) => {
                Err("an image operator on a channels-last value (ONNX's take NCHW: a Transpose is missing)".into())
            }
        }
    }

    /// The image after a `Transpose` by `perm`.
    pub(super) fn transposed(self, perm: &[i64]) -> Result<Image, String> {
        match (self, perm) {
            (Image::Input([h, w, c]), [0, 3, 1, 2]) => Ok(Image::ChannelsFirst(Dims::image(h, w, c))),
            (Image::ChannelsLast(d), [0, 3, 1, 2]) => Ok(Image::ChannelsFirst(d)),
            (Image::ChannelsFirst(d), [0, 2, 3, 1]) => Ok(Image::ChannelsLast(d)),
            (image, perm) => Err(format!("a Transpose by {perm:?} of a {image:?} value: only NHWC ↔ NCHW")),
        }
    }

    /// Its logical ONNX shape without the batch dimension.
    pub(super) fn logical(self) -> [usize; 3] {
        match self {
            Image::Input(dims) => dims,
            Image::ChannelsFirst(d) => [d.channels, d.height, d.width],
            Image::ChannelsLast(d) => [d.height, d.width, d.channels],
        }
    }

    /// The map a `Flatten` of this value reads in `(c, h, w)` order, when that differs from the
    /// artifact's `(h, w, c)`: the next Dense layer's rows must be reordered.
    pub(super) fn flatten_order(self) -> Option<Dims> {
        match self {
            Image::ChannelsFirst(d) if d.channels > 1 && !d.is_flat() => Some(d),
            _ => None,
        }
    }
}

fn ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

fn string(n: &pb::NodeProto, name: &str) -> String {
    n.attribute.iter().find(|a| a.name == name).map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_default()
}

/// Two positive sizes from an attribute, or `default`.
fn pair(n: &pb::NodeProto, name: &str, default: [usize; 2]) -> Result<[usize; 2], String> {
    match ints(n, name).as_deref() {
        None => Ok(default),
        Some([a, b]) if *a > 0 && *b > 0 && *a <= 64 && *b <= 64 => Ok([*a as usize, *b as usize]),
        Some(other) => Err(format!("{name} {other:?}: two sizes between 1 and 64 (2-D images only)")),
    }
}

/// The window of a `Conv` or pooling node over `input`: its size, strides (default 1), and
/// padding, which must be Keras's `valid` or `same` for this input (explicit `pads`, or
/// `auto_pad` VALID / SAME_UPPER).
pub(super) fn window(n: &pb::NodeProto, size: [usize; 2], input: Dims) -> Result<Window, String> {
    if ints(n, "dilations").is_some_and(|d| d.iter().any(|v| *v != 1)) {
        return Err("dilations other than 1".into());
    }
    let stride = pair(n, "strides", [1, 1])?;
    let auto = string(n, "auto_pad");
    let pads = match auto.as_str() {
        "" | "NOTSET" => match ints(n, "pads").as_deref() {
            None => [0; 4],
            Some([t, l, b, r]) if [t, l, b, r].iter().all(|p| (0..=64).contains(*p)) => {
                [*t as usize, *l as usize, *b as usize, *r as usize]
            }
            Some(other) => return Err(format!("pads {other:?}: four sizes (2-D images only)")),
        },
        "VALID" => [0; 4],
        "SAME_UPPER" => return checked(Window::new(size, stride, Padding::Same), input),
        other => return Err(format!("auto_pad {other}: Keras pads the extra row after (SAME_UPPER)")),
    };
    if pads == [0; 4] {
        return checked(Window::new(size, stride, Padding::Valid), input);
    }
    let same = Window::new(size, stride, Padding::Same);
    let expected = |axis: usize, len: usize| {
        same.axis(axis, len).map(|a| {
            let total = ((a.outputs - 1) * stride[axis] + size[axis]).saturating_sub(len);
            (a.before, total - a.before)
        })
    };
    let (rows, cols) = (expected(0, input.height), expected(1, input.width));
    if rows == Some((pads[0], pads[2])) && cols == Some((pads[1], pads[3])) {
        return checked(same, input);
    }
    let show = |p: Option<(usize, usize)>| p.map_or("none fit".into(), |(b, a)| format!("{b} before and {a} after"));
    Err(format!(
        "pads {pads:?} on a {}×{} map: dropship's windows pad as Keras does, none or `same` (here {} the rows, {} \
         the columns)",
        input.height,
        input.width,
        show(rows),
        show(cols)
    ))
}

fn checked(window: Window, input: Dims) -> Result<Window, String> {
    match (window.axis(0, input.height), window.axis(1, input.width)) {
        (Some(_), Some(_)) => Ok(window),
        _ => Err(format!("a {:?} window larger than its {}×{} input", window.size, input.height, input.width)),
    }
}

/// A `Conv` node over `input` with ONNX weights `[out, in / group, rows, cols]`: its layer shape
/// and its kernel in the artifact's layout.
pub(super) fn conv(
    n: &pb::NodeProto,
    input: Dims,
    dims: &[usize],
    w: &[f32],
) -> Result<(LayerShape, Vec<f32>), String> {
    let [out, per_group, rows, cols] = dims[..] else { return Err("a Conv weight that is not 4-D".into()) };
    let group = n.attribute.iter().find(|a| a.name == "group").map_or(1, |a| a.i);
    if let Some(k) = ints(n, "kernel_shape").filter(|k| k[..] != [rows as i64, cols as i64]) {
        return Err(format!("kernel_shape {k:?} differs from the weight's {rows}×{cols}"));
    }
    let window = window(n, [rows, cols], input)?;
    let channels = input.channels;
    let taps = rows * cols;
    if group == 1 && per_group == channels {
        // ONNX [o][i][y][x] -> Keras (y, x, i, o)
        let mut kernel = vec![0.0; taps * channels * out];
        for o in 0..out {
            for i in 0..channels {
                for t in 0..taps {
                    kernel[(t * channels + i) * out + o] = w[(o * channels + i) * taps + t];
                }
            }
        }
        Ok((LayerShape::windowed(LayerKind::Conv2d, out, window, dropship_shared::Activation::Linear), kernel))
    } else if group == channels as i64 && per_group == 1 && out == channels {
        // ONNX [c][0][y][x] -> Keras (y, x, c)
        let mut kernel = vec![0.0; taps * channels];
        for c in 0..channels {
            for t in 0..taps {
                kernel[t * channels + c] = w[c * taps + t];
            }
        }
        Ok((
            LayerShape::windowed(LayerKind::DepthwiseConv2d, channels, window, dropship_shared::Activation::Linear),
            kernel,
        ))
    } else {
        Err(format!(
            "a Conv of group {group} with {per_group} inputs per group and {out} outputs over {channels} channels: \
             dropship runs full convolutions (group 1) and depthwise ones with one filter per channel"
        ))
    }
}

/// A `MaxPool` or `AveragePool` node over `input`.
pub(super) fn pool(n: &pb::NodeProto, input: Dims) -> Result<LayerShape, String> {
    let int = |name: &str| n.attribute.iter().find(|a| a.name == name).map_or(0, |a| a.i);
    if int("ceil_mode") != 0 {
        return Err("ceil_mode 1: Keras's windows floor".into());
    }
    if int("storage_order") != 0 || n.output.len() > 1 && n.output.get(1).is_some_and(|o| !o.is_empty()) {
        return Err("a MaxPool with indices".into());
    }
    let size = pair(n, "kernel_shape", [0, 0])?;
    let window = window(n, size, input)?;
    let kind = if n.op_type == "MaxPool" { LayerKind::MaxPool2d } else { LayerKind::AveragePool2d };
    if kind == LayerKind::AveragePool2d && int("count_include_pad") != 0 && window.padding == Padding::Same {
        return Err("count_include_pad 1: Keras averages over the values inside the input only".into());
    }
    Ok(LayerShape::windowed(kind, input.channels, window, dropship_shared::Activation::Linear))
}

/// Rows of an input-major Dense kernel (`input` rows of `outputs`) read in `(c, h, w)` order,
/// reordered to the artifact's `(h, w, c)`.
pub(super) fn channels_last_rows(map: Dims, kernel: &[f32], outputs: usize) -> Vec<f32> {
    let (h, w, c) = (map.height, map.width, map.channels);
    let mut out = vec![0.0; kernel.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let ours = (y * w + x) * c + ch;
                let theirs = (ch * h + y) * w + x;
                out[ours * outputs..][..outputs].copy_from_slice(&kernel[theirs * outputs..][..outputs]);
            }
        }
    }
    out
}
