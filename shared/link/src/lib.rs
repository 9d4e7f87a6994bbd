//! The serial validation protocol between `dropship validate` and a serving firmware.
//!
//! Every message is a [postcard] encoding of a [`Request`] (host to device) or a [`Response`]
//! (device to host), followed by the CRC-32 of those bytes (little-endian), COBS-encoded and
//! ended by one zero byte ([`frame`]). The device answers every frame it receives with exactly one
//! frame: a corrupted, truncated or oversize frame gets an [`Response::Error`], never a panic or a
//! hang. [`serve`] is the device's loop, generic over the `embedded-io` traits, so the same code
//! runs on every board and in the host tests. Nothing here allocates.
#![cfg_attr(not(test), no_std)]

pub mod frame;
pub mod message;
pub mod serve;

pub use frame::{encode, Decoded, FrameDecoder, FrameError};
pub use message::{CostUnit, DeviceError, Hello, Input, Request, Response, PROTOCOL_VERSION};
pub use serve::{Model, Server};

/// The digest a device reports for the model it runs: the CRC-32 (ISO-HDLC) of the artifact file's
/// bytes, as `dropship export` wrote them. The host computes it from the file it validates against.
pub fn model_digest(artifact: &[u8]) -> u32 {
    frame::crc32(artifact)
}
