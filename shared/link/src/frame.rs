//! Framing: postcard bytes, their CRC-32, COBS-encoded, ended by a zero byte.

use serde::Serialize;

/// Bitwise (no 1 KiB table in the device's flash): frames are a few hundred bytes.
pub(crate) const CRC32: crc::Crc<u32, crc::NoTable> = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);
const CRC_BYTES: usize = 4;

/// Why bytes did not make a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The COBS encoding was broken or the CRC did not match: bytes were lost or changed.
    Corrupt,
    /// More bytes arrived before the end of the frame than the receiving buffer holds.
    Oversize,
    /// The message does not fit the buffer it is being encoded into.
    BufferTooSmall,
}

/// Bytes on the wire (zero byte included) of a frame around `payload` postcard bytes, at most.
pub const fn frame_len(payload: usize) -> usize {
    let unframed = payload + CRC_BYTES;
    unframed + unframed / 254 + 1 + 1
}

/// CRC-32 of `bytes`. One out-of-line copy: sending and receiving share it in the device's flash.
#[inline(never)]
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Encodes `message` as one frame into `out` (with `scratch` for the bytes before COBS) and returns
/// the frame, its final zero byte included.
pub fn encode<'o, T: Serialize>(message: &T, scratch: &mut [u8], out: &'o mut [u8]) -> Result<&'o [u8], FrameError> {
    let payload = postcard::to_slice(message, scratch).map_err(|_| FrameError::BufferTooSmall)?.len();
    seal(scratch, payload, out)
}

/// Appends the CRC of `scratch[..payload]` and COBS-encodes both into `out` (not generic: one copy).
#[inline(never)]
fn seal<'o>(scratch: &mut [u8], payload: usize, out: &'o mut [u8]) -> Result<&'o [u8], FrameError> {
    let crc = crc32(&scratch[..payload]).to_le_bytes();
    scratch.get_mut(payload..payload + CRC_BYTES).ok_or(FrameError::BufferTooSmall)?.copy_from_slice(&crc);
    let (body, _) = out.split_at_mut_checked(out.len().saturating_sub(1)).ok_or(FrameError::BufferTooSmall)?;
    let encoded = cobs::try_encode(&scratch[..payload + CRC_BYTES], body).map_err(|_| FrameError::BufferTooSmall)?;
    out[encoded] = 0;
    Ok(&out[..encoded + 1])
}

/// Collects bytes into frames, `N` bytes at most per frame (its zero byte not counted). Never panics
/// and never stalls: every zero byte ends a frame, good or bad, and frees the buffer.
pub struct FrameDecoder<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

/// What one byte completed.
pub type Decoded<'a> = Option<Result<&'a [u8], FrameError>>;

impl<const N: usize> Default for FrameDecoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameDecoder<N> {
    /// An empty decoder.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, overflowed: false }
    }

    /// Takes one byte. At a frame's end returns its postcard bytes (CRC checked and removed) or why
    /// the frame was bad; `None` while a frame is incomplete, and for zero bytes between frames.
    pub fn push(&mut self, byte: u8) -> Decoded<'_> {
        if byte != 0 {
            if self.len == N {
                self.overflowed = true;
            } else {
                self.buf[self.len] = byte;
                self.len += 1;
            }
            return None;
        }
        let (len, overflowed) = (self.len, self.overflowed);
        self.len = 0;
        self.overflowed = false;
        if overflowed {
            return Some(Err(FrameError::Oversize));
        }
        if len == 0 {
            return None;
        }
        Some(Self::unframe(&mut self.buf[..len]))
    }

    fn unframe(encoded: &mut [u8]) -> Result<&[u8], FrameError> {
        let decoded = cobs::decode_in_place(encoded).map_err(|_| FrameError::Corrupt)?;
        let Some(payload) = decoded.checked_sub(CRC_BYTES) else { return Err(FrameError::Corrupt) };
        let (bytes, crc) = encoded[..decoded].split_at(payload);
        if crc32(bytes).to_le_bytes() != crc {
            return Err(FrameError::Corrupt);
        }
        Ok(bytes)
    }

    /// True while part of a frame has arrived.
    pub fn in_frame(&self) -> bool {
        self.len > 0 || self.overflowed
    }
}
