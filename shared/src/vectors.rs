//! Test vectors: inputs with the host's logits and class, embedded in firmware to check the device.
//!
//! ```text
//! magic "DSVE" | version = 1 | count | input width | class count
//! per vector: input[input] f32, class u32, logits[classes] f32
//! CRC-32 (ISO-HDLC) of every byte before it
//! ```

use crate::artifact::MAX_WIDTH;
use crate::error::{FormatError, Section};
use crate::wire::{F32s, Reader, Writer};

/// The four bytes a vector file starts with.
pub const MAGIC: [u8; 4] = *b"DSVE";
/// The format version.
pub const VERSION: u32 = 1;
/// Most vectors a file may hold.
pub const MAX_VECTORS: usize = 1 << 16;
const HEADER: usize = 20;

/// Whether `value` travels as a byte without changing: an integer 0 to 255 that is not -0.0 (a
/// byte gives +0.0, and the sign of a zero can reach the logits). The one rule by which a row is
/// sent over the serial link, or stored in a firmware's flash, as bytes rather than f32.
pub fn exact_as_byte(value: f32) -> bool {
    (0.0..=255.0).contains(&value) && !value.is_sign_negative() && (value as u8) as f32 == value
}

/// One test vector.
#[derive(Clone, Copy, Debug)]
pub struct Vector<'a> {
    /// Raw input, as the model's standardization expects it.
    pub input: F32s<'a>,
    /// The class the host predicted.
    pub class: usize,
    /// The logits the host computed.
    pub logits: F32s<'a>,
}

/// A validated vector file, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Vectors<'a> {
    count: usize,
    input: usize,
    classes: usize,
    body: &'a [u8],
}

fn record_len(input: usize, classes: usize) -> usize {
    4 * (input + 1 + classes)
}

impl<'a> Vectors<'a> {
    /// Parses and validates `bytes` (structure, limits, checksum, finiteness, class range).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (mut r, _) = Reader::after_header(bytes, MAGIC, VERSION..=VERSION)?;
        let count = r.u32()? as usize;
        let input = r.u32()? as usize;
        let classes = r.u32()? as usize;
        for (what, value, limit) in [
            ("vector count", count, MAX_VECTORS),
            ("input width", input, MAX_WIDTH),
            ("class count", classes, MAX_WIDTH),
        ] {
            if value > limit {
                return Err(FormatError::TooLarge { what, value, limit });
            }
        }
        let expected = HEADER + count * record_len(input, classes) + 4;
        if bytes.len() < expected {
            return Err(FormatError::Truncated { needed: expected, len: bytes.len() });
        }
        if bytes.len() > expected {
            return Err(FormatError::TrailingBytes { expected, len: bytes.len() });
        }
        let body = r.take(count * record_len(input, classes))?;
        let vectors = Self { count, input, classes, body };
        for i in 0..count {
            let v = vectors.get(i).ok_or(FormatError::Truncated { needed: expected, len: bytes.len() })?;
            if v.input.iter().chain(v.logits.iter()).any(|x| !x.is_finite()) {
                return Err(FormatError::NonFinite { section: Section::Vector(i), index: 0 });
            }
            if v.class >= classes {
                return Err(FormatError::ShapeMismatch { what: "vector class", expected: classes, found: v.class });
            }
        }
        Ok(vectors)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the file holds no vector.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Class count.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Vector `i`.
    pub fn get(&self, i: usize) -> Option<Vector<'a>> {
        let len = record_len(self.input, self.classes);
        let mut r = Reader::new(self.body.get(i.checked_mul(len)?..(i + 1).checked_mul(len)?)?);
        let input = r.f32s(self.input).ok()?;
        let class = r.u32().ok()? as usize;
        let logits = r.f32s(self.classes).ok()?;
        Some(Vector { input, class, logits })
    }

    /// All vectors in order.
    pub fn iter(&self) -> impl Iterator<Item = Vector<'a>> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }

    /// Exact size of a file of `count` vectors.
    pub fn encoded_len(count: usize, input: usize, classes: usize) -> usize {
        HEADER + count * record_len(input, classes) + 4
    }

    /// Writes `records` (input, class, logits) into `out`; returns the length written.
    pub fn write<'r>(
        out: &mut [u8],
        input: usize,
        classes: usize,
        records: impl ExactSizeIterator<Item = (&'r [f32], usize, &'r [f32])>,
    ) -> Result<usize, FormatError> {
        let mut w = Writer::new(out);
        w.bytes(&MAGIC)?;
        w.u32(VERSION)?;
        w.u32(records.len() as u32)?;
        w.u32(input as u32)?;
        w.u32(classes as u32)?;
        for (x, class, logits) in records {
            if x.len() != input || logits.len() != classes {
                return Err(FormatError::ShapeMismatch { what: "vector width", expected: input, found: x.len() });
            }
            w.f32s(x)?;
            w.u32(class as u32)?;
            w.f32s(logits)?;
        }
        w.finish_with_checksum()
    }
}

#[cfg(test)]
mod tests {
    use super::exact_as_byte;

    #[test]
    fn only_values_a_byte_gives_back_exactly_travel_as_bytes() {
        for v in [0.0f32, 1.0, 7.0, 255.0] {
            assert!(exact_as_byte(v), "{v}");
            assert_eq!((v as u8 as f32).to_bits(), v.to_bits());
        }
        for v in [-0.0f32, -1.0, 0.5, 255.5, 256.0, f32::NAN, f32::INFINITY, 1e-45] {
            assert!(!exact_as_byte(v), "{v}");
        }
    }
}
