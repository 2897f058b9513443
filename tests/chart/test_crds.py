"""The CRDs in the chart are the generated ones (`crds/yaml/`), and example resources
validate against their schemas."""

from __future__ import annotations

import os
import re
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import CHART, CRD_TEMPLATES, CRDS, ROOT, crd_template, load_yaml_docs, render

UPDATE = os.environ.get("UPDATE_CHART_CRDS") == "1"


@pytest.mark.parametrize("source", sorted(CRD_TEMPLATES))
def test_crd_templates_are_made_from_crds_yaml(source: str) -> None:
    want = crd_template(source, (CRDS / source).read_text())
    path = CHART / "templates" / CRD_TEMPLATES[source]
    if UPDATE:
        path.write_text(want)
    assert path.exists(), f"{path} is missing; run `UPDATE_CHART_CRDS=1 target/pyenv/bin/python -m pytest tests/chart`"
    assert path.read_text() == want, (
        f"{path.relative_to(ROOT)} is stale against crds/yaml/{source}; regenerate it with "
        "`UPDATE_CHART_CRDS=1 target/pyenv/bin/python -m pytest tests/chart`"
    )


def test_every_generated_crd_is_in_the_chart() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(CRD_TEMPLATES)


def test_rendered_crds_equal_the_generated_ones(default_render) -> None:
    rendered = {c["metadata"]["name"]: c for c in default_render.kind("CustomResourceDefinition")}
    for source in CRD_TEMPLATES:
        want = yaml.safe_load((CRDS / source).read_text())
        got = rendered.pop(want["metadata"]["name"])
        meta = got["metadata"]
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        stripped = dict(got, metadata={"name": meta["name"]})
        assert stripped == want, f"the rendered {source} differs from crds/yaml"
    assert not rendered, f"CRDs not in crds/yaml: {sorted(rendered)}"


def test_crds_are_optional_and_keep_is_optional() -> None:
    assert not render({"crds": {"enabled": False}}).kind("CustomResourceDefinition")
    for crd in render({"crds": {"keep": False}}).kind("CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"]


# --- example resources against the CRDs' schemas -------------------------------------

def strict(schema: Any) -> Any:
    """The schema as `kubectl apply` holds objects to it: server-side field validation
    (strict by default) refuses fields a structural schema does not declare, where a
    JSON-schema validator would let them through."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for v in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{v['name']}"
            schema = strict(v["schema"]["openAPIV3Schema"])
            # Every object has these; the API server adds them to each CRD's schema.
            schema["properties"] = {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                **schema["properties"],
            }
            out[f"{api_version} {crd['spec']['names']['kind']}"] = schema
    return out


def validate_custom_resource(doc: dict[str, Any], where: str) -> None:
    """`doc` against its CRD's openAPIV3Schema. (The CEL rules are checked by
    crds/tests/cel.rs; a JSON-schema validator ignores them.)"""
    schemas = crd_schemas()
    key = f"{doc.get('apiVersion')} {doc.get('kind')}"
    assert key in schemas, f"{where}: no CRD serves {key}"
    errors = sorted(
        jsonschema.Draft7Validator(schemas[key]).iter_errors(doc), key=lambda e: list(e.path)
    )
    assert not errors, f"{where}: " + "; ".join(
        f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
    )


# Sample values for the placeholders of the end-to-end suite's f-string manifests.
PLACEHOLDERS = {"weight": "1", "check": "1s", "base": "http://127.0.0.1:9/v1", "u1": "http://127.0.0.1:9/v1",
                "u2": "http://127.0.0.1:9/v1"}


def fill_fstring(text: str) -> str:
    """A Python f-string's text with its `{placeholders}` filled and `{{ }}` unescaped."""
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return PLACEHOLDERS.get(m.group(1), "sample")
        return m.group(0)[0]
    return re.sub(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z_0-9]*)\}", sub, text)


def example_resources() -> list[tuple[str, dict[str, Any]]]:
    """Custom resources the repository shows users: the quickstart, the golden manifests,
    the end-to-end test's, the README's examples."""
    found: list[tuple[str, dict[str, Any]]] = []
    files = [
        *sorted((ROOT / "examples").rglob("*.yaml")),
        ROOT / "operator/tests/fixtures/golden/manifests.yaml",
    ]
    for path in files:
        if path.exists():
            for i, doc in enumerate(load_yaml_docs(path.read_text())):
                found.append((f"{path.relative_to(ROOT)}#{i}", doc))
    # YAML held in Python strings of the end-to-end suite, and fenced blocks of the README.
    e2e = ROOT / "tests/e2e/test_operator_e2e.py"
    if e2e.exists():
        for i, block in enumerate(re.findall(r'f?"""(.*?)"""', e2e.read_text(), re.S)):
            if "apiVersion: modelgate.dev" not in block:
                continue
            for j, doc in enumerate(load_yaml_docs(fill_fstring(block))):
                found.append((f"{e2e.relative_to(ROOT)} block {i}#{j}", doc))
    readme = ROOT / "README.md"
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme.read_text(), re.S)):
        for j, doc in enumerate(load_yaml_docs(block)):
            found.append((f"README.md yaml block {i}#{j}", doc))
    return [
        (where, doc)
        for where, doc in found
        if isinstance(doc, dict) and doc.get("kind") in ("ModelDeployment", "ModelGroupAlias")
    ]


EXAMPLES = example_resources()


def test_there_are_examples_of_both_kinds() -> None:
    kinds = {doc["kind"] for _, doc in EXAMPLES}
    assert kinds == {"ModelDeployment", "ModelGroupAlias"}, kinds
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("where,doc", EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_resources_match_their_crd(where: str, doc: dict[str, Any]) -> None:
    validate_custom_resource(doc, where)


def test_the_schema_check_catches_mistakes() -> None:
    good = {
        "apiVersion": "modelgate.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "x"},
        "spec": {"model": "m", "upstream": {"provider": "mock"}},
    }
    validate_custom_resource(good, "good")
    for bad in (
        {**good, "spec": {"model": "m", "upstream": {"provider": "nope"}}},
        {**good, "spec": {"model": "m", "upstream": {"provider": "mock"}, "replicas": 2}},
        {**good, "spec": {"model": 3, "upstream": {"provider": "mock"}}},
    ):
        with pytest.raises(AssertionError):
            validate_custom_resource(bad, "bad")
