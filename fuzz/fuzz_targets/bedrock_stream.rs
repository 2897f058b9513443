//! ConverseStream to OpenAI chunks: the input is a sequence of messages (an event-type
//! byte, then a payload up to the next 0xff byte), framed validly so that the translator,
//! not only the CRC check, is exercised. Never a panic.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::bedrock::converse::StreamDecoder;
use modelgate_dataplane::providers::bedrock::eventstream::{Message, encode};

const EVENTS: [&str; 7] = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "somethingNew",
];

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::new();
    for record in data.split(|&b| b == 0xff) {
        let Some((&kind, payload)) = record.split_first() else {
            continue;
        };
        let message = match kind {
            0xf0..=0xfe => Message::exception("throttlingException", payload.to_vec()),
            k => Message::event(EVENTS[usize::from(k) % EVENTS.len()], payload.to_vec()),
        };
        bytes.extend_from_slice(&encode(&message).expect("small messages encode"));
    }
    let mut d = StreamDecoder::new("m", true);
    let half = bytes.len() / 2;
    let mut out = BytesMut::new();
    if d.feed(&bytes[..half], &mut out).is_err() || d.feed(&bytes[half..], &mut out).is_err() {
        return;
    }
    let _ = d.finish(&mut out);
});
