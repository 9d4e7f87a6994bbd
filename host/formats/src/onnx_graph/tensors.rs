//! The constant tensors of an ONNX graph: initializers and `Constant` nodes, their data typed, raw
//! or in an external file beside the model, and the shape arithmetic exporters wrap around a dense
//! network (`Shape`, `Gather`, `Unsqueeze`, `Concat`, `Cast`, ...) evaluated as constants, with the
//! batch dimension kept symbolic.

use std::path::{Component, Path};

use tract_onnx::pb;

use super::ImportError;
use crate::limits::{product_within, MAX_PARAMETERS};

const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const DOUBLE: i32 = 11;
/// `TensorProto.data_location` of data in an external file.
const EXTERNAL: i32 = 1;

/// One dimension of a shape computed in the graph: a number, or the batch size (unknown until
/// run time, whatever the graph calls it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dim {
    Known(i64),
    Batch,
}

/// A constant value.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Const {
    /// Reals (float32, or float64 read as float32).
    Real { dims: Vec<usize>, data: Vec<f32> },
    /// Integers and booleans (int32, int64, bool), where shapes are computed.
    Int { dims: Vec<usize>, data: Vec<Dim> },
}

impl Const {
    pub(super) fn dims(&self) -> &[usize] {
        match self {
            Const::Real { dims, .. } | Const::Int { dims, .. } => dims,
        }
    }

    fn len(&self) -> usize {
        match self {
            Const::Real { data, .. } => data.len(),
            Const::Int { data, .. } => data.len(),
        }
    }

    /// Known integers, or `None` when one is the batch size.
    pub(super) fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Const::Int { data, .. } => {
                data.iter().map(|d| if let Dim::Known(v) = d { Some(*v) } else { None }).collect()
            }
            Const::Real { .. } => None,
        }
    }
}

/// Reads a tensor's values: typed fields, raw little-endian bytes, or (with `base`, the model's
/// directory) an external file inside that directory. Non-finite reals are refused.
pub(super) fn read(t: &pb::TensorProto, base: Option<&Path>) -> Result<Const, ImportError> {
    let bad = |what: String| ImportError::BadGraph(format!("tensor `{}`: {what}", t.name));
    let dims: Vec<usize> = t.dims.iter().map(|d| usize::try_from(*d).unwrap_or(usize::MAX)).collect();
    let count = product_within(&dims, MAX_PARAMETERS)
        .ok_or_else(|| bad(format!("shape {dims:?} is above the limit of {MAX_PARAMETERS} values")))?;
    let external = t.data_location == Some(EXTERNAL);
    let raw: Option<Vec<u8>> = if external {
        Some(external_bytes(t, base, count)?)
    } else if !t.raw_data.is_empty() {
        Some(t.raw_data.clone())
    } else {
        None
    };
    let typed =
        !(t.float_data.is_empty() && t.int32_data.is_empty() && t.int64_data.is_empty() && t.double_data.is_empty());
    if raw.is_some() && typed {
        return Err(bad("holds both raw and typed data".into()));
    }
    let value = match (t.data_type, raw) {
        (FLOAT, Some(b)) => {
            real(dims, b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        (FLOAT, None) => real(dims, t.float_data.clone()),
        (DOUBLE, Some(b)) => {
            real(dims, b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect())
        }
        (DOUBLE, None) => real(dims, t.double_data.iter().map(|v| *v as f32).collect()),
        (INT64, Some(b)) => {
            int(dims, b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
        }
        (INT64, None) => int(dims, t.int64_data.clone()),
        (INT32, Some(b)) => {
            int(dims, b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect())
        }
        (INT32 | BOOL, None) => int(dims, t.int32_data.iter().map(|v| *v as i64).collect()),
        (BOOL, Some(b)) => int(dims, b.iter().map(|v| i64::from(*v != 0)).collect()),
        (other, _) => return Err(ImportError::NotFloat { name: t.name.clone(), found: other }),
    };
    if value.len() != count {
        return Err(bad(format!("{} values for shape {:?}", value.len(), value.dims())));
    }
    if let Const::Real { data, .. } = &value {
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ImportError::BadGraph(format!("a non-finite value in tensor `{}` at {i}", t.name)));
        }
    }
    Ok(value)
}

fn real(dims: Vec<usize>, data: Vec<f32>) -> Const {
    Const::Real { dims, data }
}

fn int(dims: Vec<usize>, data: Vec<i64>) -> Const {
    Const::Int { dims, data: data.into_iter().map(Dim::Known).collect() }
}

/// The bytes of a tensor kept in an external file: only a relative path inside the model's own
/// directory (no `..`, no absolute path, no link out of it) is read.
fn external_bytes(t: &pb::TensorProto, base: Option<&Path>, count: usize) -> Result<Vec<u8>, ImportError> {
    let bad = |what: String| ImportError::BadGraph(format!("tensor `{}`: {what}", t.name));
    let field = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
    let location = field("location").ok_or_else(|| bad("external data without a location".into()))?;
    let Some(base) = base else {
        return Err(bad(format!("its data is in the external file `{location}`: import the model from its file")));
    };
    if location.is_empty()
        || !Path::new(location).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad(format!("external data at `{location}`: only files inside the model's directory are read")));
    }
    let dir = base.canonicalize().map_err(|e| bad(format!("the model's directory: {e}")))?;
    let path = dir.join(location).canonicalize().map_err(|e| bad(format!("external data `{location}`: {e}")))?;
    if !path.starts_with(&dir) {
        return Err(bad(format!("external data `{location}` resolves outside the model's directory")));
    }
    let number = |key: &str| -> Result<Option<u64>, ImportError> {
        field(key)
            .map(|v| v.parse::<u64>().map_err(|_| bad(format!("external data {key} `{v}` is not a number"))))
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let width = match t.data_type {
        DOUBLE | INT64 => 8,
        BOOL => 1,
        _ => 4,
    };
    let length = number("length")?.unwrap_or((count * width) as u64);
    if length != (count * width) as u64 {
        return Err(bad(format!("external data of {length} bytes for {count} values")));
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(&path).map_err(|e| bad(format!("external data `{location}`: {e}")))?;
    let mut bytes = vec![0u8; length as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| bad(format!("external data `{location}` at {offset}, {length} bytes: {e}")))?;
    Ok(bytes)
}

/// Evaluates a node whose inputs are all constants, if its op is one of the shape and layout
/// operations exporters emit; `None` for another op.
pub(super) fn fold(n: &pb::NodeProto, inputs: &[Option<&Const>], opset: i64) -> Option<Result<Const, String>> {
    let input = |i: usize| inputs.get(i).copied().flatten();
    let attr_ints = |name: &str| n.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone());
    let attr_int = |name: &str| n.attribute.iter().find(|a| a.name == name).map(|a| a.i);
    let result = match n.op_type.as_str() {
        "Identity" => input(0).cloned().ok_or_else(|| "no input".to_string()),
        "Cast" => input(0)
            .map(|c| cast(c, attr_int("to").unwrap_or(FLOAT as i64) as i32))
            .unwrap_or_else(|| Err("no input".into())),
        "Transpose" => input(0).ok_or_else(|| "no input".to_string()).and_then(|c| transpose(c, attr_ints("perm"))),
        "Reshape" => match (input(0), input(1).and_then(Const::ints)) {
            (Some(c), Some(shape)) => reshape(c, &shape),
            _ => Err("a reshape of constants needs a known shape".into()),
        },
        "Unsqueeze" | "Squeeze" => {
            let axes = if opset >= 13 { input(1).and_then(Const::ints) } else { attr_ints("axes") };
            input(0).ok_or_else(|| "no input".to_string()).and_then(|c| squeeze(c, axes, n.op_type == "Unsqueeze"))
        }
        "Concat" => concat(inputs, attr_int("axis").unwrap_or(0)),
        "Gather" => match (input(0), input(1).and_then(Const::ints)) {
            (Some(c), Some(indices)) if attr_int("axis").unwrap_or(0) == 0 && c.dims().len() <= 1 => {
                gather(c, &indices, input(1).map(|i| i.dims().to_vec()).unwrap_or_default())
            }
            _ => Err("only a Gather of a 1-D constant along axis 0 is evaluated".into()),
        },
        _ => return None,
    };
    Some(result)
}

