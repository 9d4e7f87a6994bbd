//! Little-endian reading and writing over byte slices, bounds-checked, never panicking.

use crate::error::FormatError;

/// CRC-32 (ISO-HDLC, as zip and PNG use) guarding artifacts and vector files.
pub(crate) const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A cursor over input bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// A reader past the magic bytes and version every dropship file starts with, checking both,
    /// and then the checksum of the whole file, before any size in it is believed: a corrupt byte
    /// is reported as corruption, not as whatever a damaged size would make of it.
    /// Returns the reader and the version found (one of `versions`).
    pub(crate) fn after_header(
        bytes: &'a [u8],
        magic: [u8; 4],
        versions: core::ops::RangeInclusive<u32>,
    ) -> Result<(Self, u32), FormatError> {
        let mut r = Self::new(bytes);
        if r.take(4).map_err(|_| FormatError::BadMagic)? != magic {
            return Err(FormatError::BadMagic);
        }
        let found = r.u32()?;
        if !versions.contains(&found) {
            return Err(FormatError::UnsupportedVersion { found, supported: *versions.end() });
        }
        verify_checksum(bytes)?;
        Ok((r, found))
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end =
            self.pos.checked_add(n).ok_or(FormatError::Truncated { needed: usize::MAX, len: self.bytes.len() })?;
        let slice =
            self.bytes.get(self.pos..end).ok_or(FormatError::Truncated { needed: end, len: self.bytes.len() })?;
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `count` little-endian i32 values.
    pub(crate) fn i32s(&mut self, count: usize) -> Result<I32s<'a>, FormatError> {
        let len = count.checked_mul(4).ok_or(FormatError::Truncated { needed: usize::MAX, len: self.bytes.len() })?;
        Ok(I32s(self.take(len)?))
    }

    /// `count` little-endian f32 values, as raw bytes (`count * 4` of them).
    pub(crate) fn f32s(&mut self, count: usize) -> Result<F32s<'a>, FormatError> {
        let len = count.checked_mul(4).ok_or(FormatError::Truncated { needed: usize::MAX, len: self.bytes.len() })?;
        Ok(F32s(self.take(len)?))
    }
}

/// A run of little-endian i32 values inside a byte buffer (no alignment needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct I32s<'a>(&'a [u8]);

impl<'a> I32s<'a> {
    /// No values.
    pub const EMPTY: Self = Self(&[]);

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.0.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A run of little-endian f32 values inside a byte buffer (no alignment needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F32s<'a>(&'a [u8]);

impl<'a> F32s<'a> {
    /// No values.
    pub const EMPTY: Self = Self(&[]);

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        self.0.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Copies the values into `out` (which must have exactly [`F32s::len`] elements).
    pub fn copy_to(&self, out: &mut [f32]) -> Result<(), FormatError> {
        if out.len() != self.len() {
            return Err(FormatError::ShapeMismatch { what: "buffer", expected: out.len(), found: self.len() });
        }
        for (o, v) in out.iter_mut().zip(self.iter()) {
            *o = v;
        }
        Ok(())
    }

    /// The index of the first value that is NaN or infinite.
    pub(crate) fn first_non_finite(&self) -> Option<usize> {
        self.iter().position(|v| !v.is_finite())
    }
}

/// A cursor over an output buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, data: &[u8]) -> Result<(), FormatError> {
        let end = self.pos + data.len();
        let len = self.buf.len();
        self.buf.get_mut(self.pos..end).ok_or(FormatError::BufferTooSmall { needed: end, len })?.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), FormatError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn f32s(&mut self, values: &[f32]) -> Result<(), FormatError> {
        values.iter().try_for_each(|v| self.bytes(&v.to_le_bytes()))
    }

    pub(crate) fn i32s(&mut self, values: impl Iterator<Item = i32>) -> Result<(), FormatError> {
        values.into_iter().try_for_each(|v| self.bytes(&v.to_le_bytes()))
    }

    /// Appends the CRC-32 of everything written so far; returns the total length.
    pub(crate) fn finish_with_checksum(mut self) -> Result<usize, FormatError> {
        let crc = CRC32.checksum(&self.buf[..self.pos]);
        self.u32(crc)?;
        Ok(self.pos)
    }
}

/// Checks the trailing CRC-32 of `bytes` (whose last 4 bytes are the checksum).
pub(crate) fn verify_checksum(bytes: &[u8]) -> Result<(), FormatError> {
    let split = bytes.len().checked_sub(4).ok_or(FormatError::Truncated { needed: 4, len: bytes.len() })?;
    let (body, tail) = bytes.split_at(split);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = CRC32.checksum(body);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch { stored, computed });
    }
    Ok(())
}
