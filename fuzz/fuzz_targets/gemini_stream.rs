//! The Gemini SSE stream decoder on arbitrary bytes, cut where the first byte says: it
//! must never panic, and an error must end the stream.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::gemini::stream::StreamDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let mut d = StreamDecoder::with_max_event_len("m", cut % 2 == 0, 64 * 1024);
    let (a, b) = rest.split_at(cut);
    let mut out = BytesMut::new();
    for piece in [a, b] {
        if d.feed(piece, &mut out).is_err() {
            assert!(d.finish(&mut out).is_err(), "a failed stream stays failed");
            return;
        }
    }
    let _ = d.finish(&mut out);
    // Every chunk is a whole `data:` event of JSON.
    let mut chunks = 0usize;
    for event in out[..].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let data = event.strip_prefix(b"data: ").expect("data events only");
        serde_json::from_slice::<serde_json::Value>(data).expect("a JSON chunk");
        chunks += 1;
    }
    // Every chunk comes from at least one byte of input, plus the role and finish chunks
    // of each choice and the usage chunk.
    assert!(chunks <= rest.len() * 4 + 8);
});
