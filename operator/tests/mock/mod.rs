//! A mocked Kubernetes API server for the operator's tests: a `kube::Client` whose
//! transport is a `tower_test` mock, and the test's side of it, which takes the client's
//! calls one by one, checks them, and answers them as an API server would.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, SendResponse};

/// How long a test waits for a call it expects.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The test's side of the mocked API server.
pub type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// A client talking to a mocked API server, and the server's handle.
pub fn client() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// Takes the client's calls in order and checks each.
pub struct ApiServer(pub Handle);

/// One call the client made, read whole, and the means to answer it.
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// URI path.
    pub path: String,
    /// Query parameters, decoded (a repeated name keeps its last value).
    pub query: BTreeMap<String, String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    respond: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// The client's next call; panics when none comes within [`CALL_TIMEOUT`].
    pub async fn next(&mut self) -> Call {
        match tokio::time::timeout(CALL_TIMEOUT, self.0.next_request()).await {
            Ok(Some((request, respond))) => Call::read(request, respond).await,
            Ok(None) => panic!("the client was dropped while a call was expected"),
            Err(_) => panic!("no call within {CALL_TIMEOUT:?}"),
        }
    }

    /// The next call, checked to be `method path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected call {} {}?{:?} with body {}",
            call.method,
            call.path,
            call.query,
            call.body
        );
        call
    }

    /// Checks that the client makes no call for `quiet`.
    pub async fn expect_no_call(&mut self, quiet: Duration) {
        if let Ok(Some((request, _))) = tokio::time::timeout(quiet, self.0.next_request()).await {
            panic!(
                "expected no call, got {} {}",
                request.method(),
                request.uri()
            );
        }
    }
}

impl Call {
    /// Reads a call whole.
    pub async fn read(request: Request<Body>, respond: SendResponse<Response<Body>>) -> Self {
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect_bytes()
            .await
            .expect("the request body is readable");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("the request body is JSON")
        };
        Call {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parse_query(parts.uri.query().unwrap_or_default()),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
            respond,
        }
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// Checks the query parameters of a server-side apply by `manager`, forced.
    pub fn assert_forced_apply(&self, manager: &str) {
        assert_eq!(
            self.param("fieldManager"),
            Some(manager),
            "{:?}",
            self.query
        );
        assert_eq!(self.param("force"), Some("true"), "{:?}", self.query);
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
    }

    /// Answers `code` with a JSON body.
    pub fn reply(self, code: u16, body: &Value) {
        let response = Response::builder()
            .status(StatusCode::from_u16(code).expect("a valid status code"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::to_vec(body).expect("a JSON value serializes"),
            ))
            .expect("a valid response");
        self.respond.send_response(response);
    }

    /// Answers `200 OK` with `body`.
    pub fn ok(self, body: &Value) {
        self.reply(200, body);
    }

    /// Answers with a `Status` failure, as the API server does.
    pub fn fail(self, code: u16, reason: &str, message: &str) {
        self.reply(code, &status(code, reason, message));
    }

    /// Answers `404 NotFound`.
    pub fn not_found(self) {
        self.fail(404, "NotFound", "not found");
    }

    /// Answers `409 Conflict`, as for a stale `resourceVersion`.
    pub fn conflict(self) {
        self.fail(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }

    /// Answers `500 InternalError`.
    pub fn internal_error(self) {
        self.fail(500, "InternalError", "etcdserver: request timed out");
    }

    /// Answers `code` with plain text, as a proxy or an unknown path does.
    pub fn reply_text(self, code: u16, text: &str) {
        let response = Response::builder()
            .status(StatusCode::from_u16(code).expect("a valid status code"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(text.as_bytes().to_vec()))
            .expect("a valid response");
        self.respond.send_response(response);
    }

    /// Keeps the call unanswered: the client waits until the returned handle is dropped.
    pub fn hold(self) -> SendResponse<Response<Body>> {
        self.respond
    }
}

/// A `meta/v1` `Status` failure.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// `value` with `metadata.name`/`namespace` filled in (an apply body may carry neither),
/// and `metadata.resourceVersion` set, as the API server answers a write.
pub fn stored(mut value: Value, namespace: &str, name: &str, resource_version: &str) -> Value {
    if let Some(obj) = value.as_object_mut() {
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.entry("name").or_insert_with(|| json!(name));
            meta.entry("namespace").or_insert_with(|| json!(namespace));
            meta.insert("resourceVersion".to_owned(), json!(resource_version));
        }
    }
    value
}

/// Decodes `a=1&b=x%2Fy` (empty pairs skipped).
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The base64 of `text`, as Secret data holds it.
pub fn base64(text: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Decodes Secret data.
pub fn unbase64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("Secret data is base64")
}
