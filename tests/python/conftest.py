"""Fixtures of the `openai` SDK suite: a programmable upstream, a gateway run by
`modelgate-operator local` from manifests written here, and SDK clients pointed at it.

The gateway binary is `$MODELGATE_OPERATOR_BIN` (set by `tests/tests/openai_sdk.rs`), else
`target/debug/modelgate-operator` of this repository. Run by hand:

    cargo build -p modelgate-operator && target/pyenv/bin/python -m pytest tests/python -q

Everything listens on 127.0.0.1 only. Settings chosen so that what a client sees is easy to
predict: no retries unless a deployment asks (`retries: 0`), three failures within a
minute before a cooldown (so every error deployment below may fail twice and still pass
its upstream status through as is), cooldowns of 2 s, a 64 KiB body limit, and a master key.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from anthropic_upstream import AnthropicUpstream  # noqa: E402
from bedrock_upstream import BedrockUpstream  # noqa: E402
from gemini_upstream import GeminiUpstream  # noqa: E402
from upstream import Upstream  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# Everything here is on 127.0.0.1: never through a proxy from the environment (the SDK's
# HTTP client, urllib and the gateway's upstream client all honour these variables).
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

MASTER_KEY = "sk-modelgate-sdk-suite-master"
UPSTREAM_KEY = "sk-upstream-sdk-suite"
AWS_ACCESS_KEY_ID = "AKIASDKSUITE"
AWS_REGION = "us-east-1"
MOCK_TEXT = "Hello from the mock deployment, streamed word by word."
MAX_BODY = 64 * 1024
COOLDOWN_SECONDS = 2
ALLOWED_FAILS = 3

# Upstream statuses passed through to clients, one deployment (and model group) each.
STATUSES = [400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]


def _deployment(name: str, model: str, upstream: str, extra: str = "") -> str:
    return f"""---
apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}}}
spec:
  model: {model}
{upstream}{extra}"""


def _compatible(api_base: str, upstream_model: str) -> str:
    return f"""  upstream:
    provider: openai-compatible
    apiBase: {api_base}
    model: {upstream_model}
    credentials: {{secretKeyRef: {{name: upstream-key, key: apiKey}}}}
    headers: [{{name: X-Modelgate-Suite, value: openai-sdk}}]
"""


def _mock(response: str | None = None, delay: str | None = None) -> str:
    lines = ["  upstream:", "    provider: mock"]
    if response is not None or delay is not None:
        lines.append("    mock:")
        if response is not None:
            lines.append(f"      response: {json.dumps(response)}")
        if delay is not None:
            lines.append(f"      delay: {delay}")
    return "\n".join(lines) + "\n"


NO_HEALTH_CHECK = "  healthCheck: {enabled: false}\n"


def _anthropic(api_base: str, upstream_model: str) -> str:
    return f"""  upstream:
    provider: anthropic
    apiBase: {api_base}
    model: {upstream_model}
    credentials: {{secretKeyRef: {{name: upstream-key, key: apiKey}}}}
"""


def anthropic_manifests(anthropic_base: str) -> list[str]:
    """Anthropic-backed models (tests/python/test_anthropic.py): an echo, a tool caller, an
    overloaded deployment failing over to a mock one in the same group, and statuses."""
    docs = [
        _deployment("claude-chat", "claude-chat", _anthropic(anthropic_base, "claude-echo"), "  modelInfo: {maxOutputTokens: 256}\n"),
        _deployment("claude-tools", "claude-tools", _anthropic(anthropic_base, "claude-tools"), NO_HEALTH_CHECK),
        _deployment(
            "claude-overloaded",
            "claude-failover",
            _anthropic(anthropic_base, "claude-status-529"),
            NO_HEALTH_CHECK + "  routing: {order: 1, retries: 1}\n",
        ),
        _deployment("claude-failover-mock", "claude-failover", _mock(MOCK_TEXT), "  routing: {order: 2, retries: 1}\n"),
    ]
    for status in (400, 401, 429):
        name = f"claude-status-{status}"
        docs.append(_deployment(name, name, _anthropic(anthropic_base, name), NO_HEALTH_CHECK))
    return docs


def _gemini(api_base: str, upstream_model: str) -> str:
    return f"""  upstream:
    provider: gemini
    apiBase: {api_base}
    model: {upstream_model}
    credentials: {{secretKeyRef: {{name: upstream-key, key: apiKey}}}}
"""


def _bedrock(api_base: str, upstream_model: str) -> str:
    return f"""  upstream:
    provider: bedrock
    apiBase: {api_base}
    region: {AWS_REGION}
    model: {upstream_model}
    credentials: {{secretName: aws, keys: {{accessKeyId: id, secretAccessKey: secret}}}}
"""


def gemini_bedrock_manifests(gemini_base: str, bedrock_base: str) -> list[str]:
    """Gemini- and Bedrock-backed models (tests/python/test_gemini_bedrock.py): an echo and
    a tool caller each, statuses, and an alias over both failing over between them."""
    docs = [
        f"""---
