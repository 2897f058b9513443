//! The Gemini SSE stream decoder on arbitrary bytes, cut where the first byte says: it
//! must never panic, and an error must end the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::gemini::stream::StreamDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let mut d = StreamDecoder::with_max_event_len("m", cut % 2 == 0, 64 * 1024);
    let (a, b) = rest.split_at(cut);
    let mut chunks = 0usize;
    for piece in [a, b] {
        match d.feed(piece) {
            Ok(out) => chunks += out.len(),
            Err(_) => {
                assert!(d.finish().is_err(), "a failed stream stays failed");
                return;
            }
        }
    }
    if let Ok(out) = d.finish() {
        chunks += out.len();
    }
    // Every chunk comes from at least one byte of input, plus the role and finish chunks
    // of each choice and the usage chunk.
    assert!(chunks <= rest.len() * 4 + 8);
});
