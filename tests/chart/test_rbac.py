"""The operator's RBAC: exactly what the code needs, no wildcard, no CRD read."""

from __future__ import annotations

import re
from typing import Any

from conftest import CHART, NAMESPACE, Rendered, component, container, flags

# What the operator does in each namespace it watches (operator/src/controller/): reads its
# resources, writes their status by server-side apply, reads Secrets (credentials) and
# data-plane Pods, creates and patches Events (kube's Recorder, events.k8s.io/v1).
WATCH_RULES = {
    ("modelgate.dev", "modeldeployments", v, None) for v in ("get", "list", "watch")
} | {
    ("modelgate.dev", "modelgroupaliases", v, None) for v in ("get", "list", "watch")
} | {
    ("modelgate.dev", "modeldeployments/status", "patch", None),
    ("modelgate.dev", "modelgroupaliases/status", "patch", None),
} | {("", "secrets", v, None) for v in ("get", "list", "watch")} | {
    ("", "pods", v, None) for v in ("get", "list", "watch")
} | {("events.k8s.io", "events", v, None) for v in ("create", "patch")}


def own_namespace_rules(settings: str, table: str, lease: str) -> set[tuple[str, str, str, Any]]:
    tables = tuple([table] + [f"{table}-{i}" for i in range(1, 8)])
    return (
        {("", "configmaps", v, (settings,)) for v in ("get", "list", "watch")}
        | {("", "secrets", v, None) for v in ("get", "list", "watch", "create")}
        | {("", "secrets", v, tables) for v in ("patch", "delete")}
        | {("coordination.k8s.io", "leases", "create", None)}
        | {("coordination.k8s.io", "leases", v, (lease,)) for v in ("get", "update")}
        | {("", "pods", v, None) for v in ("get", "list", "watch")}
        | {("events.k8s.io", "events", v, None) for v in ("create", "patch")}
    )


def triples(role: dict[str, Any]) -> set[tuple[str, str, str, Any]]:
    out = set()
    for rule in role["rules"]:
        names = tuple(rule["resourceNames"]) if "resourceNames" in rule else None
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                for v in rule["verbs"]:
                    out.add((g, res, v, names))
    return out


def operator_flags(r: Rendered) -> dict[str, str]:
    op = component(r, "Deployment", "operator")["spec"]["template"]["spec"]
    return flags(container(op, "operator")["args"])


def test_no_wildcards_in_rbac_templates() -> None:
    for path in sorted((CHART / "templates").glob("*.yaml")):
        text = path.read_text()
        if "rbac.authorization.k8s.io" not in text:
            continue
        assert not re.search(r"""["']\*["']|-\s+\*\s*$|\[\s*\*|,\s*\*""", text, re.M), f"wildcard in {path.name}"


def test_no_wildcards_in_rendered_rbac(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        for role in r.kind("Role") + r.kind("ClusterRole"):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    for value in rule.get(field, []):
                        assert "*" not in value, f"{scenario}: {role['metadata']['name']} {field}: {value}"


def test_the_operator_gets_exactly_what_it_needs(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        f = operator_flags(r)
        sa = component(r, "ServiceAccount", "operator")["metadata"]["name"]
        cluster_role = component(r, "ClusterRole", "operator")
        assert triples(cluster_role) == WATCH_RULES, scenario
        role = component(r, "Role", "operator")
        assert role["metadata"]["namespace"] == NAMESPACE
        assert triples(role) == own_namespace_rules(
            f["settings-configmap"], f["table-secret"], f["lease-name"]), scenario
        binding = r.one("RoleBinding", role["metadata"]["name"])
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
        op_pod = component(r, "Deployment", "operator")["spec"]["template"]["spec"]
        assert op_pod["serviceAccountName"] == sa

        watched = [n for n in f.get("watch-namespaces", "").split(",") if n]
        crbs = [b for b in r.kind("ClusterRoleBinding") if b["roleRef"]["name"] == cluster_role["metadata"]["name"]]
        watch_bindings = [b for b in r.kind("RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]
        if watched:
            # Namespaced mode: the watch rules in each watched namespace, nowhere else.
            assert not crbs, scenario
            assert sorted(b["metadata"]["namespace"] for b in watch_bindings) == sorted(watched), scenario
            subjects = watch_bindings
        else:
            assert len(crbs) == 1 and not watch_bindings, scenario
            subjects = crbs
        for b in subjects:
            assert b["roleRef"]["name"] == cluster_role["metadata"]["name"]
            assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


def test_no_crd_access_and_no_escalation(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        for role in r.kind("Role") + r.kind("ClusterRole"):
            for g, res, verb, _ in triples(role):
                assert res != "customresourcedefinitions", f"{scenario}: {role['metadata']['name']}"
                assert verb not in ("escalate", "bind", "impersonate"), f"{scenario}: {role['metadata']['name']}"
                if res == "secrets" and role["kind"] == "ClusterRole":
                    assert verb in ("get", "list", "watch"), "Secrets are written in the release namespace only"


def test_aggregated_roles_cover_modelgate_resources_only(default_render: Rendered, full_render: Rendered) -> None:
    agg = [c for c in default_render.kind("ClusterRole") if c["metadata"]["name"].endswith(("-view", "-edit"))]
    assert len(agg) == 2
    for c in agg:
        assert {g for g, *_ in triples(c)} == {"modelgate.dev"}
        labels = c["metadata"]["labels"]
        assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert not [c for c in full_render.kind("ClusterRole") if c["metadata"]["name"].endswith(("-view", "-edit"))]
