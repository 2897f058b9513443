//! Issue 6's "done when", over sockets: one alias with targets on an OpenAI-compatible,
//! an Anthropic, a Gemini and a Bedrock deployment serves chat, streaming and tool calls
//! in OpenAI's shape whichever answers, and fails over between them when the others
//! fail (rate limits, overload, outages), and a group mixing the four fails over from its first
//! priority tier to the others.

use std::time::Duration;

use http::Method;
use modelgate_testkit::anthropic_upstream::{AnthropicReply, AnthropicUpstream};
use modelgate_testkit::bedrock_upstream::{BedrockReply, BedrockUpstream, Credentials};
use modelgate_testkit::gemini_upstream::{GeminiReply, GeminiUpstream};
use modelgate_testkit::http::json_request;
use modelgate_testkit::{Alias, Dep, Gateway, Manifest, MockUpstream, Reply, Secret};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const REGION: &str = "us-west-2";

struct Upstreams {
    openai: MockUpstream,
    anthropic: AnthropicUpstream,
    gemini: GeminiUpstream,
    bedrock: BedrockUpstream,
}

impl Upstreams {
    async fn start() -> Upstreams {
        Upstreams {
            openai: MockUpstream::start("gpt").await,
            anthropic: AnthropicUpstream::start("claude").await,
            gemini: GeminiUpstream::start("gemini").await,
            bedrock: BedrockUpstream::start(
                "bedrock",
                REGION,
                Credentials::new("AKIAMIXED", "mixed-secret", None),
            )
            .await,
        }
    }

    /// Every upstream but `answering` fails with its provider's retryable error.
    fn only(&self, answering: &str) {
        let fail = |name: &str| name != answering;
        self.openai.set(if fail("gpt") {
            Reply::fail(503)
        } else {
            Reply::ok()
        });
        self.anthropic.set(if fail("claude") {
            AnthropicReply::fail(529, "overloaded_error", "Overloaded")
        } else {
            AnthropicReply::text("answer from claude").tool("lookup", json!({"q": "claude"}))
        });
        self.gemini.set(if fail("gemini") {
            GeminiReply::fail(429, "RESOURCE_EXHAUSTED", "quota")
        } else {
            GeminiReply::text("answer from gemini").tool("lookup", json!({"q": "gemini"}))
        });
        self.bedrock.set(if fail("bedrock") {
            BedrockReply::fail(429, "ThrottlingException", "slow down")
        } else {
            BedrockReply::text("answer from bedrock").tool("lookup", json!({"q": "bedrock"}))
        });
    }

    /// The four deployments, `group(provider)` naming each one's group, with `retries`
    /// (within a group, a retry goes to another deployment).
    fn manifest(
        &self,
        group: impl Fn(&str) -> String,
        order: impl Fn(&str) -> u32,
        retries: u32,
    ) -> Manifest {
        Manifest::new()
            .with(
                Secret::new("keys")
                    .entry("anthropic", "sk-ant")
                    .entry("gemini", "g-key"),
            )
            .with(
                Secret::new("aws")
                    .entry("id", "AKIAMIXED")
                    .entry("secret", "mixed-secret"),
            )
            .with(
                Dep::new("gpt", &group("gpt"), &self.openai)
                    .order(order("gpt"))
                    .retries(retries),
            )
            .with(
                Dep::at(
                    "claude",
                    &group("claude"),
                    "anthropic",
                    &self.anthropic.url(),
                )
                .upstream_model("claude-sonnet-4-5")
                .key("keys", "anthropic")
                .order(order("claude"))
                .retries(retries),
            )
            .with(
                Dep::at("gemini", &group("gemini"), "gemini", &self.gemini.url())
                    .upstream_model("gemini-2.5-flash")
                    .key("keys", "gemini")
                    .order(order("gemini"))
                    .retries(retries),
            )
            .with(
                Dep::at("bedrock", &group("bedrock"), "bedrock", &self.bedrock.url())
                    .spec_field(
                        "upstream",
                        json!({
                            "provider": "bedrock",
                            "apiBase": self.bedrock.url(),
                            "model": "amazon.nova-lite-v1:0",
                            "region": REGION,
                            "credentials": {"secretName": "aws", "keys": {
                                "accessKeyId": "id", "secretAccessKey": "secret"}},
                        }),
                    )
                    .order(order("bedrock"))
                    .retries(retries),
            )
            .settings(json!({"cooldown": {"allowedFails": 1000}}))
    }
}

const PROVIDERS: [&str; 4] = ["gpt", "claude", "gemini", "bedrock"];

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
}

