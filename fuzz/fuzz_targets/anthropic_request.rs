//! Arbitrary bytes as the request of each Anthropic leg (OpenAI chat → Anthropic,
//! `/v1/messages` → OpenAI chat, native), with and without dropParams, streaming or not:
//! never a panic; a refusal is a 4xx.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::{Endpoint, RequestContext};

mod anthropic_common;

fuzz_target!(|data: &[u8]| {
    let deployment = anthropic_common::deployment();
    let body = Bytes::copy_from_slice(data);
    for (t, endpoint) in anthropic_common::translators()
        .into_iter()
        .zip([Endpoint::Chat, Endpoint::Messages, Endpoint::Messages])
    {
        for (drop_params, stream) in [(false, false), (true, true)] {
            let cx = RequestContext {
                endpoint,
                deployment: &deployment,
                requested_model: "m",
                upstream_model: "claude-x",
                stream,
                drop_params,
            };
            if let Err(e) = t.request(&cx, &body) {
                assert!(e.status.is_client_error() || e.status.is_server_error());
            }
        }
    }
});
