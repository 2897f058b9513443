//! Bedrock: SigV4 against the AWS SigV4 test suite and a Bedrock Converse signature
//! computed independently (botocore), the event-stream framing (an independent Python
//! encoding, every two-chunk split, CRC failures, size limits, a round-trip property), and
//! the Converse translations against golden fixtures (`tests/fixtures/bedrock/`), written
//! from the Converse / ConverseStream API reference.
//!
//! To regenerate the golden translations after an intended change, run with
//! `UPDATE_GOLDEN=1` and review the diff.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, StatusCode};
use modelgate_dataplane::providers::Translator;
use modelgate_dataplane::providers::bedrock::converse::{
    self, StreamDecoder, StreamError, chat_request,
};
use modelgate_dataplane::providers::bedrock::eventstream::{
    self, Decoder, EventStreamError, Header, HeaderValue as EsValue, Message,
};
use modelgate_dataplane::providers::bedrock::sigv4::{
    self, Credentials, Settings, SigningParams, UriEncoding, VerifyError,
};
use modelgate_dataplane::providers::bedrock::{self, default_base, url};
use modelgate_dataplane::providers::gemini::shared::{ChatOptions, TranslateError, parse_chat};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bedrock")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Replaces what differs between runs: `created` and generated completion ids.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match (k.as_str(), v.as_str()) {
                    ("created", _) => *v = json!(0),
                    ("id", Some(s)) if s.starts_with("chatcmpl-") => {
                        *v = json!("chatcmpl-<random>");
                    }
                    _ => normalize(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// A translated request: its body (as JSON) and what was dropped.
#[derive(Debug)]
struct Out {
    body: Value,
    dropped: Vec<String>,
}

/// Reads `bytes` as the adapter does, then translates it.
fn translate_bytes(bytes: &[u8], options: &ChatOptions) -> Result<Out, TranslateError> {
    let parsed = parse_chat(bytes)?;
    let t = chat_request(&parsed, options)?;
    Ok(Out {
        body: serde_json::to_value(&t.body).expect("json"),
        dropped: t.dropped,
    })
}

fn translate(input: &Value, options: &ChatOptions) -> Result<Out, TranslateError> {
    translate_bytes(&serde_json::to_vec(input).expect("json"), options)
}

/// An answer translated, read back as JSON.
fn chat_response(body: &[u8], model: &str) -> Result<Value, TranslateError> {
    let bytes = converse::chat_response(body, model, 1_700_000_000)?;
    Ok(serde_json::from_slice(&bytes).expect("the answer is JSON"))
}

fn golden(name: &str, actual: &Value) {
    let mut actual = actual.clone();
    normalize(&mut actual);
    let path = fixture_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&actual).expect("json") + "\n";
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    assert_eq!(
        actual,
        read_json(name),
        "{name} differs:\n{}",
        serde_json::to_string_pretty(&actual).unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------
// SigV4.

const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, the suite's signing time.
const SUITE_TIME: u64 = 1_440_938_160;
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

struct SuiteCase {
    name: &'static str,
    method: &'static str,
    /// Path and query as sent (percent-encoded where the suite's raw request is not
    /// ASCII-safe).
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    token: Option<&'static str>,
    settings: Settings,
    signed_headers: &'static str,
    signature: &'static str,
}

const DOUBLE: Settings = Settings {
    uri_encoding: UriEncoding::Double,
    normalize_path: true,
    content_sha256_header: false,
};
const SINGLE: Settings = Settings {
    uri_encoding: UriEncoding::Single,
    normalize_path: true,
    content_sha256_header: false,
};
const UNNORMALIZED: Settings = Settings {
    uri_encoding: UriEncoding::Double,
    normalize_path: false,
    content_sha256_header: false,
};

fn case(
    name: &'static str,
    method: &'static str,
    target: &'static str,
    signed_headers: &'static str,
    signature: &'static str,
) -> SuiteCase {
    SuiteCase {
        name,
        method,
        target,
        headers: &[],
        body: "",
        token: None,
        settings: DOUBLE,
        signed_headers,
        signature,
    }
}

/// The AWS SigV4 test suite (region us-east-1, service `service`).
fn suite() -> Vec<SuiteCase> {
    const HD: &str = "host;x-amz-date";
    vec![
        case(
            "get-vanilla",
            "GET",
            "/",
            HD,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        case(
            "post-vanilla",
            "POST",
            "/",
            HD,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        case(
            "get-vanilla-query-order-key-case",
            "GET",
            "/?Param2=value2&Param1=value1",
            HD,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        case(
            "get-vanilla-empty-query-key",
            "GET",
            "/?Param1=value1",
            HD,
            "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
        ),
        case(
            "get-vanilla-query-unreserved",
            "GET",
            "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            HD,
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        ),
        case(
            "get-vanilla-utf8-query",
            "GET",
            "/?%E1%88%B4=bar",
            HD,
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        ),
        case(
            "get-unreserved",
            "GET",
            "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            HD,
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        ),
        SuiteCase {
            settings: SINGLE,
            ..case(
                "get-utf8 (raw path, encoded once)",
                "GET",
                "/%E1%88%B4",
                HD,
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            )
        },
        case(
            "post-vanilla-query",
            "POST",
            "/?Param1=value1",
            HD,
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        ),
        case(
            "get-relative-relative-normalized",
            "GET",
            "/example1/example2/../..",
            HD,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        case(
            "get-slashes-normalized",
            "GET",
            "//example//",
            HD,
            "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        ),
        SuiteCase {
            settings: UNNORMALIZED,
            ..case(
                "get-slashes-unnormalized",
                "GET",
                "//example//",
                HD,
                "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5",
            )
        },
        SuiteCase {
            headers: &[
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            ..case(
                "get-header-key-duplicate",
                "GET",
                "/",
                "host;my-header1;x-amz-date",
                "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            )
        },
        SuiteCase {
            headers: &[
                ("My-Header1", "value4"),
                ("My-Header1", "value1"),
                ("My-Header1", "value3"),
                ("My-Header1", "value2"),
            ],
            ..case(
                "get-header-value-order",
                "GET",
                "/",
                "host;my-header1;x-amz-date",
                "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            )
        },
        SuiteCase {
            headers: &[("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
            ..case(
                "get-header-value-trim",
                "GET",
                "/",
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            )
        },
        SuiteCase {
            headers: &[("My-Header1", "value1")],
            ..case(
                "post-header-key-sort",
                "POST",
                "/",
                "host;my-header1;x-amz-date",
                "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            )
        },
        SuiteCase {
            headers: &[("My-Header1", "VALUE1")],
            ..case(
                "post-header-value-case",
                "POST",
                "/",
                "host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            )
        },
        SuiteCase {
            headers: &[("Content-Type", "application/x-www-form-urlencoded")],
            body: "Param1=value1",
            ..case(
                "post-x-www-form-urlencoded",
                "POST",
                "/",
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            )
        },
        SuiteCase {
            headers: &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf8",
            )],
            body: "Param1=value1",
            ..case(
                "post-x-www-form-urlencoded-parameters",
                "POST",
                "/",
                "content-type;host;x-amz-date",
                "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
            )
        },
        SuiteCase {
            token: Some(STS_TOKEN),
            ..case(
                "post-sts-header-before",
                "POST",
                "/",
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            )
        },
        SuiteCase {
            token: Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
            ..case(
                "get-vanilla-with-session-token",
                "GET",
                "/",
                "host;x-amz-date;x-amz-security-token",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            )
        },
    ]
}

fn suite_request(c: &SuiteCase) -> Request<Bytes> {
    let mut builder = Request::builder()
        .method(c.method)
        .uri(format!("https://example.amazonaws.com{}", c.target))
        .header("host", "example.amazonaws.com");
    for (name, value) in c.headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Bytes::from_static(c.body.as_bytes()))
        .expect("request")
}

#[test]
fn sigv4_test_suite() {
    for c in suite() {
        let credentials = Credentials::new(SUITE_KEY, SUITE_SECRET, c.token.map(str::to_owned));
        let mut req = suite_request(&c);
        let params = SigningParams {
            credentials: &credentials,
            region: "us-east-1",
            service: "service",
            time: UNIX_EPOCH + Duration::from_secs(SUITE_TIME),
            settings: c.settings,
        };
        let sig = sigv4::sign(&mut req, &params).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let expected = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={}, Signature={}",
            c.signed_headers, c.signature
        );
        assert_eq!(
            sig.authorization, expected,
            "{}\ncanonical request:\n{}\nstring to sign:\n{}",
            c.name, sig.canonical_request, sig.string_to_sign
        );
        assert_eq!(
            req.headers()["authorization"],
            expected.as_str(),
            "{}",
            c.name
        );
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert!(req.headers()["authorization"].is_sensitive());
        // And the verifier accepts what the signer produced.
        let (parts, body) = req.into_parts();
        sigv4::verify(
            &parts,
            &body,
            &credentials,
            "us-east-1",
            "service",
            c.settings,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    }
}

/// The Converse request of the Bedrock example (model id with a `:`).
const EXAMPLE_BODY: &[u8] =
    br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":256}}"#;
/// 2024-05-01T12:00:00Z.
const EXAMPLE_TIME: u64 = 1_714_564_800;

#[test]
fn bedrock_converse_signature_matches_botocore() {
    // Signatures computed with botocore's SigV4Auth for the same request and time; the
    // `:` of the model id travels as %3A and is signed as %253A.
    for (token, signed, signature) in [
        (
            None,
            "accept;content-type;host;x-amz-date",
            "3eaf22f502d879ee41896ef45060a9bff72edcf691606f70d006741bfbff661e",
        ),
        (
            Some("FQoGZXIvYXdzEXAMPLETOKEN"),
            "accept;content-type;host;x-amz-date;x-amz-security-token",
            "07169032cfd888a390cbe5e47e46a726b621e68d71b53145f65e9f2af85e9672",
        ),
    ] {
        let credentials = Credentials::new(SUITE_KEY, SUITE_SECRET, token.map(str::to_owned));
        let req = bedrock::http_request(
            &default_base("us-east-1"),
            "us-east-1",
            &credentials,
            "anthropic.claude-3-haiku-20240307-v1:0",
            false,
            Bytes::from_static(EXAMPLE_BODY),
            UNIX_EPOCH + Duration::from_secs(EXAMPLE_TIME),
        )
        .expect("request");
        assert_eq!(
            req.uri(),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(
            req.headers()["authorization"],
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240501/us-east-1/bedrock/aws4_request, SignedHeaders={signed}, Signature={signature}"
            )
            .as_str()
        );
        assert_eq!(req.headers()["x-amz-date"], "20240501T120000Z");
        assert_eq!(
            req.headers()["host"],
            "bedrock-runtime.us-east-1.amazonaws.com"
        );
        if let Some(t) = token {
            assert_eq!(req.headers()["x-amz-security-token"], t);
        }
    }
}

fn signed_example(credentials: &Credentials, base: &str) -> (http::request::Parts, Bytes) {
    let req = bedrock::http_request(
        base,
        "eu-west-3",
        credentials,
        "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-sonnet-4",
        true,
        Bytes::from_static(EXAMPLE_BODY),
        SystemTime::now(),
    )
    .expect("request");
    let (parts, _) = req.into_parts();
    (parts, Bytes::from_static(EXAMPLE_BODY))
}

#[test]
fn verify_accepts_the_signer_and_refuses_tampering() {
    let credentials = Credentials::new("AKIAMODELGATE", "s3cr3t", Some("session".to_owned()));
    let (parts, body) = signed_example(&credentials, "http://127.0.0.1:8899");
    assert_eq!(parts.headers["host"], "127.0.0.1:8899");
    assert_eq!(
        parts.headers["accept"],
        "application/vnd.amazon.eventstream"
    );
    assert!(parts.uri.path().ends_with("/converse-stream"));
    let ok = |p: &http::request::Parts, b: &[u8], c: &Credentials| {
        sigv4::verify(p, b, c, "eu-west-3", bedrock::SERVICE, Settings::default())
    };
    ok(&parts, &body, &credentials).expect("verifies");

    // Headers added after signing (tracing, the deployment's own) are unsigned, not wrong.
    let mut extra = parts.clone();
    extra
        .headers
        .insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
    extra
        .headers
        .insert("x-custom", HeaderValue::from_static("value"));
    ok(&extra, &body, &credentials).expect("unsigned extras are fine");

    assert!(matches!(
        ok(&parts, b"{}", &credentials),
        Err(VerifyError::Mismatch(_))
    ));
    let mut changed = parts.clone();
    changed
        .headers
        .insert("content-type", HeaderValue::from_static("text/plain"));
    assert!(matches!(
        ok(&changed, &body, &credentials),
        Err(VerifyError::Mismatch(_))
    ));
    let mut moved = parts.clone();
    moved.uri = "http://127.0.0.1:8899/model/other/converse-stream"
        .parse()
        .expect("uri");
    assert!(matches!(
        ok(&moved, &body, &credentials),
        Err(VerifyError::Mismatch(_))
    ));
    let other_secret = Credentials::new("AKIAMODELGATE", "other", Some("session".to_owned()));
    assert!(matches!(
        ok(&parts, &body, &other_secret),
        Err(VerifyError::Mismatch(_))
    ));
    let other_key = Credentials::new("AKIAOTHER", "s3cr3t", Some("session".to_owned()));
    assert!(matches!(
        ok(&parts, &body, &other_key),
        Err(VerifyError::WrongKey(_))
    ));
    let other_token = Credentials::new("AKIAMODELGATE", "s3cr3t", Some("other".to_owned()));
    assert_eq!(
        ok(&parts, &body, &other_token),
        Err(VerifyError::WrongToken)
    );
    assert!(matches!(
        sigv4::verify(
            &parts,
            &body,
            &credentials,
            "us-east-1",
            "bedrock",
            Settings::default()
        ),
        Err(VerifyError::WrongScope(_))
    ));
    let mut unsigned = parts.clone();
    unsigned.headers.remove("authorization");
    assert_eq!(
        ok(&unsigned, &body, &credentials),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn credentials_never_show_secrets() {
    let c = Credentials::new(
        "AKIAMODELGATE",
        "wJalrXUtnFEMI",
        Some("IQoJb3JpZ2lu".to_owned()),
    );
    let shown = format!("{c:?} {:?}", bedrock::Credentials::clone(&c));
    assert!(shown.contains("AKIAMODELGATE"));
    assert!(!shown.contains("wJalrXUtnFEMI"));
    assert!(!shown.contains("IQoJb3JpZ2lu"));
}

#[test]
fn urls() {
    assert_eq!(
        url(
            &default_base("eu-central-1"),
            "eu.amazon.nova-pro-v1:0",
            true
        ),
        "https://bedrock-runtime.eu-central-1.amazonaws.com/model/eu.amazon.nova-pro-v1%3A0/converse-stream"
    );
    assert_eq!(
        url(
            "http://127.0.0.1:1",
            "arn:aws:bedrock:us-east-1:1:inference-profile/x",
            false
        ),
        "http://127.0.0.1:1/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/converse"
    );
}

// ---------------------------------------------------------------------------------------
// Event stream.

fn transcript(name: &str) -> Vec<Message> {
    read_json(name)
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let payload = serde_json::to_vec(&e[1]).expect("json");
            Message::event(e[0].as_str().expect("event type"), payload)
        })
        .collect()
}

fn encode_all(messages: &[Message]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|m| eventstream::encode(m).expect("encode").to_vec())
        .collect()
}

#[test]
fn eventstream_matches_an_independent_encoding() {
    let bytes = read("stream_tools.eventstream");
    let messages = transcript("stream_tools.events.json");
    assert_eq!(encode_all(&messages), bytes, "the encoder matches Python's");
    let mut d = Decoder::new();
    assert_eq!(d.push(&bytes).expect("decode"), messages);
    d.finish().expect("nothing left over");
    assert_eq!(messages[0].header_str(":event-type"), Some("messageStart"));
    assert_eq!(messages[0].header_str(":message-type"), Some("event"));
}

#[test]
fn eventstream_every_two_chunk_split() {
    let bytes = read("stream_tools.eventstream");
    let expected = transcript("stream_tools.events.json");
    for cut in 0..=bytes.len() {
        let mut d = Decoder::new();
        let mut got = d.push(&bytes[..cut]).expect("first part");
        got.extend(d.push(&bytes[cut..]).expect("second part"));
        d.finish().expect("complete");
        assert_eq!(got, expected, "cut at {cut}");
    }
}

#[test]
fn eventstream_crc_failures() {
    let bytes = read("stream_tools.eventstream");
    // A flipped bit in the prelude (the total length) fails the prelude CRC.
    let mut bad = bytes.clone();
    bad[2] ^= 0x01;
    let mut d = Decoder::new();
    assert!(matches!(
        d.push(&bad),
        Err(EventStreamError::PreludeCrc { .. })
    ));
    // The decoder stays failed: framing cannot be recovered.
    assert_eq!(d.push(&bytes), Err(EventStreamError::Failed));
    assert_eq!(d.finish(), Err(EventStreamError::Failed));
    // A flipped bit in the payload fails the message CRC.
    let mut bad = bytes.clone();
    bad[100] ^= 0x20;
    let mut d = Decoder::new();
    assert!(matches!(
        d.push(&bad),
        Err(EventStreamError::MessageCrc { .. })
    ));
    // So does one in the message CRC itself.
    let first_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let mut bad = bytes.clone();
    bad[first_len - 1] ^= 0xff;
    assert!(matches!(
        Decoder::new().push(&bad),
        Err(EventStreamError::MessageCrc { .. })
    ));
}

#[test]
fn eventstream_size_limits_and_truncation() {
    let bytes = read("stream_tools.eventstream");
    // A limit below the first message's size refuses it from its prelude alone.
    let mut d = Decoder::with_max_message_len(64);
    assert!(matches!(
        d.push(&bytes[..12]),
        Err(EventStreamError::TooLarge { max: 64, .. })
    ));
    // A valid prelude announcing 4 GiB is refused before anything is buffered.
    let mut prelude = Vec::new();
    prelude.extend_from_slice(&u32::MAX.to_be_bytes());
    prelude.extend_from_slice(&0u32.to_be_bytes());
    let sum = crc(&prelude);
    prelude.extend_from_slice(&sum.to_be_bytes());
    assert!(matches!(
        Decoder::new().push(&prelude),
        Err(EventStreamError::TooLarge { .. })
    ));
    // Lengths that do not fit together.
    let mut prelude = Vec::new();
    prelude.extend_from_slice(&20u32.to_be_bytes());
    prelude.extend_from_slice(&10u32.to_be_bytes());
    let sum = crc(&prelude);
    prelude.extend_from_slice(&sum.to_be_bytes());
    assert!(matches!(
        Decoder::new().push(&prelude),
        Err(EventStreamError::BadLengths { .. })
    ));
    // A stream cut inside a message.
    let mut d = Decoder::new();
    d.push(&bytes[..bytes.len() - 3]).expect("partial");
    assert!(matches!(d.finish(), Err(EventStreamError::Truncated(_))));
    // Encoding refuses what cannot be framed.
    let long_name = Message {
        headers: vec![Header::string(&"n".repeat(256), "v")],
        payload: Bytes::new(),
    };
    assert!(matches!(
        eventstream::encode(&long_name),
        Err(EventStreamError::BadHeader(_))
    ));
}

/// CRC-32 (IEEE), bit by bit: independent of the implementation under test.
fn crc(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn header_value() -> impl Strategy<Value = EsValue> {
    prop_oneof![
        any::<bool>().prop_map(EsValue::Bool),
        any::<i8>().prop_map(EsValue::Byte),
        any::<i16>().prop_map(EsValue::Short),
        any::<i32>().prop_map(EsValue::Int),
        any::<i64>().prop_map(EsValue::Long),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| EsValue::Bytes(v.into())),
        ".{0,40}".prop_map(EsValue::String),
        any::<i64>().prop_map(EsValue::Timestamp),
        any::<[u8; 16]>().prop_map(EsValue::Uuid),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        proptest::collection::vec(("[a-z:\\-]{1,20}", header_value()), 0..6),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(headers, payload)| Message {
            headers: headers
                .into_iter()
                .map(|(name, value)| Header { name, value })
                .collect(),
            payload: payload.into(),
        })
}

proptest! {
    #[test]
    fn eventstream_round_trip(
        messages in proptest::collection::vec(message(), 1..5),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let bytes = encode_all(&messages);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            got.extend(d.push(&bytes[start..p]).expect("decode"));
            start = p;
        }
        d.finish().expect("complete");
        prop_assert_eq!(got, messages);
    }
}

// ---------------------------------------------------------------------------------------
// Converse translations.

#[test]
fn chat_request_golden() {
    let input = read("chat_request.openai.json");
    let t = translate_bytes(&input, &ChatOptions::default()).expect("translate");
    assert!(t.dropped.is_empty());
    golden("chat_request.converse.json", &t.body);
}

#[test]
fn unsupported_params_are_refused_or_dropped() {
    let input = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "n": 2,
        "seed": 1,
        "response_format": {"type": "json_object"},
        "presence_penalty": 0.5,
    });
    let err = translate(&input, &ChatOptions::default()).expect_err("refused");
    assert!(
        matches!(err, TranslateError::Unsupported { ref param, .. } if param == "presence_penalty")
    );
    let options = ChatOptions {
        drop_params: true,
        default_max_tokens: Some(4096),
    };
    let t = translate(&input, &options).expect("dropped");
    assert_eq!(
        t.dropped,
        ["presence_penalty", "seed", "n", "response_format"]
    );
    assert_eq!(
        t.body,
        json!({
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 4096}
        })
    );
}

#[test]
fn tool_choice_none() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    // Without tool history, "none" is expressed by offering no tools.
    let input = json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": "none"});
    let t = translate(&input, &ChatOptions::default()).expect("translate");
    assert!(t.body.get("toolConfig").is_none());
    // With tool calls in the history Converse needs the tools, and has no "none".
    let input = json!({
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "done"}
        ],
        "tools": tools,
        "tool_choice": "none"
    });
    assert!(matches!(
        translate(&input, &ChatOptions::default()),
        Err(TranslateError::Unsupported { ref param, .. }) if param == "tool_choice"
    ));
    let dropped = translate(
        &input,
        &ChatOptions {
            drop_params: true,
            ..ChatOptions::default()
        },
    )
    .expect("dropped");
    assert_eq!(dropped.dropped, ["tool_choice"]);
    let body = dropped.body;
    assert_eq!(body["toolConfig"]["tools"][0]["toolSpec"]["name"], "f");
    assert!(body["toolConfig"].get("toolChoice").is_none());
}

#[test]
fn invalid_requests_name_the_parameter() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}),
            "max_tokens",
        ),
        (json!({"messages": "hi"}), "messages"),
    ];
    for (input, param) in cases {
        match translate(&input, &ChatOptions::default()) {
            Err(TranslateError::InvalidParam { param: p, message }) => {
                assert_eq!(p, param, "{message}");
            }
            other => panic!("{input}: expected an invalid `{param}`, got {other:?}"),
        }
    }
}

