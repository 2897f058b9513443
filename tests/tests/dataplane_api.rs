//! The public API's edges, on real sockets: auth with a master key, body limits, malformed
//! requests, request ids and trace context, the read-only endpoints (`/v1/models`,
//! `/model/info`, `/model_group/info`, `/health`) and readiness.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use modelgate_testkit::http::{json_request, raw_request, with_header};
use modelgate_testkit::{Alias, Dep, Gateway, Manifest, MockUpstream, Secret, chat_body};
use serde_json::{Value, json};

const MASTER: &str = "sk-master-key-0123456789";
const UPSTREAM_KEY: &str = "sk-upstream-very-secret-4242";
const AZURE_KEY: &str = "azure-very-secret-key-7777";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_a_table_liveliness_does_not() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::start().await;
    let r = gw.get("/health/readiness").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(gw.get("/health/liveliness").await.status, 200);
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 503, "no table yet: {}", r.text());
    r.openai_error();

    let table = gw
        .apply(&Manifest::new().with(Dep::new("a", "chat", &a)))
        .await;
    let r = gw.get("/health/readiness").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revision"], table.revision);
    assert_eq!(r.json()["version"], table.version);
    assert_eq!(gw.chat("chat").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_guards_everything_but_liveliness_and_readiness() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Secret::new("gateway").entry("master", MASTER))
            .with(Dep::new("a", "chat", &a))
            .settings(json!({"masterKey": {"secretKeyRef": {"name": "gateway", "key": "master"}}})),
    )
    .await;

    let chat = || gw.chat_request("chat");
    let refused = [
        ("no key", chat()),
        (
            "wrong bearer",
            with_header(chat(), "authorization", "Bearer sk-wrong"),
        ),
        (
            "key prefix",
            with_header(
                chat(),
                "authorization",
                &format!("Bearer {}", &MASTER[..10]),
            ),
        ),
        (
            "key plus junk",
            with_header(chat(), "authorization", &format!("Bearer {MASTER}x")),
        ),
        ("wrong api-key", with_header(chat(), "api-key", "nope")),
        ("wrong x-api-key", with_header(chat(), "x-api-key", "nope")),
        (
            "empty bearer",
            with_header(chat(), "authorization", "Bearer "),
        ),
    ];
    for (what, req) in refused {
        let r = gw.client.send(req).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let e = r.openai_error();
        assert_eq!(e["type"], "authentication_error", "{what}");
        assert_eq!(e["code"], "invalid_api_key", "{what}");
        assert!(
            !r.text().contains(MASTER),
            "{what}: the key is never echoed"
        );
    }
    assert_eq!(a.count(), 0, "refused requests never reach the upstream");

    let accepted = [
        (
            "bearer",
            with_header(chat(), "authorization", &format!("Bearer {MASTER}")),
        ),
        (
            "lowercase bearer",
            with_header(chat(), "authorization", &format!("bearer {MASTER}")),
        ),
        ("api-key", with_header(chat(), "api-key", MASTER)),
        ("x-api-key", with_header(chat(), "x-api-key", MASTER)),
    ];
    for (what, req) in accepted {
        let r = gw.client.send(req).await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
    }
    // The client's key is the gateway's, never forwarded upstream.
    for seen in a.requests() {
        for (name, value) in &seen.headers {
            assert!(
                !value
                    .as_bytes()
                    .windows(MASTER.len())
                    .any(|w| w == MASTER.as_bytes()),
                "the master key reached the upstream in {name}"
            );
        }
    }

    // Listing endpoints need the key too; the probes do not.
    for path in ["/v1/models", "/model/info", "/model_group/info", "/health"] {
        assert_eq!(gw.get(path).await.status, 401, "{path}");
        assert_eq!(
            gw.client.get_with_key(&gw.url(path), MASTER).await.status,
            200,
            "{path}"
        );
    }
    for path in ["/health/liveliness", "/health/readiness"] {
        assert_eq!(gw.get(path).await.status, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_whatever_their_framing() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "chat", &a))
            .settings(json!({"maxRequestBodyBytes": 2048})),
    )
    .await;
    let big = json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    // With Content-Length.
    let r = gw.post("/v1/chat/completions", &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.openai_error()["type"], "invalid_request_error");
    // Chunked, no Content-Length: the limit holds while reading.
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = big
        .to_string()
        .into_bytes()
        .chunks(512)
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let resp = chunked_post(&gw.url("/v1/chat/completions"), body).await;
    assert_eq!(resp.0, 413, "{}", resp.1);
    // Under the limit: fine.
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(a.count(), 1);
}

