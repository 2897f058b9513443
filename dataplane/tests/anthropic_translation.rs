//! Golden fixtures of the Anthropic translations, each direction: requests, answers,
//! stream transcripts and errors (`tests/fixtures/anthropic/`, written from Anthropic's
//! and OpenAI's documented formats). JSON is compared as values; tool-call `arguments`
//! (JSON in a string) are compared parsed. Streams are fed cut at every byte position.

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use modelgate_dataplane::errors::Dialect;
use modelgate_dataplane::providers::anthropic::{ANTHROPIC_TO_OPENAI, NATIVE, OPENAI_TO_ANTHROPIC};
use modelgate_dataplane::providers::{
    Endpoint, RequestContext, ResponseContext, StreamTranslator, Translator,
};
use modelgate_dataplane::sse;
use modelgate_dataplane_api::{Deployment, HealthCheck, Limits, ModelInfo, Probe, Timeouts};
use serde_json::{Value, json};

const CREATED: u64 = 1_700_000_000;

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn deployment(max_output_tokens: Option<u64>) -> Deployment {
    Deployment {
        api_base: None,
        api_version: None,
        credentials: None,
        generation: 1,
        headers: Vec::new(),
        health_check: HealthCheck {
            enabled: false,
            interval_ms: 30_000,
            probe: Probe::ModelsList,
            timeout_ms: 5_000,
            url: None,
        },
        id: "test/claude".to_owned(),
        limits: Limits::default(),
        mock: None,
        model: "claude".to_owned(),
        model_info: ModelInfo {
            max_output_tokens,
            ..ModelInfo::default()
        },
        order: 0,
        provider: "anthropic".to_owned(),
        region: None,
        retries: 0,
        timeouts: Timeouts::default(),
        upstream_model: "claude-sonnet-4-5-20250929".to_owned(),
        weight: 1,
    }
}

fn chat_cx(d: &Deployment, stream: bool, drop_params: bool) -> RequestContext<'_> {
    RequestContext {
        endpoint: Endpoint::Chat,
        deployment: d,
        requested_model: "claude",
        upstream_model: "claude-sonnet-4-5-20250929",
        stream,
        drop_params,
    }
}

fn response_cx(include_usage: bool) -> ResponseContext {
    ResponseContext {
        include_usage,
        created: CREATED,
        ..ResponseContext::default()
    }
}

/// Replaces every `arguments` string holding JSON by the parsed value.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if k == "arguments"
                    && let Some(parsed) = x.as_str().and_then(|s| serde_json::from_str(s).ok())
                {
                    *x = parsed;
                    continue;
                }
                normalize(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn same(actual: &[u8], expected: Value) {
    let mut actual: Value = serde_json::from_slice(actual)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(actual)));
    let mut expected = expected;
    normalize(&mut actual);
    normalize(&mut expected);
    assert_eq!(
        actual,
        expected,
        "\nactual:   {}\nexpected: {}",
        serde_json::to_string_pretty(&actual).unwrap_or_default(),
        serde_json::to_string_pretty(&expected).unwrap_or_default()
    );
}

/// An SSE transcript as (event name, JSON or `[DONE]`) pairs.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    let mut d = sse::Decoder::default();
    d.push(bytes);
    let mut out = Vec::new();
    while let Some(e) = d.next_event().expect("within the limit") {
        let data = if &e.data[..] == b"[DONE]" {
            Value::String("[DONE]".to_owned())
        } else {
            let mut v: Value = serde_json::from_slice(&e.data)
                .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&e.data)));
            normalize(&mut v);
            v
        };
        out.push((e.name_str().to_owned(), data));
    }
    assert!(d.finish().is_none(), "a trailing partial event");
    out
}

/// Runs a stream translator over `input` cut at `cut`, then byte by byte.
fn translate_stream(
    make: &dyn Fn() -> Box<dyn StreamTranslator>,
    input: &[u8],
    cuts: impl Iterator<Item = usize>,
) -> Vec<Result<Bytes, (Bytes, String)>> {
    let run = |pieces: Vec<&[u8]>| {
        let mut t = make();
        let mut out = BytesMut::new();
        for p in pieces {
            if let Err(e) = t.feed(p, &mut out) {
                return Err((out.freeze(), e.to_string()));
            }
        }
        match t.finish(&mut out) {
            Ok(()) => Ok(out.freeze()),
            Err(e) => Err((out.freeze(), e.to_string())),
        }
    };
    let mut results: Vec<_> = cuts
        .map(|cut| {
            let (a, b) = input.split_at(cut);
            run(vec![a, b])
        })
        .collect();
    results.push(run(input.chunks(1).collect()));
    results
}

