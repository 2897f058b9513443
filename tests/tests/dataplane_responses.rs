//! The Responses API over sockets: `POST /v1/responses` (whole and streamed) passed through
//! to OpenAI-compatible and Azure deployments with ids that name the deployment, session
//! affinity for `previous_response_id` across a two-deployment group, `GET`/`DELETE` by id,
//! a clear 404 for a deployment gone from the table, 400 for ids not ours, and providers
//! that cannot serve the endpoint skipped.

use http::Method;
use modelgate_testkit::http::json_request;
use modelgate_testkit::{Client, Dep, Gateway, Manifest, MockUpstream, Secret};
use serde_json::{Value, json};

fn body(model: &str, previous: Option<&str>, stream: bool) -> Value {
    let mut b = json!({"model": model, "input": "Say hello."});
    if let Some(p) = previous {
        b["previous_response_id"] = json!(p);
    }
    if stream {
        b["stream"] = json!(true);
    }
    b
}

/// The `response.id`s of a raw SSE body, by event name.
fn stream_ids(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for frame in text.split("\n\n") {
        let name = frame
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap_or_default();
        let data: Value = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        if let Some(id) = data.pointer("/response/id").and_then(Value::as_str) {
            out.push((name.to_owned(), id.to_owned()));
        }
    }
    out
}

#[tokio::test]
async fn create_get_delete_and_stream_pass_through_with_gateway_ids() {
    let up = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "gpt-r", &up))).await;

    let resp = gw.post("/v1/responses", &body("gpt-r", None, false)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    let id = v["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("resp_mg_"), "{id}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["upstream"], "a");
    assert_eq!(resp.deployment(), Some("default/a"));
    let sent = up.last().expect("a request upstream");
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.json()["input"], "Say hello.");
    // The deployment id is inside the id, and decodable; no key or URL is.
    assert!(!id.contains(&up.addr().port().to_string()), "{id}");

    // The short path works too.
    let short = gw.post("/responses", &body("gpt-r", None, false)).await;
    assert_eq!(short.status, 200, "{}", short.text());

    let got = gw.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["id"], id.as_str());
    assert_eq!(got.deployment(), Some("default/a"));
    let raw_id = v["output"][0]["id"]
        .as_str()
        .and_then(|m| m.strip_prefix("msg_"))
        .expect("the mock's message id names the upstream response id")
        .to_owned();
    assert_eq!(
        up.last().expect("the GET").path,
        format!("/v1/responses/{raw_id}")
    );

    let client = Client::new();
    let deleted = client
        .send(json_request(
            Method::DELETE,
            &gw.url(&format!("/v1/responses/{id}")),
            &Value::Null,
        ))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["id"], id.as_str());
    assert_eq!(deleted.json()["deleted"], true);
    let gone = gw.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(gone.status, 404, "{}", gone.text());

    // Streamed: every event as it came (`event:` lines kept), the response id rewritten
    // in `response.created` and `response.completed`.
    let streamed = client
        .send(json_request(
            Method::POST,
            &gw.url("/v1/responses"),
            &body("gpt-r", None, true),
        ))
        .await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let text = streamed.text();
    assert!(text.contains("event: response.created\n"), "{text}");
    assert!(
        text.contains("event: response.output_text.delta\n"),
        "{text}"
    );
    assert!(text.contains("\"delta\":\"a:0 \""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let ids = stream_ids(&text);
    assert_eq!(ids.len(), 2, "{text}");
    assert_eq!(ids[0].0, "response.created");
    assert_eq!(ids[1].0, "response.completed");
    assert!(
        ids.iter().all(|(_, i)| i.starts_with("resp_mg_")),
        "{ids:?}"
    );
    assert_eq!(ids[0].1, ids[1].1);
    // The streamed response is stored upstream and reachable by its gateway id.
    let again = gw.get(&format!("/v1/responses/{}", ids[1].1)).await;
    assert_eq!(again.status, 200, "{}", again.text());
}

#[tokio::test]
async fn follow_ups_stay_on_the_deployment_that_served_the_first_response() {
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "pair", &a).retries(1))
            .with(Dep::new("b", "pair", &b).retries(1)),
    )
    .await;

    // Several sessions, so that both deployments start some.
    let mut starts = Vec::new();
    for _ in 0..8 {
        let r = gw.post("/v1/responses", &body("pair", None, false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        starts.push((
            r.json()["id"].as_str().expect("id").to_owned(),
            r.deployment().expect("deployment").to_owned(),
        ));
    }
    for (first, owner) in starts {
        let mut previous = first;
        for i in 0..6 {
            let stream = i % 2 == 1;
            let req_body = body("pair", Some(&previous), stream);
            let r = Client::new()
                .send(json_request(
                    Method::POST,
                    &gw.url("/v1/responses"),
                    &req_body,
                ))
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.deployment(), Some(owner.as_str()), "{}", r.text());
            let up = if owner == "default/a" { &a } else { &b };
            let sent = up.last().expect("the follow-up upstream").json();
            // The upstream's own id went upstream, not ours.
            let sent_previous = sent["previous_response_id"].as_str().expect("previous");
            assert!(sent_previous.starts_with("resp_"), "{sent}");
            assert!(!sent_previous.starts_with("resp_mg_"), "{sent}");
            previous = if stream {
                let ids = stream_ids(&r.text());
                ids.last().expect("a completed event").1.clone()
            } else {
                r.json()["id"].as_str().expect("id").to_owned()
            };
            assert!(previous.starts_with("resp_mg_"), "{previous}");
        }
    }
}

