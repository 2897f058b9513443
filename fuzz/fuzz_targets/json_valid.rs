//! The JSON validity check of answers forwarded untouched (`modelgate_dataplane::json`)
//! accepts exactly what serde_json accepts when it ignores a value.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = modelgate_dataplane::json::is_valid(data);
    let serde = serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
    assert_eq!(ours, serde, "{:?}", String::from_utf8_lossy(data));
});
