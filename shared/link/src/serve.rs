//! The device's side: answers each request frame with one response frame.

use embedded_io::{Read, Write};

use crate::frame::{encode, frame_len, FrameDecoder, FrameError};
use crate::message::{DeviceError, Hello, Request, Response, PROTOCOL_VERSION};

/// The most stages an inference reports the cost of: preparing the input, up to 32 layers (an
/// artifact's most), reading the outputs.
pub const MAX_STAGES: usize = 34;

/// What one inference cost: in all, and per stage ([`Response::Inferred::stages`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// The whole inference.
    pub total: u32,
    /// Each stage's share; the first `stages` count.
    pub per_stage: [u32; MAX_STAGES],
    /// Stages measured (0: not measured).
    pub stages: usize,
}

impl Cost {
    /// A cost counted in all, not per stage.
    pub const fn total(total: u32) -> Self {
        Self { total, per_stage: [0; MAX_STAGES], stages: 0 }
    }
}

/// What a serving firmware runs.
pub trait Model<const IN: usize, const CLASSES: usize> {
    /// The hello, with anything ([`Hello::protocol`], [`Hello::max_frame`]) the server fills in.
    fn hello(&self) -> Hello<'static>;
    /// One inference: fills `logits`, returns the class and what the inference cost.
    fn infer(&mut self, input: &[f32; IN], logits: &mut [f32; CLASSES]) -> (usize, Cost);
}

/// A serial port's error: the receiving half's or the sending half's (a HAL's two halves may
/// have error types of their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError<R, W> {
    /// Reading failed (a framing or overrun error loses bytes: the host asks again).
    Read(R),
    /// Writing failed.
    Write(W),
}

/// An inference served as a [`Model`]: `infer` returns the class and the inference's cost.
pub struct Served<F> {
    hello: Hello<'static>,
    infer: F,
}

impl<F> Served<F> {
    /// Serves `infer`, introducing itself with `hello`.
    pub fn new(hello: Hello<'static>, infer: F) -> Self {
        Self { hello, infer }
    }
}

impl<F, const IN: usize, const CLASSES: usize> Model<IN, CLASSES> for Served<F>
where
    F: FnMut(&[f32; IN], &mut [f32; CLASSES]) -> (usize, Cost),
{
    fn hello(&self) -> Hello<'static> {
        self.hello
    }

    fn infer(&mut self, input: &[f32; IN], logits: &mut [f32; CLASSES]) -> (usize, Cost) {
        (self.infer)(input, logits)
    }
}

/// Serves `dropship validate`: answers every request read from `rx` on `tx` until `rx` ends (a
/// read gives no byte; a UART never ends, so on a device this runs for ever). Nothing allocates:
/// `server` holds the buffers (a `static`, or on the stack). Inlined into the caller: out of line,
/// the model's inference and the frame handling optimize apart and the firmware grows by 2 KiB.
#[inline(always)]
pub fn serve<const N: usize, const IN: usize, const CLASSES: usize, R: Read, W: Write>(
    server: &mut Server<N, IN, CLASSES>,
    rx: &mut R,
    tx: &mut W,
    model: &mut impl Model<IN, CLASSES>,
) -> Result<(), IoError<R::Error, W::Error>> {
    while server.poll(rx, tx, model)? {}
    Ok(())
}

/// Bytes a frame buffer needs for a model of `input` values and `classes` logits: the longest of an
/// f32 input request, an answer with the logits, and the hello (with short version and board names).
pub const fn buffer_len(input: usize, classes: usize) -> usize {
    // tags, sequence number and length prefixes (varints) around the values
    const ENVELOPE: usize = 1 + 5 + 1 + 5;
    // tag, protocol, two names of up to 16 bytes, digest, cost unit, five u32 varints
    const HELLO: usize = 1 + 3 + 2 * (1 + 16) + 10 + 1 + 5 * 5;
    let request = frame_len(4 * input + ENVELOPE);
    let answer = frame_len(4 * classes + 4 * MAX_STAGES + 3 * 5 + 5 + ENVELOPE);
    let hello = frame_len(HELLO);
    let longest = if request > answer { request } else { answer };
    if longest > hello {
        longest
    } else {
        hello
    }
}

