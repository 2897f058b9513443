//! Providers: how a request for one deployment is sent upstream, and how what comes back
//! is turned into what the client asked for. One file (or folder) per provider; the
//! OpenAI-compatible family (OpenAI itself, vLLM, Ollama, TGI, Groq, …) shares one.
//!
//! - [`openai`]: OpenAI and OpenAI-compatible servers (bearer auth, model rewrite), and
//!   the OpenAI chat wire types every translator reads or writes.
//! - [`azure`]: Azure OpenAI (deployment URL, `api-version`, `api-key` header).
//! - [`anthropic`]: Anthropic's Messages API (`x-api-key`, `anthropic-version`), with the
//!   translators OpenAI chat → Anthropic and Anthropic Messages (inbound) → OpenAI chat.
//! - [`gemini`]: Google's Gemini API (`generateContent`, `streamGenerateContent`,
//!   `embedContent`; the key in `x-goog-api-key`).
//! - [`bedrock`]: AWS Bedrock Runtime's Converse and ConverseStream, SigV4-signed.
//! - [`mock`]: canned answers in-process, for demos and load tests.
//!
//! # Translation
//!
//! OpenAI chat completions is the pivot. A client request travels through at most two
//! [`Translator`] legs, chosen by [`legs`] from the client's [`Endpoint`] and the
//! deployment's [`Provider`]:
//!
//! ```text
//!  client API ──front──► OpenAI chat ──back──► provider API
//!  (/v1/messages)        (the pivot)            (Anthropic, Gemini, Bedrock, …)
//! ```
//!
//! - *front*: the client's API is not OpenAI's and the provider does not speak it natively
//!   (`/v1/messages` to an OpenAI-compatible, Azure or mock deployment);
//! - *back*: the provider does not speak OpenAI ([`Provider::translator`]);
//! - neither: OpenAI to the OpenAI family: the body is forwarded untouched (the fast path);
//! - a provider that speaks the client's API natively gets a pass-through leg that only
//!   rewrites the model and watches the stream (`/v1/messages` to Anthropic).
//!
//! Each leg translates the request body, the whole answer, the stream (a
//! [`StreamTranslator`] fed the upstream's bytes as they arrive, writing the client's
//! events) and the upstream's error answers (to an [`ApiError`], whose status decides
//! retries and which [`crate::errors::Dialect`] renders for the client).
//!
//! A new provider plugs in (as Gemini and Bedrock did) with: a variant of [`Provider`] built in
//! [`Provider::for_deployment`], its HTTP request in [`Provider::request`] (URL, auth,
//! signing of the final body), a static [`Translator`] returned by
//! [`Provider::translator`], its probe in `health.rs`, and its name in the contract's
//! `SERVED_PROVIDERS`.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod gemini;
pub mod mock;
pub mod openai;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use modelgate_dataplane_api::{Deployment, RoutingTable};

use crate::errors::{ApiError, Dialect};
use crate::headers::RawHeaders;

/// The OpenAI API endpoints the data plane serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/messages` (Anthropic's Messages API).
    Messages,
    /// `/v1/responses` (OpenAI's Responses API; OpenAI and Azure deployments only, passed
    /// through: see [`crate::responses`]).
    Responses,
}

impl Endpoint {
    /// The path below the API base.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Messages => "/messages",
            Endpoint::Responses => "/responses",
        }
    }

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
        }
    }

    /// The shape of the errors and stream error events its clients expect.
    pub fn dialect(self) -> Dialect {
        match self {
            Endpoint::Messages => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }
}

/// How to reach one deployment.
#[derive(Clone, Debug)]
pub enum Provider {
    /// OpenAI or an OpenAI-compatible server at `base` (no trailing slash).
    OpenAi {
        /// API base, e.g. `https://api.openai.com/v1`.
        base: String,
        /// The endpoints' URIs under `base`, parsed once.
        uris: openai::Uris,
    },
    /// Azure OpenAI.
    Azure {
        /// Resource endpoint, e.g. `https://x.openai.azure.com`.
        base: String,
        /// `api-version` query parameter.
        api_version: String,
    },
    /// Anthropic's Messages API.
    Anthropic(anthropic::Anthropic),
    /// Google's Gemini API.
    Gemini(gemini::Gemini),
    /// AWS Bedrock Runtime (Converse).
    Bedrock(bedrock::Bedrock),
    /// Answered in-process.
    Mock(mock::Mock),
}