#[tokio::test]
async fn pinned_follow_ups_retry_on_their_deployment_only() {
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "solo", &a).retries(2))
            .with(Dep::new("b", "other", &b)),
    )
    .await;
    let first = gw.post("/v1/responses", &body("solo", None, false)).await;
    let id = first.json()["id"].as_str().expect("id").to_owned();
    a.then(modelgate_testkit::Reply::fail(503));
    let r = gw
        .post("/v1/responses", &body("solo", Some(&id), false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.attempts(), Some(2));
    assert_eq!(b.count(), 0);
}

#[tokio::test]
async fn ids_of_deleted_deployments_and_foreign_ids_are_refused_clearly() {
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "solo-a", &a))
            .with(Dep::new("b", "solo-b", &b)),
    )
    .await;
    let r = gw.post("/v1/responses", &body("solo-a", None, false)).await;
    let id = r.json()["id"].as_str().expect("id").to_owned();

    // A table without deployment a.
    gw.apply(&Manifest::new().with(Dep::new("b", "solo-b", &b)))
        .await;
    let before_b = b.count();
    for resp in [
        gw.post("/v1/responses", &body("solo-b", Some(&id), false))
            .await,
        gw.post("/v1/responses", &body("solo-b", Some(&id), true))
            .await,
        gw.get(&format!("/v1/responses/{id}")).await,
    ] {
        assert_eq!(resp.status, 404, "{}", resp.text());
        let e = resp.openai_error();
        assert_eq!(e["code"], "response_not_found");
        assert_eq!(e["type"], "invalid_request_error");
        let message = e["message"].as_str().expect("message");
        assert!(message.contains("default/a"), "{message}");
        assert!(message.contains("no longer exists"), "{message}");
    }
    assert_eq!(b.count(), before_b, "never a random route");

    // A raw upstream id, and a malformed one.
    for bad in ["resp_1", "resp_mg_!!.resp_1", "resp_mg_ZGVmYXVsdC9i"] {
        let resp = gw
            .post("/v1/responses", &body("solo-b", Some(bad), false))
            .await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
        assert_eq!(resp.openai_error()["param"], "previous_response_id");
        let got = gw.get(&format!("/v1/responses/{bad}")).await;
        assert_eq!(got.status, 400, "{bad}: {}", got.text());
    }
    let raw = gw
        .post("/v1/responses", &body("solo-b", Some("resp_1"), false))
        .await;
    assert!(
        raw.text()
            .contains("not a response id issued by this gateway"),
        "{}",
        raw.text()
    );
    assert_eq!(b.count(), before_b);
}

#[tokio::test]
async fn providers_without_the_responses_api_are_skipped() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Secret::new("keys").entry("anthropic", "sk-ant"))
            .with(Dep::mock("m", "mixed").retries(0))
            .with(Dep::new("a", "mixed", &a).retries(0))
            .with(Dep::mock("m2", "mock-only"))
            .with(
                Dep::at("claude", "mock-only", "anthropic", "http://127.0.0.1:9")
                    .upstream_model("claude-sonnet-4-5")
                    .key("keys", "anthropic"),
            ),
    )
    .await;
    for _ in 0..10 {
        let r = gw.post("/v1/responses", &body("mixed", None, false)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.deployment(), Some("default/a"));
    }
    let r = gw
        .post("/v1/responses", &body("mock-only", None, false))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.openai_error()["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(message.contains("/v1/responses"), "{message}");
    // Chat on the same group still works.
    assert_eq!(gw.chat("mixed").await.status, 200);
}

