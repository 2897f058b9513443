//! Arbitrary bytes as a whole answer and as an error answer of each Anthropic leg: never a
//! panic; errors keep a 4xx/5xx status.

#![no_main]

use bytes::Bytes;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::ResponseContext;

mod anthropic_common;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let cx = ResponseContext {
        include_usage: first & 1 == 1,
        model: "m".to_owned(),
        ..ResponseContext::default()
    };
    let status = StatusCode::from_u16(400 + u16::from(first) % 200).unwrap_or(StatusCode::BAD_GATEWAY);
    for t in anthropic_common::translators() {
        let _ = t.response(&cx, Bytes::copy_from_slice(rest));
        let e = t.error(status, &http::HeaderMap::new(), rest, None);
        assert!(e.status.is_client_error() || e.status.is_server_error());
    }
});
