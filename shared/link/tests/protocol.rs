//! The frame codec and the serving loop, on the host: round trips, corruption, truncation, garbage.

use dropship_link::serve::buffer_len;
use dropship_link::{
    encode, Cost, CostUnit, DeviceError, FrameDecoder, FrameError, Hello, Input, Model, Request, Response, Server,
};
use proptest::prelude::*;

const IN: usize = 3;
const CLASSES: usize = 2;
const N: usize = buffer_len(IN, CLASSES);

/// logits = [sum, first - last]; the cost is the sequence of calls.
struct Toy {
    calls: u32,
}

impl Model<IN, CLASSES> for Toy {
    fn hello(&self) -> Hello<'static> {
        Hello {
            protocol: 0,
            firmware: "0.1.0",
            board: "test",
            digest: 0xdead_beef_0bad_cafe,
            input: IN as u32,
            classes: CLASSES as u32,
            layers: 1,
            macs: 6,
            cost_unit: CostUnit::Instructions,
            max_frame: 0,
        }
    }

    fn infer(&mut self, x: &[f32; IN], logits: &mut [f32; CLASSES]) -> (usize, Cost) {
        self.calls += 1;
        *logits = [x.iter().sum(), x[0] - x[2]];
        // the first inference reports three stages, the others their total only
        let mut cost = Cost::total(self.calls);
        if self.calls == 1 {
            cost.per_stage[..3].copy_from_slice(&[1, 0, u32::MAX]);
            cost.stages = 3;
        }
        (usize::from(logits[1] > logits[0]), cost)
    }
}

fn frame_of<T: serde::Serialize>(message: &T) -> Vec<u8> {
    let (mut scratch, mut out) = (vec![0; 4096], vec![0; 4096]);
    encode(message, &mut scratch, &mut out).unwrap().to_vec()
}

/// Every frame `bytes` holds, decoded (payload or error).
fn decode_all(bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut decoder = FrameDecoder::<4096>::new();
    bytes.iter().filter_map(|b| decoder.push(*b).map(|r| r.map(<[u8]>::to_vec))).collect()
}

/// Feeds `bytes` to a server; returns every answer, decoded.
fn serve(server: &mut Server<N, IN, CLASSES>, toy: &mut Toy, bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut answers = Vec::new();
    for b in bytes {
        if let Some(frame) = server.receive(*b, toy) {
            let decoded = decode_all(frame);
            assert_eq!(decoded.len(), 1, "one frame per answer");
            answers.push(decoded[0].clone().expect("the device's frames are intact"));
        }
    }
    answers
}

fn response(bytes: &[u8]) -> Response<'_> {
    postcard::from_bytes(bytes).expect("a response")
}

fn request_strategy() -> impl Strategy<Value = (u32, bool, Vec<u8>)> {
    (any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300))
}