#[test]
fn chat_response_golden() {
    for (input, expected) in [
        ("chat_response.converse.json", "chat_response.openai.json"),
        ("tool_response.converse.json", "tool_response.openai.json"),
        (
            "guardrail_response.converse.json",
            "guardrail_response.openai.json",
        ),
    ] {
        let out = chat_response(&read(input), "claude-on-bedrock").expect(input);
        golden(expected, &out);
    }
    assert!(matches!(
        chat_response(b"{}", "m"),
        Err(TranslateError::UpstreamBody { .. })
    ));
}

/// The chunks of the server-sent events written to `out` (each `data: <json>\n\n`).
fn events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).expect("utf8");
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|e| {
            let data = e.strip_prefix("data: ").expect("a data line");
            assert!(!data.contains('\n'), "one line per event: {e}");
            serde_json::from_str(data).expect("a JSON chunk")
        })
        .collect()
}

fn decode_stream(pieces: &[&[u8]], include_usage: bool) -> Result<Vec<Value>, StreamError> {
    let mut d = StreamDecoder::new("claude-on-bedrock", include_usage);
    let mut out = BytesMut::new();
    for p in pieces {
        d.feed(p, &mut out)?;
    }
    d.finish(&mut out)?;
    let mut chunks = events(&out);
    chunks.iter_mut().for_each(normalize);
    Ok(chunks)
}

