//! Gemini deployments behind the real data plane over sockets: OpenAI chat (whole and
//! streamed with usage, tools both ways) translated to a mock of Gemini's API, the key in
//! `x-goog-api-key` and never in a URL, embeddings, errors mapped (429 retried on another
//! deployment, 400 returned at once), `/v1/messages` through the front leg, and the
//! models-list health probe.

use std::time::Duration;

use http::Method;
use modelgate_testkit::gemini_upstream::{GeminiReply, GeminiUpstream};
use modelgate_testkit::http::json_request;
use modelgate_testkit::{Dep, Gateway, Manifest, Secret, eventually};
use serde_json::{Value, json};

const KEY: &str = "gemini-test-key";
const WAIT: Duration = Duration::from_secs(10);

/// A Gemini deployment of `model` at the mock `up`, its key in Secret `gemini`.
fn gemini(name: &str, model: &str, up: &GeminiUpstream) -> Dep {
    Dep::at(name, model, "gemini", &up.url())
        .upstream_model("gemini-2.5-flash")
        .key("gemini", "key")
}

fn secret() -> Secret {
    Secret::new("gemini").entry("key", KEY)
}

async fn gemini_gateway(up: &GeminiUpstream) -> Gateway {
    up.require_key(KEY);
    Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(gemini("gem", "gem", up).retries(0)),
    )
    .await
}

