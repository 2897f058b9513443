//! Credentials never leak: traffic of every kind (answers, streams, embeddings, upstream
//! errors, refused keys, health checks of several providers, unauthenticated clients)
//! runs through the real `modelgate-dataplane` binary and `modelgate-operator local`
//! with distinctive fake keys, their logs captured at debug level; then every public,
//! admin and metrics endpoint is read. No key, master key or admin token appears in any
//! of it. Also: the admin API refuses a missing or wrong token, and the public port does
//! not serve admin paths.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use modelgate_testkit::anthropic_upstream::AnthropicUpstream;
use modelgate_testkit::http::{json_request, raw_request, with_header};
use modelgate_testkit::{
    Alias, Client, Dep, Manifest, MockUpstream, Reply, Secret, TempDir, binary, compile_ok, ms,
};
use serde_json::json;

const OPENAI_KEY: &str = "sk-LEAKCANARY-openai-51c0ffee";
const WRONG_KEY: &str = "sk-LEAKCANARY-wrong-77deadbeef";
const AZURE_KEY: &str = "LEAKCANARY-azure-0a1b2c3d4e";
const ANTHROPIC_KEY: &str = "sk-ant-LEAKCANARY-9f8e7d6c";
const MASTER_KEY: &str = "sk-LEAKCANARY-master-1234abcd";
const ADMIN_TOKEN: &str = "LEAKCANARY-admin-token-5678";
/// Every secret of the test: none may appear anywhere but in what the test sent.
const SECRETS: [&str; 6] = [
    OPENAI_KEY,
    WRONG_KEY,
    AZURE_KEY,
    ANTHROPIC_KEY,
    MASTER_KEY,
    ADMIN_TOKEN,
];

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} contains {s}:\n{text}");
    }
    // Nor a recognisable piece of one (a prefix a log might cut a key to).
    assert!(
        !text.contains("LEAKCANARY"),
        "{what} holds part of a secret:\n{text}"
    );
}

/// The manifests: OpenAI-compatible (answers, streams, embeddings), one with a key its
/// upstream refuses, Azure, Anthropic; health checks on every one; a master key.
fn manifest(
    openai: &MockUpstream,
    refusing: &MockUpstream,
    azure: &MockUpstream,
    anthropic: &AnthropicUpstream,
) -> Manifest {
    let checked =
        |probe: &str| json!({"enabled": true, "interval": "1s", "timeout": "1s", "probe": probe});
    Manifest::new()
        .with(
            Secret::new("keys")
                .entry("openai", OPENAI_KEY)
                .entry("wrong", WRONG_KEY)
                .entry("azure", AZURE_KEY)
                .entry("anthropic", ANTHROPIC_KEY)
                .entry("master", MASTER_KEY),
        )
        .with(
            Dep::new("oa", "chat", openai)
                .key("keys", "openai")
                .spec_field("healthCheck", checked("chat")),
        )
        .with(
            Dep::new("emb", "emb", openai)
                .key("keys", "openai")
                .info("mode", json!("embedding"))
                .spec_field("healthCheck", checked("embedding")),
        )
        .with(
            Dep::new("refused", "refused", refusing)
                .key("keys", "wrong")
                .spec_field("healthCheck", checked("chat")),
        )
        .with(
            Dep::azure("az", "azure-chat", azure, "gpt-4o", "2024-10-21")
                .key("keys", "azure")
                .spec_field("healthCheck", checked("models-list")),
        )
        .with(
            Dep::at("claude", "claude", "anthropic", &anthropic.url())
                .upstream_model("claude-sonnet-4-5")
                .key("keys", "anthropic")
                .spec_field("healthCheck", checked("models-list")),
        )
        .with(Alias::new("smart").target("chat", 1))
        .settings(json!({"masterKey": {"secretKeyRef": {"name": "keys", "key": "master"}}}))
}