fn cast(c: &Const, to: i32) -> Result<Const, String> {
    match (c, to) {
        (_, FLOAT | DOUBLE) => match c {
            Const::Real { .. } => Ok(c.clone()),
            Const::Int { dims, .. } => {
                let values = c.ints().ok_or("the batch size cast to a real")?;
                Ok(real(dims.clone(), values.iter().map(|v| *v as f32).collect()))
            }
        },
        (Const::Int { .. }, INT64 | INT32) => Ok(c.clone()),
        (Const::Real { dims, data }, INT64 | INT32) => Ok(int(dims.clone(), data.iter().map(|v| *v as i64).collect())),
        _ => Err(format!("a cast to element type {to}")),
    }
}

fn transpose(c: &Const, perm: Option<Vec<i64>>) -> Result<Const, String> {
    let Const::Real { dims, data } = c else { return Err("a transpose of integers".into()) };
    match (dims.as_slice(), perm.as_deref()) {
        ([rows, cols], None | Some([1, 0])) => {
            let mut out = vec![0.0; data.len()];
            for r in 0..*rows {
                for k in 0..*cols {
                    out[k * rows + r] = data[r * cols + k];
                }
            }
            Ok(real(vec![*cols, *rows], out))
        }
        (_, Some(p)) if p.iter().enumerate().all(|(i, v)| *v == i as i64) => Ok(c.clone()),
        _ => Err(format!("a transpose of shape {dims:?} by {perm:?}")),
    }
}

