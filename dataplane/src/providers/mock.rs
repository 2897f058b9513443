//! The `mock` provider: canned answers in-process, in the OpenAI format, with a
//! configurable delay before the answer and between streamed chunks. For demos and for
//! load-testing the gateway itself without a paid API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use modelgate_dataplane_api::Deployment;
use serde_json::{Value, json};

use super::Endpoint;
use crate::body::{Body, BoxError, json as json_body};

/// Canned behaviour of one mock deployment.
#[derive(Clone, Debug)]
pub struct Mock {
    response: Option<String>,
    delay: Duration,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Mock {
    /// From the table entry.
    pub fn from_deployment(d: &Deployment) -> Mock {
        let m = d.mock.clone().unwrap_or_default();
        Mock {
            response: m.response,
            delay: Duration::from_millis(m.delay_ms),
        }
    }

    /// Answers a request as an OpenAI server would.
    pub async fn answer(&self, endpoint: Endpoint, model: &str, request: &Value) -> Response<Body> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
        let text = self.response.clone().unwrap_or_else(|| {
            format!("Hello! This is a canned answer from the mock deployment of {model}.")
        });
        let prompt_tokens = count_tokens(request);
        let completion_tokens = text.split_whitespace().count() as u64;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        });
        match endpoint {
            // Never reached: the proxy skips mock deployments for the Responses API.
            Endpoint::Responses => crate::errors::ApiError::bad_request(
                "mock deployments do not serve the Responses API",
            )
            .into_response(),
            Endpoint::Embeddings => json_response(&embeddings(model, request, prompt_tokens)),
            Endpoint::Chat | Endpoint::Completions | Endpoint::Messages if stream => {
                let include_usage = request
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    == Some(true);
                self.stream(
                    endpoint,
                    model,
                    id,
                    created,
                    &text,
                    include_usage.then_some(usage),
                )
            }
            // `/v1/messages` reaches a mock translated to chat; answer chat anyway.
            Endpoint::Chat | Endpoint::Messages => json_response(&json!({
                "id": format!("chatcmpl-mock-{id}"),
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": usage,
            })),
            Endpoint::Completions => json_response(&json!({
                "id": format!("cmpl-mock-{id}"),
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
                "usage": usage,
            })),
        }
    }

    fn stream(
        &self,
        endpoint: Endpoint,
        model: &str,
        id: u64,
        created: u64,
        text: &str,
        usage: Option<Value>,
    ) -> Response<Body> {
        let chat = endpoint == Endpoint::Chat;
        let (object, id) = if chat {
            ("chat.completion.chunk", format!("chatcmpl-mock-{id}"))
        } else {
            ("text_completion", format!("cmpl-mock-{id}"))
        };
        let chunk = |delta: Value, finish: Value| {
            let choice = if chat {
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            } else {
                json!({"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "logprobs": null, "finish_reason": finish})
            };
            json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice]})
        };
        let mut events = Vec::new();
        if chat {
            events.push(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            ));
        }
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        for w in words {
            events.push(chunk(json!({"content": w}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if let Some(usage) = usage {
            events.push(json!({"id": id, "object": object, "created": created, "model": model, "choices": [], "usage": usage}));
        }
        let delay = self.delay;
        let frames = futures_util::stream::unfold(
            (events.into_iter(), false, true),
            move |(mut events, done, first)| async move {
                if done {
                    return None;
                }
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let frame = match events.next() {
                    Some(e) => format!("data: {e}\n\n"),
                    None => {
                        return Some((
                            Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(
                                b"data: [DONE]\n\n",
                            ))),
                            (events, true, false),
                        ));
                    }
                };
                Some((
                    Ok(http_body::Frame::data(Bytes::from(frame))),
                    (events, false, false),
                ))
            },
        );
        let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        resp
    }
}

fn json_response(value: &Value) -> Response<Body> {
    let mut resp = Response::new(json_body(value));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A rough token count of a request's text (words), for `usage`.
fn count_tokens(request: &Value) -> u64 {
    fn words(v: &Value) -> u64 {
        match v {
            Value::String(s) => s.split_whitespace().count() as u64,
            Value::Array(items) => items.iter().map(words).sum(),
            Value::Object(map) => map.get("content").map(words).unwrap_or(0),
            _ => 0,
        }
    }
    ["messages", "prompt", "input"]
        .iter()
        .filter_map(|k| request.get(*k))
        .map(words)
        .sum()
}

/// Deterministic unit-length vectors, one per input.
fn embeddings(model: &str, request: &Value, prompt_tokens: u64) -> Value {
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::Array(items)) => items.iter().map(|v| v.to_string()).collect(),
        Some(v) => vec![v.to_string()],
        None => Vec::new(),
    };
    let dims = request
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            let raw: Vec<f64> = (0..dims)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 2000) as f64 / 1000.0 - 1.0
                })
                .collect();
            let norm = raw
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            let vector: Vec<f64> = raw.iter().map(|x| x / norm).collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })
}
