"""Run Modelgate's Kubernetes API emulator as a process (for end-to-end tests).

    python tests/emulator/serve.py --host 127.0.0.1 --port 0 --kubeconfig PATH [--crds DIR]

Starts `ModelgateEmulator` (modelgate_emulator.py) on HOST:PORT (port 0: any free port),
creates the namespaces `default` and `kube-system`, creates every CustomResourceDefinition
found in the YAML files of DIR (if given), writes a kubeconfig to PATH (server
`http://HOST:PORT`, a dummy bearer token, current context set, namespace `default`), and then
prints exactly one line to stdout:

    READY http://127.0.0.1:<port>

It serves until SIGTERM or SIGINT, or until its stdin reaches end-of-file when stdin is a
pipe, socket or terminal (so a child whose parent dies goes too; start it with
`stdin=subprocess.PIPE` and keep the pipe open). Diagnostics go to stderr; with
`--log-requests`, one line per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modelgate_emulator import ApiError, ModelgateEmulator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="where to write the kubeconfig")
    parser.add_argument("--crds", type=Path, action="append", default=[],
                        help="a directory (or file) of CRD YAML to create at startup; repeatable")
    parser.add_argument("--bookmark-interval", type=float, default=30.0,
                        help="idle seconds before a watch that allows bookmarks gets one")
    parser.add_argument("--no-aggregated-discovery", action="store_true",
                        help="answer /api and /apis with plain APIVersions/APIGroupList only")
    parser.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


async def serve(args: argparse.Namespace) -> None:
    emulator = LoggingEmulator(bookmark_interval=args.bookmark_interval, log_requests=args.log_requests,
                               aggregated_discovery=not args.no_aggregated_discovery)
    async with emulator, kmock.Server(emulator, host=args.host, port=args.port) as server:
        host = "127.0.0.1" if args.host in ("", "0.0.0.0", "::") else args.host
        url = f"http://[{host}]:{server.port}" if ":" in host else f"http://{host}:{server.port}"
        for namespace in ("default", "kube-system"):
            create(emulator, "v1", "Namespace", {"metadata": {"name": namespace}})
        for path in args.crds:
            for crd in crd_documents(path):
                create(emulator, "apiextensions.k8s.io/v1", "CustomResourceDefinition", as_if_applied(crd))
        write_kubeconfig(args.kubeconfig, url)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        watch_stdin(loop, stop)

        print(f"READY {url}", flush=True)
        await stop.wait()
        # Open watches would hold aiohttp's graceful shutdown for a minute or two: end them,
        # and exit regardless if something still holds on after a few seconds.
        emulator.close_watches()
        watchdog = threading.Timer(5, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()


@attrs.define(kw_only=True)
class LoggingEmulator(ModelgateEmulator):
    """The emulator, logging each request to stderr when asked to."""

    log_requests: bool = False

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        started = time.monotonic()
        outcome = "client went away"  # a watch ends this way when its client closes it
        try:
            response = await super()._handle(request)
            outcome = str(response.status)
            return response
        finally:
            if self.log_requests:
                took = (time.monotonic() - started) * 1000
                print(f"{request.method.value} {request.url.path_qs} -> {outcome} ({took:.0f} ms)",
                      file=sys.stderr, flush=True)


def create(emulator: ModelgateEmulator, api_version: str, kind_name: str, body: dict[str, Any]) -> None:
    kind = emulator.kind_of(api_version, kind_name)
    assert kind is not None, f"{api_version} {kind_name} is not served"
    try:
        emulator.create(kind, None, {"apiVersion": api_version, "kind": kind_name, **body})
    except ApiError as e:
        sys.exit(f"serve.py: cannot create {kind_name} {body.get('metadata', {}).get('name')}: {e.message}")


def as_if_applied(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with the annotation `kubectl apply` would have stored on it.

    So a later `kubectl apply -f` of the same files is a clean no-op instead of a warning.
    """
    applied = json.loads(json.dumps(doc))
    applied.setdefault("metadata", {})["annotations"] = dict((doc.get("metadata") or {}).get("annotations") or {})
    last_applied = go_json(applied) + "\n"
    applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = last_applied
    return applied


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it (sorted keys, HTML characters escaped)."""

    def integral(v: Any) -> Any:  # Go writes 0.0 as 0
        if isinstance(v, dict):
            return {k: integral(x) for k, x in v.items()}
        if isinstance(v, list):
            return [integral(x) for x in v]
        return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 1e21 else v

    text = json.dumps(integral(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def crd_documents(path: Path) -> list[dict[str, Any]]:
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() else [path]
    documents = []
    for file in files:
        for doc in yaml.load_all(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                documents.append(doc)
    return documents


def write_kubeconfig(path: Path, url: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"}}],
        "current-context": "emulator",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, path)


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop at end-of-file on stdin, if stdin is something that can reach one (not /dev/null)."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
        return

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


if __name__ == "__main__":
    main()