#[test]
fn openai_request_to_anthropic() {
    let d = deployment(Some(8192));
    let body = fixture("chat_request.openai.json");
    let t = OPENAI_TO_ANTHROPIC
        .request(&chat_cx(&d, true, false), &body)
        .expect("translated");
    same(&t.body, json_fixture("chat_request.anthropic.json"));
    assert!(t.context.include_usage);
}

#[test]
fn max_tokens_defaults_and_tool_choice_modes() {
    let d = deployment(None);
    let cases = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
    ];
    for (choice, expected) in cases {
        let body = json!({
            "model": "claude",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": choice,
            "max_completion_tokens": 77,
        });
        let t = OPENAI_TO_ANTHROPIC
            .request(&chat_cx(&d, false, false), &Bytes::from(body.to_string()))
            .expect("translated");
        let v: Value = serde_json::from_slice(&t.body).expect("json");
        assert_eq!(v["tool_choice"], expected);
        assert_eq!(v["max_tokens"], 77);
        assert!(v.get("stream").is_none());
    }
    let body =
        Bytes::from_static(br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#);
    let t = OPENAI_TO_ANTHROPIC
        .request(&chat_cx(&d, false, false), &body)
        .expect("translated");
    let v: Value = serde_json::from_slice(&t.body).expect("json");
    assert_eq!(v["max_tokens"], 4096);
    assert_eq!(v["messages"], json!([{"role": "user", "content": "hi"}]));
    assert!(v.get("tools").is_none() && v.get("system").is_none());
}

#[test]
fn unsupported_parameters_are_refused_or_dropped() {
    let d = deployment(None);
    let cases = [
        ("logit_bias", json!({"50256": -100})),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(1)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("n", json!(2)),
        ("seed", json!(7)),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        ),
        ("response_format", json!({"type": "json_object"})),
        ("reasoning_effort", json!("low")),
    ];
    for (param, value) in cases {
        let mut body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
        body[param] = value;
        let bytes = Bytes::from(body.to_string());
        let e = OPENAI_TO_ANTHROPIC
            .request(&chat_cx(&d, false, false), &bytes)
            .expect_err(param);
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{param}");
        assert_eq!(e.param.as_deref(), Some(param));
        assert!(e.message.contains("dropParams"), "{}", e.message);
        let t = OPENAI_TO_ANTHROPIC
            .request(&chat_cx(&d, false, true), &bytes)
            .expect("dropped");
        let v: Value = serde_json::from_slice(&t.body).expect("json");
        assert!(v.get(param).is_none(), "{param} was sent: {v}");
    }
    // Values that ask for nothing are no problem.
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}],
        "n": 1, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": false,
        "response_format": {"type": "text"}, "modalities": ["text"]});
    OPENAI_TO_ANTHROPIC
        .request(&chat_cx(&d, false, false), &Bytes::from(body.to_string()))
        .expect("harmless values pass");
}

