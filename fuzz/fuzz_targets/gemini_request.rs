//! OpenAI chat and embeddings requests (arbitrary JSON) to Gemini: never a panic; what
//! translates serializes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::gemini::shared::ChatOptions;
use modelgate_dataplane::providers::gemini::{chat_request, embeddings_request};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for drop_params in [false, true] {
        let options = ChatOptions {
            drop_params,
            default_max_tokens: Some(1024),
        };
        if let Ok(t) = chat_request(&body, &options) {
            serde_json::to_vec(&t.body).expect("a translated request serializes");
        }
    }
    if let Ok(r) = embeddings_request(&body, "gemini-embedding-001") {
        r.to_json().expect("an embeddings request serializes");
    }
});
