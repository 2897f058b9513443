"""Every error status the gateway answers raises the `openai` SDK's matching exception.

Clients run with `max_retries=0`, so each status reaches the test as the gateway sent it.
Upstream statuses come from the programmable upstream (`upstream.py`), one deployment per
status; the gateway's own errors (auth, unknown model, body too large, timeouts,
unreachable upstream, concurrency limit, cooldown) come from the gateway itself.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import openai
import pytest

from conftest import COOLDOWN_SECONDS, MASTER_KEY, MAX_BODY, Gateway, make_client
from upstream import Upstream

MESSAGES = [{"role": "user", "content": "hello"}]

# The exact class the SDK raises for each upstream status passed through.
UPSTREAM_STATUSES = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError),
    (408, openai.APIStatusError),
    (409, openai.ConflictError),
    (422, openai.UnprocessableEntityError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (502, openai.InternalServerError),
    (503, openai.InternalServerError),
    (504, openai.InternalServerError),
]


def assert_openai_error(exc: openai.APIStatusError, status: int) -> dict:
    """The response is `status` with an OpenAI-shaped JSON error; returns `error`."""
    assert exc.status_code == status
    assert exc.response.headers["content-type"].startswith("application/json")
    body = exc.response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert exc.body == error, "the SDK exposes the `error` object as `body`"
    assert exc.request_id, "errors carry x-request-id too"
    return error


@pytest.mark.parametrize(("status", "exc_class"), UPSTREAM_STATUSES, ids=[str(s) for s, _ in UPSTREAM_STATUSES])
def test_upstream_status_raises_the_matching_exception(
    client: openai.OpenAI, upstream: Upstream, status: int, exc_class: type[openai.APIStatusError]
) -> None:
    before = len(upstream.seen(f"status-{status}"))
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=f"status-{status}", messages=MESSAGES)
    assert type(e.value) is exc_class, f"{status} raised {type(e.value).__name__}"
    error = assert_openai_error(e.value, status)
    assert error["message"] == f"upstream failure {status}", "the upstream's message is passed on"
    assert e.value.message.startswith(f"Error code: {status}")
    assert len(upstream.seen(f"status-{status}")) == before + 1, "retries: 0 means one attempt"
    if status == 429:
        assert e.value.response.headers["retry-after"] == "1"
        assert error["code"] == "rate_limit_exceeded"
        assert error["type"] == "rate_limit_error"
    if status == 401:
        assert error["type"] == "authentication_error"
    if status == 403:
        assert error["type"] == "permission_error"


def test_upstream_error_before_the_first_chunk_is_a_real_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="status-500", messages=MESSAGES, stream=True)
    assert_openai_error(e.value, 500)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="status-429", messages=MESSAGES, stream=True)
    assert_openai_error(e.value, 429)
    assert e.value.response.headers.get("retry-after")


def test_every_429_has_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="status-429-bare", messages=MESSAGES)
    assert_openai_error(e.value, 429)
    assert int(e.value.response.headers["retry-after"]) >= 1


def test_context_window_error_keeps_code_and_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="context-overflow", messages=MESSAGES)
    error = assert_openai_error(e.value, 400)
    assert (e.value.code, e.value.param) == ("context_length_exceeded", "messages")
    assert "maximum context length" in error["message"]


def test_non_json_upstream_error_is_wrapped(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="html-502", messages=MESSAGES)
    error = assert_openai_error(e.value, 502)
    assert "502 Bad Gateway" in error["message"]


def test_bad_request_from_the_gateway(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="mock-embed", input="x", extra_body={"stream": True})
    assert_openai_error(e.value, 400)
    assert e.value.param == "stream"
    assert e.value.type == "invalid_request_error"


def test_wrong_master_key(gateway: Gateway) -> None:
    with make_client(gateway, api_key="sk-not-the-master-key") as c:
        with pytest.raises(openai.AuthenticationError) as e:
            c.chat.completions.create(model="chat", messages=MESSAGES)
        error = assert_openai_error(e.value, 401)
        assert error["code"] == "invalid_api_key"
        assert MASTER_KEY not in e.value.response.text
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
        with pytest.raises(openai.AuthenticationError):
            c.embeddings.create(model="mock-embed", input="x")


def test_missing_master_key(client: openai.OpenAI) -> None:
    no_auth = {"Authorization": openai.omit}
    with pytest.raises(openai.AuthenticationError) as e:
        client.chat.completions.create(model="chat", messages=MESSAGES, extra_headers=no_auth)
    assert_openai_error(e.value, 401)
    with pytest.raises(openai.AuthenticationError):
        client.models.list(extra_headers=no_auth)


def test_key_in_api_key_headers(gateway: Gateway) -> None:
    # Azure-style `api-key` and Anthropic-style `x-api-key` are accepted too; the wrong
    # bearer key is omitted, which also shows the SDK really sends no Authorization.
    with make_client(gateway, api_key="sk-wrong") as c:
        for header in ("api-key", "x-api-key"):
            completion = c.chat.completions.create(
                model="chat", messages=MESSAGES, extra_headers={"Authorization": openai.omit, header: MASTER_KEY}
            )
            assert completion.choices[0].message.content


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
def test_unknown_model(client: openai.OpenAI, endpoint: str) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        if endpoint == "chat":
            client.chat.completions.create(model="no-such-model", messages=MESSAGES)
        elif endpoint == "completions":
            client.completions.create(model="no-such-model", prompt="hi")
        else:
            client.embeddings.create(model="no-such-model", input="hi")
    error = assert_openai_error(e.value, 404)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "no-such-model" in error["message"]


def test_unsupported_endpoint_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.moderations.create(input="hello")
    assert_openai_error(e.value, 404)


def test_body_too_large(gateway: Gateway) -> None:
    # A fresh client per oversized request: see test_connection_stays_usable_after_413.
    big = [{"role": "user", "content": "x" * (MAX_BODY + 1024)}]
    with make_client(gateway) as c, pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="chat", messages=big)
    assert type(e.value) is openai.APIStatusError, "413 has no dedicated SDK class"
    error = assert_openai_error(e.value, 413)
    assert str(MAX_BODY) in error["message"]


def test_body_far_too_large(gateway: Gateway) -> None:
    # Much larger than the socket buffers: the client is still sending when the 413 comes.
    big = [{"role": "user", "content": "x" * (8 * 1024 * 1024)}]
    with make_client(gateway) as c, pytest.raises(openai.APIStatusError) as e:
        c.embeddings.create(model="mock-embed", input=big[0]["content"])
    assert_openai_error(e.value, 413)


def _read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status line, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return lines[0], headers, body


def test_connection_stays_usable_after_413(gateway: Gateway) -> None:
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x" * (MAX_BODY + 1024)}]}).encode()
    auth = f"Authorization: Bearer {MASTER_KEY}\r\n".encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            + auth
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status, headers, _ = _read_response(sock)
        assert status.startswith("HTTP/1.1 413")
        if headers.get("connection", "").lower() == "close":
            return  # the client is told not to reuse the connection: fine
        # Kept alive: the next request on the same connection must be served.
        time.sleep(0.2)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n" + auth + b"\r\n")
        status, _, _ = _read_response(sock)
        assert status.startswith("HTTP/1.1 200"), status


def test_unreachable_upstream_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="unreachable", messages=MESSAGES)
    assert_openai_error(e.value, 502)


def test_upstream_timeout_is_504(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="gateway-timeout", messages=MESSAGES)
    assert_openai_error(e.value, 504)
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="gateway-timeout", messages=MESSAGES, stream=True)
    assert_openai_error(e.value, 504)
    assert time.monotonic() - started < 4, "the deployment's 300ms timeouts apply"


def test_concurrency_limit_is_429_with_retry_after(client: openai.OpenAI, upstream: Upstream) -> None:
    upstream.arrived.clear()
    upstream.release.clear()
    held: dict = {}

    def hold() -> None:
        try:
            held["answer"] = client.chat.completions.create(model="busy", messages=MESSAGES)
        except Exception as exc:  # noqa: BLE001 - reported below
            held["error"] = exc

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        assert upstream.arrived.wait(10), "the first request never reached the upstream"
        with pytest.raises(openai.RateLimitError) as e:
            client.chat.completions.create(model="busy", messages=MESSAGES)
        assert_openai_error(e.value, 429)
        assert int(e.value.response.headers["retry-after"]) >= 1
    finally:
        upstream.release.set()
        thread.join(10)
    assert "error" not in held, held.get("error")
    assert held["answer"].choices[0].message.content == "echo: hello"


def test_cooldown_is_429_with_retry_after(client: openai.OpenAI, upstream: Upstream) -> None:
    seen = lambda: len(upstream.seen("status-500-cooling"))  # noqa: E731
    # allowedFails = 3: the first failures pass the upstream's 500 through ...
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as e:
            client.chat.completions.create(model="cooling", messages=MESSAGES)
        assert_openai_error(e.value, 500)
    # ... the third puts the only deployment in cooldown: 429 with Retry-After.
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="cooling", messages=MESSAGES)
    assert_openai_error(e.value, 429)
    assert seen() == 3
    # While it cools down the upstream is not called at all.
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="cooling", messages=MESSAGES)
    assert_openai_error(e.value, 429)
    retry_after = int(e.value.response.headers["retry-after"])
    assert 1 <= retry_after <= COOLDOWN_SECONDS
    assert seen() == 3
    # After Retry-After the deployment is tried again.
    time.sleep(retry_after + 0.2)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="cooling", messages=MESSAGES)
    assert seen() == 4


def test_failure_after_the_first_chunk_ends_the_stream_with_an_error(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="break-stream", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert not isinstance(e.value, openai.APIStatusError), "the 200 was already sent"
    assert received[:1] == ["partial "], "chunks before the failure arrive"
    assert isinstance(e.value.body, dict) and e.value.body.get("message")


def test_client_side_timeout(gateway: Gateway) -> None:
    with make_client(gateway, timeout=0.5) as c:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="slow-mock", messages=MESSAGES)
        assert time.monotonic() - started < 2.5
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="slow-mock", messages=MESSAGES, stream=True)
