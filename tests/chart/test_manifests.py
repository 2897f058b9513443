"""Every rendered object is a valid Kubernetes object, labelled and named by the chart's
conventions."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from conftest import CHART, KUBE_VERSIONS, NAMESPACE, Rendered, component, container, flags

# Kinds kubernetes-validate has no schema for: checked by hand below.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("cert-manager.io/v1", "Certificate"),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
COMPONENT_PREFIXES = ("operator-", "dataplane-", "crd-", "rbac-", "settings-", "admin-token-", "test-")


def test_every_scenario_renders_the_core(renders: dict[str, Rendered]) -> None:
    for name, r in renders.items():
        kinds = {o["kind"] for o in r.objects}
        assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "Role", "ClusterRole"} <= kinds, name


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_is_valid(renders: dict[str, Rendered], kube_version: str) -> None:
    checked = 0
    for scenario, r in renders.items():
        for template, docs in r.by_template.items():
            for o in docs:
                if (o["apiVersion"], o["kind"]) in FOREIGN_KINDS:
                    continue
                try:
                    kubernetes_validate.validate(o, kube_version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    pytest.fail(f"{scenario}: {template}: {o['kind']}/{o['metadata']['name']} at "
                                f"{'.'.join(map(str, e.path))}: {e.message}")
                checked += 1
    assert checked > 100


def test_foreign_kinds_are_well_formed(full_render: Rendered) -> None:
    """The ServiceMonitors and the Certificate, against what their operators expect."""
    monitors = full_render.kind("ServiceMonitor")
    assert len(monitors) == 2
    for sm in monitors:
        spec = sm["spec"]
        assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
        for ep in spec["endpoints"]:
            assert set(ep) <= {"port", "path", "interval", "scrapeTimeout"}
            assert re.fullmatch(r"[0-9]+(ms|s|m|h)", ep["interval"])
        assert sm["metadata"]["labels"]["release"] == "prometheus"
    cert = full_render.one("Certificate")
    assert set(cert["spec"]) == {"secretName", "commonName", "dnsNames", "duration", "renewBefore",
                                 "usages", "privateKey", "issuerRef"}
    assert cert["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "server auth" in cert["spec"]["usages"]
    assert {o["kind"] for o in full_render.objects if (o["apiVersion"], o["kind"]) in FOREIGN_KINDS} == {
        "ServiceMonitor", "Certificate"}


def test_optional_kinds_are_off_by_default(default_render: Rendered) -> None:
    kinds = {o["kind"] for o in default_render.objects}
    assert not kinds & {"ServiceMonitor", "Certificate", "HorizontalPodAutoscaler"}
    # ... and on by default: the NetworkPolicy, the PodDisruptionBudgets, the CRDs.
    assert {"NetworkPolicy", "PodDisruptionBudget", "CustomResourceDefinition"} <= kinds


def test_objects_carry_the_chart_labels_and_namespace(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        release = "edge" if scenario == "other-release" else "modelgate"
        for o in r.objects:
            meta = o["metadata"]
            where = f"{scenario}: {o['kind']}/{meta['name']}"
            labels = meta.get("labels", {})
            assert labels.get("app.kubernetes.io/instance") == release, where
            assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
            assert labels.get("helm.sh/chart") == "modelgate-0.1.0", where
            assert len(meta["name"]) <= 63, where
            if o["kind"] in CLUSTER_SCOPED:
                assert "namespace" not in meta, where
            elif o["kind"] == "RoleBinding" and meta["name"].endswith("-watch"):
                op = component(r, "Deployment", "operator")["spec"]["template"]["spec"]
                watched = flags(container(op, "operator")["args"])["watch-namespaces"].split(",")
                assert meta["namespace"] in watched, where
            else:
                assert meta.get("namespace") == NAMESPACE, where


def test_names_of_two_releases_do_not_collide(renders: dict[str, Rendered]) -> None:
    def names(r: Rendered) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in r.objects if o["kind"] != "CustomResourceDefinition"}

    assert not names(renders["default"]) & names(renders["other-release"])


def test_one_kind_per_template_and_component_prefixed_names(renders: dict[str, Rendered]) -> None:
    templates = sorted(p.name for p in (CHART / "templates").iterdir() if p.suffix == ".yaml")
    for t in templates:
        assert t.startswith(COMPONENT_PREFIXES), f"{t} is not prefixed by its component"
    for scenario, r in renders.items():
        for template, docs in r.by_template.items():
            assert len({d["kind"] for d in docs}) == 1, f"{scenario}: {template} holds several kinds"


def test_notes_tell_how_to_reach_the_endpoint_and_apply_a_model(renders: dict[str, Rendered]) -> None:
    notes = renders["default"].notes
    assert "http://modelgate-dataplane.modelgate-system.svc:4000/v1" in notes
    assert "kubectl port-forward -n modelgate-system svc/modelgate-dataplane 4000:4000" in notes
    assert "kind: ModelDeployment" in notes and "helm test modelgate" in notes
    full = renders["full"].notes
    assert "http://llm-dataplane.modelgate-system.svc:80/v1" in full
    assert "modelgate-master-key" in full and "namespace: team-a" in full
    assert "crds.enabled is false" in renders["minimal"].notes


def test_the_mock_model_in_the_notes_is_a_valid_resource(default_render: Rendered) -> None:
    from test_crds import validate_custom_resource
    import yaml

    block = default_render.notes.split("<<'YAML'\n", 1)[1].split("  YAML\n", 1)[0]
    doc = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))
    validate_custom_resource(doc, "NOTES.txt")
