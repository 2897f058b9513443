//! The real data plane, started in-process on `127.0.0.1:0` (public and admin ports) with
//! an admin token in a temporary file, and helpers to push routing tables to it over its
//! admin API as the operator does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use modelgate_dataplane::{App, Config, bind, client, run};
use modelgate_dataplane_api::RoutingTable;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{Client, Resp, json_request};
use crate::manifest::{Manifest, compile_ok};

/// The admin token a gateway starts with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A temporary folder, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system's temporary folder.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "modelgate-{prefix}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A data plane serving in-process; stops when dropped.
#[derive(Debug)]
pub struct Gateway {
    /// The OpenAI API.
    pub addr: SocketAddr,
    /// The admin API.
    pub admin_addr: SocketAddr,
    /// Its shared state.
    pub app: Arc<App>,
    /// A client for tests to use.
    pub client: Client,
    token_file: PathBuf,
    revision: AtomicU64,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Gateway {
    /// Starts a data plane with no table and the admin token [`ADMIN_TOKEN`].
    pub async fn start() -> Gateway {
        let dir = TempDir::new("gateway");
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).expect("write the admin token");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            admin_listen: Some("127.0.0.1:0".parse().expect("address")),
            metrics_listen: None,
            admin_token_file: Some(token_file.clone()),
            admin_tls: None,
            ca_bundle: None,
            drain_timeout: Duration::from_secs(2),
            ..Config::new("127.0.0.1:0".parse().expect("address"))
        };
        // No egress proxy from the environment: upstreams here are all on 127.0.0.1.
        let no_proxy = hyper_util::client::proxy::matcher::Matcher::builder().build();
        let app = App::new(client::build_with(None, no_proxy).expect("the upstream client"));
        let listeners = bind(&config).await.expect("bind the data plane");
        let addr = listeners.public.local_addr().expect("public address");
        let admin_addr = listeners
            .admin
            .as_ref()
            .expect("an admin listener")
            .local_addr()
            .expect("admin address");
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn({
            let app = Arc::clone(&app);
            async move { run(app, &config, listeners, rx).await }
        });
        let gw = Gateway {
            addr,
            admin_addr,
            app,
            client: Client::new(),
            token_file,
            revision: AtomicU64::new(0),
            shutdown,
            task: Some(task),
            _dir: dir,
        };
        // Serving once the public API answers. (Not probing the admin API here: an admin
        // request reads the token file, which would hide what the data plane does with a
        // token rotated before its first admin request.)
        let answered = crate::eventually(Duration::from_secs(10), || async {
            gw.client
                .try_send(
                    Request::get(gw.url("/health/liveliness"))
                        .body(Full::new(Bytes::new()))
                        .expect("a valid request"),
                )
                .await
                .is_ok()
        })
        .await;
        assert!(answered, "the data plane did not start serving");
        gw
    }

    /// Starts a data plane serving `manifest`.
    pub async fn with(manifest: &Manifest) -> Gateway {
        let gw = Self::start().await;
        gw.apply(manifest).await;
        gw
    }

    /// `http://addr{path}` on the OpenAI API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://admin_addr{path}` on the admin API.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// The admin token file.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// Rotates the admin token (rewrites the file).
    pub fn rotate_token(&self, token: &str) {
        std::fs::write(&self.token_file, format!("{token}\n")).expect("write the admin token");
    }

    /// A revision above every one pushed by [`Gateway::apply`] so far.
    pub fn next_revision(&self) -> u64 {
        self.revision.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// `PUT /v1/routing-table` with `body` and `Authorization: Bearer token`.
    pub async fn put_table(&self, body: impl Into<Bytes>, token: Option<&str>) -> Resp {
        let mut req = Request::builder()
            .method(Method::PUT)
            .uri(self.admin_url("/v1/routing-table"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.client
            .send(req.body(Full::new(body.into())).expect("a valid request"))
            .await
    }

    /// Pushes a table as the operator does (canonical JSON, the current token).
    pub async fn push(&self, table: &RoutingTable) -> Resp {
        self.put_table(table.to_canonical_json(), Some(ADMIN_TOKEN))
            .await
    }

    /// Compiles `manifest` under the next revision and pushes it; panics unless accepted.
    pub async fn apply(&self, manifest: &Manifest) -> RoutingTable {
        let table = compile_ok(&manifest.to_yaml(), self.next_revision());
        let resp = self.push(&table).await;
        assert_eq!(
            resp.status,
            200,
            "table refused: {}\n{}",
            resp.text(),
            manifest.to_yaml()
        );
        table
    }

    /// `POST {path}` with a JSON body on the OpenAI API.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.client.post(&self.url(path), body).await
    }

    /// `POST /v1/chat/completions` for `model` with one short message.
    pub async fn chat(&self, model: &str) -> Resp {
        self.post("/v1/chat/completions", &chat_body(model)).await
    }

    /// `GET {path}` on the OpenAI API.
    pub async fn get(&self, path: &str) -> Resp {
        self.client.get(&self.url(path)).await
    }

    /// A chat request for `model`, ready for headers to be added.
    pub fn chat_request(&self, model: &str) -> Request<Full<Bytes>> {
        json_request(
            Method::POST,
            &self.url("/v1/chat/completions"),
            &chat_body(model),
        )
    }

    /// A streaming chat request for `model`.
    pub fn stream_request(&self, model: &str) -> Request<Full<Bytes>> {
        let mut body = chat_body(model);
        body["stream"] = Value::Bool(true);
        json_request(Method::POST, &self.url("/v1/chat/completions"), &body)
    }

    /// Starts a graceful shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops serving and waits (briefly) for the server to finish.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// A chat request body for `model`.
pub fn chat_body(model: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
    })
}