/// Runs every kind of request against the API at `base`; returns everything the
/// clients got back.
async fn traffic(client: &Client, base: &str) -> String {
    let mut seen = String::new();
    let authed = |req| with_header(req, "authorization", &format!("Bearer {MASTER_KEY}"));
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let post = |path: &str, body: serde_json::Value| {
        authed(json_request(Method::POST, &format!("{base}{path}"), &body))
    };
    for (req, want) in [
        (post("/v1/chat/completions", chat("chat", false)), 200),
        (post("/v1/chat/completions", chat("smart", false)), 200),
        (post("/v1/chat/completions", chat("azure-chat", false)), 200),
        (post("/v1/chat/completions", chat("claude", false)), 200),
        (
            post("/v1/embeddings", json!({"model": "emb", "input": "hi"})),
            200,
        ),
        (post("/v1/chat/completions", chat("refused", false)), 401),
        (post("/v1/chat/completions", chat("nope", false)), 404),
        (post("/v1/chat/completions", json!({"messages": []})), 400),
        (
            post(
                "/v1/messages",
                json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            ),
            200,
        ),
        // No key, a wrong key.
        (
            json_request(
                Method::POST,
                &format!("{base}/v1/chat/completions"),
                &chat("chat", false),
            ),
            401,
        ),
        (
            with_header(
                json_request(
                    Method::POST,
                    &format!("{base}/v1/chat/completions"),
                    &chat("chat", false),
                ),
                "authorization",
                "Bearer sk-not-the-master-key",
            ),
            401,
        ),
        (
            authed(raw_request(
                Method::POST,
                &format!("{base}/v1/chat/completions"),
                "{broken",
            )),
            400,
        ),
    ] {
        let r = client.send(req).await;
        assert_eq!(r.status, want, "{}", r.text());
        seen.push_str(&format!("{:?}\n{}\n", r.headers, r.text()));
    }
    // The key the upstream echoed was cut out of the error the client got.
    assert!(
        seen.contains("Incorrect API key provided: [redacted]."),
        "the echoing upstream was reached: {seen}"
    );
    // Streams.
    let mut s = client
        .stream(post("/v1/chat/completions", chat("chat", true)))
        .await;
    s.read_to_end(Duration::from_secs(5)).await;
    seen.push_str(&s.text());
    let mut s = client
        .stream(post("/v1/chat/completions", chat("claude", true)))
        .await;
    s.read_to_end(Duration::from_secs(5)).await;
    seen.push_str(&s.text());
    // Every read-only endpoint.
    for path in [
        "/v1/models",
        "/v1/models/chat",
        "/model/info",
        "/v1/model/info",
        "/model_group/info",
        "/health",
        "/health/readiness",
        "/health/liveliness",
    ] {
        let r = client
            .send(authed(raw_request(
                Method::GET,
                &format!("{base}{path}"),
                "",
            )))
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        seen.push_str(&r.text());
    }
    seen
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.env("MODELGATE_LOG", "debug")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start")
}

async fn wait_ready(client: &Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.try_send(raw_request(Method::GET, url, "")).await
            && r.status == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never ready");
        tokio::time::sleep(ms(100)).await;
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(ms(50));
    }
}

