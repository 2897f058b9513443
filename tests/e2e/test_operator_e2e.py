"""The operator end to end: `kubectl apply` → operator → both data planes → upstreams, and
the truth back in each resource's status. One scenario in steps, in file order; the parts
are in conftest.py."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from typing import Any

import openai
import pytest

from conftest import APPS_NS, LEASE_SECONDS, OPERATOR_NS, REPO, DataPlane, Fleet, http, wait_for

UPSTREAM_KEY = "sk-e2e-upstream"


def team_manifests(fleet: Fleet, split_weights: tuple[int, int] = (1, 0)) -> str:
    u1 = fleet.upstreams["u1"].base_url
    u2 = fleet.upstreams["u2"].base_url

    def deployment(name: str, model: str, base: str, weight: int = 1, check: str = "1s") -> str:
        return f"""---
apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: {name}, namespace: {APPS_NS}}}
spec:
  model: {model}
  upstream:
    provider: openai-compatible
    apiBase: {base}
    model: echo
    credentials: {{secretKeyRef: {{name: upstream-key, key: apiKey}}}}
  routing: {{weight: {weight}}}
  healthCheck: {{interval: {check}, timeout: 500ms}}
  modelInfo: {{mode: chat}}
"""

    return "\n".join([
        f"""---
apiVersion: v1
kind: Secret
metadata: {{name: upstream-key, namespace: {APPS_NS}}}
stringData: {{apiKey: {UPSTREAM_KEY}}}
""",
        deployment("direct-a", "team-direct", u1),
        deployment("split-a", "team-split", u1, split_weights[0]),
        deployment("split-b", "team-split", u2, split_weights[1]),
        deployment("health-b", "team-health", u2),
        f"""---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {{name: team-chat, namespace: {APPS_NS}}}
spec:
  alias: team-chat
  targets: [{{model: team-direct}}]
