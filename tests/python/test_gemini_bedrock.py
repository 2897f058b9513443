"""Gemini and Bedrock through the gateway, with the official `openai` SDK: the data plane
translates to Gemini's `generateContent` / `streamGenerateContent` and to Bedrock's
Converse / ConverseStream (SigV4-signed, event-stream framing). Chat, streaming with
usage, tools both ways (whole and streamed), errors as SDK exceptions, and an alias
failing over from a rate-limited Gemini deployment to a Bedrock one. Then the official
`anthropic` SDK against `/v1/messages` served by the same deployments (the Messages API
translated to OpenAI chat, then to Gemini or Bedrock): text, streaming, tools both ways
whole and streamed, and Anthropic-shaped errors.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from bedrock_upstream import BedrockUpstream
from conftest import AWS_ACCESS_KEY_ID, AWS_REGION, MASTER_KEY, UPSTREAM_KEY, Gateway
from gemini_upstream import GeminiUpstream

PROVIDERS = ["gemini", "bedrock"]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_gemini_chat_sends_the_key_in_a_header(client: openai.OpenAI, gemini_upstream: GeminiUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        temperature=0.2,
    )
    assert raw.headers["x-modelgate-deployment"] == "default/gemini-chat"
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (12, 9, 21)
    sent = gemini_upstream.last()
    assert sent["path"] == "/v1beta/models/gemini-echo:generateContent"
    assert sent["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert sent["body"]["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert sent["body"]["generationConfig"]["temperature"] == 0.2


def test_bedrock_chat_is_signed(client: openai.OpenAI, bedrock_upstream: BedrockUpstream) -> None:
    completion = client.chat.completions.create(
        model="bedrock-chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "echo: Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 21
    sent = bedrock_upstream.last()
    assert sent["path"] == "/model/bedrock-echo/converse"
    auth = {k.lower(): v for k, v in sent["headers"].items()}["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/")
    assert f"/{AWS_REGION}/bedrock/aws4_request" in auth
    assert sent["body"]["system"] == [{"text": "Be brief."}]
    assert sent["body"]["inferenceConfig"]["maxTokens"] == 50


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streaming_with_usage(client: openai.OpenAI, provider: str) -> None:
    stream = client.chat.completions.create(
        model=f"{provider}-chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 9)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tools_both_ways(client: openai.OpenAI, provider: str) -> None:
    first = client.chat.completions.create(model=f"{provider}-tools", messages=QUESTION, tools=TOOLS, tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}

    follow_up = [
        *QUESTION,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 degrees"},
    ]
    second = client.chat.completions.create(model=f"{provider}-tools", messages=follow_up, tools=TOOLS)
    assert second.choices[0].message.content == "tool said: sunny, 21 degrees"
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tools_both_ways_streaming(client: openai.OpenAI, provider: str) -> None:
    stream = client.chat.completions.create(model=f"{provider}-tools", messages=QUESTION, tools=TOOLS, stream=True)
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for tc in delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += tc.id or ""
            if tc.function is not None:
                call["name"] += tc.function.name or ""
                call["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text == "Let me check."
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}

    follow_up = [
        *QUESTION,
        {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {"id": calls[0]["id"], "type": "function", "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}
            ],
        },
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
    ]
    stream = client.chat.completions.create(model=f"{provider}-tools", messages=follow_up, tools=TOOLS, stream=True)
    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert answer == "tool said: sunny"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_errors_map_to_sdk_exceptions(client: openai.OpenAI, provider: str) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=f"{provider}-status-400", messages=QUESTION)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=f"{provider}-status-429", messages=QUESTION)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=f"{provider}-chat", messages=QUESTION, logit_bias={"1": 5})
    assert "logit_bias" in str(bad.value)


def test_an_alias_fails_over_from_gemini_to_bedrock(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gemini-then-bedrock", messages=QUESTION, tools=TOOLS)
    assert raw.headers["x-modelgate-deployment"] == "default/bedrock-tools"
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "tool_calls"
    stream = client.chat.completions.create(model="gemini-then-bedrock", messages=QUESTION, tools=TOOLS, stream=True)
    names = [tc.function.name for c in stream if c.choices for tc in c.choices[0].delta.tool_calls or [] if tc.function and tc.function.name]
    assert names == ["get_weather"]


# The `anthropic` SDK against /v1/messages on Gemini- and Bedrock-backed models.

CLAUDE_TOOLS: Any = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
CLAUDE_QUESTION: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def claude(gateway: Gateway) -> Any:
    c = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=15.0)
    yield c
    c.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_text_whole_and_streamed(
    claude: anthropic.Anthropic, provider: str, gemini_upstream: GeminiUpstream, bedrock_upstream: BedrockUpstream
) -> None:
    message = claude.messages.create(
        model=f"{provider}-chat", max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: Hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 9)
    sent = (gemini_upstream if provider == "gemini" else bedrock_upstream).last()["body"]
    if provider == "gemini":
        assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert sent["generationConfig"]["maxOutputTokens"] == 50
    else:
        assert sent["system"] == [{"text": "Be brief."}]
        assert sent["inferenceConfig"]["maxTokens"] == 50

    with claude.messages.stream(
        model=f"{provider}-chat", max_tokens=50, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 9


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_tools_both_ways(claude: anthropic.Anthropic, provider: str) -> None:
    first = claude.messages.create(model=f"{provider}-tools", max_tokens=100, tools=CLAUDE_TOOLS, messages=CLAUDE_QUESTION)
    assert first.stop_reason == "tool_use"
    texts = [b.text for b in first.content if b.type == "text"]
    uses = [b for b in first.content if b.type == "tool_use"]
    assert texts == ["Let me check."]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}

    follow_up: Any = [
        *CLAUDE_QUESTION,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny, 21 degrees"}]},
    ]
    second = claude.messages.create(model=f"{provider}-tools", max_tokens=100, tools=CLAUDE_TOOLS, messages=follow_up)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "tool said: sunny, 21 degrees"  # type: ignore[union-attr]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_tools_streamed(claude: anthropic.Anthropic, provider: str) -> None:
    with claude.messages.stream(
        model=f"{provider}-tools", max_tokens=100, tools=CLAUDE_TOOLS, messages=CLAUDE_QUESTION
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds, "tool arguments arrive as input_json_delta events"
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}
    assert [b.text for b in final.content if b.type == "text"] == ["Let me check."]

    follow_up: Any = [
        *CLAUDE_QUESTION,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}]},
    ]
    with claude.messages.stream(model=f"{provider}-tools", max_tokens=100, tools=CLAUDE_TOOLS, messages=follow_up) as stream:
        text = "".join(stream.text_stream)
    assert text == "tool said: sunny"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_errors_are_anthropic_shaped(claude: anthropic.Anthropic, provider: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model=f"{provider}-status-400", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(model=f"{provider}-status-429", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
