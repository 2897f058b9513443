"""The parts of the operator end-to-end scenario, all real processes on loopback:

- the Kubernetes API emulator (`tests/emulator/serve.py`) with the CRDs installed, and the
  real `kubectl` pointed at it through a kubeconfig;
- two data-plane processes (`modelgate-dataplane`) on distinct loopback addresses, each
  registered as a Pod with that IP: a gateway pod on 127.0.0.2 in `modelgate-system`, which
  reads the snapshot Secrets from a folder that a small "kubelet" here keeps in sync with the
  emulator (as a Secret volume would), and a sidecar on 127.0.0.3 in the apps' namespace,
  which gets pushes only;
- two replicas of the real `modelgate-operator run`, electing a leader on a Lease;
- programmable OpenAI-style upstreams (`tests/python/upstream.py`) on 127.0.0.1.

Binaries: `$MODELGATE_OPERATOR_BIN` and `$MODELGATE_DATAPLANE_BIN` (set by
`tests/tests/operator_e2e.rs`), else `target/debug/…`. Run by hand:

    cargo build -p modelgate-operator -p modelgate-dataplane
    target/pyenv/bin/python -m pytest tests/e2e -q

Every child process gets SIGKILL when pytest dies, so a killed run leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))
from upstream import Upstream  # noqa: E402

for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,127.0.0.2,127.0.0.3,localhost"

OPERATOR_NS = "modelgate-system"
APPS_NS = "team-a"
ADMIN_TOKEN = "e2e-admin-token"
TABLE_SECRET = "modelgate-routing-table"
LEASE_SECONDS = 2

try:
    import ctypes

    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def binary(name: str, env: str) -> Path:
    path = Path(os.environ.get(env) or REPO / "target" / "debug" / name)
    if not path.is_file():
        pytest.exit(f"{name} not found at {path}: `cargo build -p {name}` or set {env}", returncode=2)
    return path


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Process:
    """A child process with its log in a file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Process":
        out = open(self.log, "ab")  # noqa: SIM115 - kept by the child
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env={**os.environ, "NO_COLOR": "1", **self.env},
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        out.close()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """The API emulator and `kubectl` against it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.kubeconfig = work / "kubeconfig"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Cluster":
        python = sys.executable
        err = open(self.work / "emulator.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [python, str(REPO / "tests/emulator/serve.py"), "--host", "127.0.0.1", "--port", "0",
             "--kubeconfig", str(self.kubeconfig), "--crds", str(REPO / "crds/yaml")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        err.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the emulator did not start: {line!r}; see {self.work / 'emulator.log'}")
        self.url = line.split(" ", 1)[1]
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            # Open watches can hold a graceful stop; nothing of the emulator needs keeping.
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60,
            # A discovery cache of its own: kubectl caches per host:port, and ports are reused.
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.work / "kubecache")},
        )
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "--validate=false", "-f", "-", stdin=manifest)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)

    def api_get(self, path: str) -> dict[str, Any] | None:
        status, body = http("GET", self.url + path)
        return json.loads(body) if status == 200 else None


class Kubelet(threading.Thread):
    """Mirrors the snapshot Secrets into a folder, as a projected Secret volume would."""

    def __init__(self, cluster: Cluster, folder: Path) -> None:
        super().__init__(name="kubelet", daemon=True)
        self.cluster = cluster
        self.folder = folder
        self.stopping = threading.Event()
        folder.mkdir(parents=True, exist_ok=True)

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the next round retries
                pass

    def sync(self) -> None:
        files: dict[str, bytes] = {}
        for i in range(8):
            name = TABLE_SECRET if i == 0 else f"{TABLE_SECRET}-{i}"
            secret = self.cluster.api_get(f"/api/v1/namespaces/{OPERATOR_NS}/secrets/{name}")
            if secret is None:
                break
            for key, value in (secret.get("data") or {}).items():
                files[key] = base64.b64decode(value)
        for key, data in files.items():
            path = self.folder / key
            if path.exists() and path.read_bytes() == data:
                continue
            tmp = self.folder / f".{key}.tmp"
            tmp.write_bytes(data)
            tmp.replace(path)


class DataPlane:
    """A data-plane process on its own loopback address, registered as a Pod."""

    def __init__(self, work: Path, name: str, namespace: str, ip: str, table_dir: Path | None) -> None:
        self.name = name
        self.namespace = namespace
        self.ip = ip
        self.table_dir = table_dir
        self.port = free_port(ip)
        self.admin_port = free_port(ip)
        self.token = work / "admin-token"
        self.process = Process(name, [], work / f"{name}.log")

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.ip}:{self.admin_port}"

    def start(self) -> "DataPlane":
        argv = [str(binary("modelgate-dataplane", "MODELGATE_DATAPLANE_BIN")),
                "--listen", f"{self.ip}:{self.port}",
                "--admin-listen", f"{self.ip}:{self.admin_port}",
                "--metrics-listen", f"{self.ip}:0",
                "--admin-token-file", str(self.token),
                "--drain-seconds", "2"]
        if self.table_dir is not None:
            argv += ["--table-file", str(self.table_dir)]
        self.process.argv = argv
        self.process.start()
        wait_for(f"{self.name} to listen", lambda: self.liveliness() == 200, timeout=15)
        return self

    def liveliness(self) -> int:
        try:
            return http("GET", f"{self.url}/health/liveliness", timeout=1)[0]
        except OSError:
            return 0

    def readiness(self) -> int:
        try:
            return http("GET", f"{self.url}/health/readiness", timeout=1)[0]
        except OSError:
            return 0

    def pod_manifest(self) -> str:
        return json.dumps({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {"modelgate.dev/dataplane": "true", "app": "modelgate-e2e"}},
            "spec": {"containers": [{
                "name": "gateway", "image": "modelgate/dataplane:e2e",
                "ports": [{"name": "http", "containerPort": self.port},
                          {"name": "modelgate-admin", "containerPort": self.admin_port}],
            }]},
        })

    def served(self) -> tuple[int, str] | None:
        try:
            status, body = http("GET", f"{self.admin_url}/v1/routing-table/version",
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=1)
        except OSError:
            return None
        if status != 200:
            return None
        v = json.loads(body)
        return v["revision"], v["version"]

    def get(self, path: str) -> Any:
        status, body = http("GET", f"{self.url}{path}")
        assert status == 200, f"GET {path} on {self.name}: {status} {body[:300]!r}"
        return json.loads(body)


class Operator:
    """One replica of `modelgate-operator run`."""

    def __init__(self, work: Path, cluster: Cluster, identity: str) -> None:
        self.identity = identity
        self.port = free_port("127.0.0.1")
        self.process = Process(identity, [
            str(binary("modelgate-operator", "MODELGATE_OPERATOR_BIN")), "run",
            "--namespace", OPERATOR_NS,
            "--admin-token-file", str(work / "admin-token"),
            "--listen", f"127.0.0.1:{self.port}",
            "--identity", identity,
            "--lease-duration", f"{LEASE_SECONDS}s",
            "--poll-interval", "300ms",
            "--push-timeout", "2s",
            "--health-refresh", "5s",
            "--log-format", "text",
        ], work / f"{identity}.log", env={"KUBECONFIG": str(cluster.kubeconfig), "MODELGATE_LOG": "info"})

    def metric(self, name: str) -> float | None:
        try:
            status, body = http("GET", f"http://127.0.0.1:{self.port}/metrics", timeout=1)
        except OSError:
            return None
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def leading(self) -> bool:
        return self.metric("modelgate_operator_leader") == 1.0


class Fleet:
    """Everything of the scenario, started once per module."""

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "admin-token").write_text(ADMIN_TOKEN + "\n")
        self.cluster = Cluster(work).start()
        self.upstreams = {"u1": Upstream().start(), "u2": Upstream().start()}
        self.kubelet = Kubelet(self.cluster, work / "table")
        self.gateway = DataPlane(work, "gateway-0", OPERATOR_NS, "127.0.0.2", work / "table")
        self.sidecar = DataPlane(work, "app-sidecar", APPS_NS, "127.0.0.3", None)
        self.operators = [Operator(work, self.cluster, "operator-a"), Operator(work, self.cluster, "operator-b")]
        self.measurements: dict[str, float] = {}

    @property
    def dataplanes(self) -> list[DataPlane]:
        return [self.gateway, self.sidecar]

    def register_pod(self, dp: DataPlane) -> None:
        self.cluster.apply(dp.pod_manifest())
        self.cluster.kubectl("patch", "pod", dp.name, "-n", dp.namespace, "--subresource=status", "--type=merge",
                             "-p", json.dumps({"status": {"phase": "Running", "podIP": dp.ip,
                                                          "containerStatuses": [{"name": "gateway", "ready": True,
                                                                                  "restartCount": 0, "image": "x", "imageID": "x"}]}}))

    def logs(self) -> str:
        parts = []
        for p in [*(o.process for o in self.operators), self.gateway.process, self.sidecar.process]:
            parts.append(f"--- {p.name} ---\n{p.tail()}")
        return "\n".join(parts)

    def stop(self) -> None:
        for o in self.operators:
            o.process.stop()
        for dp in self.dataplanes:
            dp.process.stop()
        self.kubelet.stopping.set()
        for u in self.upstreams.values():
            try:
                u.close()
            except OSError:
                pass
        self.cluster.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("e2e"))
    try:
        yield f
    finally:
        f.stop()
        out = REPO / "target" / "e2e-measurements.json"
        try:
            out.write_text(json.dumps(f.measurements, indent=2) + "\n")
        except OSError:
            pass


_FAILED_LOGS: list[str] = []


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        f = item.funcargs.get("fleet") if hasattr(item, "funcargs") else None
        if isinstance(f, Fleet):
            _FAILED_LOGS.append(f"{item.name}:\n{f.logs()}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    for text in _FAILED_LOGS:
        terminalreporter.write_sep("-", "process logs at the failure")
        terminalreporter.write_line(text)