/// Chat, a stream with usage and tool calls through `model`, answered by `who`.
async fn serves_everything(gw: &Gateway, model: &str, who: &str) {
    let r = gw.chat(model).await;
    assert_eq!(r.status, 200, "{who}: {}", r.text());
    assert_eq!(r.deployment(), Some(format!("default/{who}").as_str()));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{who}: {v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("answer from {who}")
    );
    if who != "gpt" {
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{who}");
        assert_eq!(v["usage"]["completion_tokens"], 7, "{who}");
    }

    let mut sse = gw
        .client
        .stream(json_request(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hi"}], "tools": tools()}),
        ))
        .await;
    assert_eq!(sse.status, 200, "{who}");
    sse.read_to_end(WAIT).await;
    assert!(sse.events.last().is_some_and(|e| e.is_done()), "{who}");
    let chunks: Vec<Value> = sse.events.iter().map(|e| e.json()).collect();
    assert!(
        chunks
            .iter()
            .all(|c| c.is_null() || c["object"] == "chat.completion.chunk"),
        "{who}"
    );
    if who == "gpt" {
        assert!(sse.text().starts_with("gpt:"), "{}", sse.text());
        return;
    }
    assert_eq!(sse.text(), format!("answer from {who}"));
    let mut name = None;
    let mut args = String::new();
    for c in &chunks {
        for call in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(call["index"], 0, "{who}");
            if let Some(n) = call["function"]["name"].as_str() {
                name = Some(n.to_owned());
            }
            args.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(name.as_deref(), Some("lookup"), "{who}");
    assert_eq!(
        serde_json::from_str::<Value>(&args).ok(),
        Some(json!({"q": who})),
        "{who}"
    );
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object() && c["choices"] == json!([]))
        .unwrap_or_else(|| panic!("{who}: no usage chunk"));
    assert!(
        usage["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{who}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_over_four_providers_serves_and_fails_over_between_them() {
    let ups = Upstreams::start().await;
    let gw = Gateway::with(
        &ups.manifest(|p| format!("{p}-group"), |_| 1, 0).with(
            Alias::new("assistant")
                .target("gpt-group", 1)
                .target("claude-group", 1)
                .target("gemini-group", 1)
                .target("bedrock-group", 1),
        ),
    )
    .await;
    for who in PROVIDERS {
        ups.only(who);
        // Whichever target is picked first, the others fail over to `who`.
        for _ in 0..3 {
            serves_everything(&gw, "assistant", who).await;
        }
    }

    // All four down: the client gets the last error, OpenAI-shaped.
    ups.only("nobody");
    let r = gw.chat("assistant").await;
    assert!(
        r.status == 429 || r.status == 503,
        "{} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.attempts(), Some(4));
    r.openai_error();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_over_four_providers_fails_over_from_its_first_tier() {
    let ups = Upstreams::start().await;
    let order = |p: &str| match p {
        "bedrock" => 1,
        "gemini" => 2,
        "claude" => 3,
        _ => 4,
    };
    let gw = Gateway::with(&ups.manifest(|_| "mixed".to_owned(), order, 3)).await;
    ups.only("gpt");
    let r = gw.chat("mixed").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.attempts(), Some(4));
    let mut order_seen: Vec<(u64, &str)> = Vec::new();
    order_seen.extend(ups.bedrock.requests().iter().map(|r| (r.seq, "bedrock")));
    order_seen.extend(ups.gemini.requests().iter().map(|r| (r.seq, "gemini")));
    order_seen.extend(ups.anthropic.requests().iter().map(|r| (r.seq, "claude")));
    order_seen.extend(ups.openai.requests().iter().map(|r| (r.seq, "gpt")));
    order_seen.sort();
    let mut names: Vec<&str> = order_seen.iter().map(|(_, n)| *n).collect();
    // The first priority tier first; each retry on a deployment not tried yet.
    assert_eq!(names.first(), Some(&"bedrock"), "{names:?}");
    names.sort_unstable();
    assert_eq!(names, ["bedrock", "claude", "gemini", "gpt"]);
    // The OpenAI-compatible deployment got the client's body as OpenAI's.
    assert_eq!(
        ups.openai.last().and_then(|r| r.model()).as_deref(),
        Some("mixed")
    );

    for who in ["bedrock", "gemini", "claude"] {
        ups.only(who);
        serves_everything(&gw, "mixed", who).await;
    }
}

/// Found by fuzzing (`fuzz/fuzz_targets/request_head.rs`): a JSON array whose first
/// element is a string read as a request with that `model` (serde reads a struct from a
/// sequence too). Only an object is a request, on every endpoint and whichever provider
/// would serve it; nothing reaches an upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_json_objects_are_refused_before_routing() {
    let ups = Upstreams::start().await;
    let gw = Gateway::with(&ups.manifest(|p| p.to_owned(), |_| 1, 0)).await;
    let client = modelgate_testkit::Client::new();
    for model in PROVIDERS {
        for path in [
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
            "/v1/messages",
            "/v1/responses",
        ] {
            for body in [json!([model]), json!([model, true]), json!(model)] {
                let r = client
                    .send(json_request(Method::POST, &gw.url(path), &body))
                    .await;
                assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
                assert!(
                    r.text().contains("must be a JSON object"),
                    "{path} {body}: {}",
                    r.text()
                );
            }
        }
    }
    assert_eq!(ups.openai.requests().len(), 0);
    assert_eq!(ups.anthropic.requests().len(), 0);
    assert_eq!(ups.gemini.requests().len(), 0);
    assert_eq!(ups.bedrock.requests().len(), 0);
}