#[test]
fn stream_golden_and_every_split() {
    let tools = read("stream_tools.eventstream");
    let text = encode_all(&transcript("stream_text.events.json"));
    for (bytes, expected) in [
        (tools, "stream_tools.chunks.json"),
        (text, "stream_text.chunks.json"),
    ] {
        let whole = decode_stream(&[&bytes], true).expect(expected);
        golden(expected, &Value::Array(whole.clone()));
        for cut in 0..=bytes.len() {
            let got = decode_stream(&[&bytes[..cut], &bytes[cut..]], true)
                .unwrap_or_else(|e| panic!("{expected} cut at {cut}: {e}"));
            assert_eq!(got, whole, "{expected} cut at {cut}");
        }
        let without_usage = decode_stream(&[&bytes], false).expect("decode");
        assert_eq!(without_usage.len(), whole.len() - 1);
        assert!(without_usage.iter().all(|c| c.get("usage").is_none()));
    }
}

#[test]
fn stream_exceptions_are_errors() {
    let cases = read_json("exceptions.json");
    for case in cases.as_array().expect("cases") {
        let kind = case["type"].as_str().expect("type");
        let mut messages = transcript("stream_text.events.json");
        messages.truncate(3);
        messages.push(Message::exception(
            kind,
            serde_json::to_vec(&case["payload"]).expect("json"),
        ));
        let bytes = encode_all(&messages);
        let mut d = StreamDecoder::new("m", true);
        let mut out = BytesMut::new();
        let err = d.feed(&bytes, &mut out).expect_err(kind);
        let StreamError::Upstream(e) = &err else {
            panic!("{kind}: expected the upstream error, got {err:?}");
        };
        let expect = &case["expect"];
        assert_eq!(u64::from(e.status.as_u16()), expect["status"], "{kind}");
        assert_eq!(e.kind, expect["type"], "{kind}");
        assert_eq!(
            e.code.map_or(Value::Null, Value::from),
            expect["code"],
            "{kind}"
        );
        assert_eq!(err.to_api_error(), *e);
        assert_eq!(d.finish(&mut out), Err(StreamError::Ended));
    }
}

