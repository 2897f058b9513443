"""A tiny mock of Anthropic's Messages API, standard library only.

It listens on 127.0.0.1 (port 0) and answers `POST /v1/messages` and `GET /v1/models`,
requiring `x-api-key` (the suite's upstream key) and `anthropic-version`. What it does
depends on the `model` of the request (the upstream model of the gateway deployment):

- `claude-echo`: a text answer `echo: <last user text>`.
- `claude-tools`: when the last user turn carries a `tool_result`, a text answer
  `tool said: <result>`; otherwise a call of the first tool with `{"city": "Paris"}`
  (after a short text), stop reason `tool_use`.
- `claude-status-NNN`: status NNN with Anthropic's error body (`overloaded_error` for
  529, `rate_limit_error` with `retry-after: 1` for 429, …).

Streams (`"stream": true`) are Anthropic's SSE events, each written and flushed on its
own; the connection closes at the end (HTTP/1.0). Requests are recorded for tests.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

USAGE = {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3, "output_tokens": 9}


class AnthropicUpstream:
    """The server and what tests can observe."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(_Handler):
            owner = upstream

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="anthropic-upstream", daemon=True)

    def start(self) -> "AnthropicUpstream":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.requests[-1]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


class _Handler(BaseHTTPRequestHandler):
    owner: AnthropicUpstream

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _error(self, status: int, message: str, retry_after: str | None = None) -> None:
        body = json.dumps({"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}})
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if retry_after:
            self.send_header("retry-after", retry_after)
        self.end_headers()
        self.wfile.write(body.encode())

    def _json(self, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        if self.headers.get("anthropic-version") is None:
            self._error(400, "anthropic-version: header is required")
            return False
        if self.headers.get("x-api-key") != self.owner.api_key:
            self._error(401, "invalid x-api-key")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        if not self._authorized():
            return
        if self.path.split("?")[0] == "/v1/models":
            self._json({"data": [{"type": "model", "id": "claude-echo", "display_name": "Echo"}], "has_more": False})
            return
        self._error(404, f"no route for GET {self.path}")

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as e:
            self._error(400, f"invalid JSON: {e}")
            return
        with self.owner.lock:
            self.owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if not self._authorized():
            return
        if self.path != "/v1/messages":
            self._error(404, f"no route for POST {self.path}")
            return
        if not isinstance(body.get("max_tokens"), int):
            self._error(400, "max_tokens: Field required")
            return
        model = str(body.get("model", ""))
        if model.startswith("claude-status-"):
            status = int(model.split("-")[2])
            self._error(status, f"mock upstream says {status}", "1" if status == 429 else None)
            return
        messages = body.get("messages") or [{}]
        last = messages[-1].get("content", "")
        blocks: list[dict[str, Any]] = []
        stop = "end_turn"
        results = [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(last, list) else []
        if model == "claude-tools" and not results and body.get("tools"):
            tool = body["tools"][0]["name"]
            blocks = [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_mock_1", "name": tool, "input": {"city": "Paris"}},
            ]
            stop = "tool_use"
        elif results:
            blocks = [{"type": "text", "text": f"tool said: {_text_of(results[0].get('content'))}"}]
        else:
            blocks = [{"type": "text", "text": f"echo: {_text_of(last)}"}]
        message = {"id": "msg_mock_1", "type": "message", "role": "assistant", "model": model}
        if not body.get("stream"):
            self._json({**message, "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": USAGE})
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()

        def send(event: dict[str, Any]) -> None:
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()

        usage = {**USAGE, "output_tokens": 1}
        send({"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})
        send({"type": "ping"})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                send({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                for word in block["text"].split(" "):
                    piece = word if word == block["text"].split(" ")[0] else f" {word}"
                    send({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}})
            else:
                start = {**block, "input": {}}
                send({"type": "content_block_start", "index": i, "content_block": start})
                text = json.dumps(block["input"])
                for piece in ("", text[: len(text) // 2], text[len(text) // 2 :]):
                    send({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": piece}})
            send({"type": "content_block_stop", "index": i})
        send({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 9}})
        send({"type": "message_stop"})
