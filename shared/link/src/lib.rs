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
pub use serve::{serve, Cost, IoError, Model, Served, Server, MAX_STAGES};

/// The digest a device reports for the model it runs: the first 8 bytes (big-endian) of the SHA-256
/// of the artifact file, as `dropship export` wrote it. The firmware's build computes it; the host
/// computes it from the file it validates against. (Not a CRC: an artifact ends with its own CRC-32,
/// so the CRC-32 of every artifact file is the same constant.)
pub fn model_digest(artifact: &[u8]) -> u64 {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(artifact);
    u64::from_be_bytes(hash[..8].try_into().expect("SHA-256 has 32 bytes"))
}