#[test]
fn a_stream_cut_before_message_stop_is_an_error() {
    let mut messages = transcript("stream_text.events.json");
    messages.truncate(5);
    let bytes = encode_all(&messages);
    assert_eq!(decode_stream(&[&bytes], true), Err(StreamError::Truncated));
    // Cut inside a frame: the framing reports it.
    let whole = encode_all(&transcript("stream_text.events.json"));
    assert!(matches!(
        decode_stream(&[&whole[..whole.len() - 1]], true),
        Err(StreamError::Framing(EventStreamError::Truncated(_)))
    ));
    // A tool input delta for a block that never started.
    let bad = encode_all(&[
        Message::event("messageStart", &br#"{"role":"assistant"}"#[..]),
        Message::event(
            "contentBlockDelta",
            &br#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"{}"}}}"#[..],
        ),
    ]);
    assert!(matches!(
        decode_stream(&[&bad], false),
        Err(StreamError::Event { .. })
    ));
    assert_eq!(
        StreamError::Truncated.to_api_error().status,
        StatusCode::BAD_GATEWAY
    );
}

#[test]
fn error_mapping() {
    let cases = read_json("errors.json");
    for case in cases.as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let status =
            StatusCode::from_u16(case["status"].as_u64().expect("status") as u16).expect("status");
        let body = match &case["body"] {
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec(other).expect("json"),
        };
        let mut headers = http::HeaderMap::new();
        if let Some(t) = case["error_type"].as_str() {
            headers.insert(
                "x-amzn-errortype",
                HeaderValue::from_str(t).expect("header"),
            );
        }
        let e = converse::error(status, &body, converse::error_type(&headers), None);
        // The translator the proxy calls reads the same header from the answer's headers.
        let through = bedrock::OPENAI_TO_BEDROCK.error(status, &headers, &body, None);
        assert_eq!(
            (through.status, through.kind, through.code),
            (e.status, e.kind, e.code),
            "{name}"
        );
        let expect = &case["expect"];
        assert_eq!(u64::from(e.status.as_u16()), expect["status"], "{name}");
        assert_eq!(e.kind, expect["type"], "{name}");
        assert_eq!(
            e.code.map_or(Value::Null, Value::from),
            expect["code"],
            "{name}"
        );
        let retryable = matches!(e.status.as_u16(), 408 | 409 | 429) || e.status.is_server_error();
        assert_eq!(Value::from(retryable), expect["retryable"], "{name}");
        assert!(!e.message.is_empty(), "{name}");
    }
    let e = converse::error(
        StatusCode::TOO_MANY_REQUESTS,
        br#"{"message":"slow down"}"#,
        Some("ThrottlingException"),
        Some(Duration::from_secs(2)),
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    assert_eq!(e.message, "slow down");
    assert_eq!(converse::error_type(&http::HeaderMap::new()), None);
}

#[test]
fn type_errors_name_the_parameter_by_its_path() {
    let cases: [(&[u8], &str); 4] = [
        (br#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#, "temperature"),
        (br#"{"messages": [{"role": "user", "content": {"text": "hi"}}]}"#, "messages[0].content"),
        (
            br#"{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", 2]}"#,
            "stop[1]",
        ),
        (
            br#"{"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5000000000}"#,
            "max_completion_tokens",
        ),
    ];
    for (body, param) in cases {
        match translate_bytes(body, &ChatOptions::default()) {
            Err(TranslateError::InvalidParam { param: p, message }) => {
                assert_eq!(p, param, "{message}");
            }
            other => panic!(
                "{}: expected an invalid `{param}`, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }
    assert!(matches!(
        translate_bytes(b"[{\"messages\": []}]", &ChatOptions::default()),
        Err(TranslateError::InvalidBody(_))
    ));
}

#[test]
fn tool_inputs_results_and_schemas_pass_through_as_written() {
    let body = br#"{"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": "data:image/jpeg;base64,/9j/"}]},
        {"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"z\": 1.50}"}},
            {"id": "t2", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "t1", "content": " {\"ok\": true,  \"n\": 2.0} "},
        {"role": "tool", "tool_call_id": "t2", "content": "not json {"}
    ],
    "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"z": {"type": "number"}},  "required": ["z"]}}},
        {"function": {"name": "g"}}
    ]}"#;
    let parsed = parse_chat(body).expect("parse");
    let t = chat_request(&parsed, &ChatOptions::default()).expect("translate");
    let text = serde_json::to_string(&t.body).expect("json");
    for expected in [
        r#"{"image":{"format":"jpeg","source":{"bytes":"/9j/"}}}"#,
        r#"{"toolUse":{"toolUseId":"t1","name":"f","input":{"z": 1.50}}}"#,
        r#"{"toolUse":{"toolUseId":"t2","name":"f","input":{}}}"#,
        r#"{"toolResult":{"toolUseId":"t1","content":[{"json":{"ok": true,  "n": 2.0}}]}}"#,
        r#"{"toolResult":{"toolUseId":"t2","content":[{"text":"not json {"}]}}"#,
        r#""inputSchema":{"json":{"type": "object", "properties": {"z": {"type": "number"}},  "required": ["z"]}}"#,
        r#"{"toolSpec":{"name":"g","inputSchema":{"json":{"type":"object","properties":{}}}}}"#,
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }

    let answer = br#"{"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "u1", "name": "f", "input": {"z": 1.50,  "w": [ ]}}}
    ]}}, "stopReason": "tool_use"}"#;
    let out = chat_response(answer, "m").expect("answer");
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"z": 1.50,  "w": [ ]}"#
    );
    assert_eq!(out["created"], 1_700_000_000);
    assert!(out.get("usage").is_none());
}

#[test]
fn every_unsupported_parameter_is_seen() {
    let input = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "logit_bias": {"1": 1}, "logprobs": true, "top_logprobs": 2, "presence_penalty": 0,
        "frequency_penalty": 0, "seed": 3, "top_k": 5, "audio": {}, "modalities": ["text"],
        "prediction": {}, "service_tier": "auto", "reasoning_effort": "low",
        "web_search_options": {}, "functions": [], "function_call": "none",
        "parallel_tool_calls": false,
    });
    let options = ChatOptions {
        drop_params: true,
        ..ChatOptions::default()
    };
    let t = translate(&input, &options).expect("dropped");
    assert_eq!(
        t.dropped,
        [
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "seed",
            "top_k",
            "audio",
            "modalities",
            "prediction",
            "service_tier",
            "reasoning_effort",
            "web_search_options",
            "functions",
            "function_call",
            "parallel_tool_calls",
        ]
    );
}