/// The serving state: fixed buffers, no heap. `N` is [`buffer_len`] of the model's shape.
pub struct Server<const N: usize, const IN: usize, const CLASSES: usize> {
    decoder: FrameDecoder<N>,
    input: [f32; IN],
    logits: [f32; CLASSES],
    logit_bytes: [u8; N],
    scratch: [u8; N],
    out: [u8; N],
}

impl<const N: usize, const IN: usize, const CLASSES: usize> Default for Server<N, IN, CLASSES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const IN: usize, const CLASSES: usize> Server<N, IN, CLASSES> {
    /// Buffers that hold the longest frame of this shape, checked at compile time.
    pub const fn new() -> Self {
        const { assert!(N >= buffer_len(IN, CLASSES), "the frame buffer is too small for this model") };
        Self {
            decoder: FrameDecoder::new(),
            input: [0.0; IN],
            logits: [0.0; CLASSES],
            logit_bytes: [0; N],
            scratch: [0; N],
            out: [0; N],
        }
    }

    /// Reads one byte from `rx` (blocking) and, when it ends a frame, writes the answer to `tx`.
    /// `Ok(false)` when `rx` has ended (a read gave no byte).
    pub fn poll<R: Read, W: Write>(
        &mut self,
        rx: &mut R,
        tx: &mut W,
        model: &mut impl Model<IN, CLASSES>,
    ) -> Result<bool, IoError<R::Error, W::Error>> {
        let mut byte = [0u8];
        if rx.read(&mut byte).map_err(IoError::Read)? == 0 {
            return Ok(false);
        }
        if let Some(frame) = self.receive(byte[0], model) {
            tx.write_all(frame).map_err(IoError::Write)?;
            tx.flush().map_err(IoError::Write)?;
        }
        Ok(true)
    }

    /// Takes one received byte; returns the frame to send back when it ended a request.
    pub fn receive(&mut self, byte: u8, model: &mut impl Model<IN, CLASSES>) -> Option<&[u8]> {
        let answer = match self.decoder.push(byte)? {
            Err(FrameError::Oversize) => Answer::Error(DeviceError::Oversize),
            Err(_) => Answer::Error(DeviceError::Corrupt),
            Ok(payload) => match postcard::from_bytes::<Request<'_>>(payload) {
                Err(_) => Answer::Error(DeviceError::Malformed),
                Ok(Request::Hello) => Answer::Hello,
                Ok(Request::Infer { seq, input }) => {
                    if input.read_into(&mut self.input) {
                        let (class, cost) = model.infer(&self.input, &mut self.logits);
                        Answer::Inferred { seq, class: class as u32, cost }
                    } else {
                        let got = input.values().map_or(u32::MAX, |v| v as u32);
                        Answer::Error(DeviceError::InputLength { seq, expected: IN as u32, got })
                    }
                }
            },
        };
        let response = match answer {
            Answer::Hello => {
                Response::Hello(Hello { protocol: PROTOCOL_VERSION, max_frame: N as u32 + 1, ..model.hello() })
            }
            Answer::Inferred { seq, class, cost } => {
                let stages = &cost.per_stage[..cost.stages.min(MAX_STAGES)];
                let values = self.logits.iter().map(|v| v.to_bits()).chain(stages.iter().copied());
                for (bytes, v) in self.logit_bytes.chunks_exact_mut(4).zip(values) {
                    bytes.copy_from_slice(&v.to_le_bytes());
                }
                let (logits, rest) = self.logit_bytes.split_at(4 * CLASSES);
                let stages = &rest[..4 * stages.len()];
                Response::Inferred { seq, class, cost: cost.total, logits, stages }
            }
            Answer::Error(e) => Response::Error(e),
        };
        // `new` checked that every answer fits; an error here would be a bug in `buffer_len`.
        encode(&response, &mut self.scratch, &mut self.out).ok()
    }
}

/// What a request asked for, once its bytes are no longer needed.
enum Answer {
    Hello,
    Inferred { seq: u32, class: u32, cost: Cost },
    Error(DeviceError),
}
