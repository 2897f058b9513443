//! Bedrock deployments behind the real data plane over sockets: OpenAI chat (whole and
//! streamed with usage, tools both ways) translated to a mock of Bedrock Runtime's
//! Converse API that verifies every request's SigV4 signature (deployment headers
//! included) and answers ConverseStream in event-stream framing; credentials and region
//! from the deployment; errors mapped (throttling retried on another deployment, bad
//! signatures and validation errors returned at once, in-stream exceptions), and
//! `/v1/messages` through the front leg.

use std::time::Duration;

use http::Method;
use modelgate_testkit::bedrock_upstream::{BedrockReply, BedrockUpstream, Credentials};
use modelgate_testkit::http::json_request;
use modelgate_testkit::{Dep, Gateway, Manifest, Secret, eventually};
use serde_json::{Value, json};

const ACCESS_KEY: &str = "AKIAMODELGATETEST";
const SECRET_KEY: &str = "bedrock/secret+key";
const TOKEN: &str = "session-token-1";
const REGION: &str = "eu-west-3";
const MODEL_ID: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const WAIT: Duration = Duration::from_secs(10);

fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, Some(TOKEN.to_owned()))
}

async fn upstream(name: &str) -> BedrockUpstream {
    BedrockUpstream::start(name, REGION, credentials()).await
}

/// A Bedrock deployment of `model` at the mock `up`, its keys in Secret `aws`.
fn bedrock(name: &str, model: &str, up: &BedrockUpstream) -> Dep {
    Dep::at(name, model, "bedrock", &up.url()).spec_field(
        "upstream",
        json!({
            "provider": "bedrock",
            "apiBase": up.url(),
            "model": MODEL_ID,
            "region": REGION,
            "credentials": {"secretName": "aws", "keys": {
                "accessKeyId": "id", "secretAccessKey": "secret", "sessionToken": "token"}},
            "headers": [{"name": "x-team", "value": "search"}],
        }),
    )
}

fn secret() -> Secret {
    Secret::new("aws")
        .entry("id", ACCESS_KEY)
        .entry("secret", SECRET_KEY)
        .entry("token", TOKEN)
}

async fn bedrock_gateway(up: &BedrockUpstream) -> Gateway {
    Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(bedrock("br", "br", up).retries(0)),
    )
    .await
}

