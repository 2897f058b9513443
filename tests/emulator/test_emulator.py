"""Tests of the Kubernetes API emulator (serve.py, modelgate_emulator.py) over HTTP and with
the real kubectl. Run: `target/pyenv/bin/python -m pytest tests/emulator -q`.

One emulator process (serve.py on a free port, with the repository's CRDs) serves the whole
module; every test uses names of its own. kubectl tests are skipped without kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVE = HERE / "serve.py"
KUBECTL = shutil.which("kubectl")

MD = "/apis/modelgate.dev/v1alpha1/namespaces/default/modeldeployments"
CM = "/api/v1/namespaces/default/configmaps"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# Everything is on 127.0.0.1: never through a proxy from the environment.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


# ---------------------------------------------------------------- fixtures and helpers


@dataclass
class Emulator:
    url: str
    kubeconfig: Path
    env: dict[str, str]


def start_emulator(tmp: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """serve.py on a free port; returns the process and its URL once it printed READY."""
    kubeconfig = tmp / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, str(SERVE), "--host", "127.0.0.1", "--port", "0", "--kubeconfig", str(kubeconfig), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError(f"serve.py did not get ready: {line!r}")
    return proc, line.split()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    tmp = tmp_path_factory.mktemp("emulator")
    proc, url = start_emulator(tmp, "--crds", str(REPO / "crds" / "yaml"), "--bookmark-interval", "1")
    env = dict(os.environ, KUBECONFIG=str(tmp / "kubeconfig"), KUBECACHEDIR=str(tmp / "kubecache"))
    try:
        yield Emulator(url, tmp / "kubeconfig", env)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # serve.py exits when its stdin closes
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def call(emu: Emulator, method: str, path: str, body: Any = None, *,
         content_type: str = "application/json", accept: str | None = None) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request; returns (status, decoded JSON body or text, headers)."""
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(emu.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    try:
        return status, json.loads(raw), headers
    except ValueError:
        return status, raw.decode(), headers


def ok(emu: Emulator, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    status, doc, _ = call(emu, method, path, body, **kwargs)
    assert 200 <= status < 300, (status, doc)
    return doc


def kubectl(emu: Emulator, *args: str, check: bool = True, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, *args], env=emu.env, input=stdin, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result.stdout + result.stderr


class Watch:
    """A watch stream read by a thread; `events(n)` waits for n more events."""

    def __init__(self, emu: Emulator, path: str, accept: str | None = None):
        request = urllib.request.Request(emu.url + path)
        if accept:
            request.add_header("Accept", accept)
        self.response = urllib.request.urlopen(request, timeout=15)
        self.lines: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.response:
                if line.strip():
                    self.lines.put(json.loads(line))
        except Exception:  # noqa: BLE001 - closed by close() or by the server
            pass
        self.lines.put(None)  # end of stream

    def events(self, count: int, timeout: float = 5) -> list[Any]:
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            event = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert event is not None, f"the stream ended after {found}"
            found.append(event)
        return found

    def rest(self, timeout: float = 5) -> list[Any]:
        """Every event until the server ends the stream."""
        found = []
        deadline = time.monotonic() + timeout
        while (event := self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))) is not None:
            found.append(event)
        return found

    def close(self) -> None:
        self.response.close()


def model_deployment(name: str, model: str = "m", labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelDeployment", "metadata": metadata,
            "spec": {"model": model, "upstream": {"provider": "mock"}}}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


# ---------------------------------------------------------------- launcher


def test_launcher_is_fast_and_stops_on_stdin_eof_or_sigterm(tmp_path: Path) -> None:
    started = time.monotonic()
    proc, url = start_emulator(tmp_path)
    assert time.monotonic() - started < 5  # about 1 s on an idle machine
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    config = json.loads((tmp_path / "kubeconfig").read_text())
    assert config["current-context"] == "emulator"
    assert config["clusters"][0]["cluster"]["server"] == url
    assert config["contexts"][0]["context"]["namespace"] == "default"
    assert config["users"][0]["user"]["token"]
    with urllib.request.urlopen(url + "/api/v1/namespaces", timeout=5) as response:
        names = [ns["metadata"]["name"] for ns in json.load(response)["items"]]
    assert names == ["default", "kube-system"]
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=5) == 0

    # An open watch (a running operator always has some) does not hold the shutdown up.
    proc, url = start_emulator(tmp_path)
    watch = Watch(Emulator(url, tmp_path / "kubeconfig", {}), "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=290")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert watch.rest() == []  # the stream was ended, not broken


# ---------------------------------------------------------------- discovery


def test_version_health_and_openapi(emulator: Emulator) -> None:
    version = ok(emulator, "GET", "/version")
    assert (version["major"], version["minor"], version["gitVersion"]) == ("1", "33", "v1.33.0")
    assert call(emulator, "GET", "/healthz")[:2] == (200, "ok")
    for path in ("/openapi/v2", "/openapi/v3"):
        assert call(emulator, "GET", path)[0] == 404


def test_core_discovery(emulator: Emulator) -> None:
    versions = ok(emulator, "GET", "/api")
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    resources = {r["name"]: r for r in ok(emulator, "GET", "/api/v1")["resources"]}
    for name, kind in [("pods", "Pod"), ("secrets", "Secret"), ("configmaps", "ConfigMap"),
                       ("events", "Event"), ("services", "Service"), ("namespaces", "Namespace")]:
        assert resources[name]["kind"] == kind
        assert {"get", "list", "watch", "create", "patch", "update", "delete"} <= set(resources[name]["verbs"])
        assert resources[name]["namespaced"] is (name != "namespaces")
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert resources["pods/status"]["singularName"] == ""