impl Provider {
    /// The provider for a table deployment of `table` (where its credentials are); `None`
    /// for a provider this build cannot serve, or a deployment missing what its provider
    /// needs (a base, an API version, a region).
    pub fn for_deployment(d: &Deployment, table: &RoutingTable) -> Option<Provider> {
        match d.provider.as_str() {
            "openai" | "openai-compatible" => {
                let base = match (&d.api_base, d.provider.as_str()) {
                    (Some(base), _) => base.clone(),
                    (None, "openai") => openai::DEFAULT_BASE.to_owned(),
                    (None, _) => return None,
                };
                Some(Provider::OpenAi {
                    base,
                    uris: openai::Uris::default(),
                })
            }
            "azure" => Some(Provider::Azure {
                base: d.api_base.clone()?,
                api_version: d.api_version.clone()?,
            }),
            "anthropic" => Some(Provider::Anthropic(anthropic::Anthropic::from_deployment(
                d,
            ))),
            "gemini" => Some(Provider::Gemini(gemini::Gemini::from_deployment(d))),
            "bedrock" => bedrock::Bedrock::from_deployment(d, table).map(Provider::Bedrock),
            "mock" => Some(Provider::Mock(mock::Mock::from_deployment(d))),
            _ => None,
        }
    }

    /// The translator between OpenAI chat completions and this provider's API; `None` for
    /// the OpenAI family, which takes OpenAI's bodies as they are.
    pub fn translator(&self) -> Option<&'static dyn Translator> {
        match self {
            Provider::Anthropic(_) => Some(&anthropic::OPENAI_TO_ANTHROPIC),
            Provider::Gemini(_) => Some(&gemini::OPENAI_TO_GEMINI),
            Provider::Bedrock(_) => Some(&bedrock::OPENAI_TO_BEDROCK),
            Provider::OpenAi { .. } | Provider::Azure { .. } | Provider::Mock(_) => None,
        }
    }

    /// True when the provider serves `endpoint` natively (its own API, no translation).
    pub fn speaks(&self, endpoint: Endpoint) -> bool {
        match self {
            Provider::Anthropic(_) => endpoint == Endpoint::Messages,
            Provider::Gemini(_) | Provider::Bedrock(_) => false,
            Provider::OpenAi { .. } | Provider::Azure { .. } => endpoint != Endpoint::Messages,
            Provider::Mock(_) => !matches!(endpoint, Endpoint::Messages | Endpoint::Responses),
        }
    }

    /// True when the provider can serve `endpoint` at all (natively or translated). The
    /// Responses API is stateful upstream (stored responses, `previous_response_id`), so
    /// only OpenAI-family and Azure deployments take it: nothing translates it.
    pub fn serves(&self, endpoint: Endpoint) -> bool {
        endpoint != Endpoint::Responses
            || matches!(self, Provider::OpenAi { .. } | Provider::Azure { .. })
    }

    /// The upstream request for `endpoint` (in the provider's own terms: what [`legs`]
    /// says is sent upstream) with `body` (already translated), for deployment `d`;
    /// `stream` when the client asked for a stream (providers with a separate streaming
    /// operation choose it by this).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        d: &Deployment,
        api_key: Option<&str>,
        endpoint: Endpoint,
        upstream_model: &str,
        body: Bytes,
        client_headers: &RawHeaders,
        stream: bool,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        if let Provider::Bedrock(b) = self {
            // Signed last, over every header it carries: nothing may be changed after.
            let mut extra = deployment_headers(d);
            trace_headers(client_headers, &mut extra);
            return b.request(upstream_model, stream, body, &extra);
        }
        let mut req = match self {
            Provider::OpenAi { base, uris } => {
                openai::request(base, uris, api_key, endpoint, body)?
            }
            Provider::Azure { base, api_version } => {
                azure::request(base, api_version, api_key, endpoint, upstream_model, body)?
            }
            Provider::Anthropic(a) => a.request(api_key, body, client_headers)?,
            Provider::Gemini(g) => g.request(api_key, endpoint, upstream_model, stream, body)?,
            Provider::Bedrock(_) | Provider::Mock(_) => {
                return Err(ApiError::internal(
                    "mock deployments are answered in-process",
                ));
            }
        };
        // The body's `content-type` (JSON) is the client's default: no header to insert.
        let headers = req.headers_mut();
        if !d.headers.is_empty() {
            headers.extend(deployment_headers(d));
        }
        trace_headers(client_headers, headers);
        Ok(req)
    }
}

