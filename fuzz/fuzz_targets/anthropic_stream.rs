//! Arbitrary bytes, cut in two where the first byte says, through the stream translator of
//! each Anthropic leg: never a panic; output bounded by the input.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::ResponseContext;

mod anthropic_common;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let cx = ResponseContext {
        include_usage: cut % 2 == 0,
        model: "m".to_owned(),
        ..ResponseContext::default()
    };
    let (a, b) = rest.split_at(cut);
    for t in anthropic_common::translators() {
        let mut s = t.stream(&cx);
        let mut out = BytesMut::new();
        let mut failed = false;
        for piece in [a, b] {
            if s.feed(piece, &mut out).is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            let _ = s.finish(&mut out);
        }
        assert!(out.len() <= rest.len() * 16 + 4096, "output grew beyond the input");
    }
});
