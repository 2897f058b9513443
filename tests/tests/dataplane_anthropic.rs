//! Anthropic deployments behind the real data plane over sockets: OpenAI chat (whole and
//! streamed, tools both ways) translated to a mock of Anthropic's Messages API, its
//! errors mapped (retries and failover on 429/529, context-window fallbacks, 400s at
//! once), groups mixing OpenAI-compatible and Anthropic deployments, and `/v1/messages`
//! served natively by Anthropic deployments and translated for OpenAI-compatible ones.

use std::time::Duration;

use http::Method;
use modelgate_testkit::anthropic_upstream::{AnthropicReply, AnthropicUpstream};
use modelgate_testkit::http::json_request;
use modelgate_testkit::{Dep, Gateway, Manifest, MockUpstream, Reply, Secret, eventually};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-test-key";
const WAIT: Duration = Duration::from_secs(10);

/// An Anthropic deployment of `model` at the mock `up`, its key in Secret `anthropic`.
fn claude(name: &str, model: &str, up: &AnthropicUpstream) -> Dep {
    Dep::at(name, model, "anthropic", &up.url())
        .upstream_model("claude-sonnet-4-5")
        .key("anthropic", "key")
}

fn secret() -> Secret {
    Secret::new("anthropic").entry("key", KEY)
}

async fn anthropic_gateway(up: &AnthropicUpstream) -> Gateway {
    up.require_key(KEY);
    Gateway::with(
        &Manifest::new().with(secret()).with(
            claude("claude", "claude", up)
                .info("maxOutputTokens", json!(2048))
                .retries(0),
        ),
    )
    .await
}