fn reshape(c: &Const, shape: &[i64]) -> Result<Const, String> {
    let total = c.len();
    let refused = || format!("a reshape of {:?} to {shape:?}", c.dims());
    if shape.iter().any(|d| *d < -1) || shape.iter().filter(|d| **d == -1).count() > 1 {
        return Err(refused());
    }
    // every dimension but a -1, with 0 copying the input's (which must have that dimension)
    let given = |i: usize, d: i64| if d == 0 { c.dims().get(i).copied() } else { Some(d as usize) };
    let known = shape
        .iter()
        .enumerate()
        .filter(|(_, d)| **d != -1)
        .try_fold(1usize, |p, (i, d)| p.checked_mul(given(i, *d)?))
        .filter(|k| *k > 0)
        .ok_or_else(refused)?;
    let dims: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, d)| if *d == -1 { Some(total / known) } else { given(i, *d) })
        .collect::<Option<_>>()
        .ok_or_else(refused)?;
    if dims.iter().try_fold(1usize, |p, d| p.checked_mul(*d)) != Some(total) {
        return Err(refused());
    }
    Ok(match c {
        Const::Real { data, .. } => real(dims, data.clone()),
        Const::Int { data, .. } => Const::Int { dims, data: data.clone() },
    })
}

fn squeeze(c: &Const, axes: Option<Vec<i64>>, unsqueeze: bool) -> Result<Const, String> {
    let mut dims = c.dims().to_vec();
    match (unsqueeze, axes) {
        (true, Some(mut axes)) => {
            let rank = (dims.len() + axes.len()) as i64;
            axes.iter_mut().for_each(|a| *a = if *a < 0 { *a + rank } else { *a });
            axes.sort();
            for a in axes {
                dims.insert((a.max(0) as usize).min(dims.len()), 1);
            }
        }
        (true, None) => return Err("an Unsqueeze without axes".into()),
        (false, None) => dims.retain(|d| *d != 1),
        (false, Some(axes)) => {
            let rank = dims.len() as i64;
            let axes: Vec<usize> = axes.iter().map(|a| (if *a < 0 { a + rank } else { *a }) as usize).collect();
            dims = dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| *d).collect();
        }
    }
    Ok(match c {
        Const::Real { data, .. } => real(dims, data.clone()),
        Const::Int { data, .. } => Const::Int { dims, data: data.clone() },
    })
}

fn concat(inputs: &[Option<&Const>], axis: i64) -> Result<Const, String> {
    let parts: Vec<&Const> = inputs.iter().map(|c| c.ok_or("a missing input")).collect::<Result<_, _>>()?;
    if parts.iter().any(|p| p.dims().len() > 1) || !matches!(axis, 0 | -1) {
        return Err("only 1-D constants are concatenated".into());
    }
    match parts.first() {
        Some(Const::Int { .. }) => {
            let mut data = Vec::new();
            for p in &parts {
                let Const::Int { data: d, .. } = p else { return Err("reals and integers concatenated".into()) };
                data.extend_from_slice(d);
            }
            Ok(Const::Int { dims: vec![data.len()], data })
        }
        Some(Const::Real { .. }) => {
            let mut data = Vec::new();
            for p in &parts {
                let Const::Real { data: d, .. } = p else { return Err("reals and integers concatenated".into()) };
                data.extend_from_slice(d);
            }
            Ok(real(vec![data.len()], data))
        }
        None => Err("nothing to concatenate".into()),
    }
}

fn gather(c: &Const, indices: &[i64], index_dims: Vec<usize>) -> Result<Const, String> {
    let n = c.len() as i64;
    let at = |i: i64| {
        let i = if i < 0 { i + n } else { i };
        (0..n).contains(&i).then_some(i as usize).ok_or(format!("index {i} of {n} values"))
    };
    let positions: Vec<usize> = indices.iter().map(|i| at(*i)).collect::<Result<_, _>>()?;
    Ok(match c {
        Const::Real { data, .. } => real(index_dims, positions.iter().map(|p| data[*p]).collect()),
        Const::Int { data, .. } => Const::Int { dims: index_dims, data: positions.iter().map(|p| data[*p]).collect() },
    })
}

/// The `Shape` of a data value of shape `shape` (`start`/`end` of opset 15 taken into account).
pub(super) fn shape_of(n: &pb::NodeProto, shape: &[Dim]) -> Const {
    let rank = shape.len() as i64;
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name).map(|a| a.i);
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(attr("start").unwrap_or(0)), clamp(attr("end").unwrap_or(rank)));
    let data: Vec<Dim> = shape.get(start..end.max(start)).unwrap_or(&[]).to_vec();
    Const::Int { dims: vec![data.len()], data }
}

/// The value of a one-element boolean constant, if it is one.
pub(super) fn bool_value(c: &Const) -> Option<bool> {
    match c.ints()?.as_slice() {
        [v] => Some(*v != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshapes_of_constants_refuse_absurd_shapes_without_overflowing() {
        let c = Const::Real { dims: vec![2, 3], data: vec![0.0; 6] };
        assert_eq!(reshape(&c, &[-1]).unwrap().dims(), [6]);
        assert_eq!(reshape(&c, &[3, -1]).unwrap().dims(), [3, 2]);
        assert_eq!(reshape(&c, &[0, 3]).unwrap().dims(), [2, 3]);
        for bad in [&[-5][..], &[-1, -1], &[i64::MAX, i64::MAX], &[0, 0, 7], &[4, -1], &[0, -1, 0]] {
            assert!(reshape(&c, bad).is_err(), "{bad:?}");
        }
    }
}
