//! The messages: what the host asks ([`Request`]) and what the device answers ([`Response`]).

use serde::{Deserialize, Serialize};

/// Bumped on any change to the messages or the framing; a host refuses a device that speaks another.
pub const PROTOCOL_VERSION: u16 = 2;

/// Host to device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// What do you run? Answered by [`Response::Hello`].
    Hello,
    /// Run one inference. Answered by [`Response::Inferred`] with the same `seq`, or an error.
    Infer {
        /// Chosen by the host, echoed by the device, so a late answer is never taken for another row.
        seq: u32,
        /// The row.
        #[serde(borrow)]
        input: Input<'a>,
    },
}

/// One input row on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input<'a> {
    /// Little-endian f32 bit patterns, four bytes per value.
    F32(&'a [u8]),
    /// One byte per value, each an integer 0..=255 the device converts to f32 (exactly): a quarter
    /// of the bytes for rows of small integers such as pixel counts.
    U8(&'a [u8]),
}

impl Input<'_> {
    /// Number of values in the row, or `None` when the bytes are not whole values.
    pub fn values(&self) -> Option<usize> {
        match self {
            Input::F32(b) => (b.len() % 4 == 0).then_some(b.len() / 4),
            Input::U8(b) => Some(b.len()),
        }
    }

    /// Writes the row into `out` (which must have [`Input::values`] elements); false otherwise.
    pub fn read_into(&self, out: &mut [f32]) -> bool {
        if self.values() != Some(out.len()) {
            return false;
        }
        match self {
            Input::F32(b) => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Input::U8(b) => {
                for (o, v) in out.iter_mut().zip(b.iter()) {
                    *o = f32::from(*v);
                }
            }
        }
        true
    }
}

/// What the device's cost figure counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CostUnit {
    /// Instructions retired (QEMU with `-icount`).
    Instructions,
    /// CPU cycles (a real board's DWT cycle counter).
    Cycles,
    /// Nothing counted (a firmware without a counter reports 0).
    Uncounted,
}

impl CostUnit {
    /// `instructions`, `cycles` or `uncounted`.
    pub fn name(self) -> &'static str {
        match self {
            CostUnit::Instructions => "instructions",
            CostUnit::Cycles => "cycles",
            CostUnit::Uncounted => "uncounted",
        }
    }
}

/// The device's answer to [`Request::Hello`]: who it is and what model it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// [`PROTOCOL_VERSION`] of the firmware.
    pub protocol: u16,
    /// The firmware's package version.
    pub firmware: &'a str,
    /// The board (`qemu`, `nrf52840dk`).
    pub board: &'a str,
    /// [`crate::model_digest`] of the artifact the firmware was built with.
    pub digest: u64,
    /// Values per input row.
    pub input: u32,
    /// Logits per inference.
    pub classes: u32,
    /// Dense layers.
    pub layers: u32,
    /// Multiply-accumulates per inference.
    pub macs: u32,
    /// What [`Response::Inferred::cost`] counts.
    pub cost_unit: CostUnit,
    /// The largest frame the device accepts, in bytes on the wire.
    pub max_frame: u32,
}

/// Device to host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// Answer to [`Request::Hello`].
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// Answer to [`Request::Infer`].
    Inferred {
        /// The request's `seq`.
        seq: u32,
        /// Index of the largest logit (the first of equals).
        class: u32,
        /// What this one inference cost, in the hello's `cost_unit`.
        cost: u32,
        /// The logits' little-endian f32 bit patterns.
        logits: &'a [u8],
        /// What each stage of the inference cost, little-endian u32s in the same unit: preparing
        /// the input, each layer, reading the outputs (empty from a firmware that does not count
        /// them). They add up to `cost`.
        stages: &'a [u8],
    },
    /// The request could not be served.
    Error(DeviceError),
}

/// Why the device did not serve a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceError {
    /// The frame's COBS encoding or CRC was wrong (bytes were corrupted or lost).
    Corrupt,
    /// The frame was longer than the device's buffer ([`Hello::max_frame`]).
    Oversize,
    /// The bytes were intact but not a request this firmware knows.
    Malformed,
    /// An input row with the wrong number of values.
    InputLength {
        /// The request's `seq`.
        seq: u32,
        /// Values the model takes.
        expected: u32,
        /// Values the row had (`u32::MAX`: not whole f32 values).
        got: u32,
    },
}
