//! What translation costs per request: an OpenAI chat request with a system prompt, a
//! few turns, a tool call and its result, and two tools translated for Anthropic, plus
//! the Anthropic answer (text and a tool call) translated back; and the same for the
//! `/v1/messages` front leg (Anthropic request → OpenAI chat, and the answer back); the
//! same OpenAI request for Gemini (`generateContent`) and Bedrock (Converse; without the
//! image URL, which Converse cannot fetch), with their answers back.
//!
//! `cargo bench -p modelgate-dataplane --bench translate` (the target is well under
//! 50 µs per request + answer).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use modelgate_dataplane::providers::anthropic::{ANTHROPIC_TO_OPENAI, OPENAI_TO_ANTHROPIC};
use modelgate_dataplane::providers::bedrock::OPENAI_TO_BEDROCK;
use modelgate_dataplane::providers::gemini::OPENAI_TO_GEMINI;
use modelgate_dataplane::providers::{Endpoint, RequestContext, Translator};
use modelgate_dataplane_api::{Deployment, HealthCheck, Limits, ModelInfo, Probe, Timeouts};

fn deployment() -> Deployment {
    Deployment {
        api_base: None,
        api_version: None,
        credentials: None,
        generation: 1,
        headers: Vec::new(),
        health_check: HealthCheck {
            enabled: false,
            interval_ms: 30_000,
            probe: Probe::ModelsList,
            timeout_ms: 5_000,
            url: None,
        },
        id: "bench/claude".to_owned(),
        limits: Limits::default(),
        mock: None,
        model: "claude".to_owned(),
        model_info: ModelInfo::default(),
        order: 0,
        provider: "anthropic".to_owned(),
        region: None,
        retries: 0,
        timeouts: Timeouts::default(),
        upstream_model: "claude-sonnet-4-5".to_owned(),
        weight: 1,
    }
}

const OPENAI_REQUEST: &str = r#"{
  "model": "claude",
  "messages": [
    {"role": "system", "content": "You are a helpful assistant that answers briefly and uses tools when they help."},
    {"role": "user", "content": "What is the weather in Paris and in Berlin today? Answer in one sentence each."},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}},
      {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\",\"unit\":\"celsius\"}"}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"},
    {"role": "tool", "tool_call_id": "call_2", "content": "{\"temperature\": 17, \"sky\": \"cloudy\"}"},
    {"role": "user", "content": [{"type": "text", "text": "Also, what do you see here?"}, {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}
  ],
  "tools": [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Current time in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
  ],
  "tool_choice": "auto",
  "temperature": 0.2,
  "max_tokens": 512,
  "stream": false,
  "user": "user-1234"
}"#;

const ANTHROPIC_ANSWER: &str = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Paris is sunny at 21°C and Berlin is cloudy at 17°C. The picture shows a cat; let me check the local time too."},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_time","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":128,"output_tokens":91}}"#;

const MESSAGES_REQUEST: &str = r#"{
  "model": "gpt",
  "max_tokens": 512,
  "system": "You are a helpful assistant that answers briefly and uses tools when they help.",
  "messages": [
    {"role": "user", "content": "What is the weather in Paris and in Berlin today? Answer in one sentence each."},
    {"role": "assistant", "content": [
      {"type": "text", "text": "Let me look."},
      {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}},
      {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Berlin", "unit": "celsius"}}
    ]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"},
      {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "{\"temperature\": 17, \"sky\": \"cloudy\"}"}]},
      {"type": "text", "text": "Thanks!"}
    ]}
  ],
  "tools": [
    {"name": "get_weather", "description": "Current weather in a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
    {"name": "get_time", "description": "Current time in a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
  ],
  "tool_choice": {"type": "auto"},
  "temperature": 0.2
}"#;

const OPENAI_ANSWER: &str = r#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Paris is sunny at 21°C and Berlin is cloudy at 17°C.","tool_calls":[{"id":"call_3","type":"function","function":{"name":"get_time","arguments":"{\"city\":\"Paris\"}"}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":472,"completion_tokens":91,"total_tokens":563,"prompt_tokens_details":{"cached_tokens":128}}}"#;

const GEMINI_ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Paris is sunny at 21°C and Berlin is cloudy at 17°C. The picture shows a cat; let me check the local time too."},{"functionCall":{"name":"get_time","args":{"city":"Paris"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":472,"candidatesTokenCount":91,"totalTokenCount":563,"cachedContentTokenCount":128},"modelVersion":"gemini-2.5-flash"}"#;

const BEDROCK_ANSWER: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Paris is sunny at 21°C and Berlin is cloudy at 17°C. Let me check the local time too."},{"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"get_time","input":{"city":"Paris"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":472,"outputTokens":91,"totalTokens":563,"cacheReadInputTokens":128},"metrics":{"latencyMs":1203}}"#;

fn bench(c: &mut Criterion) {
    let d = deployment();
    let chat = Bytes::from_static(OPENAI_REQUEST.as_bytes());
    let cx = RequestContext {
        endpoint: Endpoint::Chat,
        deployment: &d,
        requested_model: "claude",
        upstream_model: "claude-sonnet-4-5",
        stream: false,
        drop_params: false,
    };
    c.bench_function("openai→anthropic request + answer", |b| {
        b.iter(|| {
            let t = OPENAI_TO_ANTHROPIC
                .request(&cx, black_box(&chat))
                .expect("request");
            let answer = OPENAI_TO_ANTHROPIC
                .response(&t.context, Bytes::from_static(ANTHROPIC_ANSWER.as_bytes()))
                .expect("answer");
            black_box((t.body, answer))
        });
    });
    let gemini_cx = RequestContext {
        requested_model: "gemini",
        upstream_model: "gemini-2.5-flash",
        ..cx
    };
    c.bench_function("openai→gemini request + answer", |b| {
        b.iter(|| {
            let t = OPENAI_TO_GEMINI
                .request(&gemini_cx, black_box(&chat))
                .expect("request");
            let answer = OPENAI_TO_GEMINI
                .response(&t.context, Bytes::from_static(GEMINI_ANSWER.as_bytes()))
                .expect("answer");
            black_box((t.body, answer))
        });
    });
    let without_image = Bytes::from(OPENAI_REQUEST.replace(
        r#", {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}"#,
        "",
    ));
    let bedrock_cx = RequestContext {
        requested_model: "bedrock",
        upstream_model: "anthropic.claude-3-5-haiku-20241022-v1:0",
        drop_params: true,
        ..cx
    };
    c.bench_function("openai→bedrock request + answer", |b| {
        b.iter(|| {
            let t = OPENAI_TO_BEDROCK
                .request(&bedrock_cx, black_box(&without_image))
                .expect("request");
            let answer = OPENAI_TO_BEDROCK
                .response(&t.context, Bytes::from_static(BEDROCK_ANSWER.as_bytes()))
                .expect("answer");
            black_box((t.body, answer))
        });
    });
    let messages = Bytes::from_static(MESSAGES_REQUEST.as_bytes());
    let cx = RequestContext {
        endpoint: Endpoint::Messages,
        requested_model: "gpt",
        upstream_model: "gpt-4o",
        ..cx
    };
    c.bench_function("messages→openai request + answer", |b| {
        b.iter(|| {
            let t = ANTHROPIC_TO_OPENAI
                .request(&cx, black_box(&messages))
                .expect("request");
            let answer = ANTHROPIC_TO_OPENAI
                .response(&t.context, Bytes::from_static(OPENAI_ANSWER.as_bytes()))
                .expect("answer");
            black_box((t.body, answer))
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
