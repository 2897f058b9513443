//! OpenAI chat and embeddings requests (arbitrary bytes) to Gemini: never a panic; a
//! chat body is read as the adapter reads it (the typed request, a wrong type named by
//! its path); what translates serializes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::gemini::shared::{ChatOptions, TranslateError, parse_chat};
use modelgate_dataplane::providers::gemini::{chat_request, embeddings_request};

fuzz_target!(|data: &[u8]| {
    match parse_chat(data) {
        Ok(parsed) => {
            for drop_params in [false, true] {
                let options = ChatOptions {
                    drop_params,
                    default_max_tokens: Some(1024),
                };
                if let Ok(t) = chat_request(&parsed, &options) {
                    serde_json::to_vec(&t.body).expect("a translated request serializes");
                }
            }
        }
        Err(TranslateError::InvalidBody(_) | TranslateError::InvalidParam { .. }) => {}
        Err(e) => panic!("reading a request can only fail on the request: {e:?}"),
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(r) = embeddings_request(&body, "gemini-embedding-001") {
        r.to_json().expect("an embeddings request serializes");
    }
});