/// POSTs a chunked body (no Content-Length) on a fresh connection.
async fn chunked_post<B>(url: &str, body: B) -> (u16, String)
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().expect("url");
    let authority = uri.authority().expect("authority").to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = Request::post(uri.path())
        .header("host", authority)
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_in_openai_shape() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    let url = gw.url("/v1/chat/completions");
    let cases: [(&str, &str, Option<&str>); 5] = [
        ("not JSON", "{\"model\": \"chat\", ", None),
        ("not an object", "[1, 2]", None),
        ("no model", "{\"messages\": []}", Some("model")),
        ("model not a string", "{\"model\": 7}", Some("model")),
        ("empty body", "", None),
    ];
    for (what, body, param) in cases {
        let r = gw.client.send(raw_request(Method::POST, &url, body)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let e = r.openai_error();
        assert_eq!(e["type"], "invalid_request_error", "{what}: {e}");
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{what}: {e}");
        }
    }
    assert_eq!(a.count(), 0);

    // Wrong method, unknown path.
    let r = gw.get("/v1/chat/completions").await;
    assert_eq!(r.status, 405, "{}", r.text());
    r.openai_error();
    let r = gw.get("/v1/nothing-here").await;
    assert_eq!(r.status, 404, "{}", r.text());
    r.openai_error();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_kept_or_made_and_trace_context_passes_through() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = with_header(gw.chat_request("chat"), "x-request-id", "req-abc-123");
    let req = with_header(req, "traceparent", traceparent);
    let req = with_header(req, "tracestate", "vendor=opaque");
    let req = with_header(req, "x-private-client-header", "do-not-forward");
    let r = gw.client.send(req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
    let seen = a.last().expect("request");
    assert_eq!(seen.header("traceparent"), Some(traceparent));
    assert_eq!(seen.header("tracestate"), Some("vendor=opaque"));
    assert_eq!(seen.header("x-private-client-header"), None);

    // Made up when missing, different each time, on errors and streams too.
    let r1 = gw.chat("chat").await;
    let r2 = gw.chat("nope").await;
    assert_eq!(r2.status, 404);
    let id1 = r1.header("x-request-id").expect("an id").to_owned();
    let id2 = r2
        .header("x-request-id")
        .expect("an id on errors")
        .to_owned();
    assert!(id1.len() >= 16 && id1 != id2, "{id1} {id2}");
    let sse = gw.client.stream(gw.stream_request("chat")).await;
    assert!(sse.header("x-request-id").is_some_and(|id| id != id1));
    let r = gw
        .client
        .send(with_header(gw.chat_request("nope"), "x-request-id", "mine"))
        .await;
    assert_eq!(r.header("x-request-id"), Some("mine"));
}

/// A fleet with a credential on every deployment and a master key, aliases (one hidden)
/// over the groups.
async fn fleet() -> (Gateway, MockUpstream, MockUpstream) {
    let (a, az) = (
        MockUpstream::start("a").await,
        MockUpstream::start("az").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Secret::new("keys")
                    .entry("openai", UPSTREAM_KEY)
                    .entry("azure", AZURE_KEY)
                    .entry("master", MASTER),
            )
            .with(
                Dep::new("a1", "gpt-4o", &a)
                    .provider("openai")
                    .key("keys", "openai")
                    .info("mode", json!("chat"))
                    .info("contextWindow", json!(128_000))
                    .info("inputCostPerToken", json!(0.0000025)),
            )
            .with(
                Dep::azure("az1", "gpt-4o", &az, "prod-gpt4o", "2024-10-21")
                    .key("keys", "azure")
                    .info("mode", json!("chat")),
            )
            .with(
                Dep::new("e1", "embed", &a)
                    .provider("openai")
                    .key("keys", "openai")
                    .info("mode", json!("embedding")),
            )
            .with(Alias::new("smart").target("gpt-4o", 1))
            .with(Alias::new("secret-canary").target("gpt-4o", 1).hidden())
            .settings(json!({"masterKey": {"secretKeyRef": {"name": "keys", "key": "master"}}})),
    )
    .await;
    (gw, a, az)
}