""",
    ])


def client(dp: DataPlane) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{dp.url}/v1", api_key="unused", max_retries=0, timeout=10)


def chat(dp: DataPlane, model: str, text: str = "hello") -> Any:
    return client(dp).chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c
    return {}


def status_is(fleet: Fleet, kind: str, name: str, namespace: str, **want: str) -> bool:
    obj = fleet.cluster.get(kind, name, namespace)
    return all(condition(obj, t).get("status") == s for t, s in want.items()) and (
        obj.get("status", {}).get("observedGeneration") == obj["metadata"].get("generation"))


def leader(fleet: Fleet) -> Any:
    return wait_for("a leading operator", lambda: next((o for o in fleet.operators if o.process.running() and o.leading()), None),
                    timeout=LEASE_SECONDS * 5 + 10)


def both_serve(fleet: Fleet, revision_above: int) -> bool:
    served = [dp.served() for dp in fleet.dataplanes]
    return all(s is not None and s[0] > revision_above for s in served) and len({s[1] for s in served if s}) == 1


def revision(fleet: Fleet) -> int:
    return max((s[0] for s in (dp.served() for dp in fleet.dataplanes) if s), default=0)


def test_1_apply_examples_and_route_through_both_data_planes(fleet: Fleet) -> None:
    c = fleet.cluster
    for ns in (OPERATOR_NS, APPS_NS):
        c.kubectl("create", "namespace", ns)
    for dp in fleet.dataplanes:
        dp.start()
        fleet.register_pod(dp)
    fleet.kubelet.start()
    # A data plane with no table is alive but not ready.
    assert fleet.sidecar.readiness() == 503

    for o in fleet.operators:
        o.process.start()
    leader(fleet)

    c.kubectl("apply", "--validate=false",
              "-f", str(REPO / "examples/quickstart/deployments.yaml"),
              "-f", str(REPO / "examples/quickstart/aliases.yaml"))
    c.kubectl("create", "configmap", "modelgate-settings", "-n", OPERATOR_NS,
              f"--from-file=settings.yaml={REPO / 'examples/quickstart/settings.yaml'}")
    c.apply(team_manifests(fleet))

    for dp in fleet.dataplanes:
        wait_for(f"{dp.name} to route team-direct", lambda dp=dp: dp.readiness() == 200 and any(
            m["id"] == "team-direct" for m in dp.get("/v1/models")["data"]))
    before = len(fleet.upstreams["u1"].requests)
    for dp in fleet.dataplanes:
        r = chat(dp, "chat", "to the quickstart")
        assert r.choices[0].message.content.startswith("Hello from"), r
        r = chat(dp, "team-chat", f"through {dp.name}")
        assert r.choices[0].message.content == f"echo: through {dp.name}"
    seen = fleet.upstreams["u1"].requests[before:]
    assert [e["headers"]["authorization"] for e in seen] == [f"Bearer {UPSTREAM_KEY}"] * 2
    assert not fleet.upstreams["u2"].requests, "nothing was routed to u2"

    # Healthy needs a deployment's first check, which lands at a random point of its first
    # interval (at most 30 s: the data plane spreads first checks): 40 s covers it.
    for name in ("small-chat-a", "small-chat-b", "large-chat", "embed"):
        wait_for(f"{name} Accepted/Ready/Healthy", lambda name=name: status_is(
            fleet, "modeldeployment", name, "default", Accepted="True", Ready="True", Healthy="True"),
            timeout=40.0)
    for name in ("direct-a", "split-a", "health-b"):
        wait_for(f"{name} Accepted/Ready/Healthy", lambda name=name: status_is(
            fleet, "modeldeployment", name, APPS_NS, Accepted="True", Ready="True", Healthy="True"),
            timeout=40.0)
    md = c.get("modeldeployment", "direct-a", APPS_NS)
    assert md["status"]["dataplanes"] == {"ready": 2, "total": 2}
    assert md["status"]["tableVersion"].startswith("sha256:")
    assert "2/2 data planes" in condition(md, "Ready")["message"]
    assert UPSTREAM_KEY not in json.dumps(md), "a credential leaked into a status"

    wait_for("the chat alias's targets", lambda: status_is(fleet, "modelgroupalias", "chat", "default",
                                                           Accepted="True", Ready="True", Healthy="True"))
    alias = c.get("modelgroupalias", "chat", "default")
    targets = {t["model"]: t for t in alias["status"]["targets"]}
    assert targets["small-chat"]["deployments"] == 2 and targets["small-chat"]["healthy"] == 2
    assert targets["large-chat"]["deployments"] == 1
    assert alias["status"]["targetSummary"] == "small-chat 90%, large-chat 10%"

    # `kubectl get` shows the printer columns.
    out = c.kubectl("get", "modeldeployments", "-n", APPS_NS).stdout
    assert "READY" in out and "direct-a" in out, out
    events = c.kubectl("get", "events.events.k8s.io", "-n", APPS_NS, "-o", "json").stdout
    reasons = {e.get("reason") for e in json.loads(events)["items"]}
    assert {"Accepted", "Pushed"} <= reasons, reasons


def test_2_edits_change_routing_on_both_pods_within_a_second(fleet: Fleet) -> None:
    c = fleet.cluster
    u1, u2 = fleet.upstreams["u1"], fleet.upstreams["u2"]
    for dp in fleet.dataplanes:
        chat(dp, "team-split", "before")
    assert not u2.requests, "split-b has weight 0"

    applied_to_served = []
    for step, patch in enumerate([
        ("modeldeployment", "split-a", '{"spec":{"routing":{"weight":0}}}'),
        ("modeldeployment", "split-b", '{"spec":{"routing":{"weight":1}}}'),
    ]):
        rev = revision(fleet)
        started = time.monotonic()
        c.kubectl("patch", patch[0], patch[1], "-n", APPS_NS, "--type=merge", "-p", patch[2])
        wait_for("both data planes to serve the edit", lambda: both_serve(fleet, rev), every=0.005)
        applied_to_served.append(time.monotonic() - started)
    before = len(u2.requests)
    for dp in fleet.dataplanes:
        for i in range(5):
            chat(dp, "team-split", f"after {i}")
    assert len(u2.requests) - before == 10, "every team-split request now goes to u2"

    # An alias's targets: team-chat moves from team-direct (u1) to team-split (u2).
    rev = revision(fleet)
    started = time.monotonic()
    c.kubectl("patch", "modelgroupalias", "team-chat", "-n", APPS_NS, "--type=merge",
              "-p", '{"spec":{"targets":[{"model":"team-split"}]}}')
    wait_for("both data planes to serve the alias edit", lambda: both_serve(fleet, rev), every=0.005)
    applied_to_served.append(time.monotonic() - started)
    before = len(u2.requests)
    for dp in fleet.dataplanes:
        chat(dp, "team-chat", "via the alias")
    assert len(u2.requests) - before == 2

    wait_for("split-b Ready at its new generation", lambda: status_is(
        fleet, "modeldeployment", "split-b", APPS_NS, Accepted="True", Ready="True"))
    wait_for("team-chat resolved to team-split", lambda: [t["model"] for t in c.get(
        "modelgroupalias", "team-chat", APPS_NS)["status"].get("targets", [])] == ["team-split"])

    ms = sorted(t * 1000 for t in applied_to_served)
    fleet.measurements["apply_to_served_ms"] = ms
    print(f"\napply (kubectl patch, including kubectl's own start-up) to both data planes serving: "
          f"{', '.join(f'{m:.0f}' for m in ms)} ms")
    # The target is under 1 s; the bound here is loose so a loaded CI machine does not flake.
    assert max(ms) < 10_000


def test_3_deletes_and_bad_resources(fleet: Fleet) -> None:
    c = fleet.cluster
    rev = revision(fleet)
    c.kubectl("delete", "modeldeployment", "embed", "-n", "default")
    wait_for("embed's removal to reach both pods", lambda: both_serve(fleet, rev))
    for dp in fleet.dataplanes:
        with pytest.raises(openai.NotFoundError):
            client(dp).embeddings.create(model="embed", input="gone")

    c.apply(f"""---
apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: needs-secret, namespace: {APPS_NS}}}
spec:
  model: secret-model
  upstream:
    provider: openai
    model: gpt-4o
    credentials: {{secretKeyRef: {{name: no-such-secret, key: apiKey}}}}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {{name: loop-a, namespace: {APPS_NS}}}
spec: {{alias: loop-a, targets: [{{model: loop-b}}]}}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelGroupAlias
metadata: {{name: loop-b, namespace: {APPS_NS}}}
spec: {{alias: loop-b, targets: [{{model: loop-a}}]}}
""")
    def rejected(kind: str, name: str, reason: str) -> bool:
        cond = condition(c.get(kind, name, APPS_NS), "Accepted")
        return cond.get("status") == "False" and cond.get("reason") == reason

    wait_for("needs-secret rejected", lambda: rejected("modeldeployment", "needs-secret", "MissingSecret"))
    wait_for("the alias cycle rejected", lambda: rejected("modelgroupalias", "loop-a", "AliasCycle"))
    md = c.get("modeldeployment", "needs-secret", APPS_NS)
    assert "no-such-secret" in condition(md, "Accepted")["message"]
    assert condition(md, "Ready")["reason"] == "NotAccepted"
    for dp in fleet.dataplanes:
        with pytest.raises(openai.NotFoundError):
            chat(dp, "secret-model")
        with pytest.raises(openai.NotFoundError):
            chat(dp, "loop-a")
        assert chat(dp, "team-direct", "still").choices[0].message.content == "echo: still"
        assert chat(dp, "chat").choices[0].message.content.startswith("Hello from")
    out = c.kubectl("get", "events.events.k8s.io", "-n", APPS_NS, "-o", "json").stdout
    assert any(e.get("reason") == "Rejected" and e.get("type") == "Warning" for e in json.loads(out)["items"])

    # A fix is picked up: the Secret appears, the deployment is accepted and served.
    c.apply(f"""---
