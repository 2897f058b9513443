//! Gemini translations against golden fixtures (`tests/fixtures/gemini/`), written from
//! the Gemini API's documented request, answer, stream and error formats.
//!
//! Each golden file holds the expected translation. To regenerate after an intended
//! change, run with `UPDATE_GOLDEN=1` and review the diff.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use http::StatusCode;
use modelgate_dataplane::providers::gemini::shared::{ChatOptions, TranslateError, parse_chat};
use modelgate_dataplane::providers::gemini::stream::{StreamDecoder, StreamError};
use modelgate_dataplane::providers::gemini::{
    self, EmbedRequest, EmbeddingEncoding, Operation, chat_request,
};
use serde_json::{Value, json};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gemini")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_json(name: &str) -> Value {
    serde_json::from_slice(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Replaces what differs between runs: `created`, and the random part of generated ids.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "created" {
                    *v = json!(0);
                } else if k == "id" {
                    if let Some(s) = v.as_str() {
                        *v = Value::String(normalize_id(s));
                    }
                } else {
                    normalize(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn normalize_id(id: &str) -> String {
    for prefix in ["call_", "chatcmpl-"] {
        if let Some(rest) = id.strip_prefix(prefix) {
            let random: String = rest.chars().take(24).collect();
            if random.len() == 24 && random.chars().all(|c| c.is_ascii_alphanumeric()) {
                return format!("{prefix}<random>{}", &rest[24..]);
            }
        }
    }
    id.to_owned()
}

/// Compares with (or, with `UPDATE_GOLDEN=1`, writes) a golden file.
fn golden(name: &str, actual: &Value) {
    let mut actual = actual.clone();
    normalize(&mut actual);
    let path = fixture_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&actual).expect("json") + "\n";
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let expected = read_json(name);
    assert_eq!(
        actual,
        expected,
        "{name} differs:\n{}",
        serde_json::to_string_pretty(&actual).unwrap_or_default()
    );
}

fn to_value(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).expect("serialize")
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
        body: to_value(&t.body),
        dropped: t.dropped,
    })
}

fn translate(input: &Value, options: &ChatOptions) -> Result<Out, TranslateError> {
    translate_bytes(&serde_json::to_vec(input).expect("json"), options)
}

/// An answer translated, read back as JSON.
fn chat_response(body: &[u8], model: &str) -> Result<Value, TranslateError> {
    let bytes = gemini::chat_response(body, model, 1_700_000_000)?;
    Ok(serde_json::from_slice(&bytes).expect("the answer is JSON"))
}

#[test]
fn chat_request_golden() {
    let input = read("chat_request.openai.json");
    let t = translate_bytes(&input, &ChatOptions::default()).expect("translate");
    assert!(t.dropped.is_empty());
    golden("chat_request.gemini.json", &t.body);

    let input = read("json_schema_request.openai.json");
    let t = translate_bytes(&input, &ChatOptions::default()).expect("translate");
    golden("json_schema_request.gemini.json", &t.body);
}

#[test]
fn default_max_tokens_applies_when_the_request_sets_none() {
    let input = json!({"messages": [{"role": "user", "content": "hi"}]});
    let options = ChatOptions {
        default_max_tokens: Some(1024),
        ..ChatOptions::default()
    };
    let t = translate(&input, &options).expect("translate");
    assert_eq!(
        t.body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 1024}
        })
    );
}

#[test]
fn unsupported_params_are_refused_or_dropped() {
    let input = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "logit_bias": {"50256": -100},
        "logprobs": true,
        "parallel_tool_calls": false,
    });
    let err = translate(&input, &ChatOptions::default()).expect_err("refused");
    assert!(matches!(&err, TranslateError::Unsupported { param, .. } if param == "logit_bias"));
    let api: modelgate_dataplane::errors::ApiError = err.into();
    assert_eq!(api.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.param.as_deref(), Some("logit_bias"));
    assert!(api.message.contains("dropParams"), "{}", api.message);

    let options = ChatOptions {
        drop_params: true,
        ..ChatOptions::default()
    };
    let t = translate(&input, &options).expect("dropped");
    assert_eq!(t.dropped, ["logit_bias", "logprobs", "parallel_tool_calls"]);
    assert_eq!(
        t.body,
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    );
}

