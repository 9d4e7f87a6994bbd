//! Any bytes reaching a serving firmware: the device's frame decoder and request handling
//! (`dropship_link::Server::receive`) answer every frame with exactly one intact frame, never panic
//! and never stall.
//!
//! The first byte picks how the rest arrives. Even: as raw bytes on the wire (COBS, the CRC, oversize
//! frames). Odd: split at each 0xFE into payloads that are each sealed with the right CRC and COBS
//! and a final zero, so mutations get past the checksum to the message decoding and the requests.
#![no_main]

use dropship_link::serve::buffer_len;
use dropship_link::{Cost, CostUnit, FrameDecoder, Hello, Model, Response, Server, MAX_STAGES};
use libfuzzer_sys::fuzz_target;

const IN: usize = 4;
const CLASSES: usize = 3;
const N: usize = buffer_len(IN, CLASSES);
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

struct Toy;

impl Model<IN, CLASSES> for Toy {
    fn hello(&self) -> Hello<'static> {
        Hello {
            protocol: 0,
            firmware: "fuzz",
            board: "fuzz",
            digest: 1,
            input: IN as u32,
            classes: CLASSES as u32,
            layers: 1,
            macs: 12,
            cost_unit: CostUnit::Instructions,
            max_frame: 0,
        }
    }

    fn infer(&mut self, x: &[f32; IN], logits: &mut [f32; CLASSES]) -> (usize, Cost) {
        *logits = [x[0] + x[1], x[2] - x[3], x[0] * x[3]];
        // the longest answer: every stage counted, at the largest values
        (0, Cost { total: u32::MAX, per_stage: [u32::MAX; MAX_STAGES], stages: MAX_STAGES })
    }
}

fn seal(payload: &[u8], wire: &mut Vec<u8>) {
    let mut unframed = payload.to_vec();
    unframed.extend(CRC32.checksum(payload).to_le_bytes());
    let mut encoded = vec![0; cobs::max_encoding_length(unframed.len())];
    let n = cobs::encode(&unframed, &mut encoded);
    wire.extend(&encoded[..n]);
    wire.push(0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let wire = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut wire = Vec::new();
        rest.split(|b| *b == 0xfe).for_each(|p| seal(p, &mut wire));
        wire
    };
    let mut server = Box::new(Server::<N, IN, CLASSES>::new());
    let mut host = FrameDecoder::<512>::new();
    let mut pending = false;
    for &byte in &wire {
        if byte != 0 {
            pending = true;
        }
        let ended = byte == 0 && std::mem::take(&mut pending);
        match server.receive(byte, &mut Toy) {
            Some(answer) => {
                assert!(ended, "an answer before a frame ended");
                let frames: Vec<_> = answer.iter().filter_map(|b| host.push(*b).map(|r| r.map(<[u8]>::to_vec))).collect();
                assert_eq!(frames.len(), 1, "one frame per answer");
                let payload = frames[0].as_ref().expect("the device's frames are intact");
                match postcard::from_bytes::<Response<'_>>(payload).expect("the device's frames are responses") {
                    Response::Inferred { logits, stages, .. } => {
                        assert_eq!((logits.len(), stages.len()), (4 * CLASSES, 4 * MAX_STAGES))
                    }
                    Response::Hello(h) => assert_eq!(h.max_frame as usize, N + 1),
                    Response::Error(_) => {}
                }
            }
            None => assert!(!ended, "a frame ended without an answer"),
        }
    }
});