#[test]
fn malformed_requests_name_the_problem() {
    let d = deployment(None);
    let cases = [
        (
            json!({"model": "c", "messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}),
            "messages",
        ),
        (
            json!({"model": "c", "messages": [{"role": "tool", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"model": "c", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
            "messages",
        ),
        (
            json!({"model": "c", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages",
        ),
        (
            json!({"model": "c", "messages": [], "tool_choice": "sometimes", "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tool_choice",
        ),
    ];
    for (body, param) in cases {
        let e = OPENAI_TO_ANTHROPIC
            .request(&chat_cx(&d, false, false), &Bytes::from(body.to_string()))
            .expect_err("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
    }
    let e = OPENAI_TO_ANTHROPIC
        .request(
            &chat_cx(&d, false, false),
            &Bytes::from_static(b"{\"model\": 1}"),
        )
        .expect_err("refused");
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
}

#[test]
fn embeddings_and_completions_are_refused() {
    let d = deployment(None);
    for endpoint in [Endpoint::Embeddings, Endpoint::Completions] {
        let cx = RequestContext {
            endpoint,
            ..chat_cx(&d, false, false)
        };
        let e = OPENAI_TO_ANTHROPIC
            .request(
                &cx,
                &Bytes::from_static(br#"{"model":"claude","input":"x"}"#),
            )
            .expect_err("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("Anthropic"), "{}", e.message);
    }
}

#[test]
fn anthropic_message_to_openai_completion() {
    let out = OPENAI_TO_ANTHROPIC
        .response(&response_cx(false), fixture("message.anthropic.json"))
        .expect("translated");
    same(&out, json_fixture("chat_completion.openai.json"));
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        let body = json!({"id": "m", "type": "message", "role": "assistant", "model": "c",
            "content": [{"type": "text", "text": "x"}], "stop_reason": stop,
            "usage": {"input_tokens": 1, "output_tokens": 2}});
        let out = OPENAI_TO_ANTHROPIC
            .response(&response_cx(false), Bytes::from(body.to_string()))
            .expect("translated");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
        assert_eq!(v["usage"]["total_tokens"], 3);
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    }
}

#[test]
fn anthropic_stream_to_openai_chunks() {
    let input = fixture("stream.anthropic.sse");
    let expected = events(&fixture("stream.openai.sse"));
    let make = || OPENAI_TO_ANTHROPIC.stream(&response_cx(true));
    for result in translate_stream(&make, &input, 0..=input.len()) {
        let out = result.unwrap_or_else(|(_, e)| panic!("failed: {e}"));
        assert_eq!(events(&out), expected);
    }
    // Without include_usage: no usage chunk.
    let mut t = OPENAI_TO_ANTHROPIC.stream(&response_cx(false));
    let mut out = BytesMut::new();
    t.feed(&input, &mut out).expect("fed");
    t.finish(&mut out).expect("finished");
    let got = events(&out);
    assert_eq!(got.len(), expected.len() - 1);
    assert!(got.iter().all(|(_, v)| v.get("usage").is_none()));
    assert_eq!(got.last().map(|e| &e.1), Some(&json!("[DONE]")));
}

#[test]
fn anthropic_stream_error_event_ends_the_stream() {
    let input = fixture("stream_error.anthropic.sse");
    let make = || OPENAI_TO_ANTHROPIC.stream(&response_cx(true));
    for result in translate_stream(&make, &input, [0, 10, input.len() / 2].into_iter()) {
        let (out, e) = result.expect_err("the error event is an error");
        assert!(e.contains("503") && e.contains("Overloaded"), "{e}");
        let got = events(&out);
        assert!(got.iter().all(|(_, v)| v != "[DONE]"), "no [DONE] faked");
        let text: String = got
            .iter()
            .filter_map(|(_, v)| {
                v.pointer("/choices/0/delta/content")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Hel");
    }
    // Cut short: no message_stop, no [DONE].
    let all = fixture("stream.anthropic.sse");
    let cut = &all[..all.len() / 2];
    let mut t = OPENAI_TO_ANTHROPIC.stream(&response_cx(false));
    let mut out = BytesMut::new();
    t.feed(cut, &mut out).expect("fed");
    let e = t.finish(&mut out).expect_err("cut short");
    assert!(e.message.contains("message_stop"), "{}", e.message);
}

#[test]
fn anthropic_errors_map_to_statuses() {
    let Value::Array(cases) = json_fixture("errors.json") else {
        panic!("errors.json is a list");
    };
    for case in cases {
        let status =
            StatusCode::from_u16(case["status"].as_u64().unwrap_or(0) as u16).expect("a status");
        let body = case["body"].to_string();
        let retry_after = case["retry_after"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(std::time::Duration::from_secs);
        let e = OPENAI_TO_ANTHROPIC.error(
            status,
            &http::HeaderMap::new(),
            body.as_bytes(),
            retry_after,
        );
        let want = &case["expect"];
        assert_eq!(
            u64::from(e.status.as_u16()),
            want["status"].as_u64().unwrap_or(0),
            "{case}"
        );
        assert_eq!(e.kind, want["type"].as_str().unwrap_or(""), "{case}");
        assert_eq!(
            e.code.map(Value::from).unwrap_or(Value::Null),
            want["code"],
            "{case}"
        );
        assert_eq!(e.is_retryable(), want["retryable"] == true, "{case}");
        assert_eq!(
            e.is_context_window(),
            want["code"] == "context_length_exceeded"
        );
        assert_eq!(
            e.message,
            case["body"]["error"]["message"].as_str().unwrap_or(""),
            "the upstream's message is kept"
        );
        let openai = e.clone().into_response();
        assert_eq!(openai.status(), e.status);
        let anthropic = e.clone().into_response_as(Dialect::Anthropic);
        assert_eq!(
            u64::from(anthropic.status().as_u16()),
            want["anthropic_status"].as_u64().unwrap_or(0),
            "{case}"
        );
        if let Some(after) = want["retry_after"].as_str() {
            assert_eq!(openai.headers()["retry-after"], after);
        }
        let rendered: Value =
            serde_json::from_slice(&e.to_json_as(Dialect::Anthropic)).expect("json");
        assert_eq!(rendered["type"], "error");
        assert_eq!(rendered["error"]["type"], case["body"]["error"]["type"]);
        let rendered: Value = serde_json::from_slice(&e.to_json()).expect("json");
        assert_eq!(
            rendered["error"]["message"],
            case["body"]["error"]["message"]
        );
    }
}

fn messages_cx(d: &Deployment, stream: bool, drop_params: bool) -> RequestContext<'_> {
    RequestContext {
        endpoint: Endpoint::Messages,
        deployment: d,
        requested_model: "gpt",
        upstream_model: "gpt-4o",
        stream,
        drop_params,
    }
}

#[test]
fn inbound_messages_request_to_openai() {
    let d = deployment(None);
    let t = ANTHROPIC_TO_OPENAI
        .request(
            &messages_cx(&d, true, false),
            &fixture("inbound_request.anthropic.json"),
        )
        .expect("translated");
    same(&t.body, json_fixture("inbound_request.openai.json"));
    // A reasoning model gets max_completion_tokens.
    let mut reasoning = deployment(None);
    reasoning.model_info.reasoning = true;
    let t = ANTHROPIC_TO_OPENAI
        .request(
            &messages_cx(&reasoning, false, false),
            &Bytes::from_static(
                br#"{"model":"gpt","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
        )
        .expect("translated");
    let v: Value = serde_json::from_slice(&t.body).expect("json");
    assert_eq!(v["max_completion_tokens"], 9);
    assert!(v.get("max_tokens").is_none());
    // What OpenAI chat cannot take.
    for (param, value) in [
        ("top_k", json!(5)),
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": 2048}),
        ),
    ] {
        let mut body = json!({"model": "gpt", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]});
        body[param] = value;
        let bytes = Bytes::from(body.to_string());
        let e = ANTHROPIC_TO_OPENAI
            .request(&messages_cx(&d, false, false), &bytes)
            .expect_err(param);
        assert_eq!(e.param.as_deref(), Some(param));
        ANTHROPIC_TO_OPENAI
            .request(&messages_cx(&d, false, true), &bytes)
            .expect("dropped");
    }
}

#[test]
fn inbound_answer_to_anthropic_message() {
    let out = ANTHROPIC_TO_OPENAI
        .response(&response_cx(true), fixture("inbound_answer.openai.json"))
        .expect("translated");
    same(&out, json_fixture("inbound_answer.anthropic.json"));
}

#[test]
fn inbound_stream_to_anthropic_events() {
    let input = fixture("inbound_stream.openai.sse");
    let expected = events(&fixture("inbound_stream.anthropic.sse"));
    let make = || ANTHROPIC_TO_OPENAI.stream(&response_cx(true));
    for result in translate_stream(&make, &input, 0..=input.len()) {
        let out = result.unwrap_or_else(|(_, e)| panic!("failed: {e}"));
        assert_eq!(events(&out), expected);
    }
    // An upstream error chunk ends the stream with an error, no message_stop.
    let broken = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
    let mut t = ANTHROPIC_TO_OPENAI.stream(&response_cx(true));
    let mut out = BytesMut::new();
    let e = t.feed(broken, &mut out).expect_err("an error chunk");
    assert_eq!(e.message, "boom");
    assert!(events(&out).iter().all(|(name, _)| name != "message_stop"));
}

#[test]
fn native_passthrough_rewrites_the_model_only_and_watches_the_stream() {
    let d = deployment(None);
    let body = Bytes::from_static(
        br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let cx = RequestContext {
        endpoint: Endpoint::Messages,
        requested_model: "claude",
        upstream_model: "claude",
        ..chat_cx(&d, false, false)
    };
    let t = NATIVE.request(&cx, &body).expect("as is");
    assert_eq!(t.body, body, "the same bytes");
    let cx = RequestContext {
        upstream_model: "claude-sonnet-4-5-20250929",
        ..cx
    };
    let t = NATIVE.request(&cx, &body).expect("rewritten");
    let v: Value = serde_json::from_slice(&t.body).expect("json");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(v["max_tokens"], 5);

    let input = fixture("stream.anthropic.sse");
    let make = || NATIVE.stream(&response_cx(false));
    for result in translate_stream(&make, &input, [1, 100, 777].into_iter()) {
        let out = result.unwrap_or_else(|(_, e)| panic!("failed: {e}"));
        assert_eq!(events(&out), events(&input));
    }
    let input = fixture("stream_error.anthropic.sse");
    let mut t = NATIVE.stream(&response_cx(false));
    let mut out = BytesMut::new();
    let e = t.feed(&input, &mut out).expect_err("error event");
    assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(events(&out).len(), 3, "the events before the error pass");
}