apiVersion: v1
kind: Secret
metadata: {{name: aws}}
stringData: {{id: {AWS_ACCESS_KEY_ID}, secret: sdk-suite-aws-secret}}
"""
    ]
    for provider, base, make in (("gemini", gemini_base, _gemini), ("bedrock", bedrock_base, _bedrock)):
        docs.append(_deployment(f"{provider}-chat", f"{provider}-chat", make(base, f"{provider}-echo"), NO_HEALTH_CHECK))
        docs.append(_deployment(f"{provider}-tools", f"{provider}-tools", make(base, f"{provider}-tools"), NO_HEALTH_CHECK))
        for status in (400, 429):
            name = f"{provider}-status-{status}"
            docs.append(_deployment(name, name, make(base, name), NO_HEALTH_CHECK))
    docs.append(
        """---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {name: gemini-then-bedrock}
spec: {alias: gemini-then-bedrock, targets: [{model: gemini-status-429}], fallbacks: [bedrock-tools]}
"""
    )
    return docs


def manifests(
    upstream_base: str,
    closed_port: int,
    anthropic_base: str | None = None,
    gemini_base: str | None = None,
    bedrock_base: str | None = None,
) -> str:
    """Every resource the suite needs, as one multi-document YAML file."""
    docs = [
        f"""apiVersion: v1
