//! OpenAI chat requests (arbitrary bytes) to Converse, read as the adapter reads them (the
//! typed request, a wrong type named by its path): never a panic; what translates
//! serializes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::bedrock::converse::chat_request;
use modelgate_dataplane::providers::gemini::shared::{ChatOptions, TranslateError, parse_chat};

fuzz_target!(|data: &[u8]| {
    let parsed = match parse_chat(data) {
        Ok(parsed) => parsed,
        Err(TranslateError::InvalidBody(_) | TranslateError::InvalidParam { .. }) => return,
        Err(e) => panic!("reading a request can only fail on the request: {e:?}"),
    };
    for drop_params in [false, true] {
        let options = ChatOptions {
            drop_params,
            default_max_tokens: None,
        };
        if let Ok(t) = chat_request(&parsed, &options) {
            serde_json::to_vec(&t.body).expect("a translated request serializes");
        }
    }
});
