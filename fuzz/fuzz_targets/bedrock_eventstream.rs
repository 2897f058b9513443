//! The event-stream decoder on arbitrary bytes: never a panic; every message decoded
//! re-encodes to exactly the bytes it came from.
//!
//! The first byte chooses the mode and the cut: odd, the rest is fed as it is (cut in
//! two), which mostly exercises the prelude checks; even, the rest is wrapped in a frame
//! with valid lengths and CRCs (its first byte, scaled, is the headers length), which
//! exercises the header parser.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::bedrock::eventstream::{Decoder, encode};

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// `body` (headers then payload) framed with valid lengths and CRCs.
fn frame(headers_len: usize, body: &[u8]) -> Vec<u8> {
    let total = u32::try_from(16 + body.len()).expect("small input");
    let headers_len = u32::try_from(headers_len.min(body.len())).expect("small input");
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let input = if first % 2 == 0 {
        let Some((&h, body)) = rest.split_first() else {
            return;
        };
        frame(usize::from(h) * body.len() / 255, body)
    } else {
        rest.to_vec()
    };
    let cut = usize::from(first).min(input.len());
    let mut d = Decoder::with_max_message_len(64 * 1024);
    let mut messages = Vec::new();
    for piece in [&input[..cut], &input[cut..]] {
        match d.push(piece) {
            Ok(m) => messages.extend(m),
            Err(_) => return,
        }
    }
    let mut reencoded = Vec::new();
    for m in &messages {
        reencoded.extend_from_slice(&encode(m).expect("a decoded message re-encodes"));
    }
    // The decoded messages are a prefix of the input, byte for byte.
    assert!(input.starts_with(&reencoded));
    assert_eq!(d.finish().is_ok(), reencoded.len() == input.len());
});