fn events(sse: &modelgate_testkit::Sse) -> Vec<Value> {
    sse.events.iter().map(|e| e.json()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_signed_and_translated_both_ways() {
    let up = upstream("b").await;
    let gw = bedrock_gateway(&up).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &json!({
                "model": "br",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Say hello."}
                ],
                "temperature": 0.3,
                "max_tokens": 100,
                "stop": ["END"],
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/br"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "answer from b");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    let sent = up.last().expect("a request");
    assert_eq!(
        sent.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(sent.header("x-amz-security-token"), Some(TOKEN));
    assert_eq!(sent.header("x-team"), Some("search"));
    let auth = sent.header("authorization").unwrap_or_default().to_owned();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAMODELGATETEST/"),
        "{auth}"
    );
    assert!(auth.contains("/eu-west-3/bedrock/aws4_request"), "{auth}");
    assert!(
        auth.contains("x-team"),
        "deployment headers are signed: {auth}"
    );
    let body = sent.json();
    assert_eq!(body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["messages"][0]["content"][0]["text"], "Say hello.");
    assert_eq!(body["inferenceConfig"]["maxTokens"], 100);
    assert_eq!(body["inferenceConfig"]["stopSequences"], json!(["END"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_decoded_from_event_stream_framing_with_usage() {
    let up = upstream("b").await;
    up.set(BedrockReply::text("one two three four"));
    let gw = bedrock_gateway(&up).await;
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &json!({"model": "br", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "Count."}]}),
        ))
        .await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "one two three four");
    let events = events(&sse);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
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
    assert!(sent.path.ends_with("/converse-stream"), "{}", sent.path);
    assert_eq!(
        sent.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_both_ways_whole_and_streamed() {
    let up = upstream("b").await;
    up.set(
        BedrockReply::text("Checking.")
            .tool("get_weather", json!({"city": "Paris"}))
            .tool("get_time", json!({"city": "Paris", "tz": true})),
    );
    let gw = bedrock_gateway(&up).await;
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
            &json!({"model": "br", "messages": messages, "tools": tools, "tool_choice": "required"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["message"]["content"], "Checking.");
    let calls = &v["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["id"], "tooluse_0");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap_or(""))
            .expect("JSON arguments");
    assert_eq!(args, json!({"city": "Paris", "tz": true}));
    let sent = up.last().expect("a request").json();
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        sent["messages"][1]["content"][0]["toolUse"],
        json!({"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Rome"}})
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        "call_1"
    );

    // Streamed: tool calls numbered 0 and 1 (the text block is not counted).
    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &json!({"model": "br", "stream": true, "messages": messages, "tools": tools}),
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
    let finishes: Vec<String> = events(&sse)
        .iter()
        .filter_map(|e| e["choices"][0]["finish_reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(finishes, ["tool_calls"]);
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_moves_to_another_deployment_and_client_errors_do_not() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(bedrock("a", "br", &a).order(1).retries(1))
            .with(bedrock("b", "br", &b).order(2).retries(1))
            .settings(json!({"cooldown": {"allowedFails": 100}})),
    )
    .await;
    a.then(BedrockReply::fail(
        429,
        "ThrottlingException",
        "Too many requests",
    ));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "answer from b"
    );
    assert_eq!(r.attempts(), Some(2));

    a.then(BedrockReply::fail(
        503,
        "ServiceUnavailableException",
        "busy",
    ));
    let mut sse = gw.client.stream(gw.stream_request("br")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "answer from b");

    // An exception before anything reached the client is retried too.
    a.then(BedrockReply::text("x").exception_after(0, "throttlingException"));
    let mut sse = gw.client.stream(gw.stream_request("br")).await;
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "answer from b");

    // A validation error is the client's: at once, not retried.
    let before = b.count();
    a.then(BedrockReply::fail(400, "ValidationException", "bad input"));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(b.count(), before);

    // Both throttled: 429.
    a.then(BedrockReply::fail(429, "ThrottlingException", "slow"));
    b.then(BedrockReply::fail(429, "ThrottlingException", "slow"));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 429, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_the_signature_check() {
    let up = BedrockUpstream::start(
        "b",
        REGION,
        Credentials::new(ACCESS_KEY, "another secret", Some(TOKEN.to_owned())),
    )
    .await;
    let gw = bedrock_gateway(&up).await;
    let r = gw.chat("br").await;
    assert!(
        r.status == 401 || r.status == 403,
        "{} {}",
        r.status,
        r.text()
    );
    assert!(r.text().contains("signature"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_exceptions_end_the_stream_without_done() {
    let up = upstream("b").await;
    up.set(BedrockReply::text("one two three").exception_after(2, "modelStreamErrorException"));
    let gw = bedrock_gateway(&up).await;
    let mut sse = gw.client.stream(gw.stream_request("br")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "one two ");
    let last = sse.events.last().expect("events");
    assert!(last.is_error(), "{}", last.data);
    assert!(sse.events.iter().all(|e| !e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_api_is_translated_for_bedrock() {
    let up = upstream("b").await;
    up.set(BedrockReply::text("hi there").tool("f", json!({"x": 1})));
    let gw = bedrock_gateway(&up).await;
    let r = gw
        .post(
            "/v1/messages",
            &json!({"model": "br", "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hello"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0], json!({"type": "text", "text": "hi there"}));
    assert_eq!(v["content"][1]["type"], "tool_use");
    assert_eq!(v["content"][1]["input"], json!({"x": 1}));
    assert_eq!(v["stop_reason"], "tool_use");

    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/messages"),
            &json!({"model": "br", "max_tokens": 50, "stream": true,
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
async fn health_checks_send_a_minimal_signed_converse() {
    let up = upstream("b").await;
    let gw = Gateway::with(&Manifest::new().with(secret()).with(
        bedrock("br", "br", &up).spec_field(
            "healthCheck",
            json!({"enabled": true, "interval": "1s", "timeout": "1s"}),
        ),
    ))
    .await;
    let probed = eventually(WAIT, || async { up.count() > 0 }).await;
    assert!(probed, "no probe");
    let probe = up.requests().into_iter().next().expect("a probe");
    assert!(probe.path.ends_with("/converse"), "{}", probe.path);
    assert_eq!(probe.json()["inferenceConfig"]["maxTokens"], 1);
    let healthy = eventually(WAIT, || async {
        gw.get("/health").await.json()["healthy_count"] == 1
    })
    .await;
    let health = gw.get("/health").await.json();
    assert!(healthy, "{health}");
}

/// The error type Bedrock puts in `x-amzn-errortype` decides what the client sees, even
/// when the status and body alone would say otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_types_from_the_response_header_decide_status_and_fallbacks() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let big = upstream("big").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(secret())
            .with(bedrock("a", "br", &a).order(1).retries(1))
            .with(bedrock("b", "br", &b).order(2).retries(1))
            .with(bedrock("big", "br-big", &big).retries(0))
            .settings(json!({
                "cooldown": {"allowedFails": 100},
                "contextWindowFallbacks": {"br": ["br-big"]},
            })),
    )
    .await;

    // A 400 that the header calls throttling: retried on the other deployment.
    a.then(BedrockReply::fail(
        400,
        "ThrottlingException",
        "Rate exceeded",
    ));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/b"));
    assert_eq!(r.attempts(), Some(2));

    // Not ready (Bedrock sends 429): a 503 once every deployment said so.
    a.then(BedrockReply::fail(
        429,
        "ModelNotReadyException",
        "Model is not ready",
    ));
    b.then(BedrockReply::fail(
        429,
        "ModelNotReadyException",
        "Model is not ready",
    ));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.openai_error()["type"], "service_unavailable");

    // Access denied and an expired token: the client's problem, at once.
    let before = b.count();
    a.then(BedrockReply::fail(
        403,
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.openai_error()["type"], "permission_error");
    a.then(BedrockReply::fail(
        403,
        "ExpiredTokenException:http://internal.amazon.com/coral/com.amazon.coral.service/",
        "The security token included in the request is expired",
    ));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.openai_error()["code"], "invalid_api_key");
    assert_eq!(b.count(), before, "client errors are not retried elsewhere");

    // Input too long: a context-window error, so the context-window fallback serves it.
    a.then(BedrockReply::fail(
        400,
        "ValidationException",
        "Input is too long for requested model.",
    ));
    let r = gw.chat("br").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/big"));
    assert_eq!(b.count(), before);
}
