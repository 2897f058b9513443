"""Shared helpers of the Helm chart suite (`charts/modelgate/`).

Everything runs offline: `helm_python` (Helm's own Go library) loads, lints and renders
the chart with no cluster (`lookup` finds nothing), `kubernetes_validate` checks the
rendered objects against the Kubernetes API schemas, `jsonschema` checks custom
resources against the generated CRDs' `openAPIV3Schema`.

When `MODELGATE_CHART_ARTIFACTS` names a folder (the Rust runner `tests/tests/chart.rs`
sets it), the suite also writes there what only the Rust code can check: the operator's
rendered command lines (parsed with the real `modelgate-operator run` flags), the rendered
RouterSettings documents (parsed and validated by `modelgate_crds::RouterSettings`), and
the manifests the install guide applies (compiled as the operator would).
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelgate"
CRDS = ROOT / "crds" / "yaml"
HERE = Path(__file__).resolve().parent
RELEASE = "modelgate"
NAMESPACE = "modelgate-system"

# Kubernetes versions every rendering is validated against: the chart's minimum
# (Chart.yaml kubeVersion) and the one the workspace builds k8s-openapi for.
KUBE_VERSIONS = ["1.30.0", "1.33.0"]

# The CRD templates and the generated YAML they are made from.
CRD_TEMPLATES = {
    "modeldeployments.modelgate.dev.yaml": "crd-modeldeployments.yaml",
    "modelgroupaliases.modelgate.dev.yaml": "crd-modelgroupaliases.yaml",
}

CRD_METADATA = """\
metadata:
  name: {name}
  labels:
    {{{{- include "modelgate.labels" . | nindent 4 }}}}
  {{{{- if .Values.crds.keep }}}}
  annotations:
    # Helm leaves it in place on uninstall: deleting a CRD deletes every resource of it.
    helm.sh/resource-policy: keep
  {{{{- end }}}}
"""


def crd_template(source_name: str, text: str) -> str:
    """The chart template made from one generated CRD file: gated by `crds.enabled`, with
    the chart's labels and `helm.sh/resource-policy: keep`; everything else verbatim."""
    lines = text.splitlines(keepends=True)
    body = [line for line in lines if not line.startswith("#")]
    start = body.index("metadata:\n")
    end = body.index("spec:\n")
    meta = yaml.safe_load("".join(body[start:end]))["metadata"]
    assert set(meta) == {"name"}, f"{source_name}: unexpected metadata {meta}"
    header = (
        f"# Generated from crds/yaml/{source_name} by tests/chart "
        "(UPDATE_CHART_CRDS=1 pytest tests/chart); do not edit.\n"
        "{{- if .Values.crds.enabled }}\n"
    )
    return (
        header
        + "".join(body[:start])
        + CRD_METADATA.format(name=meta["name"])
        + "".join(body[end:])
        + "{{- end }}\n"
    )


class KubectlLoader(yaml.SafeLoader):
    """YAML as kubectl reads it: YAML 1.1 booleans, but a plain `2024-10-21` stays a string
    (its YAML library makes timestamps only into time fields)."""


KubectlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(text, Loader=KubectlLoader) if d]


class Rendered:
    """One rendering of the chart: template path -> objects, and NOTES.txt."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.notes = ""
        self.by_template: dict[str, list[dict[str, Any]]] = {}
        for path, text in sorted(files.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            docs = load_yaml_docs(text)
            if docs:
                self.by_template[path.split("/templates/", 1)[1]] = docs

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [d for docs in self.by_template.values() for d in docs]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}: {[o['metadata']['name'] for o in self.kind(kind)]}"
        return found[0]

    def pods(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every pod spec: workloads' templates and bare Pods (the test hook)."""
        for o in self.objects:
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]
            elif o["kind"] == "Pod":
                yield f"Pod/{o['metadata']['name']}", o["spec"]