kind: Secret
metadata: {{name: upstream-key}}
stringData: {{apiKey: {UPSTREAM_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: gateway-master}}
stringData: {{key: {MASTER_KEY}}}
---
apiVersion: modelgate.dev/v1alpha1
kind: RouterSettings
retries: 0
maxRequestBodyBytes: {MAX_BODY}
cooldown: {{allowedFails: {ALLOWED_FAILS}, cooldownTime: {COOLDOWN_SECONDS}s}}
timeouts: {{request: 20s, stream: {{firstByte: 10s, idle: 5s}}}}
masterKey: {{secretKeyRef: {{name: gateway-master, key: key}}}}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {{name: chat}}
spec: {{alias: chat, targets: [{{model: mock-chat}}]}}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {{name: secret-chat}}
spec: {{alias: secret-chat, hidden: true, targets: [{{model: mock-chat}}]}}
"""
    ]
    docs.append(_deployment("mock-chat", "mock-chat", _mock(MOCK_TEXT), "  modelInfo: {mode: chat}\n"))
    docs.append(_deployment("mock-instruct", "mock-instruct", _mock(MOCK_TEXT), "  modelInfo: {mode: completion}\n"))
    docs.append(_deployment("mock-embed", "mock-embed", _mock(), "  modelInfo: {mode: embedding}\n"))
    docs.append(_deployment("slow-mock", "slow-mock", _mock(delay="3s"), NO_HEALTH_CHECK))
    docs.append(_deployment("upstream-chat", "upstream-chat", _compatible(upstream_base, "echo")))
    docs.append(
        _deployment("upstream-embed", "upstream-embed", _compatible(upstream_base, "echo"), "  modelInfo: {mode: embedding}\n")
    )
    for status in STATUSES:
        name = f"status-{status}"
        docs.append(_deployment(name, name, _compatible(upstream_base, name), NO_HEALTH_CHECK))
    for name in ("status-429-bare", "context-overflow", "html-502", "break-stream"):
        docs.append(_deployment(name, name, _compatible(upstream_base, name), NO_HEALTH_CHECK))
    # The gateway's own errors: an upstream that takes too long (504), one nobody
    # listens on (502), one at its concurrency limit (503), one in cooldown (429).
    docs.append(
        _deployment(
            "gateway-timeout",
            "gateway-timeout",
            _compatible(upstream_base, "slow"),
            NO_HEALTH_CHECK + "  timeouts: {request: 300ms, stream: {firstByte: 300ms, idle: 300ms}}\n",
        )
    )
    docs.append(
        _deployment("unreachable", "unreachable", _compatible(f"http://127.0.0.1:{closed_port}/v1", "echo"), NO_HEALTH_CHECK)
    )
    docs.append(
        _deployment("busy", "busy", _compatible(upstream_base, "hold"), NO_HEALTH_CHECK + "  limits: {maxConcurrentRequests: 1}\n")
    )
    docs.append(_deployment("cooling", "cooling", _compatible(upstream_base, "status-500-cooling"), NO_HEALTH_CHECK))
    # A group with one failing and one healthy deployment: clients never see the failure.
    retry_once = "  routing: {retries: 1}\n"
    docs.append(_deployment("flaky-bad", "flaky", _compatible(upstream_base, "status-503-flaky"), NO_HEALTH_CHECK + retry_once))
    docs.append(_deployment("flaky-good", "flaky", _mock(MOCK_TEXT), retry_once))
    # The Responses API (tests/python/test_responses.py): a group of two OpenAI-compatible
    # deployments (told apart by upstream model), and one mixing a mock (not eligible).
    for name in ("resp-a", "resp-b"):
        docs.append(_deployment(name, "responses-pair", _compatible(upstream_base, name), NO_HEALTH_CHECK))
    docs.append(_deployment("resp-mock", "responses-mixed", _mock(MOCK_TEXT)))
    docs.append(_deployment("resp-c", "responses-mixed", _compatible(upstream_base, "resp-c"), NO_HEALTH_CHECK))
    if anthropic_base is not None:
        docs.extend(anthropic_manifests(anthropic_base))
    if gemini_base is not None and bedrock_base is not None:
        docs.extend(gemini_bedrock_manifests(gemini_base, bedrock_base))
    return "\n".join(docs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# prctl(2), looked up here in the parent: the child between fork and exec must not import.
try:
    import ctypes

    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):  # not Linux
    _PRCTL = None
_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)


def _die_with_parent() -> None:
    """In the gateway's child process: get SIGKILL when pytest dies (Linux), so that a
    killed test run never leaves a gateway behind."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL)


def operator_binary() -> Path:
    env = os.environ.get("MODELGATE_OPERATOR_BIN")
    path = Path(env) if env else REPO / "target" / "debug" / "modelgate-operator"
    if not path.is_file():
        pytest.exit(
            f"modelgate-operator not found at {path}: build it (`cargo build -p modelgate-operator`) "
            "or set MODELGATE_OPERATOR_BIN",
            returncode=2,
        )
    return path


class Gateway:
    """`modelgate-operator local` on a free 127.0.0.1 port."""

    def __init__(self, binary: Path, manifest_dir: Path) -> None:
        self.binary = binary
        self.manifest_dir = manifest_dir
        self.log_path = manifest_dir.parent / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, attempts: int = 3) -> None:
        last = ""
        for _ in range(attempts):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            log = open(self.log_path, "ab")  # noqa: SIM115 - kept open by the child
            env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), "NO_COLOR": "1"}
            self.proc = subprocess.Popen(
                [str(self.binary), "local", "-f", str(self.manifest_dir), "--listen", f"127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
            log.close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # exited: the port was taken meanwhile, or the manifests are bad
                try:
                    with urllib.request.urlopen(f"{url}/health/readiness", timeout=1) as resp:
                        if resp.status == 200:
                            self.url = url
                            return
                except (urllib.error.URLError, OSError):
                    pass
                time.sleep(0.05)
            last = self.log_tail()
            self.stop()
        raise RuntimeError(f"the gateway did not become ready; its log:\n{last}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# The end of the gateway's log, kept when a test failed, for the terminal summary.
_FAILED_GATEWAY_LOG: str | None = None


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    server = Upstream().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[AnthropicUpstream]:
    server = AnthropicUpstream(UPSTREAM_KEY).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def gemini_upstream() -> Iterator[GeminiUpstream]:
    server = GeminiUpstream(UPSTREAM_KEY).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def bedrock_upstream() -> Iterator[BedrockUpstream]:
    server = BedrockUpstream(AWS_ACCESS_KEY_ID).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def gateway(
    request: pytest.FixtureRequest,
    upstream: Upstream,
    anthropic_upstream: AnthropicUpstream,
    gemini_upstream: GeminiUpstream,
    bedrock_upstream: BedrockUpstream,
) -> Iterator[Gateway]:
    global _FAILED_GATEWAY_LOG
    binary = operator_binary()
    with tempfile.TemporaryDirectory(prefix="modelgate-openai-sdk-") as tmp:
        manifest_dir = Path(tmp) / "manifests"
        manifest_dir.mkdir()
        suite = manifests(
            upstream.base_url,
            _free_port(),
            anthropic_upstream.base_url,
            gemini_upstream.base_url,
            bedrock_upstream.base_url,
        )
        (manifest_dir / "suite.yaml").write_text(suite)
        gw = Gateway(binary, manifest_dir)
        try:
            gw.start()
            yield gw
        finally:
            gw.stop()
            if request.session.testsfailed:
                _FAILED_GATEWAY_LOG = gw.log_tail()


def make_client(gateway: Gateway, **kwargs: Any) -> openai.OpenAI:
    options: dict[str, Any] = {
        "base_url": f"{gateway.url}/v1",
        "api_key": MASTER_KEY,
        "max_retries": 0,  # every status reaches the test as is
        "timeout": 15.0,
    }
    options.update(kwargs)
    return openai.OpenAI(**options)


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    c = make_client(gateway)
    yield c
    c.close()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    """On failure, show the end of the gateway's log beside pytest's report."""
    if exitstatus != 0 and _FAILED_GATEWAY_LOG is not None:
        terminalreporter.write_sep("-", "gateway log (last lines)")
        terminalreporter.write_line(_FAILED_GATEWAY_LOG)