apiVersion: v1
kind: Secret
metadata: {{name: no-such-secret, namespace: {APPS_NS}}}
stringData: {{apiKey: sk-late}}
""")
    wait_for("needs-secret accepted once its Secret exists", lambda: status_is(
        fleet, "modeldeployment", "needs-secret", APPS_NS, Accepted="True", Ready="True"))
    rev = revision(fleet)
    c.kubectl("delete", "modeldeployment", "needs-secret", "-n", APPS_NS)
    wait_for("needs-secret's removal served", lambda: both_serve(fleet, rev))

    # Router settings are hot-reloaded; a broken document keeps the last good settings.
    rev = revision(fleet)
    c.kubectl("patch", "configmap", "modelgate-settings", "-n", OPERATOR_NS, "--type=merge",
              "-p", json.dumps({"data": {"settings.yaml": "routingStrategy: [not, a, strategy\n"}}))
    wait_for("an InvalidSettings event", lambda: any(
        e.get("reason") == "InvalidSettings" for e in json.loads(c.kubectl(
            "get", "events.events.k8s.io", "-n", OPERATOR_NS, "-o", "json").stdout)["items"]))
    assert revision(fleet) == rev, "a broken settings document changes nothing"
    assert chat(fleet.gateway, "team-direct", "settings").choices[0].message.content == "echo: settings"
    c.kubectl("patch", "configmap", "modelgate-settings", "-n", OPERATOR_NS, "--type=merge",
              "-p", json.dumps({"data": {"settings.yaml": "routingStrategy: least-busy\nretries: 1\n"}}))
    wait_for("the new settings served", lambda: both_serve(fleet, rev))


def test_4_a_dead_upstream_turns_unhealthy_and_recovers(fleet: Fleet) -> None:
    c = fleet.cluster
    u2 = fleet.upstreams["u2"]
    port = u2.port
    u2.close()
    wait_for("health-b Healthy=False", lambda: status_is(fleet, "modeldeployment", "health-b", APPS_NS, Healthy="False"),
             timeout=30)
    md = c.get("modeldeployment", "health-b", APPS_NS)
    cond = condition(md, "Healthy")
    assert cond["reason"] == "Unhealthy"
    assert "data planes see it failing" in cond["message"], cond
    assert md["status"]["health"].get("lastError"), md["status"]
    assert UPSTREAM_KEY not in json.dumps(md)

    fleet.upstreams["u2"] = Upstream_at(port)
    wait_for("health-b Healthy=True again", lambda: status_is(fleet, "modeldeployment", "health-b", APPS_NS, Healthy="True"),
             timeout=30)
    assert not c.get("modeldeployment", "health-b", APPS_NS)["status"].get("health", {}).get("lastError")


def Upstream_at(port: int) -> Any:  # noqa: N802 - reads as a constructor
    from upstream import Upstream

    return Upstream(port).start()


class Traffic(threading.Thread):
    """Requests through both data planes, back to back, counting failures."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__(name="traffic", daemon=True)
        self.fleet = fleet
        self.stopping = threading.Event()
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []

    def run(self) -> None:
        clients = [client(dp) for dp in self.fleet.dataplanes]
        while not self.stopping.is_set():
            for cl in clients:
                try:
                    cl.chat.completions.create(model="team-direct", messages=[{"role": "user", "content": "x"}])
                    self.outcomes["ok"] += 1
                except Exception as e:  # noqa: BLE001 - counted
                    self.outcomes["failed"] += 1
                    self.errors.append(repr(e))