def test_group_discovery_lists_builtin_groups_and_crds(emulator: Emulator) -> None:
    groups = {g["name"]: g for g in ok(emulator, "GET", "/apis")["groups"]}
    for group in ("coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io", "modelgate.dev", "apps"):
        assert groups[group]["preferredVersion"]["version"] == groups[group]["versions"][0]["version"]
    assert groups["modelgate.dev"]["preferredVersion"]["groupVersion"] == "modelgate.dev/v1alpha1"
    assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
    assert ok(emulator, "GET", "/apis/modelgate.dev")["kind"] == "APIGroup"
    leases = {r["name"]: r for r in ok(emulator, "GET", "/apis/coordination.k8s.io/v1")["resources"]}
    assert leases["leases"]["kind"] == "Lease" and leases["leases"]["namespaced"]
    crds = {r["name"]: r for r in ok(emulator, "GET", "/apis/apiextensions.k8s.io/v1")["resources"]}
    assert not crds["customresourcedefinitions"]["namespaced"]

    doc = ok(emulator, "GET", "/apis/modelgate.dev/v1alpha1")
    resources = {r["name"]: r for r in doc["resources"]}
    assert set(resources) == {"modeldeployments", "modeldeployments/status", "modelgroupaliases", "modelgroupaliases/status"}
    md = resources["modeldeployments"]
    assert (md["kind"], md["singularName"], md["namespaced"]) == ("ModelDeployment", "modeldeployment", True)
    assert md["shortNames"] == ["md"] and md["categories"] == ["modelgate"]
    assert resources["modelgroupaliases"]["shortNames"] == ["mga"]
    assert call(emulator, "GET", "/apis/nothing.example.com/v1")[0] == 404


def test_aggregated_discovery(emulator: Emulator) -> None:
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
    _, doc, headers = call(emulator, "GET", "/apis", accept=accept)
    assert "as=APIGroupDiscoveryList" in headers["Content-Type"] and "v=v2" in headers["Content-Type"]
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    groups = {item["metadata"]["name"]: item for item in doc["items"]}
    [version] = groups["modelgate.dev"]["versions"]
    md = next(r for r in version["resources"] if r["resource"] == "modeldeployments")
    assert md["responseKind"]["kind"] == "ModelDeployment" and md["scope"] == "Namespaced"
    assert md["subresources"][0]["subresource"] == "status"
    _, core, _ = call(emulator, "GET", "/api", accept=accept)
    [core_group] = core["items"]
    assert {r["resource"] for r in core_group["versions"][0]["resources"]} >= {"pods", "secrets", "namespaces"}
    assert "APIGroupList" == ok(emulator, "GET", "/apis", accept="application/json")["kind"]


# ---------------------------------------------------------------- create, errors


def test_create_sets_server_metadata_and_409_on_existing_name(emulator: Emulator) -> None:
    first = ok(emulator, "POST", CM, {"metadata": {"name": "meta-1"}, "data": {"a": "1"}})
    meta = first["metadata"]
    assert meta["namespace"] == "default"
    assert meta["uid"] and TIMESTAMP.match(meta["creationTimestamp"]) and meta["generation"] == 1
    assert meta["resourceVersion"].isdigit()
    assert (first["apiVersion"], first["kind"]) == ("v1", "ConfigMap")
    second = ok(emulator, "POST", CM, {"metadata": {"name": "meta-2"}})
    assert rv(second) > rv(first) and second["metadata"]["uid"] != meta["uid"]

    status, error, _ = call(emulator, "POST", CM, {"metadata": {"name": "meta-1"}})
    assert status == 409 and error["reason"] == "AlreadyExists" and error["kind"] == "Status"
    generated = ok(emulator, "POST", CM, {"metadata": {"generateName": "meta-"}})
    assert re.fullmatch(r"meta-[a-z0-9]{5}", generated["metadata"]["name"])
    assert call(emulator, "POST", CM, {"metadata": {"name": "Not_Valid"}})[0] == 422
    assert call(emulator, "POST", "/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "x"}})[0] == 404
    mismatch = {"metadata": {"name": "x", "namespace": "kube-system"}}
    assert call(emulator, "POST", CM, mismatch)[0] == 400


def test_not_found_is_a_kubernetes_status(emulator: Emulator) -> None:
    status, error, _ = call(emulator, "GET", MD + "/does-not-exist")
    assert status == 404
    assert error == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'modeldeployments.modelgate.dev "does-not-exist" not found', "reason": "NotFound",
        "details": {"name": "does-not-exist", "group": "modelgate.dev", "kind": "modeldeployments"}, "code": 404,
    }
    status, error, _ = call(emulator, "GET", "/apis/modelgate.dev/v1alpha1/namespaces/default/nothings")
    assert status == 404 and error["reason"] == "NotFound"
    assert call(emulator, "PATCH", MD + "/does-not-exist", {}, content_type="application/merge-patch+json")[0] == 404


# ---------------------------------------------------------------- updates, conflicts, generation


