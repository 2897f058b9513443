"""A tiny programmable OpenAI-style upstream, standard library only.

It listens on 127.0.0.1 (port 0: the OS picks) and answers `POST .../chat/completions`,
`.../completions` and `.../embeddings`. What it does depends on the `model` of the request
(the *upstream* model of the gateway deployment that points at it):

- `echo`: a normal answer (`echo: <last user text>`), streamed as SSE with HTTP/1.1 chunked
  encoding when `stream` is true, with a usage chunk when `stream_options.include_usage`.
- `status-NNN` (optionally `status-NNN-anything`, to tell deployments apart): HTTP status
  NNN with an OpenAI-shaped error body; 429 adds `Retry-After: 1` unless the name ends
  in `-bare`.
- `context-overflow`: 400 with `code: context_length_exceeded`.
- `html-502`: 502 with an HTML body (a broken load balancer in front of the model).
- `slow`: waits up to 5 s (or until `close()`), then answers like `echo`.
- `hold`: sets `arrived`, waits until `release` is set (at most 10 s), then answers.
- `break-stream`: starts a stream, sends two chunks, then drops the connection.

`POST .../responses` (the Responses API) answers `echo: <input>` whatever the model, with
ids `resp_<n>`; responses are stored, so `GET`/`DELETE .../responses/{id}` and a
`previous_response_id` this upstream did not issue get a 404, as on OpenAI. Streams are
`event:` + `data:` frames: `response.created`, `response.output_text.delta`s,
`response.completed` (for the model `break-stream`: the connection drops after two deltas).

`GET /v1/models` lists models (the gateway's health probe of OpenAI-compatible servers) and
is counted in `probes`. `Upstream(port)` listens on a given port, so a test can stop an
upstream and bring it back at the same address.

Every request is recorded (path, headers, JSON body) for tests to inspect.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class Upstream:
    """The server and what tests can observe and steer."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        # Responses API objects by id (what `previous_response_id` and GET can name).
        self.responses: dict[str, dict[str, Any]] = {}
        # `GET .../models` calls (health probes), counted apart from `requests`.
        self.probes = 0
        # Open client connections, closed by `close()` as a dying server's would be.
        self.connections: set[Any] = set()
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.closing = threading.Event()
        upstream = self

        class Handler(_Handler):
            owner = upstream

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, name="upstream", daemon=True)

    def start(self) -> "Upstream":
        self.thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(entry)

    def seen(self, model: str) -> list[dict[str, Any]]:
        """Requests received for upstream model `model`, oldest first."""
        with self.lock:
            return [r for r in self.requests if r["body"].get("model") == model]

    def last_with_content(self, content: str) -> dict[str, Any]:
        """The latest chat request whose last message is `content` (health probes of the
        gateway may come in between, so tests look requests up by what they sent)."""
        with self.lock:
            for r in reversed(self.requests):
                messages = r["body"].get("messages") or [{}]
                if messages[-1].get("content") == content:
                    return r
        raise AssertionError(f"the upstream never received a request saying {content!r}")