fn events(sse: &modelgate_testkit::Sse) -> Vec<Value> {
    sse.events.iter().map(|e| e.json()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_translated_both_ways() {
    let up = GeminiUpstream::start("g").await;
    let gw = gemini_gateway(&up).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({
                "model": "gem",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Say hello."}
                ],
                "temperature": 0.3,
                "max_tokens": 100,
                "stop": "END",
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/gem"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "answer from g");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["total_tokens"], 18);
    let sent = up.last().expect("a request");
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.query, None, "the key never goes in the URL");
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    assert!(sent.header("authorization").is_none());
    let body = sent.json();
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(body["contents"][0]["parts"][0]["text"], "Say hello.");
    assert_eq!(body["generationConfig"]["temperature"], 0.3);
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(body["generationConfig"]["stopSequences"], json!(["END"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_translated_with_usage() {
    let up = GeminiUpstream::start("g").await;
    up.set(GeminiReply::text("one two three four"));
    let gw = gemini_gateway(&up).await;
    let body = json!({"model": "gem", "stream": true, "stream_options": {"include_usage": true},
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
    assert!(
        events
            .iter()
            .all(|e| e.is_null() || e["object"] == "chat.completion.chunk")
    );
    let finishes: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes, ["stop"]);
    let usage = &events[events.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 11);
    assert_eq!(usage["usage"]["completion_tokens"], 7);
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
    let sent = up.last().expect("a request");
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_both_ways_whole_and_streamed() {
    let up = GeminiUpstream::start("g").await;
    up.set(
        GeminiReply::text("Checking.")
            .tool("get_weather", json!({"city": "Paris"}))
            .tool("get_time", json!({"city": "Paris", "tz": true})),
    );
    let gw = gemini_gateway(&up).await;
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    ]);
    let messages = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]);
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "gem", "messages": messages, "tools": tools, "tool_choice": "required"}),
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
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    assert_eq!(
        sent["contents"][1]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Rome"}})
    );
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );

    // Streamed: tool calls numbered 0 and 1.
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &json!({"model": "gem", "stream": true, "messages": messages, "tools": tools}),
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
        serde_json::from_str::<Value>(&args[1]).ok(),
        Some(json!({"city": "Paris", "tz": true}))
    );
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_mapped_and_rate_limits_move_to_another_deployment() {
    let a = GeminiUpstream::start("a").await;
    let b = GeminiUpstream::start("b").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(gemini("a", "gem", &a).order(1).retries(1))
            .with(gemini("b", "gem", &b).order(2).retries(1))
            .settings(json!({"cooldown": {"allowedFails": 100}})),
    )
    .await;
    a.then(GeminiReply::fail(429, "RESOURCE_EXHAUSTED", "quota").retry_after(30));
    let r = gw.chat("gem").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "answer from b"
    );
    assert_eq!(r.attempts(), Some(2));

    a.then(GeminiReply::fail(503, "UNAVAILABLE", "overloaded"));
    let mut sse = gw.client.stream(gw.stream_request("gem")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "answer from b");

    // A bad request is the client's: returned at once, not retried.
    let before = b.count();
    a.then(GeminiReply::fail(400, "INVALID_ARGUMENT", "bad schema"));
    let r = gw.chat("gem").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(b.count(), before);

    // Both rate limited: 429 with the wait.
    a.then(GeminiReply::fail(429, "RESOURCE_EXHAUSTED", "quota").retry_after(7));
    b.then(GeminiReply::fail(429, "RESOURCE_EXHAUSTED", "quota").retry_after(7));
    let r = gw.chat("gem").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_one_and_batched() {
    let up = GeminiUpstream::start("g").await;
    up.require_key(KEY);
    let gw = Gateway::with(
        &Manifest::new().with(secret()).with(
            Dep::at("emb", "gem-embed", "gemini", &up.url())
                .upstream_model("text-embedding-004")
                .key("gemini", "key")
                .info("mode", json!("embedding")),
        ),
    )
    .await;
    let r = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "gem-embed", "input": "hello"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"][0]["embedding"], json!([0.25, -0.5, 1.0]));
    assert_eq!(
        up.last().map(|r| r.path),
        Some("/v1beta/models/text-embedding-004:embedContent".to_owned())
    );
    let r = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "gem-embed", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.json()["data"].clone();
    assert_eq!(data.as_array().map(Vec::len), Some(2));
    assert_eq!(data[1]["index"], 1);
    assert_eq!(
        up.last().map(|r| r.path),
        Some("/v1beta/models/text-embedding-004:batchEmbedContents".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_is_translated_for_gemini() {
    let up = GeminiUpstream::start("g").await;
    up.set(GeminiReply::text("hi there").tool("f", json!({"x": 1})));
    let gw = gemini_gateway(&up).await;
    let r = gw
        .post(
            "/v1/messages",
            &json!({"model": "gem", "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hello"}],
                "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0], json!({"type": "text", "text": "hi there"}));
    assert_eq!(v["content"][1]["type"], "tool_use");
    assert_eq!(v["content"][1]["input"], json!({"x": 1}));
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"]["input_tokens"], 11);

    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/messages"),
            &json!({"model": "gem", "max_tokens": 50, "stream": true,
                "messages": [{"role": "user", "content": "Hello"}]}),
        ))
        .await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    let types: Vec<String> = events(&sse)
        .iter()
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("message_start"));
    assert_eq!(types.last().map(String::as_str), Some("message_stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_list_models_with_the_key_in_a_header() {
    let up = GeminiUpstream::start("g").await;
    up.require_key(KEY);
    let gw = Gateway::with(&Manifest::new().with(secret()).with(
        gemini("gem", "gem", &up).spec_field(
            "healthCheck",
            json!({"enabled": true, "interval": "1s", "timeout": "1s"}),
        ),
    ))
    .await;
    let probed = eventually(WAIT, || async {
        up.requests().iter().any(|r| r.path == "/v1beta/models")
    })
    .await;
    assert!(probed, "no probe: {:?}", up.requests());
    let probe = up
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1beta/models")
        .expect("a probe");
    assert_eq!(probe.header("x-goog-api-key"), Some(KEY));
    assert_eq!(probe.query, None);
    let healthy = eventually(WAIT, || async {
        gw.get("/health").await.json()["healthy_count"] == 1
    })
    .await;
    let health = gw.get("/health").await.json();
    assert!(healthy, "{health}");
}
