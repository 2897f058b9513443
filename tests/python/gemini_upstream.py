"""A tiny mock of Google's Gemini API, standard library only.

It listens on 127.0.0.1 (port 0) and answers `POST /v1beta/models/{model}:generateContent`,
`:streamGenerateContent?alt=sse` and `GET /v1beta/models`, requiring the suite's key in
`x-goog-api-key` (and refusing a key in the URL). What it does depends on the model in
the path (the upstream model of the gateway deployment):

- `gemini-echo`: a text answer `echo: <last user text>`.
- `gemini-tools`: when the last turn carries a `functionResponse`, a text answer
  `tool said: <result>`; otherwise a short text and a call of the first declared
  function with `{"city": "Paris"}`.
- `gemini-status-NNN`: status NNN with Google's error body.

Streams are SSE `data:` lines of partial answers, the last with `finishReason` and
`usageMetadata`. Requests are recorded for tests.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 9, "totalTokenCount": 21}


class GeminiUpstream:
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
        self.base_url = f"http://127.0.0.1:{self.port}/v1beta"
        self.thread = threading.Thread(target=self.server.serve_forever, name="gemini-upstream", daemon=True)

    def start(self) -> "GeminiUpstream":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.requests[-1]


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts)


class _Handler(BaseHTTPRequestHandler):
    owner: GeminiUpstream

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _error(self, status: int, message: str) -> None:
        body = json.dumps({"error": {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}})
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if status == 429:
            self.send_header("retry-after", "1")
        self.end_headers()
        self.wfile.write(body.encode())

    def _json(self, value: Any) -> None:
        body = json.dumps(value, indent=2).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        if "key=" in self.path:
            self._error(400, "the mock refuses keys in URLs")
            return False
        if self.headers.get("x-goog-api-key") != self.owner.api_key:
            self._error(401, "API key not valid")
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        if not self._authorized():
            return
        if self.path.split("?")[0] == "/v1beta/models":
            self._json({"models": [{"name": "models/gemini-echo"}]})
            return
        self._error(404, f"no route for GET {self.path}")

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as e:
            self._error(400, f"invalid JSON: {e}")
            return
        with self.owner.lock:
            self.owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if not self._authorized():
            return
        path, _, query = self.path.partition("?")
        rest = path.removeprefix("/v1beta/models/")
        model, _, method = rest.partition(":")
        if rest == path or method not in ("generateContent", "streamGenerateContent"):
            self._error(404, f"no route for POST {self.path}")
            return
        if model.startswith("gemini-status-"):
            self._error(int(model.split("-")[2]), "mock upstream says no")
            return
        contents = body.get("contents") or [{}]
        parts = contents[-1].get("parts") or []
        results = [p["functionResponse"] for p in parts if "functionResponse" in p]
        declared = [f for t in body.get("tools") or [] for f in t.get("functionDeclarations") or []]
        if model == "gemini-tools" and not results and declared:
            out = [{"text": "Let me check."}, {"functionCall": {"name": declared[0]["name"], "args": {"city": "Paris"}}}]
        elif results:
            response = results[0].get("response") or {}
            out = [{"text": f"tool said: {response.get('content', json.dumps(response))}"}]
        else:
            out = [{"text": f"echo: {_text(parts)}"}]
        if method == "generateContent":
            self._json({"candidates": [{"content": {"role": "model", "parts": out}, "finishReason": "STOP", "index": 0}], "usageMetadata": USAGE, "modelVersion": model})
            return
        if query != "alt=sse":
            self._error(400, "streams need alt=sse")
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()

        def send(parts: list[dict[str, Any]], last: bool = False) -> None:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            event: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if last:
                candidate["finishReason"] = "STOP"
                event["usageMetadata"] = USAGE
            self.wfile.write(f"data: {json.dumps(event)}\r\n\r\n".encode())
            self.wfile.flush()

        for part in out:
            if "text" in part:
                words = part["text"].split(" ")
                for i, word in enumerate(words):
                    send([{"text": word if i == 0 else f" {word}"}])
            else:
                send([part])
        send([{"text": ""}], last=True)