def test_5_failover_restart_and_no_failed_request(fleet: Fleet) -> None:
    c = fleet.cluster
    traffic = Traffic(fleet)
    traffic.start()
    try:
        # Kill the leader: the standby takes over and keeps routing edits.
        first = leader(fleet)
        killed_at = time.monotonic()
        first.process.stop(signal.SIGKILL)
        second = leader(fleet)
        assert second is not first
        rev = revision(fleet)
        c.kubectl("patch", "modeldeployment", "direct-a", "-n", APPS_NS, "--type=merge",
                  "-p", '{"spec":{"routing":{"weight":2}}}')
        wait_for("the new leader to push an edit", lambda: both_serve(fleet, rev), timeout=30)
        fleet.measurements["failover_to_edit_served_s"] = time.monotonic() - killed_at
        served = fleet.gateway.served()
        assert served is not None

        # Stop the operator altogether; the data planes keep serving.
        second.process.stop(signal.SIGTERM)
        time.sleep(1)
        # The gateway restarts while no operator runs: it starts from the snapshot Secret.
        fleet.gateway.process.stop(signal.SIGTERM)
        fleet.gateway.start()
        wait_for("the restarted gateway to serve the last table", lambda: fleet.gateway.served() == served, timeout=15)
        assert fleet.gateway.readiness() == 200
        assert chat(fleet.gateway, "team-direct", "after restart").choices[0].message.content == "echo: after restart"
        time.sleep(0.5)
    finally:
        traffic.stopping.set()
        traffic.join(timeout=30)
    # Requests to the gateway while it was restarting are not counted as the operator's
    # fault: the gateway was down. Everything else must have succeeded.
    gateway_down = [e for e in traffic.errors if "127.0.0.2" in e or "Connection" in e]
    assert traffic.outcomes["ok"] > 20, traffic.outcomes
    assert len(traffic.errors) == len(gateway_down), traffic.errors[:5]

    # The sidecar, restarted with no operator, has no table and is not ready.
    fleet.sidecar.process.stop(signal.SIGTERM)
    fleet.sidecar.start()
    assert fleet.sidecar.readiness() == 503
    # An operator comes back and pushes to it at once.
    fleet.operators[0].process.start()
    wait_for("the sidecar to get the table", lambda: fleet.sidecar.readiness() == 200, timeout=30)
    assert fleet.sidecar.served() == fleet.gateway.served()


def test_6_listings_and_one_health_check_per_deployment(fleet: Fleet) -> None:
    gw = fleet.gateway
    models = {m["id"] for m in gw.get("/v1/models")["data"]}
    assert {"chat", "team-chat", "team-direct", "team-split", "small-chat"} <= models
    assert "gpt-4o-mini" not in models, "hidden aliases are routed, not listed"

    info = gw.get("/model/info")["data"]
    rows = Counter(r["model_name"] for r in info)
    ids_by_name: dict[str, set[str]] = {}
    for r in info:
        ids_by_name.setdefault(r["model_name"], set()).add(r["model_info"]["id"])
        assert UPSTREAM_KEY not in json.dumps(r)
    assert rows["team-split"] == 2 and rows["team-chat"] == 2, rows
    assert ids_by_name["team-chat"] == ids_by_name["team-split"], "same deployment ids under the alias"

    groups = {r["model_group"] for r in gw.get("/model_group/info")["data"]}
    assert {"team-split", "team-chat", "chat"} <= groups

    health = gw.get("/health")
    entries = [e for k in ("healthy_endpoints", "unhealthy_endpoints", "unknown_endpoints") for e in health.get(k, [])]
    assert len(entries) == len(gw.get("/model/info")["data"]) - sum(rows[a] for a in ("team-chat", "chat", "gpt-4o-mini")), entries
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), "each deployment is listed once"

    # Probes reach the upstream once per deployment per interval per pod, however many
    # aliases reach the deployment: u1 serves direct-a and split-a (1 s interval each).
    u1 = fleet.upstreams["u1"]
    start = u1.probes
    time.sleep(3)
    probes = u1.probes - start
    per_second_bound = 2 * len(fleet.dataplanes)
    assert 0 < probes <= per_second_bound * 3 + 4, probes


def test_7_idle_means_no_compiles_and_no_status_storm(fleet: Fleet) -> None:
    op = next(o for o in fleet.operators if o.process.running())
    wait_for("the operator to lead", op.leading, timeout=LEASE_SECONDS * 5 + 10)
    time.sleep(2)
    compiles = op.metric("modelgate_operator_reconciles_total")
    writes = op.metric("modelgate_operator_status_writes_total")
    pushes = op.metric("modelgate_operator_pushes_total")
    time.sleep(4)
    # Health is polled every 300 ms meanwhile; only freshness (at most once per 5 s per
    # object here) may be written.
    assert op.metric("modelgate_operator_reconciles_total") == compiles, "status writes set off compiles"
    assert op.metric("modelgate_operator_pushes_total") == pushes
    objects = len(json.loads(fleet.cluster.kubectl("get", "modeldeployments,modelgroupaliases", "-A", "-o", "json").stdout)["items"])
    assert (op.metric("modelgate_operator_status_writes_total") or 0) - (writes or 0) <= objects
