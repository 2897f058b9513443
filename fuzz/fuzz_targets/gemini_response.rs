//! Gemini answers, error answers and embeddings answers (arbitrary bytes) to OpenAI's
//! shapes: never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::gemini::{
    EmbeddingEncoding, Operation, chat_response, embeddings_response, error,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(answer) = chat_response(data, "m", 1) {
        serde_json::from_slice::<serde_json::Value>(&answer).expect("a translated answer is JSON");
    }
    for status in [400u16, 429, 503] {
        let status = http::StatusCode::from_u16(status).expect("status");
        let e = error(status, data, None);
        assert!(e.status.is_client_error() || e.status.is_server_error());
    }
    for op in [Operation::Embed, Operation::BatchEmbed] {
        let _ = embeddings_response(data, op, "m", EmbeddingEncoding::Base64);
    }
});
