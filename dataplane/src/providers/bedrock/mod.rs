//! AWS Bedrock Runtime (Converse and ConverseStream) behind the OpenAI API: the pure
//! building blocks a provider adapter calls. Nothing here does I/O.
//!
//! - [`sigv4`]: request signing (and verification, for test upstreams).
//! - [`eventstream`]: the `application/vnd.amazon.eventstream` framing of ConverseStream.
//! - [`converse`]: the translations (request, answer, stream, errors).
//! - [`wire`]: Converse wire types.
//! - [`openai_bedrock`]: the provider adapter: a deployment's endpoint and credentials,
//!   and the static translator [`OPENAI_TO_BEDROCK`] wrapping [`converse`].
//! - Here: the endpoint URLs and [`http_request`], which builds and signs the upstream
//!   request.

pub mod converse;
pub mod eventstream;
pub mod openai_bedrock;
pub mod sigv4;
pub mod wire;

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body_util::Full;

use super::percent_encode;
use crate::errors::ApiError;

pub use openai_bedrock::{Bedrock, OpenAiToBedrock};
pub use sigv4::Credentials;

/// OpenAI chat completions → Bedrock Converse.
pub static OPENAI_TO_BEDROCK: OpenAiToBedrock = OpenAiToBedrock;

/// The SigV4 service name of Bedrock Runtime.
pub const SERVICE: &str = "bedrock";

/// The Bedrock Runtime endpoint of `region`.
pub fn default_base(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// The Converse (`stream` false) or ConverseStream URL of `model_id` (a model id,
/// inference profile id or ARN, percent-encoded into one path segment) at `base` (no
/// trailing slash).
pub fn url(base: &str, model_id: &str, stream: bool) -> String {
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("{base}/model/{}/{op}", percent_encode(model_id))
}

/// The signed upstream request: `POST` to [`url`] with `body` (the JSON of a
/// [`wire::ConverseRequest`]), signed for [`SERVICE`] in `region` at `time`.
///
/// It must be sent as it is: a header changed afterwards breaks the signature (headers
/// added afterwards are simply unsigned).
pub fn http_request(
    base: &str,
    region: &str,
    credentials: &Credentials,
    model_id: &str,
    stream: bool,
    body: Bytes,
    time: SystemTime,
) -> Result<Request<Full<Bytes>>, ApiError> {
    http_request_with_headers(
        base,
        region,
        credentials,
        model_id,
        stream,
        body,
        &HeaderMap::new(),
        time,
    )
}

/// As [`http_request`], with `extra` headers (a deployment's) added before signing, so
/// that they are signed too and cannot break the signature. `content-type`, `accept` and
/// the signing headers are not taken from `extra`.
#[allow(clippy::too_many_arguments)]
pub fn http_request_with_headers(
    base: &str,
    region: &str,
    credentials: &Credentials,
    model_id: &str,
    stream: bool,
    body: Bytes,
    extra: &HeaderMap,
    time: SystemTime,
) -> Result<Request<Full<Bytes>>, ApiError> {
    let accept = if stream {
        "application/vnd.amazon.eventstream"
    } else {
        "application/json"
    };
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(url(base, model_id, stream))
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .header(header::ACCEPT, HeaderValue::from_static(accept))
        .body(body)
        .map_err(|e| ApiError::internal(format!("cannot build the upstream request: {e}")))?;
    for (name, value) in extra {
        let reserved = name == header::CONTENT_TYPE
            || name == header::ACCEPT
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name.as_str().starts_with("x-amz-");
        if !reserved {
            req.headers_mut().insert(name.clone(), value.clone());
        }
    }
    sigv4::sign(
        &mut req,
        &sigv4::SigningParams {
            credentials,
            region,
            service: SERVICE,
            time,
            settings: sigv4::Settings::default(),
        },
    )
    .map_err(|e| ApiError::internal(format!("cannot sign the Bedrock request: {e}")))?;
    Ok(req.map(Full::new))
}