/// The deployment's extra headers (those that are valid header names and values).
fn deployment_headers(d: &Deployment) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for h in &d.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

/// W3C trace context passes through to the upstream.
pub(crate) fn trace_headers(client_headers: &RawHeaders, headers: &mut HeaderMap) {
    // Names made once: a `&str` name is parsed on every insert.
    const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(v) = client_headers.value(name.as_str()) {
            headers.insert(name, v);
        }
    }
}

/// What translating one request needs to know.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// The API of the body being translated (the client's for a front leg, OpenAI chat
    /// for a back leg).
    pub endpoint: Endpoint,
    /// The deployment answering (model info: default `max_tokens`, reasoning).
    pub deployment: &'a Deployment,
    /// The model the client asked for.
    pub requested_model: &'a str,
    /// The upstream's model id, to write into the body.
    pub upstream_model: &'a str,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The router setting `dropParams`: drop what the target cannot take instead of
    /// answering 400.
    pub drop_params: bool,
}

/// What answering needs to know about the request, given by request translation.
#[derive(Clone, Debug, Default)]
pub struct ResponseContext {
    /// The client asked for a usage chunk at the end of its stream
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `created` of the answers (Unix seconds).
    pub created: u64,
    /// The model the client asked for, for answers that do not name it.
    pub model: String,
    /// The request was for embeddings (not chat).
    pub embeddings: bool,
    /// Embeddings of several inputs were asked for in one batch.
    pub batch: bool,
    /// The client asked for base64 vectors (`encoding_format`).
    pub base64: bool,
}

/// A request body translated for the next leg.
#[derive(Debug)]
pub struct Translated {
    /// The body.
    pub body: Bytes,
    /// What its answer's translation needs.
    pub context: ResponseContext,
}

/// One leg of translation between two APIs. Implementations are stateless (a `static`);
/// per-stream state lives in the [`StreamTranslator`] that [`Translator::stream`] makes.
pub trait Translator: Send + Sync + std::fmt::Debug {
    /// The request body, from this leg's client side to its upstream side. A parameter
    /// the upstream side cannot take is dropped when `drop_params`, else a 400 naming it.
    fn request(&self, cx: &RequestContext<'_>, body: &Bytes) -> Result<Translated, ApiError>;

    /// A whole successful answer, from the upstream side back to the client side.
    fn response(&self, cx: &ResponseContext, body: Bytes) -> Result<Bytes, ApiError>;

    /// The translator of one streamed answer.
    fn stream(&self, cx: &ResponseContext) -> Box<dyn StreamTranslator>;

    /// An error answer of the upstream side (status, response headers, body, the wait it
    /// asked for). Its status decides retries ([`ApiError::is_retryable`]).
    fn error(
        &self,
        status: StatusCode,
        _headers: &HeaderMap,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> ApiError {
        ApiError::from_upstream(status, body, retry_after)
    }
}

/// Turns one upstream stream into the client's, as bytes arrive (never buffering more
/// than an event).
pub trait StreamTranslator: Send {
    /// Feeds bytes as received (cut anywhere) and writes whatever events they complete.
    /// An error (the upstream reported one, or sent what cannot be read) ends the stream:
    /// the caller sends it to the client as an error event, or retries when nothing was
    /// sent yet.
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError>;

    /// The upstream ended the body: writes the closing events (`[DONE]`,
    /// `message_stop`), or fails when the stream was cut short.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError>;

    /// Writes the event that ends this stream after `error` when the stream's API has an
    /// error event of its own (the Responses API's `error`, numbered after the events
    /// sent); false leaves it to the client dialect's error event.
    fn error_event(&mut self, _error: &ApiError, _out: &mut BytesMut) -> bool {
        false
    }
}

/// Two stream translators in a row (back leg, then front leg).
struct Chain {
    back: Box<dyn StreamTranslator>,
    front: Box<dyn StreamTranslator>,
    mid: BytesMut,
}

impl StreamTranslator for Chain {
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        self.back.feed(bytes, &mut self.mid)?;
        if self.mid.is_empty() {
            return Ok(());
        }
        let mid = self.mid.split();
        self.front.feed(&mid, out)
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        self.back.finish(&mut self.mid)?;
        let mid = self.mid.split();
        self.front.feed(&mid, out)?;
        self.front.finish(out)
    }
}

/// The translation legs of one request to one deployment.
#[derive(Clone, Copy, Debug)]
pub struct Legs {
    /// Client API → OpenAI chat.
    pub front: Option<&'static dyn Translator>,
    /// OpenAI chat (or the client's API, for a native pass-through) → the provider's.
    pub back: Option<&'static dyn Translator>,
    /// What is sent upstream, in the provider's terms (for [`Provider::request`]).
    pub upstream: Endpoint,
}

impl Legs {
    /// True when the body goes as it came (OpenAI to the OpenAI family).
    pub fn is_passthrough(&self) -> bool {
        self.front.is_none() && self.back.is_none()
    }