async fn get_json(gw: &Gateway, path: &str) -> (Value, String) {
    let r = gw.client.get_with_key(&gw.url(path), MASTER).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    for secret in [UPSTREAM_KEY, AZURE_KEY, MASTER] {
        assert!(
            !r.text().contains(secret),
            "{path} shows a credential: {}",
            r.text()
        );
    }
    (r.json(), r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_groups_and_visible_aliases() {
    let (gw, _a, _az) = fleet().await;
    let (v, _) = get_json(&gw, "/v1/models").await;
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model", "{m}");
            m["id"].as_str().expect("id")
        })
        .collect();
    assert_eq!(
        ids,
        ["embed", "gpt-4o", "smart"],
        "the hidden alias is not listed"
    );
    for id in ["gpt-4o", "smart"] {
        let (m, _) = get_json(&gw, &format!("/v1/models/{id}")).await;
        assert_eq!(m["id"], id);
    }
    // Hidden, but routed.
    let r = gw
        .client
        .send(with_header(
            gw.chat_request("secret-canary"),
            "authorization",
            &format!("Bearer {MASTER}"),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_info_lists_each_deployment_again_under_each_alias_without_credentials() {
    let (gw, _a, _az) = fleet().await;
    let (v, _) = get_json(&gw, "/model/info").await;
    let rows = v["data"].as_array().expect("data");
    let mut by_name: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for row in rows {
        let name = row["model_name"].as_str().expect("model_name");
        let id = row["model_info"]["id"].as_str().expect("model_info.id");
        by_name.entry(name).or_default().push(id);
        assert!(row["litellm_params"].is_object(), "{row}");
        let params = row["litellm_params"].as_object().expect("params");
        for key in ["api_key", "azure_ad_token", "aws_secret_access_key"] {
            assert!(
                params.get(key).is_none_or(Value::is_null),
                "litellm_params.{key}: {row}"
            );
        }
    }
    let mut ids = by_name["gpt-4o"].clone();
    ids.sort_unstable();
    assert_eq!(ids, ["default/a1", "default/az1"]);
    let mut smart = by_name["smart"].clone();
    smart.sort_unstable();
    assert_eq!(
        smart, ids,
        "the alias lists the same deployments with the same ids"
    );
    assert_eq!(by_name["embed"], ["default/e1"]);
    let az = rows
        .iter()
        .find(|r| r["model_info"]["id"] == "default/az1")
        .expect("az1");
    assert_eq!(az["litellm_params"]["api_version"], "2024-10-21");
    let a1 = rows
        .iter()
        .find(|r| r["model_info"]["id"] == "default/a1")
        .expect("a1");
    assert_eq!(a1["model_info"]["max_input_tokens"], 128_000);
    assert_eq!(a1["model_info"]["mode"], "chat");
    // The same under /v1/model/info.
    let (v1, _) = get_json(&gw, "/v1/model/info").await;
    assert_eq!(v1, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_group_info_has_a_row_per_group_and_alias() {
    let (gw, _a, _az) = fleet().await;
    let (v, _) = get_json(&gw, "/model_group/info").await;
    let rows = v["data"].as_array().expect("data");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["model_group"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {v}"))
    };
    let g = row("gpt-4o");
    assert_eq!(g["providers"], json!(["azure", "openai"]), "{g}");
    assert_eq!(g["mode"], "chat", "{g}");
    let s = row("smart");
    assert_eq!(s["providers"], g["providers"], "{s}");
    assert_eq!(s["deployments"], 2, "{s}");
    assert_eq!(row("embed")["mode"], "embedding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_lists_each_deployment_once_whatever_the_aliases() {
    let (gw, _a, _az) = fleet().await;
    let (v, _) = get_json(&gw, "/health").await;
    let mut ids: Vec<String> = [
        "healthy_endpoints",
        "unhealthy_endpoints",
        "unknown_endpoints",
    ]
    .iter()
    .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
    .map(|e| e["id"].as_str().expect("id").to_owned())
    .collect();
    ids.sort();
    assert_eq!(ids, ["default/a1", "default/az1", "default/e1"], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_or_error_shows_a_credential() {
    let (gw, a, az) = fleet().await;
    // Upstream errors that echo what they were sent must not carry keys back either:
    // the upstreams here answer 401 with their own message.
    a.require_key("something-else");
    az.require_key("something-else");
    let auth = format!("Bearer {MASTER}");
    for model in ["gpt-4o", "smart", "embed"] {
        let req = if model == "embed" {
            json_request(
                Method::POST,
                &gw.url("/v1/embeddings"),
                &json!({"model": "embed", "input": "x"}),
            )
        } else {
            json_request(
                Method::POST,
                &gw.url("/v1/chat/completions"),
                &chat_body(model),
            )
        };
        let r = gw
            .client
            .send(with_header(req, "authorization", &auth))
            .await;
        for secret in [UPSTREAM_KEY, AZURE_KEY, MASTER] {
            assert!(!r.text().contains(secret), "{model}: {}", r.text());
        }
    }
    let req: Request<Full<Bytes>> = Request::get(gw.admin_url("/v1/health-report"))
        .header(
            "authorization",
            format!("Bearer {}", modelgate_testkit::ADMIN_TOKEN),
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = gw.client.send(req).await;
    assert_eq!(r.status, 200);
    for secret in [UPSTREAM_KEY, AZURE_KEY, MASTER] {
        assert!(!r.text().contains(secret), "health report: {}", r.text());
    }
}
