//! The host's side of the serial validation protocol (`dropship-link`): requests with timeouts and
//! retries over any byte stream, and the QEMU session whose UART0 is that stream.
//!
//! Every answer is checked (COBS, CRC, the request's sequence number) before it is believed: a
//! corrupted, lost or late frame makes the request go again, a dead link stops with an error that
//! says what was expected. Nothing is ever reported that the device did not send intact.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::output::{KillOnExit, RemoveOnSignal};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dropship_link::{encode, DeviceError, FrameDecoder, FrameError, Input, Request, Response};

/// Attempts per request before the link is declared broken.
pub const ATTEMPTS: usize = 8;
/// The largest frame the host accepts (a model with 16,000 classes).
const MAX_FRAME: usize = 1 << 16;

/// What the device said about itself ([`dropship_link::Hello`], owned).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// Protocol version.
    pub protocol: u16,
    /// Firmware version.
    pub firmware: String,
    /// Board name.
    pub board: String,
    /// The model's digest ([`dropship_link::model_digest`] of the artifact it was built with).
    pub digest: u64,
    /// Values per row.
    pub input: usize,
    /// Logits per row.
    pub classes: usize,
    /// Dense layers.
    pub layers: usize,
    /// Multiply-accumulates per inference.
    pub macs: usize,
    /// What the cost counts.
    pub cost_unit: &'static str,
    /// Largest frame the device takes.
    pub max_frame: usize,
}

/// One inference as the device answered it.
#[derive(Clone, Debug, PartialEq)]
pub struct Inferred {
    /// The device's class.
    pub class: usize,
    /// What it cost, in [`DeviceInfo::cost_unit`].
    pub cost: u32,
    /// The logits, bit for bit as sent.
    pub logits: Vec<f32>,
    /// What each stage cost (the input, each layer, the outputs); empty if the firmware does not
    /// count them.
    pub stages: Vec<u32>,
}

/// A request/response link over a byte stream whose reads time out (a Unix socket or a serial port
/// with a read timeout set).
pub struct Link<T> {
    io: T,
    decoder: Box<FrameDecoder<MAX_FRAME>>,
    unread: Vec<u8>,
    read_at: usize,
    timeout: Duration,
    scratch: Vec<u8>,
    out: Vec<u8>,
    /// Requests sent again because an answer was corrupted, lost or late.
    pub retries: usize,
}

/// What came back for one attempt.
enum Attempt<R> {
    Answer(R),
    Again(String),
}

impl<T: Read + Write> Link<T> {
    /// A link over `io`, waiting at most `timeout` for each answer.
    pub fn new(io: T, timeout: Duration) -> Self {
        Self {
            io,
            decoder: Box::new(FrameDecoder::new()),
            unread: Vec::new(),
            read_at: 0,
            timeout,
            scratch: vec![0; MAX_FRAME],
            out: vec![0; MAX_FRAME + MAX_FRAME / 254 + 2],
            retries: 0,
        }
    }

    /// Asks the device what it runs.
    pub fn hello(&mut self) -> Result<DeviceInfo> {
        self.call(&Request::Hello, "the device's hello", |r| match r {
            Response::Hello(h) => Some(DeviceInfo {
                protocol: h.protocol,
                firmware: h.firmware.to_string(),
                board: h.board.to_string(),
                digest: h.digest,
                input: h.input as usize,
                classes: h.classes as usize,
                layers: h.layers as usize,
                macs: h.macs as usize,
                cost_unit: h.cost_unit.name(),
                max_frame: h.max_frame as usize,
            }),
            _ => None,
        })
    }

    /// Runs one row on the device: bytes when every value is an integer 0..=255, f32 otherwise.
    pub fn infer(&mut self, seq: u32, row: &[f32]) -> Result<Inferred> {
        let bytes: Vec<u8>;
        let input = if row.iter().all(|v| dropship_shared::vectors::exact_as_byte(*v)) {
            bytes = row.iter().map(|v| *v as u8).collect();
            Input::U8(&bytes)
        } else {
            bytes = row.iter().flat_map(|v| v.to_le_bytes()).collect();
            Input::F32(&bytes)
        };
        let what = format!("the answer to row {seq}");
        self.call(&Request::Infer { seq, input }, &what, |r| match r {
            Response::Inferred { seq: s, class, cost, logits, stages }
                if *s == seq && logits.len() % 4 == 0 && stages.len() % 4 == 0 =>
            {
                Some(Inferred {
                    class: *class as usize,
                    cost: *cost,
                    logits: logits.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                    stages: stages.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                })
            }
            _ => None,
        })
    }

