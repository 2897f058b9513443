"""A tiny mock of AWS Bedrock Runtime's Converse API, standard library only.

It listens on 127.0.0.1 (port 0) and answers `POST /model/{modelId}/converse` (JSON) and
`/model/{modelId}/converse-stream` (the binary `application/vnd.amazon.eventstream`
framing, CRCs included). It requires a SigV4 `Authorization` header from the suite's
access key and an `x-amz-date`, but does not recompute the signature: the Rust mock
(`tests/testkit/src/bedrock_upstream.rs`) verifies it. What it does depends on the model
id in the path:

- `bedrock-echo`: a text answer `echo: <last user text>`.
- `bedrock-tools`: when the last turn carries a `toolResult`, `tool said: <result>`;
  otherwise a short text and a `toolUse` of the first tool with `{"city": "Paris"}`.
- `bedrock-status-NNN`: status NNN with `x-amzn-errortype` and `{"message"}`.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}
USAGE = {"inputTokens": 12, "outputTokens": 9, "totalTokens": 21}


def encode_event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event-stream message: prelude (lengths, CRC), string headers, payload, CRC."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


class BedrockUpstream:
    """The server and what tests can observe."""

    def __init__(self, access_key_id: str) -> None:
        self.access_key_id = access_key_id
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(_Handler):
            owner = upstream

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="bedrock-upstream", daemon=True)

    def start(self) -> "BedrockUpstream":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last(self) -> dict[str, Any]:
        with self.lock:
            return self.requests[-1]


class _Handler(BaseHTTPRequestHandler):
    owner: BedrockUpstream

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _error(self, status: int, message: str, kind: str | None = None) -> None:
        body = json.dumps({"message": message})
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("x-amzn-errortype", kind or ERRORS.get(status, "InternalServerException"))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def _json(self, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as e:
            self._error(400, f"invalid JSON: {e}")
            return
        with self.owner.lock:
            self.owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        auth = self.headers.get("authorization") or ""
        if not auth.startswith(f"AWS4-HMAC-SHA256 Credential={self.owner.access_key_id}/") or not self.headers.get("x-amz-date"):
            self._error(403, "missing or foreign SigV4 signature", "InvalidSignatureException")
            return
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("converse", "converse-stream"):
            self._error(404, f"no route for POST {self.path}", "UnknownOperationException")
            return
        model, stream = unquote(parts[2]), parts[3] == "converse-stream"
        if model.startswith("bedrock-status-"):
            self._error(int(model.split("-")[2]), "mock upstream says no")
            return
        messages = body.get("messages") or [{}]
        content = messages[-1].get("content") or []
        results = [b["toolResult"] for b in content if "toolResult" in b]
        tools = (body.get("toolConfig") or {}).get("tools") or []
        if model == "bedrock-tools" and not results and tools:
            out = [{"text": "Let me check."}, {"toolUse": {"toolUseId": "tooluse_mock_1", "name": tools[0]["toolSpec"]["name"], "input": {"city": "Paris"}}}]
            stop = "tool_use"
        elif results:
            first = (results[0].get("content") or [{}])[0]
            out = [{"text": f"tool said: {first.get('text', json.dumps(first.get('json')))}"}]
            stop = "end_turn"
        else:
            out = [{"text": "echo: " + "".join(b.get("text", "") for b in content)}]
            stop = "end_turn"
        if not stream:
            self._json({"output": {"message": {"role": "assistant", "content": out}}, "stopReason": stop, "usage": USAGE, "metrics": {"latencyMs": 3}})
            return
        self.send_response(200)
        self.send_header("content-type", "application/vnd.amazon.eventstream")
        self.end_headers()

        def send(event_type: str, payload: dict[str, Any]) -> None:
            self.wfile.write(encode_event(event_type, payload))
            self.wfile.flush()

        send("messageStart", {"role": "assistant"})
        for i, block in enumerate(out):
            if "text" in block:
                words = block["text"].split(" ")
                for k, word in enumerate(words):
                    send("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": word if k == 0 else f" {word}"}})
            else:
                use = block["toolUse"]
                send("contentBlockStart", {"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}})
                text = json.dumps(use["input"])
                for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                    send("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}})
            send("contentBlockStop", {"contentBlockIndex": i})
        send("messageStop", {"stopReason": stop})
        send("metadata", {"usage": USAGE, "metrics": {"latencyMs": 3}})