#[test]
fn invalid_requests_name_the_parameter() {
    let cases = [
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "system", "content": "only a system prompt"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/picture"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web_search"}]}),
            "tools[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "hi"}]}),
            "messages[0].role",
        ),
    ];
    for (input, param) in cases {
        match translate(&input, &ChatOptions::default()) {
            Err(TranslateError::InvalidParam { param: p, message }) => {
                assert_eq!(p, param, "{message}");
            }
            other => panic!("{input}: expected an invalid `{param}`, got {other:?}"),
        }
    }
    assert!(matches!(
        translate(&json!([1, 2]), &ChatOptions::default()),
        Err(TranslateError::InvalidBody(_))
    ));
}

#[test]
fn the_key_goes_in_a_header_never_in_the_url() {
    let req = gemini::http_request(
        gemini::DEFAULT_BASE,
        Some("AIza-secret"),
        "models/gemini-2.5-flash",
        Operation::StreamGenerate,
        bytes::Bytes::from_static(b"{}"),
    )
    .expect("request");
    assert_eq!(
        req.uri(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(!req.uri().to_string().contains("secret"));
    let key = &req.headers()["x-goog-api-key"];
    assert_eq!(key, "AIza-secret");
    assert!(key.is_sensitive());
    assert_eq!(
        gemini::url("http://127.0.0.1:9", "tuned/model x", Operation::BatchEmbed),
        "http://127.0.0.1:9/models/tuned%2Fmodel%20x:batchEmbedContents"
    );
}

#[test]
fn chat_response_golden() {
    for (input, expected) in [
        ("chat_response.gemini.json", "chat_response.openai.json"),
        ("tool_response.gemini.json", "tool_response.openai.json"),
        (
            "blocked_response.gemini.json",
            "blocked_response.openai.json",
        ),
        ("safety_response.gemini.json", "safety_response.openai.json"),
    ] {
        let out = chat_response(&read(input), "gemini-flash").expect(input);
        golden(expected, &out);
    }
    assert!(matches!(
        chat_response(b"<html>", "m"),
        Err(TranslateError::UpstreamBody { .. })
    ));
}

#[test]
fn thought_signatures_survive_a_round_trip_through_the_client() {
    let answer = chat_response(&read("tool_response.gemini.json"), "m").expect("answer");
    let message = &answer["choices"][0]["message"];
    let next = json!({
        "messages": [
            {"role": "user", "content": "weather?"},
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18"},
            {"role": "tool", "tool_call_id": message["tool_calls"][1]["id"], "content": "21"},
        ]
    });
    let t = translate(&next, &ChatOptions::default()).expect("translate");
    let body = &t.body;
    assert_eq!(
        body["contents"][1]["parts"][0]["thoughtSignature"],
        "CiQBVKhc7sig"
    );
    assert_eq!(
        body["contents"][1]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    assert!(
        body["contents"][1]["parts"][1]
            .get("thoughtSignature")
            .is_none()
    );
    assert_eq!(
        body["contents"][2]["parts"],
        json!([
            {"functionResponse": {"name": "get_weather", "response": {"content": "18"}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": "21"}}}
        ])
    );
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

/// Decodes a whole stream fed in the given pieces.
fn decode(pieces: &[&[u8]], include_usage: bool) -> Result<Vec<Value>, StreamError> {
    let mut d = StreamDecoder::new("gemini-flash", include_usage);
    let mut out = BytesMut::new();
    for p in pieces {
        d.feed(p, &mut out)?;
    }
    d.finish(&mut out)?;
    let mut chunks = events(&out);
    for chunk in &mut chunks {
        normalize(chunk);
    }
    Ok(chunks)
}

#[test]
fn stream_golden_and_every_split() {
    for (input, expected) in [
        ("stream_text.sse", "stream_text.chunks.json"),
        ("stream_tools.sse", "stream_tools.chunks.json"),
    ] {
        let bytes = read(input);
        let whole = decode(&[&bytes], true).expect(input);
        golden(expected, &Value::Array(whole.clone()));
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let got = decode(&[a, b], true).unwrap_or_else(|e| panic!("{input} cut at {cut}: {e}"));
            assert_eq!(got, whole, "{input} cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode(&bytewise, true).expect("bytewise"), whole);
    }
}

#[test]
fn usage_chunk_only_when_asked() {
    let bytes = read("stream_text.sse");
    let chunks = decode(&[&bytes], false).expect("decode");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

#[test]
fn stream_error_event_is_the_upstream_error() {
    let bytes = read("stream_error.sse");
    let mut d = StreamDecoder::new("m", false);
    let mut out = BytesMut::new();
    let err = d.feed(&bytes, &mut out).expect_err("error event");
    let StreamError::Upstream(api) = &err else {
        panic!("expected the upstream error, got {err:?}");
    };
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(api.message.contains("overloaded"));
    assert_eq!(err.to_api_error(), *api);
    // The decoder stays failed.
    assert_eq!(d.feed(b"data: {}\n\n", &mut out), Err(StreamError::Ended));
}

#[test]
fn a_stream_cut_before_its_finish_reason_is_an_error() {
    let bytes = read("stream_text.sse");
    let text = String::from_utf8(bytes).expect("utf8");
    let first_event_end = text.find("\r\n\r\n").expect("event") + 4;
    let mut d = StreamDecoder::new("m", true);
    let mut out = BytesMut::new();
    d.feed(&text.as_bytes()[..first_event_end], &mut out)
        .expect("first event");
    assert_eq!(events(&out).len(), 2, "role chunk and the first delta");
    assert_eq!(d.finish(&mut out), Err(StreamError::Truncated));
    assert_eq!(
        StreamError::Truncated.to_api_error().status,
        StatusCode::BAD_GATEWAY
    );
    // No event at all is truncated too.
    assert_eq!(decode(&[b""], false), Err(StreamError::Truncated));
}

#[test]
fn oversized_events_are_refused_without_buffering_them() {
    let mut d = StreamDecoder::with_max_event_len("m", false, 64);
    let err = d
        .feed(&[b'x'; 65], &mut BytesMut::new())
        .expect_err("too long");
    assert_eq!(err, StreamError::EventTooLong { max: 64 });
    // An event of many short data lines counts as a whole.
    let mut d = StreamDecoder::with_max_event_len("m", false, 64);
    let lines = b"data: 0123456789\n".repeat(8);
    assert!(matches!(
        d.feed(&lines, &mut BytesMut::new()),
        Err(StreamError::EventTooLong { max: 64 })
    ));
}

#[test]
fn comments_crlf_and_multiline_data() {
    let body = concat!(
        ": a comment\r\n",
        "event: ignored\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]},\r\n",
        "data:  \"finishReason\": \"STOP\"}]}\r\n",
        "\r\n",
        // No blank line after the last event: the end of the body ends it.
        "data: {\"usageMetadata\": {\"promptTokenCount\": 2, \"candidatesTokenCount\": 1}}",
    );
    let chunks = decode(&[body.as_bytes()], true).expect("decode");
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[1], &json!({"content": "a"}));
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[3]["usage"]["total_tokens"], 3);
    assert_eq!(chunks.len(), 4);
}

#[test]
fn invalid_event_json_is_an_error() {
    let err = decode(&[b"data: {not json}\n\n"], false).expect_err("invalid");
    assert!(matches!(err, StreamError::Json(_)));
}

#[test]
fn embeddings() {
    let cases = read_json("embeddings.json");
    for (name, method, n) in [
        ("one", Operation::Embed, 1usize),
        ("batch", Operation::BatchEmbed, 2),
    ] {
        let case = &cases[name];
        let req =
            gemini::embeddings_request(&case["request"], "gemini-embedding-001").expect("request");
        assert_eq!(req.method(), method);
        let body: Value = serde_json::from_slice(&req.to_json().expect("json")).expect("json");
        assert_eq!(body, case["gemini_request"], "{name}");
        let answer = serde_json::to_vec(&case["gemini_response"]).expect("json");
        let out = gemini::embeddings_response(&answer, method, "embed", EmbeddingEncoding::Float)
            .expect("answer");
        assert_eq!(out["object"], "list");
        assert_eq!(out["model"], "embed");
        assert_eq!(out["data"].as_array().map(Vec::len), Some(n));
        assert_eq!(out["usage"], json!({"prompt_tokens": 0, "total_tokens": 0}));
        for (i, d) in out["data"].as_array().into_iter().flatten().enumerate() {
            assert_eq!(d["index"], i);
            assert_eq!(d["object"], "embedding");
        }
    }
    // Base64: little-endian f32s, as the openai SDK decodes them.
    let answer = br#"{"embedding": {"values": [0.25, -0.5, 1.0]}}"#;
    let out =
        gemini::embeddings_response(answer, Operation::Embed, "embed", EmbeddingEncoding::Base64)
            .expect("answer");
    let b64 = out["data"][0]["embedding"].as_str().expect("base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [0.25, -0.5, 1.0]);
    assert_eq!(
        EmbeddingEncoding::of(&json!({"encoding_format": "base64"})),
        Ok(EmbeddingEncoding::Base64)
    );

    let tokens = json!({"input": [[1, 2, 3]]});
    assert!(matches!(
        gemini::embeddings_request(&tokens, "m"),
        Err(TranslateError::InvalidParam { param, .. }) if param == "input"
    ));
    assert!(matches!(
        gemini::embeddings_request(&json!({"input": "x", "encoding_format": "int8"}), "m"),
        Err(TranslateError::InvalidParam { param, .. }) if param == "encoding_format"
    ));
    assert!(matches!(
        gemini::embeddings_request(&json!({"input": "x"}), "m"),
        Ok(EmbedRequest::One(_))
    ));
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
        let e = gemini::error(status, &body, None);
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
        assert_eq!(
            e.is_context_window(),
            expect["code"] == "context_length_exceeded",
            "{name}"
        );
        if let Some(ms) = expect.get("retry_after_ms").and_then(Value::as_u64) {
            assert_eq!(e.retry_after, Some(Duration::from_millis(ms)), "{name}");
        }
        assert!(!e.message.is_empty(), "{name}");
    }
    // A Retry-After header wins over the body's RetryInfo.
    let body = br#"{"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}"#;
    let e = gemini::error(StatusCode::TOO_MANY_REQUESTS, body, None);
    assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
    let e = gemini::error(
        StatusCode::TOO_MANY_REQUESTS,
        body,
        Some(Duration::from_secs(3)),
    );
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
}

#[test]
fn image_url_may_be_the_url_itself() {
    let input = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.webp"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    ]}]});
    let t = translate(&input, &ChatOptions::default()).expect("translate");
    assert_eq!(
        t.body["contents"][0]["parts"],
        json!([
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a.webp"}},
            {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}
        ])
    );
}

#[test]
fn type_errors_name_the_parameter_by_its_path() {
    let cases: [(&[u8], &str); 9] = [
        (br#"{"messages": [{"role": "user", "content": "hi"}], "top_p": "x"}"#, "top_p"),
        (br#"{"messages": [{"role": "user", "content": 5}]}"#, "messages[0].content"),
        (
            br#"{"messages": [{"role": "user", "content": "a"}, {"role": 1, "content": "b"}]}"#,
            "messages[1].role",
        ),
        (
            br#"{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}"#,
            "messages[0].content[0].text",
        ),
        (
            br#"{"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": 7}}]}]}"#,
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            br#"{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": 1}}]}"#,
            "tools[0].function.name",
        ),
        (br#"{"messages": [{"role": "user", "content": "hi"}], "seed": 1.5}"#, "seed"),
        (br#"{"messages": [{"role": "user", "content": "hi"}], "n": 4294967296}"#, "n"),
        (br#"{"model": "m"}"#, "messages"),
    ];
    for (body, param) in cases {
        match translate_bytes(body, &ChatOptions::default()) {
            Err(TranslateError::InvalidParam { param: p, message }) => {
                assert_eq!(p, param, "{message}");
                let api: modelgate_dataplane::errors::ApiError =
                    TranslateError::InvalidParam { param: p, message }.into();
                assert_eq!(api.status, StatusCode::BAD_REQUEST);
                assert_eq!(api.param.as_deref(), Some(param));
            }
            other => panic!(
                "{}: expected an invalid `{param}`, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }
    for body in [
        &b"[1, 2]"[..],
        b"  \"text\"",
        b"{\"messages\": [",
        b"{\"messages\": []} trailing",
        b"",
    ] {
        assert!(
            matches!(
                translate_bytes(body, &ChatOptions::default()),
                Err(TranslateError::InvalidBody(_))
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn arguments_and_tool_results_pass_through_as_written() {
    // The client's argument text and the tool's JSON result go out byte for byte.
    let body = br#"{"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": " {\"z\": 1.50,  \"a\": [1]} "}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": {"k": "v"}}},
            {"id": "c3", "type": "function", "function": {"name": "h", "arguments": null}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"t\": 2.50}"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "{\"u\":"}, {"type": "text", "text": " 1}"}]},
        {"role": "tool", "tool_call_id": "c3", "content": "plain"},
        {"role": "function", "name": "legacy", "content": "old style"}
    ]}"#;
    let parsed = parse_chat(body).expect("parse");
    let t = chat_request(&parsed, &ChatOptions::default()).expect("translate");
    let text = serde_json::to_string(&t.body).expect("json");
    assert!(
        text.contains(r#""functionCall":{"name":"f","args":{"z": 1.50,  "a": [1]}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""functionCall":{"name":"g","args":{"k":"v"}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""functionCall":{"name":"h","args":{}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""functionResponse":{"name":"f","response":{"t": 2.50}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""functionResponse":{"name":"g","response":{"u": 1}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""functionResponse":{"name":"h","response":{"content":"plain"}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#""functionResponse":{"name":"legacy","response":{"content":"old style"}}"#),
        "{text}"
    );

    // And the model's arguments come back as Gemini wrote them.
    let answer = br#"{"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f", "args": {"z": 1.50, "a":[ 1 ]}}},
        {"functionCall": {"name": "g"}}
    ]}, "finishReason": "STOP"}]}"#;
    let out = chat_response(answer, "m").expect("answer");
    let calls = &out["choices"][0]["message"]["tool_calls"];
    assert_eq!(
        calls[0]["function"]["arguments"],
        r#"{"z": 1.50, "a":[ 1 ]}"#
    );
    assert_eq!(calls[1]["function"]["arguments"], "{}");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(out["created"], 1_700_000_000);
}

#[test]
fn every_unsupported_parameter_is_seen() {
    let input = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "logit_bias": {"1": 1}, "logprobs": false, "top_logprobs": 2, "audio": {},
        "modalities": ["text"], "prediction": {}, "service_tier": "flex",
        "reasoning_effort": "low", "web_search_options": {}, "functions": [],
        "function_call": "auto",
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
            "audio",
            "modalities",
            "prediction",
            "service_tier",
            "reasoning_effort",
            "web_search_options",
            "functions",
            "function_call",
        ]
    );
    // `null` is as good as absent.
    let input =
        json!({"messages": [{"role": "user", "content": "hi"}], "logit_bias": null, "seed": null});
    assert!(translate(&input, &ChatOptions::default()).is_ok());
}