fn events(sse: &modelgate_testkit::Sse) -> Vec<Value> {
    sse.events.iter().map(|e| e.json()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_translated_both_ways() {
    let up = AnthropicUpstream::start("a").await;
    let gw = anthropic_gateway(&up).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({
                "model": "claude",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Say hello."}
                ],
                "temperature": 0.3,
                "stop": "END",
                "user": "u-1",
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/claude"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "answer from a");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20, "prompt_tokens_details": {"cached_tokens": 2}})
    );
    let sent = up.last().expect("a request");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert!(sent.header("authorization").is_none());
    assert_eq!(
        sent.json(),
        json!({
            "model": "claude-sonnet-4-5",
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 2048,
            "stop_sequences": ["END"],
            "temperature": 0.3,
            "metadata": {"user_id": "u-1"},
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_translated_event_by_event_with_usage() {
    let up = AnthropicUpstream::start("a").await;
    up.set(AnthropicReply::text("one two three four"));
    let gw = anthropic_gateway(&up).await;
    let mut body = json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Count."}]});
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &body,
        ))
        .await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "one two three four");
    let events = events(&sse);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        events
            .iter()
            .all(|e| e.is_null() || e["object"] == "chat.completion.chunk")
    );
    let finish = &events[events.len() - 3];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &events[events.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 13);
    assert_eq!(usage["usage"]["completion_tokens"], 7);
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
    assert_eq!(
        up.last().map(|r| r.json()["stream"].clone()),
        Some(json!(true))
    );

    // Without include_usage: no usage chunk.
    body["stream_options"] = json!(null);
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &body,
        ))
        .await;
    sse.read_to_end(WAIT).await;
    assert!(sse.events.iter().all(|e| e.json().get("usage").is_none()));
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_both_ways_whole_and_streamed() {
    let up = AnthropicUpstream::start("a").await;
    up.set(
        AnthropicReply::text("Checking.")
            .tool("get_weather", json!({"city": "Paris"}))
            .tool("get_time", json!({"city": "Paris", "tz": true})),
    );
    let gw = anthropic_gateway(&up).await;
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    ]);
    let messages = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]);
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": messages, "tools": tools, "tool_choice": "required"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["message"]["content"], "Checking.");
    let calls = &v["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap_or(""))
            .expect("JSON arguments");
    assert_eq!(args, json!({"city": "Paris", "tz": true}));
    let sent = up.last().expect("a request").json();
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        sent["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Rome"}})
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]})
    );

    // Streamed: tool calls numbered 0 and 1 (the text block is not counted).
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &json!({"model": "claude", "stream": true, "messages": messages, "tools": tools}),
        ))
        .await;
    sse.read_to_end(WAIT).await;
    let mut args = [String::new(), String::new()];
    let mut names = Vec::new();
    for e in events(&sse) {
        for call in e["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = call["index"].as_u64().unwrap_or(9) as usize;
            if let Some(name) = call["function"]["name"].as_str() {
                names.push((i, name.to_owned()));
            }
            args[i].push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(
        names,
        [(0, "get_weather".to_owned()), (1, "get_time".to_owned())]
    );
    assert_eq!(
        serde_json::from_str::<Value>(&args[0]).ok(),
        Some(json!({"city": "Paris"}))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&args[1]).ok(),
        Some(json!({"city": "Paris", "tz": true}))
    );
    let finish = sse
        .events
        .iter()
        .filter_map(|e| {
            e.json()["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_owned)
        })
        .collect::<Vec<_>>();
    assert_eq!(finish, ["tool_calls"]);
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_mapped_and_returned_at_once() {
    let up = AnthropicUpstream::start("a").await;
    let gw = anthropic_gateway(&up).await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
    ] {
        up.then(AnthropicReply::fail(status, kind, &format!("mock {kind}")));
        let r = gw.chat("claude").await;
        assert_eq!(r.status.as_u16(), status, "{}", r.text());
        let e = r.openai_error();
        assert_eq!(e["type"], kind);
        assert_eq!(e["message"], format!("mock {kind}"));
        assert_eq!(r.attempts(), Some(1), "{kind} is not retried");
    }
    // A wrong key is the upstream's 401.
    up.require_key("another");
    let r = gw.chat("claude").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.openai_error()["message"], "invalid x-api-key");
    // Parameters Anthropic cannot take: a 400 naming them (dropParams is off).
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.openai_error()["param"], "logit_bias");
    // Anthropic has no embeddings nor legacy completions.
    for (path, body) in [
        ("/v1/embeddings", json!({"model": "claude", "input": "x"})),
        ("/v1/completions", json!({"model": "claude", "prompt": "x"})),
    ] {
        let r = gw.post(path, &body).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.openai_error()["message"]
                .as_str()
                .unwrap_or("")
                .contains("Anthropic")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_params_drops_what_anthropic_cannot_take() {
    let up = AnthropicUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(claude("claude", "claude", &up))
            .settings(json!({"dropParams": true})),
    )
    .await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [{"role": "user", "content": "x"}],
                "logit_bias": {"1": 2}, "seed": 3, "n": 1, "frequency_penalty": 0.4,
                "response_format": {"type": "json_object"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.last().expect("sent").json();
    for p in [
        "logit_bias",
        "seed",
        "n",
        "frequency_penalty",
        "response_format",
    ] {
        assert!(sent.get(p).is_none(), "{p} was sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_overload_move_to_another_deployment() {
    let a = AnthropicUpstream::start("a").await;
    let b = AnthropicUpstream::start("b").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(claude("a", "claude", &a).order(1).retries(1))
            .with(claude("b", "claude", &b).order(2).retries(1))
            .settings(json!({"cooldown": {"allowedFails": 100}})),
    )
    .await;
    a.then(AnthropicReply::fail(429, "rate_limit_error", "slow down").retry_after(30));
    let r = gw.chat("claude").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "answer from b"
    );
    assert_eq!(r.attempts(), Some(2));

    a.then(AnthropicReply::fail(529, "overloaded_error", "Overloaded"));
    let mut sse = gw.client.stream(gw.stream_request("claude")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "answer from b");
    assert_eq!(sse.header("x-modelgate-attempts"), Some("2"));

    // An `error` event before anything reached the client is retried too.
    a.then(AnthropicReply::text("x").error_event_after(0, "overloaded_error"));
    let mut sse = gw.client.stream(gw.stream_request("claude")).await;
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "answer from b");

    // Both overloaded: the client gets 503 (an OpenAI client has no 529), Retry-After
    // passed on for 429.
    a.then(AnthropicReply::fail(529, "overloaded_error", "Overloaded"));
    b.then(AnthropicReply::fail(529, "overloaded_error", "Overloaded"));
    let r = gw.chat("claude").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.openai_error()["type"], "overloaded_error");
    a.then(AnthropicReply::fail(429, "rate_limit_error", "slow").retry_after(7));
    b.then(AnthropicReply::fail(429, "rate_limit_error", "slow").retry_after(7));
    let r = gw.chat("claude").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_errors_end_the_stream_without_done() {
    let up = AnthropicUpstream::start("a").await;
    up.set(AnthropicReply::text("one two three").error_event_after(2, "overloaded_error"));
    let gw = anthropic_gateway(&up).await;
    let mut sse = gw.client.stream(gw.stream_request("claude")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "one two ");
    let last = sse.events.last().expect("events");
    assert!(last.is_error(), "{}", last.data);
    assert_eq!(last.json()["error"]["type"], "overloaded_error");
    assert!(sse.events.iter().all(|e| !e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_too_long_switches_to_context_window_fallbacks() {
    let small = AnthropicUpstream::start("small").await;
    let big = AnthropicUpstream::start("big").await;
    small.set(AnthropicReply::fail(
        400,
        "invalid_request_error",
        "prompt is too long: 208310 tokens > 200000 maximum",
    ));
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(claude("small", "claude", &small))
            .with(claude("big", "claude-1m", &big))
            .settings(json!({"contextWindowFallbacks": {"claude": ["claude-1m"]}})),
    )
    .await;
    let r = gw.chat("claude").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "answer from big"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_mixing_openai_compatible_and_anthropic_fails_over_both_ways() {
    let claude_up = AnthropicUpstream::start("claude").await;
    let openai_up = MockUpstream::start("gpt").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(claude("claude", "mixed", &claude_up).order(1).retries(1))
            .with(Dep::new("gpt", "mixed", &openai_up).order(2).retries(1)),
    )
    .await;
    let r = gw.chat("mixed").await;
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "answer from claude"
    );

    claude_up.then(AnthropicReply::fail(529, "overloaded_error", "Overloaded"));
    let r = gw.chat("mixed").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream().as_deref(), Some("gpt"));
    assert_eq!(
        openai_up.last().and_then(|r| r.model()).as_deref(),
        Some("mixed")
    );

    // Streaming, with the Anthropic deployment failing first.
    claude_up.then(AnthropicReply::fail(500, "api_error", "boom"));
    let mut sse = gw.client.stream(gw.stream_request("mixed")).await;
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "gpt:0 gpt:1 gpt:2 ");
    assert!(sse.events.last().is_some_and(|e| e.is_done()));

    // A request only OpenAI can take goes there instead of failing on Anthropic.
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "mixed", "messages": [{"role": "user", "content": "x"}], "seed": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream().as_deref(), Some("gpt"));

    // And the other way round: the OpenAI-compatible deployment first, failing.
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(claude("claude", "mixed", &claude_up).order(2))
            .with(Dep::new("gpt", "mixed", &openai_up).order(1).retries(1)),
    )
    .await;
    openai_up.then(Reply::fail(503));
    let mut sse = gw.client.stream(gw.stream_request("mixed")).await;
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "answer from claude");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_is_native_on_anthropic_deployments() {
    let up = AnthropicUpstream::start("a").await;
    up.set(AnthropicReply::text("native answer").tool("f", json!({"x": 1})));
    let gw = anthropic_gateway(&up).await;
    let body = json!({"model": "claude", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}], "top_k": 3});
    let r = gw.post("/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "msg_a");
    assert_eq!(v["content"][0]["text"], "native answer");
    assert_eq!(v["content"][1]["input"], json!({"x": 1}));
    assert_eq!(v["stop_reason"], "tool_use");
    let sent = up.last().expect("sent");
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(sent.json(), expected, "only the model is rewritten");
    assert_eq!(sent.header("x-api-key"), Some(KEY));

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/messages"),
            &streamed,
        ))
        .await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    let types: Vec<String> = events(&sse)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("message_start"));
    assert_eq!(types.last().map(String::as_str), Some("message_stop"));
    assert!(types.contains(&"ping".to_owned()));

    // Errors in Anthropic's shape, with Anthropic's statuses.
    up.then(AnthropicReply::fail(529, "overloaded_error", "Overloaded"));
    let r = gw.post("/v1/messages", &body).await;
    assert_eq!(r.status.as_u16(), 529, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    let r = gw
        .post(
            "/v1/messages",
            &json!({"model": "nope", "max_tokens": 5, "messages": []}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    // A mid-stream error reaches the client as Anthropic's `error` event.
    up.then(AnthropicReply::text("a b c").error_event_after(1, "api_error"));
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/messages"),
            &streamed,
        ))
        .await;
    sse.read_to_end(WAIT).await;
    let last = sse.events.last().expect("events").json();
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["type"], "api_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_is_translated_for_openai_compatible_deployments() {
    let up = MockUpstream::start("gpt").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Dep::new("gpt", "gpt", &up)
                    .upstream_model("gpt-4o")
                    .retries(0),
            )
            .with(Dep::mock("mock", "mock-chat").mock_answer("hello from the mock", "0s")),
    )
    .await;
    let body = json!({"model": "gpt", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "answer from gpt"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"], json!({"input_tokens": 5, "output_tokens": 7}));
    let sent = up.last().expect("sent");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-4o", "max_tokens": 50, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]})
    );

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/messages"),
            &streamed,
        ))
        .await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    let evs = events(&sse);
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "gpt:0 gpt:1 gpt:2 ");
    assert_eq!(evs[0]["type"], "message_start");
    let delta = evs
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 7);
    assert_eq!(
        evs.last().map(|e| e["type"].clone()),
        Some(json!("message_stop"))
    );
    assert_eq!(
        up.last().map(|r| r.json()["stream_options"].clone()),
        Some(json!({"include_usage": true}))
    );

    // The in-process mock provider too, whole and streamed.
    let r = gw
        .post("/v1/messages", &json!({"model": "mock-chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], "hello from the mock");
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/messages"),
            &json!({"model": "mock-chat", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await;
    sse.read_to_end(WAIT).await;
    let text: String = events(&sse)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "hello from the mock");

    // Upstream errors in Anthropic's shape.
    up.then(Reply::fail(429).retry_after(3));
    let r = gw.post("/v1/messages", &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(r.header("retry-after"), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_list_models_with_the_key() {
    let up = AnthropicUpstream::start("a").await;
    up.require_key(KEY);
    let gw = Gateway::with(&Manifest::new().with(secret()).with(
        claude("claude", "claude", &up).spec_field(
            "healthCheck",
            json!({"enabled": true, "interval": "1s", "timeout": "1s"}),
        ),
    ))
    .await;
    let probed = eventually(WAIT, || async {
        up.requests().iter().any(|r| r.path == "/v1/models")
    })
    .await;
    assert!(probed, "no probe: {:?}", up.requests());
    let probe = up
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/models")
        .expect("a probe");
    assert_eq!(probe.header("x-api-key"), Some(KEY));
    assert_eq!(probe.header("anthropic-version"), Some("2023-06-01"));
    let healthy = eventually(WAIT, || async {
        gw.get("/health").await.json()["healthy_count"] == 1
    })
    .await;
    let health = gw.get("/health").await.json();
    assert!(healthy, "{health}");
}

/// A translated stream to a tpm-limited deployment is counted by the usage the provider
/// reported: the translator is asked for the usage chunk, which is stripped from the
/// client's stream unless the client asked for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_streams_are_counted_by_reported_usage() {
    let up = AnthropicUpstream::start("a").await;
    up.require_key(KEY);
    let gw = Gateway::with(
        &Manifest::new().with(secret()).with(
            claude("claude", "claude", &up)
                .info("maxOutputTokens", json!(2048))
                .retries(0)
                .spec_field("limits", json!({"tpm": 1_000_000})),
        ),
    )
    .await;
    let stream = |include_usage: Option<bool>| {
        let mut body = json!({
            "model": "claude",
            "stream": true,
            "messages": [{"role": "user", "content": "Say hello."}]
        });
        if let Some(asked) = include_usage {
            body["stream_options"] = json!({"include_usage": asked});
        }
        json_request(Method::POST, &gw.url("/v1/chat/completions"), &body)
    };
    let usage_of = |sse: &modelgate_testkit::Sse| -> Option<u64> {
        events(sse)
            .iter()
            .find_map(|e| e["usage"]["total_tokens"].as_u64())
    };

    // Not asked: no usage chunk reaches the client, the stream still ends with [DONE].
    let mut sse = gw.client.stream(stream(None)).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
    assert_eq!(usage_of(&sse), None, "a usage chunk nobody asked for");

    // Asked: it does.
    let mut sse = gw.client.stream(stream(Some(true))).await;
    sse.read_to_end(WAIT).await;
    let total = usage_of(&sse).expect("the usage chunk the client asked for");

    // Both streams were counted by that usage, not by the prompt estimate.
    let router = gw.app.router().expect("a table");
    let t = &router.targets[0];
    let counted = router.limiter.usage_ratio(&t.spec.limits, &t.state.limits) * 1_000_000.0;
    assert!(
        (counted - 2.0 * total as f64).abs() < 1e-6,
        "counted {counted} tokens, reported {total} per stream"
    );
}
