//! OpenAI chat requests (arbitrary JSON) to Converse: never a panic; what translates
//! serializes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_dataplane::providers::bedrock::converse::chat_request;
use modelgate_dataplane::providers::gemini::shared::ChatOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for drop_params in [false, true] {
        let options = ChatOptions {
            drop_params,
            default_max_tokens: None,
        };
        if let Ok(t) = chat_request(&body, &options) {
            serde_json::to_vec(&t.body).expect("a translated request serializes");
        }
    }
});