    /// Sends `request` until an answer `accept` takes arrives intact, [`ATTEMPTS`] times at most.
    fn call<R>(&mut self, request: &Request<'_>, what: &str, accept: impl Fn(&Response<'_>) -> Option<R>) -> Result<R> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.retries += 1;
            }
            let frame = encode(request, &mut self.scratch, &mut self.out)
                .map_err(|e| anyhow::anyhow!("cannot encode the request: {e:?}"))?;
            self.io.write_all(frame).context("cannot write to the device")?;
            self.io.flush().context("cannot write to the device")?;
            match self.answer(&accept)? {
                Attempt::Answer(r) => return Ok(r),
                Attempt::Again(why) => last = why,
            }
        }
        bail!("no intact answer from the device after {ATTEMPTS} attempts, waiting for {what} (last: {last})")
    }

    /// Waits for the answer to the request just sent, skipping late answers to earlier ones.
    fn answer<R>(&mut self, accept: &impl Fn(&Response<'_>) -> Option<R>) -> Result<Attempt<R>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            // a device that never stops sending, but never sends the answer, times out too
            let byte = match self.next_byte(deadline)? {
                Some(byte) if Instant::now() < deadline => byte,
                _ => return Ok(Attempt::Again(format!("no answer within {:.1} s", self.timeout.as_secs_f64()))),
            };
            let payload = match self.decoder.push(byte) {
                None => continue,
                Some(Err(FrameError::Oversize)) => return Ok(Attempt::Again("a frame longer than any answer".into())),
                Some(Err(_)) => return Ok(Attempt::Again("a corrupted frame".into())),
                Some(Ok(payload)) => payload,
            };
            match postcard::from_bytes::<Response<'_>>(payload) {
                Err(_) => return Ok(Attempt::Again("an intact frame that is no answer".into())),
                Ok(Response::Error(DeviceError::InputLength { expected, got, .. })) => {
                    bail!("the device takes {expected} values per row, it was sent {got}")
                }
                Ok(Response::Error(e)) => return Ok(Attempt::Again(format!("the device reported {e:?}"))),
                Ok(response) => {
                    if let Some(r) = accept(&response) {
                        return Ok(Attempt::Answer(r));
                    }
                    // a late answer to an earlier attempt: keep waiting for this one
                }
            }
        }
    }

    fn next_byte(&mut self, deadline: Instant) -> Result<Option<u8>> {
        while self.read_at == self.unread.len() {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.unread.resize(4096, 0);
            self.read_at = 0;
            match self.io.read(&mut self.unread) {
                Ok(0) => bail!("the device closed the link"),
                Ok(n) => self.unread.truncate(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    self.unread.clear();
                }
                Err(e) => return Err(e).context("cannot read from the device"),
            }
        }
        let byte = self.unread[self.read_at];
        self.read_at += 1;
        Ok(Some(byte))
    }
}

/// QEMU running a serving firmware on a board it emulates, its serial port on a Unix socket. QEMU is killed and
/// its temporary directory removed on drop and if this process is interrupted (SIGINT/SIGTERM).
pub struct QemuSession {
    child: KillOnExit,
    dir: tempfile::TempDir,
    _dir_on_signal: RemoveOnSignal,
    elf: PathBuf,
}

impl QemuSession {
    /// Starts QEMU on `elf` and connects to its UART0.
    pub fn start(board: dropship_boards::firmware::Board, elf: &Path) -> Result<(Self, UnixStream)> {
        dropship_boards::qemu::find_for(board)?;
        let dir =
            tempfile::Builder::new().prefix("dropship-qemu").tempdir().context("cannot make a temporary directory")?;
        let dir_on_signal = RemoveOnSignal::new(dir.path());
        let socket = dir.path().join("uart0");
        let stderr = std::fs::File::create(dir.path().join("qemu.log"))?;
        let stdout = std::fs::File::create(dir.path().join("defmt.bin"))?;
        let child = dropship_boards::qemu::command_with_uart_socket(board, elf, &socket)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", board.spec().qemu_system()))?;
        let mut session =
            Self { child: KillOnExit::new(child), dir, _dir_on_signal: dir_on_signal, elf: elf.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = UnixStream::connect(&socket) {
                return Ok((session, stream));
            }
            if session.child.try_wait()?.is_some() {
                bail!("QEMU stopped before its UART0 was connected: {}", session.report());
            }
            if Instant::now() > deadline {
                bail!("QEMU did not open its UART0 socket within 20 s: {}", session.report());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What is known of QEMU now, for an error message: whether it still runs (or its exit
    /// status), what it wrote on stderr and the firmware's defmt log, decoded.
    pub fn report(&mut self) -> String {
        // a firmware that stopped on a panic exits through semihosting a moment later
        std::thread::sleep(Duration::from_millis(100));
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("QEMU exited ({status})"),
            Ok(None) => "QEMU is still running".to_string(),
            Err(e) => format!("QEMU's status is unknown ({e})"),
        };
        let stderr = std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default();
        let frames = std::fs::read(self.dir.path().join("defmt.bin")).unwrap_or_default();
        let log = match std::fs::read(&self.elf)
            .map_err(anyhow::Error::from)
            .and_then(|elf| dropship_boards::qemu::log_lines(&elf, &frames))
        {
            Ok(lines) if lines.is_empty() => "nothing".to_string(),
            Ok(lines) => lines.join("\n"),
            Err(e) => format!("{} bytes that do not decode ({e})", frames.len()),
        };
        let stderr = if stderr.trim().is_empty() { "nothing".to_string() } else { stderr.trim().to_string() };
        format!("{status}; its stderr: {stderr}; the firmware's log: {log}")
    }
}
