//! What the provider mocks (Anthropic, Gemini, Bedrock) share: the script of replies (a
//! default and a queue used first), the requests recorded, an optional required key, and
//! the loop serving a handler over HTTP/1 on a listener. Each mock dereferences to its
//! [`Script`], so tests call `set`, `then`, `requests` … on the mock itself.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::upstream::{Recorded, SEQUENCE};

/// Replies of type `R` and what the mock received.
#[derive(Debug)]
pub struct Script<R> {
    default: Mutex<R>,
    queue: Mutex<VecDeque<R>>,
    requests: Mutex<Vec<Recorded>>,
    key: Mutex<Option<String>>,
}

impl<R: Clone> Script<R> {
    /// A script answering `default` to every request.
    pub fn new(default: R) -> Self {
        Self {
            default: Mutex::new(default),
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            key: Mutex::new(None),
        }
    }

    /// What every request gets from now on (after queued replies).
    pub fn set(&self, reply: R) {
        *self.default.lock().unwrap_or_else(|p| p.into_inner()) = reply;
    }

    /// Queues a reply for one request; queued replies are used in order before the default.
    pub fn then(&self, reply: R) -> &Self {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(reply);
        self
    }

    /// The reply for the next request: the first queued one, else the default.
    pub fn next_reply(&self) -> R {
        let queued = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        queued.unwrap_or_else(|| {
            self.default
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    /// Requires this key (the mock says in which header); others get 401.
    pub fn require_key(&self, key: &str) {
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.to_owned());
    }

    /// The key required, if any.
    pub fn required_key(&self) -> Option<String> {
        self.key.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The POSTs (inference requests) received so far.
    pub fn count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == Method::POST)
            .count()
    }

    /// The last request received.
    pub fn last(&self) -> Option<Recorded> {
        self.requests().pop()
    }

    /// Reads a request whole and records it; returns its head and body.
    pub async fn record(&self, req: Request<Incoming>) -> (Parts, Bytes) {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Recorded {
                seq: SEQUENCE.fetch_add(1, Ordering::SeqCst),
                at: Instant::now(),
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers.clone(),
                body: body.clone(),
            });
        (parts, body)
    }
}

/// Serves `handler` on every connection `listener` accepts (HTTP/1, keep-alive), until
/// the task running it is aborted.
pub async fn serve<H, F, B>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                connections.spawn(async move {
                    let svc = service_fn(move |req| {
                        let response = handler(req);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