    /// Translates a request through both legs.
    pub fn request(
        &self,
        cx: &RequestContext<'_>,
        body: &Bytes,
    ) -> Result<(Bytes, Option<ResponseContext>, Option<ResponseContext>), ApiError> {
        let mut body = body.clone();
        let mut front_cx = None;
        let mut back_cx = None;
        if let Some(front) = self.front {
            let t = front.request(cx, &body)?;
            body = t.body;
            front_cx = Some(t.context);
        }
        if let Some(back) = self.back {
            let cx = RequestContext {
                endpoint: if self.front.is_some() {
                    Endpoint::Chat
                } else {
                    cx.endpoint
                },
                ..*cx
            };
            let t = back.request(&cx, &body)?;
            body = t.body;
            back_cx = Some(t.context);
        }
        Ok((body, front_cx, back_cx))
    }

    /// Translates a whole answer back through both legs.
    pub fn response(
        &self,
        front_cx: Option<&ResponseContext>,
        back_cx: Option<&ResponseContext>,
        body: Bytes,
    ) -> Result<Bytes, ApiError> {
        let mut body = body;
        if let (Some(back), Some(cx)) = (self.back, back_cx) {
            body = back.response(cx, body)?;
        }
        if let (Some(front), Some(cx)) = (self.front, front_cx) {
            body = front.response(cx, body)?;
        }
        Ok(body)
    }

    /// The stream translator of both legs; `None` when the stream goes as it came.
    pub fn stream(
        &self,
        front_cx: Option<&ResponseContext>,
        back_cx: Option<&ResponseContext>,
    ) -> Option<Box<dyn StreamTranslator>> {
        let back = self.back.zip(back_cx).map(|(t, cx)| t.stream(cx));
        let front = self.front.zip(front_cx).map(|(t, cx)| t.stream(cx));
        match (back, front) {
            (Some(back), Some(front)) => Some(Box::new(Chain {
                back,
                front,
                mid: BytesMut::new(),
            })),
            (one, other) => one.or(other),
        }
    }

    /// An upstream error answer (status, response headers, body, the wait it asked for).
    pub fn error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> ApiError {
        match self.back {
            Some(back) => back.error(status, headers, body, retry_after),
            None => ApiError::from_upstream(status, body, retry_after),
        }
    }
}

/// The legs for a request to `endpoint` served by `provider`.
pub fn legs(endpoint: Endpoint, provider: &Provider) -> Legs {
    if provider.speaks(endpoint) {
        return Legs {
            front: None,
            // A native pass-through that is not OpenAI's still reads errors and watches
            // the stream in its own terms.
            back: match provider {
                Provider::Anthropic(_) => Some(&anthropic::NATIVE),
                _ => None,
            },
            upstream: endpoint,
        };
    }
    let front: Option<&'static dyn Translator> = match endpoint {
        Endpoint::Messages => Some(&anthropic::ANTHROPIC_TO_OPENAI),
        _ => None,
    };
    let back = provider.translator();
    let upstream = match (back.is_some(), provider) {
        (true, Provider::Anthropic(_)) => Endpoint::Messages,
        (_, _) if front.is_some() => Endpoint::Chat,
        _ => endpoint,
    };
    Legs {
        front,
        back,
        upstream,
    }
}

/// The upstream model id for a request of `requested` to deployment `d`: its
/// `upstream_model`, with `*` standing for the part of a wildcard request after the
/// provider prefix.
pub fn upstream_model<'a>(d: &'a Deployment, requested: &str) -> std::borrow::Cow<'a, str> {
    if !d.upstream_model.contains('*') {
        return std::borrow::Cow::Borrowed(&d.upstream_model);
    }
    let suffix = requested
        .split_once('/')
        .map_or(requested, |(_, rest)| rest);
    std::borrow::Cow::Owned(d.upstream_model.replacen('*', suffix, 1))
}

/// Percent-encodes everything but RFC 3986's unreserved characters (URL path segments,
/// query values, userinfo).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bad_url(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("cannot build the upstream URL: {e}"))
}