#[tokio::test]
async fn azure_deployments_use_the_responses_path() {
    let up = MockUpstream::start("az").await;
    up.require_key("az-key");
    let gw = Gateway::with(
        &Manifest::new()
            .with(Secret::new("keys").entry("azure", "az-key"))
            .with(
                Dep::azure("az", "gpt-az", &up, "my-gpt", "2025-03-01-preview")
                    .key("keys", "azure"),
            ),
    )
    .await;
    let r = gw.post("/v1/responses", &body("gpt-az", None, false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.last().expect("a request");
    assert_eq!(sent.path, "/openai/responses");
    assert_eq!(
        sent.query.as_deref(),
        Some("api-version=2025-03-01-preview")
    );
    assert_eq!(sent.model().as_deref(), Some("my-gpt"));
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let follow = gw
        .post("/v1/responses", &body("gpt-az", Some(&id), false))
        .await;
    assert_eq!(follow.status, 200, "{}", follow.text());
    let got = gw.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let sent = up.last().expect("the GET");
    assert!(
        sent.path.starts_with("/openai/responses/resp_"),
        "{}",
        sent.path
    );
    assert_eq!(
        sent.query.as_deref(),
        Some("api-version=2025-03-01-preview")
    );
}

/// The events of a raw SSE body: `(event name, data)`.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn a_stream_failing_after_the_first_byte_ends_with_the_responses_error_event() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "gpt-r", &a).idle_timeout("300ms")))
        .await;
    let client = Client::new();
    // The connection drops after three events; then a stream that goes silent.
    for (reply, says) in [
        (
            modelgate_testkit::Reply::ok().chunks(5).die_after(3),
            "mid-stream",
        ),
        (
            modelgate_testkit::Reply::ok().chunks(5).stall_after(2),
            "sent nothing for 300ms",
        ),
    ] {
        a.set(reply);
        let r = client
            .send(json_request(
                Method::POST,
                &gw.url("/v1/responses"),
                &body("gpt-r", None, true),
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        let events = events(&text);
        let (name, error) = events.last().expect("events");
        assert_eq!(name, "error", "{text}");
        assert_eq!(error["type"], "error", "{text}");
        let message = error["message"].as_str().expect("a message");
        assert!(message.contains(says), "{message}");
        assert!(message.contains("default/a"), "{message}");
        assert_eq!(error["code"], "upstream_error", "{text}");
        assert!(error["param"].is_null(), "{text}");
        // Numbered right after the last event the upstream sent.
        let before = events[events.len() - 2].1["sequence_number"]
            .as_u64()
            .expect("the upstream's events are numbered");
        assert_eq!(error["sequence_number"], before + 1, "{text}");
        // Not the chat completions' shape, and no completion faked.
        assert!(!text.contains("data: {\"error\""), "{text}");
        assert!(!text.contains("response.completed"), "{text}");
        assert!(!text.contains("[DONE]"), "{text}");
    }
    // Chat streams keep theirs.
    a.set(modelgate_testkit::Reply::ok().chunks(5).die_after(3));
    let chat = client.send(gw.stream_request("gpt-r")).await;
    let text = chat.text();
    assert!(text.contains("data: {\"error\""), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}

#[tokio::test]
async fn follow_ups_must_name_a_model_that_reaches_the_pinned_deployment() {
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    let c = MockUpstream::start("c").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "solo-a", &a))
            .with(Dep::new("b", "solo-b", &b))
            .with(Dep::new("c", "solo-c", &c))
            .with(modelgate_testkit::Alias::new("team").target("solo-a", 1))
            .with(
                modelgate_testkit::Alias::new("b-first")
                    .target("solo-b", 1)
                    .fallback("solo-a"),
            ),
    )
    .await;
    let first = gw.post("/v1/responses", &body("solo-a", None, false)).await;
    assert_eq!(first.deployment(), Some("default/a"));
    let id = first.json()["id"].as_str().expect("id").to_owned();
    let before = (a.count(), b.count(), c.count());

    // A model whose routes never reach deployment a: a 400 naming both, nothing sent.
    for stream in [false, true] {
        let r = gw
            .post("/v1/responses", &body("solo-b", Some(&id), stream))
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        let e = r.openai_error();
        assert_eq!(e["param"], "model");
        assert_eq!(e["type"], "invalid_request_error");
        let message = e["message"].as_str().expect("message");
        assert!(message.contains("`solo-b`"), "{message}");
        assert!(message.contains("default/a"), "{message}");
        assert!(message.contains("`solo-a`"), "{message}");
    }
    // A model the gateway does not know: the usual 404.
    let unknown = gw
        .post("/v1/responses", &body("nope", Some(&id), false))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(unknown.openai_error()["code"], "model_not_found");
    assert_eq!((a.count(), b.count(), c.count()), before);

    // Any route to a will do: the group itself, an alias targeting it, an alias whose
    // fallback it is.
    for model in ["solo-a", "team", "b-first"] {
        let r = gw
            .post("/v1/responses", &body(model, Some(&id), false))
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.deployment(), Some("default/a"), "{model}");
    }
    assert_eq!(b.count(), before.1);
    assert_eq!(c.count(), before.2);
}