def test_put_is_an_update_with_optimistic_concurrency(emulator: Emulator) -> None:
    lease = ok(emulator, "POST", LEASES, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}})
    # Two candidates read the same version; the first write wins, the second gets 409.
    mine = json.loads(json.dumps(lease))
    theirs = json.loads(json.dumps(lease))
    mine["spec"]["holderIdentity"] = "me"
    theirs["spec"]["holderIdentity"] = "them"
    won = ok(emulator, "PUT", LEASES + "/leader", mine)
    assert won["spec"]["holderIdentity"] == "me" and rv(won) > rv(lease)
    assert won["metadata"]["uid"] == lease["metadata"]["uid"]
    assert won["metadata"]["creationTimestamp"] == lease["metadata"]["creationTimestamp"]
    status, error, _ = call(emulator, "PUT", LEASES + "/leader", theirs)
    assert status == 409 and error["reason"] == "Conflict" and error["code"] == 409
    assert "the object has been modified" in error["message"]
    # The same through a merge patch carrying the stale resourceVersion.
    stale = {"metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]}, "spec": {"holderIdentity": "x"}}
    assert call(emulator, "PATCH", LEASES + "/leader", stale, content_type="application/merge-patch+json")[0] == 409
    # Without a resourceVersion the update is unconditional; a PUT to a missing name is 404.
    del theirs["metadata"]["resourceVersion"]
    assert ok(emulator, "PUT", LEASES + "/leader", theirs)["spec"]["holderIdentity"] == "them"
    assert call(emulator, "PUT", LEASES + "/missing", {"metadata": {"name": "missing"}})[0] == 404
    assert call(emulator, "PUT", LEASES + "/leader", {"metadata": {"name": "other"}})[0] == 400


def test_generation_follows_spec_and_noop_writes_change_nothing(emulator: Emulator) -> None:
    created = ok(emulator, "POST", MD, model_deployment("gen-1"))
    merge = "application/merge-patch+json"
    labelled = ok(emulator, "PATCH", MD + "/gen-1", {"metadata": {"labels": {"x": "y"}}}, content_type=merge)
    assert labelled["metadata"]["generation"] == 1 and rv(labelled) > rv(created)
    changed = ok(emulator, "PATCH", MD + "/gen-1", {"spec": {"model": "other"}}, content_type=merge)
    assert changed["metadata"]["generation"] == 2
    same = ok(emulator, "PATCH", MD + "/gen-1", {"spec": {"model": "other"}}, content_type=merge)
    assert rv(same) == rv(changed) and same["metadata"]["generation"] == 2
    # Server-set metadata cannot be overwritten by a client.
    forged = {"metadata": {"uid": "forged", "generation": 99, "creationTimestamp": "2000-01-01T00:00:00Z"}}
    kept = ok(emulator, "PATCH", MD + "/gen-1", forged, content_type=merge)
    assert kept["metadata"]["uid"] == created["metadata"]["uid"] and kept["metadata"]["generation"] == 2
    # ConfigMaps have no spec: their data counts instead.
    cm = ok(emulator, "POST", CM, {"metadata": {"name": "gen-cm"}, "data": {"a": "1"}})
    cm = ok(emulator, "PATCH", CM + "/gen-cm", {"data": {"a": "2"}}, content_type=merge)
    assert cm["metadata"]["generation"] == 2


def test_status_subresource(emulator: Emulator) -> None:
    created = ok(emulator, "POST", MD, {**model_deployment("status-1"), "status": {"ignored": True}})
    assert "status" not in created  # status on create is dropped for kinds with a status subresource
    status = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    patched = ok(emulator, "PATCH", MD + "/status-1/status", {"status": status, "spec": {"model": "sneaky"}},
                 content_type="application/merge-patch+json")
    assert patched["status"] == status
    assert patched["spec"] == created["spec"] and patched["metadata"]["generation"] == 1
    assert rv(patched) > rv(created)
    # Writes to the object itself leave the status alone.
    main = ok(emulator, "PATCH", MD + "/status-1", {"spec": {"model": "n"}, "status": {"observedGeneration": 7}},
              content_type="application/merge-patch+json")
    assert main["status"] == status and main["metadata"]["generation"] == 2
    # PUT /status and server-side apply of /status.
    put = dict(main, status={"observedGeneration": 2})
    assert ok(emulator, "PUT", MD + "/status-1/status", put)["status"] == {"observedGeneration": 2}
    applied = ok(emulator, "PATCH", MD + "/status-1/status?fieldManager=op&force=true",
                 {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelDeployment",
                  "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                 content_type="application/apply-patch+yaml")
    assert applied["status"]["conditions"][0]["status"] == "False"
    assert applied["status"]["observedGeneration"] == 2 and applied["metadata"]["generation"] == 2
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "status": {}}
    assert call(emulator, "PATCH", MD + "/status-1/status", stale, content_type="application/merge-patch+json")[0] == 409
    assert call(emulator, "GET", CM + "/x/status")[0] == 404  # configmaps have no status subresource


def test_pod_status_can_be_set_through_the_status_subresource(emulator: Emulator) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {"metadata": {"name": "dp-0", "labels": {"app": "dp"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    ok(emulator, "POST", pods, pod)
    ok(emulator, "PATCH", pods + "/dp-0/status", {"status": {"podIP": "10.1.2.3", "phase": "Running"}},
       content_type="application/strategic-merge-patch+json")
    fetched = ok(emulator, "GET", pods + "/dp-0")
    assert fetched["status"] == {"podIP": "10.1.2.3", "phase": "Running"}
    relabelled = ok(emulator, "PATCH", pods + "/dp-0", {"metadata": {"labels": {"ready": "yes"}}},
                    content_type="application/strategic-merge-patch+json")
    assert relabelled["status"]["podIP"] == "10.1.2.3"


def test_patch_content_types(emulator: Emulator) -> None:
    ok(emulator, "POST", CM, {"metadata": {"name": "patches", "labels": {"a": "1"}}, "data": {"k": "v", "drop": "x"}})
    path = CM + "/patches"
    merged = ok(emulator, "PATCH", path, {"data": {"drop": None, "new": "n"}}, content_type="application/merge-patch+json")
    assert merged["data"] == {"k": "v", "new": "n"}
    ops = [{"op": "test", "path": "/data/k", "value": "v"}, {"op": "replace", "path": "/data/k", "value": "w"},
           {"op": "add", "path": "/metadata/labels/b", "value": "2"}, {"op": "remove", "path": "/data/new"},
           {"op": "copy", "from": "/data/k", "path": "/data/copy"}, {"op": "move", "from": "/data/copy", "path": "/data/moved"}]
    patched = ok(emulator, "PATCH", path, ops, content_type="application/json-patch+json")
    assert patched["data"] == {"k": "w", "moved": "w"} and patched["metadata"]["labels"] == {"a": "1", "b": "2"}
    status, error, _ = call(emulator, "PATCH", path, [{"op": "test", "path": "/data/k", "value": "nope"}],
                            content_type="application/json-patch+json")
    assert status == 422 and error["reason"] == "Invalid"
    rv_test = [{"op": "test", "path": "/metadata/resourceVersion", "value": patched["metadata"]["resourceVersion"]},
               {"op": "replace", "path": "/data/k", "value": "z"}]
    assert ok(emulator, "PATCH", path, rv_test, content_type="application/json-patch+json")["data"]["k"] == "z"
    smp = {"$setElementOrder/x": [], "metadata": {"labels": {"c": "3"}}, "data": {"k": "s"}}
    strategic = ok(emulator, "PATCH", path, smp, content_type="application/strategic-merge-patch+json")
    assert strategic["data"]["k"] == "s" and "$setElementOrder/x" not in strategic
    assert call(emulator, "PATCH", path, {}, content_type="application/xml")[0] == 415


def test_strategic_merge_patch_merges_named_lists() -> None:
    from k8s_helpers import strategic_merge_patch

    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
           "metadata": {"finalizers": ["x"]}}
    patch = {"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "c", "image": "1"}, {"name": "b", "$patch": "delete"}],
                      "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}]},
             "metadata": {"finalizers": ["y"]}}
    result = strategic_merge_patch(pod, patch)
    assert result["spec"]["containers"] == [{"name": "a", "image": "2"}, {"name": "c", "image": "1"}]
    assert result["metadata"]["finalizers"] == ["x", "y"]


def test_server_side_apply_creates_a_missing_object_and_merges(emulator: Emulator) -> None:
    apply = "application/apply-patch+yaml"
    body = "apiVersion: modelgate.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: ssa-1\nspec:\n  model: a\n"
    status, created, _ = call(emulator, "PATCH", MD + "/ssa-1?fieldManager=op&force=true", body, content_type=apply)
    assert status == 201 and created["metadata"]["generation"] == 1 and created["metadata"]["namespace"] == "default"
    again = ok(emulator, "PATCH", MD + "/ssa-1?fieldManager=op", json.dumps(model_deployment("ssa-1", "b")), content_type=apply)
    assert again["spec"]["model"] == "b" and again["metadata"]["generation"] == 2
    assert call(emulator, "PATCH", MD + "/ssa-2", body, content_type=apply)[0] == 400  # no fieldManager
    assert call(emulator, "PATCH", MD + "/ssa-2?fieldManager=op", "metadata: {name: ssa-2}\n", content_type=apply)[0] == 400


def test_server_side_apply_removes_what_a_manager_stops_applying(emulator: Emulator) -> None:
    apply = "application/apply-patch+yaml"
    path = "/api/v1/namespaces/default/secrets/snapshot"

    def secret(data: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "snapshot", "labels": labels}, "data": data}

    ok(emulator, "PATCH", path + "?fieldManager=op&force=true", secret({"a": "MQ==", "b": "Mg=="}, {"x": "1"}), content_type=apply)
    ok(emulator, "PATCH", path + "?fieldManager=other", secret({"c": "Mw=="}, {}), content_type=apply)
    ok(emulator, "PATCH", path, {"data": {"d": "NA=="}}, content_type="application/merge-patch+json")
    after = ok(emulator, "PATCH", path + "?fieldManager=op&force=true", secret({"a": "MQ=="}, {}), content_type=apply)
    # `b` and the label were op's and are gone; `c` is other's, `d` nobody's: both stay.
    assert after["data"] == {"a": "MQ==", "c": "Mw==", "d": "NA=="} and "labels" not in after["metadata"]
    status = {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelDeployment"}
    ok(emulator, "POST", MD, model_deployment("ssa-status"))
    ok(emulator, "PATCH", MD + "/ssa-status/status?fieldManager=op&force=true",
       {**status, "status": {"observedGeneration": 1, "message": "starting"}}, content_type=apply)
    final = ok(emulator, "PATCH", MD + "/ssa-status/status?fieldManager=op&force=true",
               {**status, "status": {"observedGeneration": 1, "health": None}}, content_type=apply)
    assert final["status"] == {"observedGeneration": 1} and final["spec"]["model"] == "m"


def test_secret_string_data_is_merged_into_data(emulator: Emulator) -> None:
    secrets = "/api/v1/namespaces/default/secrets"
    secret = ok(emulator, "POST", secrets, {"metadata": {"name": "key"}, "stringData": {"apiKey": "sk-1"}})
    assert secret["data"] == {"apiKey": "c2stMQ=="} and "stringData" not in secret and secret["type"] == "Opaque"


def test_events_k8s_io_and_core_events_are_one_resource(emulator: Emulator) -> None:
    """kube-runtime's Recorder writes events.k8s.io/v1 Events; `kubectl get events` reads v1."""
    event = {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "md.1a2b"},
        "eventTime": "2025-01-01T00:00:00.123456Z", "reportingController": "modelgate.dev/operator",
        "reportingInstance": "op-0", "action": "Reconcile", "reason": "Ready", "type": "Normal", "note": "serving",
        "regarding": {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelDeployment", "name": "ev-md", "namespace": "default"},
    }
    created = ok(emulator, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", event)
    assert created["regarding"]["name"] == "ev-md" and created["note"] == "serving"
    core = ok(emulator, "GET", "/api/v1/namespaces/default/events/md.1a2b")
    assert (core["apiVersion"], core["involvedObject"]["name"], core["message"]) == ("v1", "ev-md", "serving")
    assert core["reportingComponent"] == "modelgate.dev/operator" and "regarding" not in core
    series = {"series": {"count": 2, "lastObservedTime": "2025-01-01T00:00:01.000000Z"}, "note": "again"}
    patched = ok(emulator, "PATCH", "/apis/events.k8s.io/v1/namespaces/default/events/md.1a2b", series,
                 content_type="application/merge-patch+json")
    assert patched["series"]["count"] == 2 and patched["note"] == "again"
    by_regarding = ok(emulator, "GET", "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dev-md")
    assert [e["metadata"]["name"] for e in by_regarding["items"]] == ["md.1a2b"]
    by_involved = ok(emulator, "GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dev-md")
    assert [e["message"] for e in by_involved["items"]] == ["again"]


# ---------------------------------------------------------------- delete, finalizers, dry run


def test_delete_returns_the_object_and_finalizers_delay_it(emulator: Emulator) -> None:
    ok(emulator, "POST", CM, {"metadata": {"name": "del-1"}})
    deleted = ok(emulator, "DELETE", CM + "/del-1")
    assert deleted["metadata"]["name"] == "del-1"
    assert call(emulator, "GET", CM + "/del-1")[0] == 404
    assert call(emulator, "DELETE", CM + "/del-1")[0] == 404

    ok(emulator, "POST", CM, {"metadata": {"name": "del-2", "finalizers": ["modelgate.dev/cleanup"]}})
    terminating = ok(emulator, "DELETE", CM + "/del-2")
    assert TIMESTAMP.match(terminating["metadata"]["deletionTimestamp"])
    assert ok(emulator, "GET", CM + "/del-2")["metadata"]["deletionTimestamp"]
    ok(emulator, "PATCH", CM + "/del-2", {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json")
    assert call(emulator, "GET", CM + "/del-2")[0] == 404

    ok(emulator, "POST", CM, {"metadata": {"name": "del-3"}})
    ok(emulator, "DELETE", CM + "/del-3?dryRun=All")
    assert call(emulator, "GET", CM + "/del-3")[0] == 200
    assert call(emulator, "DELETE", CM + "/del-3", {"preconditions": {"resourceVersion": "1"}})[0] == 409


def test_deleting_a_namespace_deletes_its_objects(emulator: Emulator) -> None:
    ok(emulator, "POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    ok(emulator, "POST", "/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "c"}})
    ok(emulator, "DELETE", "/api/v1/namespaces/doomed")
    assert call(emulator, "GET", "/api/v1/namespaces/doomed/configmaps/c")[0] == 404


# ---------------------------------------------------------------- lists and selectors


def test_lists_have_kind_resource_version_and_no_pagination(emulator: Emulator) -> None:
    for name in ("page-1", "page-2", "page-3"):
        ok(emulator, "POST", CM, {"metadata": {"name": name, "labels": {"page": "yes"}}})
    listed = ok(emulator, "GET", CM + "?limit=1&labelSelector=page%3Dyes")
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert listed["metadata"]["resourceVersion"].isdigit() and "continue" not in listed["metadata"]
    assert [i["metadata"]["name"] for i in listed["items"]] == ["page-1", "page-2", "page-3"]
    assert all(i["kind"] == "ConfigMap" for i in listed["items"])
    everywhere = ok(emulator, "GET", "/api/v1/configmaps?resourceVersion=0&resourceVersionMatch=NotOlderThan")
    assert {i["metadata"]["namespace"] for i in everywhere["items"]} >= {"default"}
    assert ok(emulator, "GET", MD)["kind"] == "ModelDeploymentList"


def test_label_and_field_selectors(emulator: Emulator) -> None:
    for name, labels in [("sel-a", {"tier": "gold", "app": "mg"}), ("sel-b", {"tier": "silver", "app": "mg"}),
                         ("sel-c", {"app": "mg"}), ("sel-d", {"app": "other"})]:
        ok(emulator, "POST", CM, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        query = urllib.request.quote(selector)
        items = ok(emulator, "GET", f"{CM}?labelSelector={query}")["items"]
        return [i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("sel-")]

    assert names("tier=gold") == ["sel-a"]
    assert names("tier==silver") == ["sel-b"]
    assert names("app=mg,tier!=gold") == ["sel-b", "sel-c"]
    assert names("tier") == ["sel-a", "sel-b"]
    assert names("!tier") == ["sel-c", "sel-d"]
    assert names("tier in (gold, silver)") == ["sel-a", "sel-b"]
    assert names("app=mg,tier notin (gold)") == ["sel-b", "sel-c"]
    assert call(emulator, "GET", f"{CM}?labelSelector=%3D%3Dbroken")[0] == 400
    by_name = ok(emulator, "GET", f"{CM}?fieldSelector=metadata.name%3Dsel-b")["items"]
    assert [i["metadata"]["name"] for i in by_name] == ["sel-b"]
    by_namespace = ok(emulator, "GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault,metadata.name!%3Dsel-a")
    assert "sel-a" not in [i["metadata"]["name"] for i in by_namespace["items"]]
    assert "sel-b" in [i["metadata"]["name"] for i in by_namespace["items"]]


def test_metadata_only_and_table_responses(emulator: Emulator) -> None:
    ok(emulator, "POST", MD, model_deployment("table-1", "tm"))
    meta = ok(emulator, "GET", MD + "?labelSelector=", accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    assert meta["kind"] == "PartialObjectMetadataList" and meta["apiVersion"] == "meta.k8s.io/v1"
    assert all(set(item) == {"kind", "apiVersion", "metadata"} for item in meta["items"])
    one = ok(emulator, "GET", MD + "/table-1", accept="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    assert one["kind"] == "PartialObjectMetadata" and one["metadata"]["name"] == "table-1"
    table = ok(emulator, "GET", MD, accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Model", "Provider", "Ready", "Healthy", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "table-1")
    assert row["cells"][1:3] == ["tm", "mock"]


# ---------------------------------------------------------------- watch


def test_watch_from_a_list_resource_version_sends_only_newer_events(emulator: Emulator) -> None:
    ok(emulator, "POST", MD, model_deployment("watch-old", labels={"w": "1"}))
    listed = ok(emulator, "GET", MD + "?limit=500&labelSelector=w%3D1")  # what kube-rs's watcher sends
    since = listed["metadata"]["resourceVersion"]
    watch = Watch(emulator, f"{MD}?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&labelSelector=w%3D1&resourceVersion={since}")
    try:
        ok(emulator, "POST", MD, model_deployment("watch-new", labels={"w": "1"}))
        ok(emulator, "PATCH", MD + "/watch-new", {"spec": {"model": "changed"}}, content_type="application/merge-patch+json")
        ok(emulator, "POST", CM, {"metadata": {"name": "watch-unrelated", "labels": {"w": "1"}}})
        ok(emulator, "DELETE", MD + "/watch-new")
        events = [e for e in watch.events(3) if e["type"] != "BOOKMARK"]
    finally:
        watch.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "watch-new"), ("MODIFIED", "watch-new"), ("DELETED", "watch-new")]
    versions = [rv(e["object"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)
    assert events[2]["object"]["spec"]["model"] == "changed"  # the last state


def test_watch_without_resource_version_starts_with_added_events(emulator: Emulator) -> None:
    ok(emulator, "POST", MD, model_deployment("initial-1", labels={"initial": "yes"}))
    queries = ("resourceVersion=0", "", "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0")
    watches = [Watch(emulator, f"{MD}?watch=1&labelSelector=initial%3Dyes&timeoutSeconds=1&allowWatchBookmarks=true&{query}")
               for query in queries]
    for query, watch in zip(queries, watches):
        events = watch.rest()
        assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "initial-1"
        if "sendInitialEvents" in query:
            bookmark = events[1]
            assert bookmark["type"] == "BOOKMARK"
            assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert bookmark["object"]["kind"] == "ModelDeployment"


def test_watch_bookmarks_timeout_and_selector_transitions(emulator: Emulator) -> None:
    ok(emulator, "POST", CM, {"metadata": {"name": "moving"}})
    since = ok(emulator, "GET", CM)["metadata"]["resourceVersion"]
    started = time.monotonic()
    watch = Watch(emulator, f"{CM}?watch=true&labelSelector=in%3Dyes&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion={since}")
    merge = "application/merge-patch+json"
    ok(emulator, "PATCH", CM + "/moving", {"metadata": {"labels": {"in": "yes"}}}, content_type=merge)
    ok(emulator, "PATCH", CM + "/moving", {"data": {"x": "1"}}, content_type=merge)
    ok(emulator, "PATCH", CM + "/moving", {"metadata": {"labels": {"in": "no"}}}, content_type=merge)
    events = watch.rest()
    assert 1.5 < time.monotonic() - started < 8  # timeoutSeconds ends the stream
    changes = [e["type"] for e in events if e["type"] != "BOOKMARK"]
    assert changes == ["ADDED", "MODIFIED", "DELETED"]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]  # the fixture's bookmark interval is 1 s
    assert bookmarks and bookmarks[-1]["object"]["metadata"]["resourceVersion"].isdigit()
    assert bookmarks[-1]["object"]["apiVersion"] == "v1" and bookmarks[-1]["object"]["kind"] == "ConfigMap"


def test_watch_metadata_only_and_table_events(emulator: Emulator) -> None:
    since = ok(emulator, "GET", MD)["metadata"]["resourceVersion"]
    meta = Watch(emulator, f"{MD}?watch=true&timeoutSeconds=1&resourceVersion={since}",
                 accept="application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    table = Watch(emulator, f"{MD}?watch=true&timeoutSeconds=1&resourceVersion={since}",
                  accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    ok(emulator, "POST", MD, model_deployment("watch-shapes"))
    [meta_event] = meta.events(1)
    [table_event] = table.events(1)
    meta.close()
    table.close()
    assert meta_event["object"]["kind"] == "PartialObjectMetadata" and "spec" not in meta_event["object"]
    assert table_event["object"]["kind"] == "Table" and table_event["object"]["rows"][0]["cells"][0] == "watch-shapes"


def test_in_process_emulator_expires_old_resource_versions_and_yields_to_kmock_reactions() -> None:
    """The emulator as a library: kmock's server and DSL, a tiny event log (410 Expired)."""
    import aiohttp
    import kmock
    from modelgate_emulator import ModelgateEmulator

    async def scenario() -> None:
        emulator = ModelgateEmulator(event_log_limit=3)
        async with emulator, kmock.Server(emulator) as server:
            emulator["get /api/v1/namespaces/default/configmaps/injected"] << 503  # a kmock reaction wins
            async with aiohttp.ClientSession(str(server.url)) as client:
                await client.post("/api/v1/namespaces", json={"metadata": {"name": "default"}})
                for i in range(5):
                    await client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": f"c{i}"}})
                async with client.get("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=2") as response:
                    event = json.loads(await response.content.readline())
                assert event["type"] == "ERROR" and event["object"]["code"] == 410
                assert event["object"]["reason"] == "Expired"
                async with client.get("/api/v1/namespaces/default/configmaps/injected") as response:
                    assert response.status == 503
            assert emulator.objects["v1/configmaps", "default", "c4"]["metadata"]["generation"] == 1

    asyncio.run(scenario())


# ---------------------------------------------------------------- CRDs


def test_creating_and_deleting_a_crd_serves_and_unserves_its_kind(emulator: Emulator) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]},
    }
    created = ok(emulator, "POST", crds, crd)
    conditions = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    resources = {r["name"]: r for r in ok(emulator, "GET", "/apis/example.com/v1")["resources"]}
    assert resources["widgets"]["namespaced"] is False and "widgets/status" in resources
    widget = ok(emulator, "POST", "/apis/example.com/v1/widgets", {"metadata": {"name": "w1"}, "spec": {"size": 1}})
    assert widget["kind"] == "Widget" and "namespace" not in widget["metadata"]
    ok(emulator, "DELETE", crds + "/widgets.example.com")
    assert call(emulator, "GET", "/apis/example.com/v1")[0] == 404
    assert call(emulator, "GET", "/apis/example.com/v1/widgets/w1")[0] == 404
    assert "example.com" not in {g["name"] for g in ok(emulator, "GET", "/apis")["groups"]}
    bad = json.loads(json.dumps(crd))
    bad["metadata"]["name"] = "wrong.example.com"
    assert call(emulator, "POST", crds, bad)[0] == 422


# ---------------------------------------------------------------- kubectl


@needs_kubectl
def test_kubectl_applies_gets_patches_and_deletes_modelgate_resources(emulator: Emulator) -> None:
    # The fixture created the CRDs as `kubectl apply` would have: re-applying changes nothing.
    assert "unchanged" in kubectl(emulator, "apply", "-f", str(REPO / "crds" / "yaml"), "--validate=false")
    examples = REPO / "examples" / "quickstart"
    out = kubectl(emulator, "apply", "--validate=false", "-f", str(examples / "deployments.yaml"), "-f", str(examples / "aliases.yaml"))
    assert "modeldeployment.modelgate.dev/small-chat-a created" in out
    assert "modelgroupalias.modelgate.dev/chat created" in out
    assert "unchanged" in kubectl(emulator, "apply", "--validate=false", "-f", str(examples / "aliases.yaml"))

    md = json.loads(kubectl(emulator, "get", "modeldeployment", "small-chat-a", "-o", "json"))
    assert md["spec"]["model"] == "small-chat" and md["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in md["metadata"]["annotations"]
    table = kubectl(emulator, "get", "modeldeployments")
    assert re.search(r"NAME\s+MODEL\s+PROVIDER\s+READY\s+HEALTHY\s+AGE", table)
    assert re.search(r"small-chat-a\s+small-chat\s+mock", table)
    assert "large-chat" in kubectl(emulator, "get", "md", "-o", "name")
    assert "chat" in kubectl(emulator, "get", "modelgate")  # the CRDs' category
    assert "small-chat-a" in kubectl(emulator, "get", "md", "small-chat-a", "-o", "yaml")

    kubectl(emulator, "patch", "md", "small-chat-a", "--type", "merge", "-p", '{"spec":{"routing":{"weight":5}}}')
    status = '{"status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True","reason":"Serving","message":"","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}'
    kubectl(emulator, "patch", "md", "small-chat-a", "--subresource", "status", "--type", "merge", "-p", status)
    after = json.loads(kubectl(emulator, "get", "md", "small-chat-a", "-o", "json"))
    assert after["spec"]["routing"]["weight"] == 5 and after["metadata"]["generation"] == 2
    assert after["status"]["observedGeneration"] == 2
    assert re.search(r"small-chat-a\s+small-chat\s+mock\s+True", kubectl(emulator, "get", "md"))
    kubectl(emulator, "wait", "--for=condition=Ready", "md/small-chat-a", "--timeout=5s")
    kubectl(emulator, "wait", "--for=condition=established", "crd/modeldeployments.modelgate.dev", "--timeout=5s")

    ok(emulator, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", {
        "metadata": {"name": "small-chat-a.1"}, "eventTime": "2025-01-01T00:00:00.000000Z", "reason": "Ready",
        "type": "Normal", "note": "every pod serves generation 2", "action": "Reconcile",
        "reportingController": "modelgate.dev/operator", "reportingInstance": "op-0",
        "regarding": {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelDeployment", "name": "small-chat-a"}})
    events = kubectl(emulator, "get", "events", "--field-selector", "involvedObject.name=small-chat-a")
    assert re.search(r"Normal\s+Ready\s+small-chat-a\s+every pod serves generation 2", events), events

    kubectl(emulator, "label", "md", "embed", "tier=gold")
    assert kubectl(emulator, "get", "md", "-l", "tier=gold", "-o", "name").split() == ["modeldeployment.modelgate.dev/embed"]
    out = kubectl(emulator, "delete", "-f", str(examples / "aliases.yaml"))
    assert 'modelgroupalias.modelgate.dev "chat" deleted' in out
    assert "No resources found" in kubectl(emulator, "get", "mga")


@needs_kubectl
def test_kubectl_core_objects_namespaces_and_server_side_apply(emulator: Emulator, tmp_path: Path) -> None:
    kubectl(emulator, "create", "namespace", "team-a")  # protobuf request bodies
    kubectl(emulator, "create", "secret", "generic", "api-key", "-n", "team-a", "--from-literal=apiKey=sk-1")
    kubectl(emulator, "create", "configmap", "plain", "-n", "team-a", "--from-literal=k=v")
    secret = json.loads(kubectl(emulator, "get", "secret", "api-key", "-n", "team-a", "-o", "json"))
    assert secret["data"] == {"apiKey": "c2stMQ=="} and secret["type"] == "Opaque"
    assert re.search(r"team-a\s+Active", kubectl(emulator, "get", "namespaces"))

    manifest = tmp_path / "objects.yaml"
    manifest.write_text("""\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {settings.yaml: "retries: 2"}
---
apiVersion: v1
kind: Secret
metadata: {name: upstream, namespace: team-a}
stringData: {apiKey: sk-2}
---
apiVersion: v1
kind: Pod
metadata: {name: dataplane-0, namespace: team-a, labels: {app: modelgate-dataplane}}
spec:
  containers:
  - {name: dataplane, image: "modelgate:1"}
  - {name: sidecar, image: busybox}
""")
    out = kubectl(emulator, "apply", "--validate=false", "-f", str(manifest))
    assert "configmap/settings created" in out and "pod/dataplane-0 created" in out
    manifest.write_text(manifest.read_text().replace("retries: 2", "retries: 3").replace("modelgate:1", "modelgate:2"))
    out = kubectl(emulator, "apply", "--validate=false", "-f", str(manifest))  # strategic merge patches
    assert "configmap/settings configured" in out
    settings = json.loads(kubectl(emulator, "get", "cm", "settings", "-n", "team-a", "-o", "json"))
    assert settings["data"] == {"settings.yaml": "retries: 3"}
    pod = json.loads(kubectl(emulator, "get", "pod", "dataplane-0", "-n", "team-a", "-o", "json"))
    assert [(c["name"], c["image"]) for c in pod["spec"]["containers"]] == [("dataplane", "modelgate:2"), ("sidecar", "busybox")]
    kubectl(emulator, "patch", "pod", "dataplane-0", "-n", "team-a", "--subresource", "status", "--type", "merge",
            "-p", '{"status":{"podIP":"10.0.0.7"}}')
    assert kubectl(emulator, "get", "pod", "dataplane-0", "-n", "team-a", "-o", "jsonpath={.status.podIP}") == "10.0.0.7"

    out = kubectl(emulator, "apply", "--server-side", "--validate=false", "-n", "team-a",
                  "-f", str(REPO / "examples" / "quickstart" / "deployments.yaml"))
    assert "modeldeployment.modelgate.dev/large-chat serverside-applied" in out
    assert "large-chat" in kubectl(emulator, "get", "md", "-n", "team-a")
    kubectl(emulator, "delete", "-f", str(manifest))
    assert "dataplane-0" not in kubectl(emulator, "get", "pods", "-n", "team-a")
    kubectl(emulator, "delete", "namespace", "team-a")
    assert "No resources found" in kubectl(emulator, "get", "md", "-n", "team-a")


@needs_kubectl
def test_kubectl_watch_sees_changes(emulator: Emulator) -> None:
    ok(emulator, "POST", MD, model_deployment("kubectl-watched"))
    assert KUBECTL is not None
    watcher = subprocess.Popen([KUBECTL, "get", "md", "kubectl-watched", "-w", "--output-watch-events"],
                               env=emulator.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout or []], daemon=True).start()

    def line_with(pattern: str, timeout: float = 10) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if re.search(pattern, line):
                return line
        return None

    try:
        assert re.search(r"ADDED\s+kubectl-watched\s+m\s+mock", line_with(r"ADDED") or "")
        # kubectl prints its GET as ADDED, then watches from resourceVersion 0 and drops that
        # watch's first (synthetic) event: a change in between is not shown, on any server.
        # So change it until a change shows.
        modified = None
        for attempt in range(10):
            ok(emulator, "PATCH", MD + "/kubectl-watched", {"spec": {"model": f"new{attempt}"}},
               content_type="application/merge-patch+json")
            if modified := line_with(r"MODIFIED", timeout=1):
                break
        assert modified and re.search(r"MODIFIED\s+kubectl-watched\s+new\d\s+mock", modified), modified
    finally:
        watcher.terminate()
        watcher.wait(timeout=5)
