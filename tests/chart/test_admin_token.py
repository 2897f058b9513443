"""The admin token Secret: generated once, kept across upgrades through `lookup`, or
taken from `adminToken.existingSecret`; both components read the same file."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import helm_python as helm

from conftest import CHART, NAMESPACE, RELEASE, Rendered, component, container, flags, load_chart, render

SECRET = "modelgate-admin-token"


def token_of(r: Rendered) -> str:
    return base64.b64decode(r.one("Secret", SECRET)["data"]["token"]).decode()


def test_the_template_reads_the_live_secret() -> None:
    text = (CHART / "templates" / "admin-token-secret.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace \$name', text)
    assert "existingSecret" in text


def test_a_fresh_install_generates_a_random_token() -> None:
    a, b = token_of(render()), token_of(render())
    assert re.fullmatch(r"[A-Za-z0-9]{48}", a)
    assert a != b


def mounts(r: Rendered) -> dict[str, tuple[str, str]]:
    """component -> (Secret mounted at the token file's folder, --admin-token-file)."""
    out = {}
    for comp in ("operator", "dataplane"):
        pod = component(r, "Deployment", comp)["spec"]["template"]["spec"]
        c = container(pod, comp)
        file = flags(c["args"])["admin-token-file"]
        mount = next(m for m in c["volumeMounts"] if file.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        out[comp] = (volume["secret"]["secretName"], file)
    return out


def test_both_components_read_the_same_token(default_render: Rendered) -> None:
    m = mounts(default_render)
    assert m["operator"] == m["dataplane"] == (SECRET, "/etc/modelgate/admin-token/token")


def test_an_existing_secret_is_used_and_none_is_created() -> None:
    r = render({"adminToken": {"existingSecret": "my-token", "secretKey": "bearer"}})
    assert not r.kind("Secret")
    m = mounts(r)
    assert m["operator"] == m["dataplane"] == ("my-token", "/etc/modelgate/admin-token/bearer")


class FakeApiServer:
    """Just enough of a Kubernetes API server for Helm's `lookup` of one Secret."""

    def __init__(self, secrets: dict[str, dict[str, str]]):
        self.secrets = secrets
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
                body: Any
                if path == "/api/v1":
                    body = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
                         "verbs": ["get", "list"]}]}
                elif path.startswith(prefix) and path[len(prefix):] in outer.secrets:
                    name = path[len(prefix):]
                    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
                            "type": "Opaque", "data": outer.secrets[name]}
                else:
                    self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "reason": "NotFound", "code": 404})
                    return
                self.reply(200, body)

            def reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FakeApiServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def render_against(api: FakeApiServer, values: dict[str, Any] | None = None) -> Rendered:
    with helm.Config(kube_apiserver=api.url, kube_token="test", namespace=NAMESPACE) as cfg, load_chart() as chart:
        files = cfg.render(chart, values or {}, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    return Rendered(files)


def test_an_upgrade_keeps_the_live_token() -> None:
    live = base64.b64encode(b"the-token-installed-last-time").decode()
    with FakeApiServer({SECRET: {"token": live}}) as api:
        r = render_against(api)
    assert r.one("Secret", SECRET)["data"]["token"] == live
    assert any(p.startswith(f"/api/v1/namespaces/{NAMESPACE}/secrets/{SECRET}") for p in api.requests)


def test_a_live_secret_without_the_key_gets_a_new_token() -> None:
    with FakeApiServer({SECRET: {"other": base64.b64encode(b"x").decode()}}) as api:
        r = render_against(api)
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token_of(r))


def test_without_a_live_secret_the_token_is_new() -> None:
    with FakeApiServer({}) as api:
        a, b = token_of(render_against(api)), token_of(render_against(api))
    assert a != b
