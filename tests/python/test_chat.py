"""Chat and legacy completions through the gateway with the official `openai` SDK."""

from __future__ import annotations

import asyncio

import openai

from conftest import MASTER_KEY, MOCK_TEXT, UPSTREAM_KEY, Gateway, make_client
from upstream import Upstream

MESSAGES = [{"role": "user", "content": "Say hello in five words"}]


def test_chat_completion_content_usage_and_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.status_code == 200
    assert raw.headers["x-modelgate-deployment"] == "default/mock-chat"
    assert raw.headers["x-modelgate-attempts"] == "1"
    assert raw.headers.get("x-request-id")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "mock-chat"
    assert completion.id
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == MOCK_TEXT
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens == len(MOCK_TEXT.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_request_id_is_kept_from_the_client(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="mock-chat", messages=MESSAGES, extra_headers={"x-request-id": "sdk-suite-req-42"}
    )
    assert completion._request_id == "sdk-suite-req-42"
    generated = client.chat.completions.create(model="mock-chat", messages=MESSAGES)
    assert generated._request_id and generated._request_id != "sdk-suite-req-42"


def test_hidden_alias_is_routed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="secret-chat", messages=MESSAGES)
    assert raw.headers["x-modelgate-deployment"] == "default/mock-chat"
    assert raw.parse().choices[0].message.content == MOCK_TEXT


def test_base_url_without_v1_prefix(gateway: Gateway) -> None:
    # LiteLLM-style clients call /chat/completions without /v1.
    with make_client(gateway, base_url=gateway.url) as c:
        completion = c.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content == MOCK_TEXT


def test_chat_through_an_openai_compatible_upstream(client: openai.OpenAI, upstream: Upstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="upstream-chat",
        messages=[{"role": "user", "content": "ping pong"}],
        temperature=0.2,
        extra_headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    assert raw.headers["x-modelgate-deployment"] == "default/upstream-chat"
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: ping pong"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    sent = upstream.last_with_content("ping pong")
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "echo", "the public name is rewritten to the upstream's"
    assert sent["body"]["temperature"] == 0.2
    # The upstream gets its own key from the Secret, never the client's master key.
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert MASTER_KEY not in str(sent["headers"])
    assert sent["headers"]["x-modelgate-suite"] == "openai-sdk"
    assert sent["headers"]["traceparent"].startswith("00-0af7651916cd43dd")


def _collect(stream: openai.Stream) -> tuple[list, str, list]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage_chunks = [c for c in chunks if c.usage is not None]
    return chunks, text, usage_chunks


def test_streaming_chat_with_usage(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-modelgate-deployment"] == "default/mock-chat"
        chunks, text, usage_chunks = _collect(response.parse())
    assert len(chunks) > 3, "the answer arrives as several chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text == MOCK_TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    # Exactly one usage chunk, the last one, with no choices (OpenAI's include_usage shape).
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.completion_tokens == len(MOCK_TEXT.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="mock-chat", messages=MESSAGES, stream=True)
    chunks, text, usage_chunks = _collect(stream)
    assert text == MOCK_TEXT
    assert usage_chunks == []
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streaming_through_an_openai_compatible_upstream(client: openai.OpenAI, upstream: Upstream) -> None:
    stream = client.chat.completions.create(
        model="upstream-chat",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, text, usage_chunks = _collect(stream)
    assert text.strip() == "echo: stream me please"
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert chunks[-1].usage.prompt_tokens == 3
    sent = upstream.last_with_content("stream me please")["body"]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_stream_closed_early_by_the_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="upstream-chat", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()  # hanging up after the first chunk must not hang or raise
    # The gateway and the client's connection pool still serve afterwards.
    assert client.chat.completions.create(model="chat", messages=MESSAGES).choices[0].message.content == MOCK_TEXT


def test_legacy_completions(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="mock-instruct", prompt="Once upon a time", max_tokens=16)
    assert raw.headers["x-modelgate-deployment"] == "default/mock-instruct"
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.choices[0].text == MOCK_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 4


def test_legacy_completions_streamed_with_usage(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="mock-instruct", prompt="Once upon a time", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) > 3
    assert "".join(c.choices[0].text for c in chunks if c.choices) == MOCK_TEXT
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 4


def test_legacy_completions_through_an_upstream(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="upstream-chat", prompt="abc def")
    assert completion.choices[0].text == "echo: abc def"


def test_failures_of_one_deployment_stay_invisible(client: openai.OpenAI) -> None:
    # `flaky` has a deployment answering 503 and a healthy one; with a retry the client
    # never sees the failure, whichever is picked first (or cooling down).
    for _ in range(6):
        raw = client.chat.completions.with_raw_response.create(model="flaky", messages=MESSAGES)
        assert raw.status_code == 200
        assert raw.headers["x-modelgate-deployment"] == "default/flaky-good"
        assert raw.parse().choices[0].message.content == MOCK_TEXT


def test_async_client_concurrent_requests(gateway: Gateway) -> None:
    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=15) as c:

            async def one(i: int) -> str:
                if i % 2:
                    stream = await c.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
                    return "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
                completion = await c.chat.completions.create(model="upstream-chat", messages=MESSAGES)
                return completion.choices[0].message.content or ""

            return await asyncio.gather(*(one(i) for i in range(8)))

    answers = asyncio.run(run())
    assert answers[1::2] == [MOCK_TEXT] * 4
    assert answers[0::2] == [f"echo: {MESSAGES[0]['content']}"] * 4