fn request_of(seq: u32, as_u8: bool, bytes: &[u8]) -> Request<'_> {
    let input = if as_u8 { Input::U8(bytes) } else { Input::F32(bytes) };
    Request::Infer { seq, input }
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity((seq, as_u8, bytes) in request_strategy()) {
        let request = request_of(seq, as_u8, &bytes);
        let frame = frame_of(&request);
        prop_assert_eq!(frame.iter().filter(|b| **b == 0).count(), 1, "only the end is zero");
        let decoded = decode_all(&frame);
        prop_assert_eq!(decoded.len(), 1);
        let payload = decoded[0].clone().unwrap();
        prop_assert_eq!(postcard::from_bytes::<Request<'_>>(&payload).unwrap(), request);
    }

    #[test]
    fn any_changed_byte_is_detected((seq, as_u8, bytes) in request_strategy(), at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let mut frame = frame_of(&request_of(seq, as_u8, &bytes));
        let at = at.index(frame.len() - 1); // the final zero is the frame's end, not its content
        prop_assume!(frame[at] != to);
        frame[at] = to;
        for decoded in decode_all(&frame) {
            prop_assert_eq!(decoded, Err(FrameError::Corrupt));
        }
    }

    #[test]
    fn any_truncation_is_an_error((seq, as_u8, bytes) in request_strategy(), keep in any::<prop::sample::Index>()) {
        let frame = frame_of(&request_of(seq, as_u8, &bytes));
        let mut cut = frame[..keep.index(frame.len() - 1)].to_vec();
        cut.push(0);
        let decoded = decode_all(&cut);
        prop_assert!(decoded.iter().all(|d| d.is_err()), "{:?}", decoded);
    }

    #[test]
    fn garbage_never_panics_and_the_next_good_frame_is_served(garbage in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let (mut server, mut toy) = (Server::<N, IN, CLASSES>::new(), Toy { calls: 0 });
        let answers = serve(&mut server, &mut toy, &garbage);
        prop_assert!(answers.len() <= garbage.iter().filter(|b| **b == 0).count());
        let mut bytes = vec![0]; // ends whatever the garbage left half-received
        bytes.extend(frame_of(&Request::Hello));
        let answers = serve(&mut server, &mut toy, &bytes);
        let hello = answers.iter().find_map(|a| match response(a) { Response::Hello(h) => Some(h.digest), _ => None });
        prop_assert_eq!(hello, Some(0xdead_beef_0bad_cafe));
    }
}

#[test]
fn hello_infer_and_the_errors() {
    let (mut server, mut toy) = (Server::<N, IN, CLASSES>::new(), Toy { calls: 0 });
    let row: Vec<u8> = [1.5f32, -2.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = frame_of(&Request::Hello);
    bytes.extend(frame_of(&Request::Infer { seq: 7, input: Input::F32(&row) }));
    bytes.extend(frame_of(&Request::Infer { seq: 8, input: Input::U8(&[1, 2, 200]) }));
    bytes.extend(frame_of(&Request::Infer { seq: 9, input: Input::F32(&row[..8]) }));
    bytes.extend(frame_of(&Request::Infer { seq: 10, input: Input::F32(&row[..7]) }));
    let mut corrupt = frame_of(&Request::Hello);
    corrupt[1] ^= 0x40;
    bytes.extend(corrupt);
    bytes.extend(vec![1u8; N + 5]); // longer than the buffer
    bytes.push(0);
    bytes.extend(frame_of(&[0xffu8, 0x01])); // intact, but no request
    let answers = serve(&mut server, &mut toy, &bytes);
    let answers: Vec<Response<'_>> = answers.iter().map(|a| response(a)).collect();
    match answers[0] {
        Response::Hello(h) => {
            assert_eq!(
                (h.protocol, h.max_frame, h.digest),
                (dropship_link::PROTOCOL_VERSION, N as u32 + 1, 0xdead_beef_0bad_cafe)
            )
        }
        other => panic!("{other:?}"),
    }
    let logits: Vec<u8> = [3.5f32, -2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let stages: Vec<u8> = [1u32, 0, u32::MAX].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(answers[1], Response::Inferred { seq: 7, class: 0, cost: 1, logits: &logits, stages: &stages });
    let logits: Vec<u8> = [203.0f32, -199.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(answers[2], Response::Inferred { seq: 8, class: 0, cost: 2, logits: &logits, stages: &[] });
    assert_eq!(answers[3], Response::Error(DeviceError::InputLength { seq: 9, expected: 3, got: 2 }));
    assert_eq!(answers[4], Response::Error(DeviceError::InputLength { seq: 10, expected: 3, got: u32::MAX }));
    assert_eq!(answers[5], Response::Error(DeviceError::Corrupt));
    assert_eq!(answers[6], Response::Error(DeviceError::Oversize));
    assert_eq!(answers[7], Response::Error(DeviceError::Malformed));
    assert_eq!(answers.len(), 8);
}

#[test]
fn the_model_digest_is_the_start_of_the_sha256_of_the_artifact() {
    // SHA-256("abc") = ba7816bf 8f01cfea ...
    assert_eq!(dropship_link::model_digest(b"abc"), 0xba78_16bf_8f01_cfea);
}