class _Handler(BaseHTTPRequestHandler):
    owner: Upstream
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: pytest shows failures, not access logs

    def setup(self) -> None:
        super().setup()
        with self.owner.lock:
            self.owner.connections.add(self.connection)

    def finish(self) -> None:
        with self.owner.lock:
            self.owner.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # -- plumbing ---------------------------------------------------------------------------

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(value).encode()
        self._send_bytes(status, data, "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, value: Any) -> None:
        self._chunk(b"data: " + json.dumps(value).encode() + b"\n\n")

    # -- requests ---------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if "/responses/" in self.path:
            self._stored(delete=False)
            return
        # `GET /v1/models`: what the gateway's health checks of OpenAI-compatible servers ask.
        if self.path.rstrip("/").endswith("/models"):
            with self.owner.lock:
                self.owner.probes += 1
            models = ["echo", "slow", "hold"]
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "upstream"} for m in models]
            self._send_json(200, {"object": "list", "data": data})
            return
        error = {"message": f"no GET {self.path}", "type": "invalid_request_error", "param": None, "code": None}
        self._send_json(404, {"error": error})

    def do_DELETE(self) -> None:  # noqa: N802 - stdlib naming
        self._stored(delete=True)

    def _stored(self, delete: bool) -> None:
        rid = self.path.split("?")[0].rsplit("/", 1)[-1]
        self.owner.record({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": {}})
        with self.owner.lock:
            found = self.owner.responses.get(rid)
            if found is not None and delete:
                del self.owner.responses[rid]
        if found is None:
            error = {"message": f"Response with id '{rid}' not found.", "type": "invalid_request_error", "param": None, "code": None}
            self._send_json(404, {"error": error})
        elif delete:
            self._send_json(200, {"id": rid, "object": "response", "deleted": True})
        else:
            self._send_json(200, found)

    def _responses(self, model: str, body: dict[str, Any]) -> None:
        previous = body.get("previous_response_id")
        with self.owner.lock:
            if previous is not None and previous not in self.owner.responses:
                found = False
            else:
                found = True
                rid = f"resp_{len(self.owner.responses) + 1}_{self.owner.port}"
        if not found:
            error = {
                "message": f"Previous response with id '{previous}' not found.",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            }
            self._send_json(404, {"error": error})
            return
        text = f"echo: {body.get('input')}"
        message = {
            "type": "message",
            "id": f"msg_{rid}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        obj: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "previous_response_id": previous,
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 3,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": len(text.split()),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 3 + len(text.split()),
            },
        }
        with self.owner.lock:
            self.owner.responses[rid] = obj
        if not body.get("stream"):
            self._send_json(200, obj)
            return
        self._start_stream()
        seq = 0

        def event(name: str, data: dict[str, Any]) -> None:
            nonlocal seq
            data = {"type": name, "sequence_number": seq, **data}
            seq += 1
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        event("response.created", {"response": {**obj, "status": "in_progress", "output": []}})
        for i, word in enumerate(text.split(" ")):
            if model == "break-stream" and i == 2:
                # As `break-stream` chat streams do: drop the connection mid-body.
                time.sleep(0.05)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            event(
                "response.output_text.delta",
                {"item_id": message["id"], "output_index": 0, "content_index": 0, "delta": word + " "},
            )
        event("response.completed", {"response": obj})
        self._chunk(b"")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        self.owner.record({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        model = str(body.get("model", ""))
        try:
            if self.path.split("?")[0].endswith("/responses"):
                self._responses(model, body)
                return
            self._answer(model, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up (timeout, client gone): nothing to do

    def _answer(self, model: str, body: dict[str, Any]) -> None:
        if model.startswith("status-"):
            status = int(model.split("-")[1])
            headers = {"Retry-After": "1"} if status == 429 and not model.endswith("-bare") else None
            error = {
                "message": f"upstream failure {status}",
                "type": ERROR_TYPES.get(status, "server_error"),
                "param": None,
                "code": "rate_limit_exceeded" if status == 429 else None,
            }
            self._send_json(status, {"error": error}, headers)
            return
        if model == "context-overflow":
            error = {
                "message": "This model's maximum context length is 16 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
            self._send_json(400, {"error": error})
            return
        if model == "html-502":
            self._send_bytes(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        if model == "slow":
            self.owner.closing.wait(5)
        if model == "hold":
            self.owner.arrived.set()
            self.owner.release.wait(10)
        if model == "break-stream":
            self._broken_stream(body)
            return
        self._ok(model, body)

    def _ok(self, model: str, body: dict[str, Any]) -> None:
        created = int(time.time())
        if self.path.endswith("/embeddings"):
            inputs = body.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(str(text))), 0.5, -0.5, float(i)]}
                for i, text in enumerate(inputs)
            ]
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            self._send_json(200, {"object": "list", "data": data, "model": model, "usage": usage})
            return
        chat = self.path.endswith("/chat/completions")
        if chat:
            messages = body.get("messages") or [{}]
            prompt = str(messages[-1].get("content", ""))
        else:
            prompt = str(body.get("prompt", ""))
        text = f"echo: {prompt}"
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(text.split()),
            "total_tokens": len(prompt.split()) + len(text.split()),
        }
        if not body.get("stream"):
            if chat:
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
                obj = "text_completion"
            answer = {"id": "up-1", "object": obj, "created": created, "model": model, "choices": [choice], "usage": usage}
            self._send_json(200, answer)
            return
        self._start_stream()
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(content: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {} if content is None else {"content": content}
                if role:
                    delta["role"] = "assistant"
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": content or "", "logprobs": None, "finish_reason": finish}
            return {"id": "up-stream-1", "object": obj, "created": created, "model": model, "choices": [choice]}

        self._event(chunk("", None, role=True))
        for word in text.split(" "):
            self._event(chunk(word + " ", None))
        self._event(chunk(None, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({"id": "up-stream-1", "object": obj, "created": created, "model": model, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")  # the last chunk of the chunked encoding

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _broken_stream(self, body: dict[str, Any]) -> None:
        self._start_stream()
        created = int(time.time())
        for word in ("partial ", "answer "):
            choice = {"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}
            self._event({"id": "up-broken", "object": "chat.completion.chunk", "created": created, "model": "break-stream", "choices": [choice]})
        time.sleep(0.05)
        # Drop the connection mid-body: no terminating chunk, so the gateway sees a
        # truncated chunked body (an error), not a clean end of stream.
        self.close_connection = True
        self.connection.shutdown(2)