def load_chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    upgrade: bool = False,
    api_versions: list[str] | None = None,
) -> Rendered:
    opts: dict[str, Any] = {"name": release, "namespace": namespace, "kube_version": KUBE_VERSIONS[-1]}
    if upgrade:
        opts["is_upgrade"] = True
    else:
        opts["is_install"] = True
    if api_versions:
        opts["api_versions"] = api_versions
    with load_chart() as chart:
        files = json.loads(
            helm._native.call_string(  # the options render() has no keyword for
                "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(opts)
            )
        )
    return Rendered(files)


def values_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((HERE / name).read_text()) or {}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in pod_spec["containers"] if c["name"] == name]
    assert len(found) == 1, [c["name"] for c in pod_spec["containers"]]
    return found[0]


def flags(args: list[str]) -> dict[str, str]:
    """`--name=value` arguments as a dict."""
    out = {}
    for a in args:
        m = re.fullmatch(r"--([a-z0-9-]+)(?:=(.*))?", a)
        if m:
            out[m.group(1)] = m.group(2) if m.group(2) is not None else ""
    return out


def artifacts() -> Path | None:
    """The folder the Rust runner reads back, if it asked for one."""
    d = os.environ.get("MODELGATE_CHART_ARTIFACTS")
    if not d:
        return None
    p = Path(d)
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_artifact(kind: str, name: str, text: str) -> None:
    base = artifacts()
    if base is None:
        return
    (base / kind).mkdir(exist_ok=True)
    (base / kind / name).write_text(text)


def component(rendered: Rendered, kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` labelled with component `name`."""
    found = [
        o for o in rendered.kind(kind)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == name
    ]
    assert len(found) == 1, f"{len(found)} {kind} of component {name}"
    return found[0]


def record_rendering(scenario: str, rendered: Rendered) -> None:
    """Leaves the operator's command line and the settings document for the Rust side."""
    op = component(rendered, "Deployment", "operator")
    args = container(op["spec"]["template"]["spec"], "operator")["args"]
    write_artifact("operator-args", f"{scenario}.json", json.dumps(args))
    cm = rendered.one("ConfigMap")
    write_artifact("settings", f"{scenario}.yaml", cm["data"]["settings.yaml"])


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    r = render()
    record_rendering("default", r)
    return r


@pytest.fixture(scope="session")
def full_values() -> dict[str, Any]:
    return values_file("values-full.yaml")


@pytest.fixture(scope="session")
def full_render(full_values: dict[str, Any]) -> Rendered:
    r = render(full_values, api_versions=["monitoring.coreos.com/v1", "cert-manager.io/v1"])
    record_rendering("full", r)
    return r


# Options in other combinations than values-full.yaml holds them.
SCENARIOS: dict[str, dict[str, Any]] = {
    "watch-namespaces": {"watchNamespaces": ["team-a", NAMESPACE]},
    "tls-own-secret": {"dataplane": {"adminTLS": {"enabled": True, "secretName": "admin-cert"}}},
    "master-key": {"settings": {"masterKey": {"secretKeyRef": {"name": "mk", "key": "key"}}}},
    "autoscaling-cpu": {"dataplane": {"autoscaling": {"enabled": True}}},
    "autoscaling-memory": {"dataplane": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None,
                                                        "targetMemoryUtilizationPercentage": 75}}},
    "minimal": {"crds": {"enabled": False}, "rbac": {"aggregateToDefaultRoles": False},
                "operator": {"replicas": 1},
                "dataplane": {"replicas": 1, "networkPolicy": {"enabled": False},
                              "podDisruptionBudget": {"enabled": False}}},
    "extra-args": {"dataplane": {"extraArgs": ["--ca-bundle=/etc/ssl/extra.pem"]},
                   "operator": {"extraArgs": ["--debounce=100ms"]}},
    "proxy-https-only": {"dataplane": {"proxy": {"httpsProxy": "http://proxy:3128"}}},
    "other-release": {},
}


@pytest.fixture(scope="session")
def renders(default_render: Rendered, full_render: Rendered) -> dict[str, Rendered]:
    out = {"default": default_render, "full": full_render}
    for name, values in SCENARIOS.items():
        r = render(values, release="edge" if name == "other-release" else RELEASE)
        record_rendering(name, r)
        out[name] = r
    return out