/// An OpenAI-compatible upstream holding one stored response, `resp_1`, whose
/// `GET`/`DELETE` answers take their status from the script (200 answers the response).
struct StoredUpstream {
    script: std::sync::Arc<modelgate_testkit::script::Script<u16>>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StoredUpstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let script = std::sync::Arc::new(modelgate_testkit::script::Script::new(200u16));
        let handler = {
            let script = std::sync::Arc::clone(&script);
            move |req| {
                let script = std::sync::Arc::clone(&script);
                async move {
                    let (parts, _) = script.record(req).await;
                    let (status, body) = if parts.method == Method::POST {
                        (
                            200,
                            json!({"id": "resp_1", "object": "response", "status": "completed"}),
                        )
                    } else {
                        match script.next_reply() {
                            200 => (
                                200,
                                json!({"id": "resp_1", "object": "response", "status": "completed"}),
                            ),
                            s => (
                                s,
                                json!({"error": {"message": format!("scripted {s}"), "type": "server_error", "param": null, "code": null}}),
                            ),
                        }
                    };
                    let mut resp = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(body.to_string()),
                    ));
                    *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    if status == 429 {
                        resp.headers_mut()
                            .insert("retry-after", http::HeaderValue::from_static("1"));
                    }
                    resp
                }
            }
        };
        let task = tokio::spawn(modelgate_testkit::script::serve(listener, handler));
        Self { script, addr, task }
    }

    fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The `GET`s and `DELETE`s received.
    fn by_id(&self) -> Vec<modelgate_testkit::upstream::Recorded> {
        self.script
            .requests()
            .into_iter()
            .filter(|r| r.method != Method::POST)
            .collect()
    }
}

impl Drop for StoredUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn get_and_delete_by_id_retry_on_their_deployment_and_carry_trace_context() {
    let up = StoredUpstream::start().await;
    let gw = Gateway::with(
        &Manifest::new().with(Dep::at("s", "stored", "openai-compatible", &up.base()).retries(2)),
    )
    .await;
    let created = Client::new()
        .send(json_request(
            Method::POST,
            &gw.url("/v1/responses"),
            &json!({"model": "stored", "input": "hi"}),
        ))
        .await;
    assert_eq!(
        created.deployment(),
        Some("default/s"),
        "{}",
        created.text()
    );
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let url = gw.url(&format!("/v1/responses/{id}"));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = |method: Method| {
        modelgate_testkit::http::with_header(
            modelgate_testkit::http::with_header(
                json_request(method, &url, &Value::Null),
                "traceparent",
                traceparent,
            ),
            "tracestate",
            "mg=1",
        )
    };
    let client = Client::new();

    // Two failures (a 503, a 429 asking for 1 s), then the answer: three attempts.
    up.script.then(503).then(429);
    let started = std::time::Instant::now();
    let got = client.send(traced(Method::GET)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["id"], id.as_str());
    assert_eq!(got.deployment(), Some("default/s"));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After honoured"
    );
    let sent = up.by_id();
    assert_eq!(sent.len(), 3);
    for r in &sent {
        assert_eq!(r.path, "/v1/responses/resp_1");
        assert_eq!(r.header("traceparent"), Some(traceparent));
        assert_eq!(r.header("tracestate"), Some("mg=1"));
    }

    // Out of retries: the last failure, after 1 + retries attempts, never elsewhere.
    up.script.then(502).then(502).then(502);
    let failed = client.send(traced(Method::DELETE)).await;
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert!(failed.openai_error()["message"].as_str().is_some());
    assert_eq!(up.by_id().len(), 6);

    // A client error is not retried.
    up.script.then(404);
    let missing = client.send(traced(Method::GET)).await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(up.by_id().len(), 7);

    // DELETE retried too, then answered.
    up.script.then(500);
    let deleted = client.send(traced(Method::DELETE)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let sent = up.by_id();
    assert_eq!(sent.len(), 9);
    assert!(sent[7..].iter().all(|r| r.method == Method::DELETE));
}
