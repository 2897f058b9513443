"""Anthropic through the gateway, with the official SDKs.

- The `openai` SDK against Anthropic-backed models (the data plane translates to
  Anthropic's Messages API): chat, streaming with usage, tools both ways, whole and
  streamed, errors, failover from an overloaded Anthropic deployment.
- The `anthropic` SDK against the gateway's `/v1/messages`: an Anthropic-backed model
  (served natively) and OpenAI-backed ones (translated), whole and streamed.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from anthropic_upstream import AnthropicUpstream
from conftest import MASTER_KEY, MOCK_TEXT, UPSTREAM_KEY, Gateway

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


def test_chat_is_served_by_anthropic(client: openai.OpenAI, anthropic_upstream: AnthropicUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        temperature=0.2,
    )
    assert raw.headers["x-modelgate-deployment"] == "default/claude-chat"
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "echo: Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 15
    assert completion.usage.completion_tokens == 9
    assert completion.usage.total_tokens == 24
    sent = anthropic_upstream.last()
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == UPSTREAM_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["system"] == "Be brief."
    assert sent["body"]["max_tokens"] == 256, "modelInfo.maxOutputTokens"


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="claude-chat",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 9 and last.usage.prompt_tokens == 15


def test_tools_both_ways(client: openai.OpenAI, anthropic_upstream: AnthropicUpstream) -> None:
    first = client.chat.completions.create(model="claude-tools", messages=QUESTION, tools=TOOLS, tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    sent = anthropic_upstream.last()["body"]
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    assert sent["tool_choice"] == {"type": "auto"}

    follow_up = [
        *QUESTION,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 degrees"},
    ]
    second = client.chat.completions.create(model="claude-tools", messages=follow_up, tools=TOOLS)
    assert second.choices[0].message.content == "tool said: sunny, 21 degrees"
    assert second.choices[0].finish_reason == "stop"
    sent = anthropic_upstream.last()["body"]
    assert sent["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": calls[0].id,
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny, 21 degrees"}],
    }


def test_tools_both_ways_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="claude-tools", messages=QUESTION, tools=TOOLS, stream=True)
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
    assert list(calls) == [0], "tool calls are numbered among tool calls only"
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
    stream = client.chat.completions.create(model="claude-tools", messages=follow_up, tools=TOOLS, stream=True)
    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert answer == "tool said: sunny"


def test_errors_map_to_sdk_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="claude-status-400", messages=QUESTION)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="claude-status-401", messages=QUESTION)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="claude-status-429", messages=QUESTION)
    assert e.value.response.headers.get("retry-after") == "1"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="claude-chat", messages=QUESTION, logit_bias={"1": 5})
    assert "logit_bias" in str(bad.value)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="claude-chat", input="x")


def test_overloaded_anthropic_fails_over_to_another_deployment(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="claude-failover", messages=QUESTION)
    assert raw.headers["x-modelgate-deployment"] == "default/claude-failover-mock"
    assert raw.parse().choices[0].message.content == MOCK_TEXT
    stream = client.chat.completions.create(model="claude-failover", messages=QUESTION, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == MOCK_TEXT


@pytest.fixture(scope="module")
def claude(gateway: Gateway) -> Any:
    c = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=15.0)
    yield c
    c.close()


def test_anthropic_sdk_native(claude: anthropic.Anthropic, anthropic_upstream: AnthropicUpstream) -> None:
    message = claude.messages.create(
        model="claude-chat", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 12 and message.usage.output_tokens == 9
    assert anthropic_upstream.last()["body"]["model"] == "claude-echo", "only the model is rewritten"

    with claude.messages.stream(model="claude-chat", max_tokens=64, messages=[{"role": "user", "content": "a b c"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: a b c"
    assert final.stop_reason == "end_turn"

    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with claude.messages.stream(
        model="claude-tools", max_tokens=64, tools=tools, messages=[{"role": "user", "content": "Weather?"}]
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}

    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize("model", ["upstream-chat", "mock-chat"])
def test_anthropic_sdk_translated_for_openai_backed_models(claude: anthropic.Anthropic, model: str) -> None:
    expected = "echo: Hello" if model == "upstream-chat" else MOCK_TEXT
    message = claude.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    assert message.content[0].type == "text"
    assert message.content[0].text == expected
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0

    with claude.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() == expected, "the echo upstream streams word by word"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_anthropic_sdk_errors_are_anthropic_shaped(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as e:
        claude.messages.create(model="status-429", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error"  # type: ignore[index]
    assert e.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    bad = anthropic.Anthropic(base_url=str(claude.base_url), api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-chat", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    bad.close()