async fn upstreams() -> (MockUpstream, MockUpstream, MockUpstream, AnthropicUpstream) {
    let openai = MockUpstream::start("openai").await;
    openai.require_key(OPENAI_KEY);
    // An upstream that echoes the key it refuses (OpenAI echoes a masked form; a
    // self-hosted server may echo it whole).
    let refusing = MockUpstream::start("refusing").await;
    refusing.set(Reply::fail(401).error_body(json!({"error": {
        "message": format!("Incorrect API key provided: {WRONG_KEY}."),
        "type": "invalid_request_error",
        "param": null,
        "code": "invalid_api_key",
    }})));
    let azure = MockUpstream::start("azure").await;
    azure.require_key(AZURE_KEY);
    let anthropic = AnthropicUpstream::start("anthropic").await;
    anthropic.require_key(ANTHROPIC_KEY);
    (openai, refusing, azure, anthropic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_metrics_endpoints_or_errors_of_the_data_plane() {
    let (openai, refusing, azure, anthropic) = upstreams().await;
    let dir = TempDir::new("leak");
    let table = compile_ok(
        &manifest(&openai, &refusing, &azure, &anthropic).to_yaml(),
        1,
    );
    std::fs::write(dir.path().join("token"), ADMIN_TOKEN).expect("token");
    let (port, admin, metrics) = (free_port(), free_port(), free_port());
    let log = dir.path().join("dataplane.log");
    let child = spawn_logged(
        Command::new(binary("modelgate-dataplane", "modelgate-dataplane"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics}"))
            .arg("--admin-token-file")
            .arg(dir.path().join("token"))
            .env("NO_PROXY", "127.0.0.1")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY"),
        &log,
    );
    let client = Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let admin_base = format!("http://127.0.0.1:{admin}");
    wait_ready(&client, &format!("{base}/health/liveliness")).await;
    let bearer = |req, token: &str| with_header(req, "authorization", &format!("Bearer {token}"));

    // The admin API: a missing, wrong, same-length wrong or empty token is a 401, in
    // OpenAI's shape, and says nothing of the token.
    let same_length: String = ADMIN_TOKEN.chars().rev().collect();
    for token in [None, Some("nope"), Some(same_length.as_str()), Some("")] {
        let put = raw_request(
            Method::PUT,
            &format!("{admin_base}/v1/routing-table"),
            table.to_canonical_json(),
        );
        let req = match token {
            Some(t) => bearer(put, t),
            None => put,
        };
        let r = client.send(req).await;
        assert_eq!(r.status, 401, "{token:?}: {}", r.text());
        r.openai_error();
        assert_clean("an admin refusal", &r.text());
    }
    let r = client
        .send(bearer(
            raw_request(
                Method::PUT,
                &format!("{admin_base}/v1/routing-table"),
                table.to_canonical_json(),
            ),
            ADMIN_TOKEN,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut seen = r.text();

    // The admin paths are not on the public port (whatever the key).
    for (method, path) in [
        (Method::PUT, "/v1/routing-table"),
        (Method::GET, "/v1/routing-table/version"),
        (Method::GET, "/v1/health-report"),
    ] {
        let r = client
            .send(bearer(
                raw_request(method.clone(), &format!("{base}{path}"), ""),
                MASTER_KEY,
            ))
            .await;
        assert!(
            r.status == 404 || r.status == 405,
            "{method} {path} on the public port: {} {}",
            r.status,
            r.text()
        );
        r.openai_error();
        seen.push_str(&r.text());
    }

    seen.push_str(&traffic(&client, &base).await);
    // Health checks of every deployment (1 s interval) have run.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for path in ["/v1/health-report", "/v1/routing-table/version"] {
        let r = client
            .send(bearer(
                raw_request(Method::GET, &format!("{admin_base}{path}"), ""),
                ADMIN_TOKEN,
            ))
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        seen.push_str(&r.text());
    }
    let report = client
        .send(bearer(
            raw_request(Method::GET, &format!("{admin_base}/v1/health-report"), ""),
            ADMIN_TOKEN,
        ))
        .await
        .json();
    let checked = report["deployments"]
        .as_array()
        .map(|d| d.iter().filter(|d| d.get("lastCheckMs").is_some()).count())
        .unwrap_or(0);
    assert_eq!(checked, 5, "every deployment checked: {report:#}");
    let r = client
        .send(raw_request(
            Method::GET,
            &format!("http://127.0.0.1:{metrics}/metrics"),
            "",
        ))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("default/oa"), "metrics name deployments");
    seen.push_str(&r.text());
    seen.push_str(&client.get(&format!("{base}/health")).await.text());

    stop(child);
    let logs = std::fs::read_to_string(&log).expect("the log");
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug logs were captured: {}",
        &logs[..logs.len().min(2000)]
    );
    assert!(logs.contains("health check failed"), "failures were logged");
    assert_clean("the data plane's logs", &logs);
    assert_clean("what clients and the operator read", &seen);
    // The upstreams did get the keys: the test is not vacuous.
    assert!(
        openai
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {OPENAI_KEY}"))),
        "the OpenAI key reached its upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_or_endpoints_of_operator_local() {
    let (openai, refusing, azure, anthropic) = upstreams().await;
    let dir = TempDir::new("leak-local");
    std::fs::write(
        dir.path().join("all.yaml"),
        manifest(&openai, &refusing, &azure, &anthropic).to_yaml(),
    )
    .expect("manifests");
    let (port, metrics) = (free_port(), free_port());
    let log = dir.path().join("local.log");
    let child = spawn_logged(
        Command::new(binary("modelgate-operator", "modelgate-operator"))
            .args(["local", "-f"])
            .arg(dir.path().join("all.yaml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env("NO_PROXY", "127.0.0.1")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY"),
        &log,
    );
    let client = Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &format!("{base}/health/readiness")).await;
    let mut seen = traffic(&client, &base).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = client
        .send(raw_request(
            Method::GET,
            &format!("http://127.0.0.1:{metrics}/metrics"),
            "",
        ))
        .await;
    assert_eq!(r.status, 200);
    seen.push_str(&r.text());
    seen.push_str(
        &client
            .send(with_header(
                raw_request(Method::GET, &format!("{base}/health"), ""),
                "authorization",
                &format!("Bearer {MASTER_KEY}"),
            ))
            .await
            .text(),
    );
    stop(child);
    let logs = std::fs::read_to_string(&log).expect("the log");
    assert!(logs.contains("DEBUG"), "debug logs were captured");
    assert_clean("operator local's logs", &logs);
    assert_clean("what clients read from operator local", &seen);
}
