"""values.yaml and values.schema.json: documented, complete, strict."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import pytest
import yaml

from conftest import CHART, KUBE_VERSIONS, load_chart, values_file

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every key; maps are walked, lists and scalars are leaves."""
    if isinstance(values, dict) and values:
        out = []
        for k, v in values.items():
            out.extend(leaf_paths(v, f"{prefix}.{k}" if prefix else k))
        return out
    return [prefix]


def lookup(values: dict[str, Any], path: str) -> tuple[bool, Any]:
    cur: Any = values
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_name", ["values.yaml (defaults)", "values-full.yaml"])
def test_the_chart_lints_strictly(values_name: str, kube_version: str) -> None:
    values = None if values_name.startswith("values.yaml") else values_file(values_name)
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{kube_version}")
    assert report["total_charts_linted"] == 1
    assert not report["errors"], report
    # Info-level findings (only "icon is recommended": the project has no icon) are fine;
    # warnings fail, as `helm lint --strict` fails on them.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious, serious


def test_every_values_key_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = []
    in_list_item = re.compile(r"^\s*-\s")
    key = re.compile(r"^(\s*)([A-Za-z][\w.-]*):")
    for i, line in enumerate(lines):
        m = key.match(line)
        if not m or in_list_item.match(line):
            continue
        if "#" in line.split(":", 1)[1]:
            continue  # an inline comment
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j < 0 or not lines[j].strip().startswith("#"):
            missing.append(f"values.yaml:{i + 1}: {line.strip()}")
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


def test_values_full_sets_every_key() -> None:
    full = values_file("values-full.yaml")
    missing = [p for p in leaf_paths(DEFAULTS) if not lookup(full, p)[0]]
    assert not missing, f"values-full.yaml leaves out {missing}"
    # And sets most of them to something else than the default, so the templates'
    # branches are taken (lists left empty are exercised by SCENARIOS in conftest.py).
    same = [p for p in leaf_paths(DEFAULTS) if lookup(full, p)[1] == lookup(DEFAULTS, p)[1]]
    assert len(same) < len(leaf_paths(DEFAULTS)) // 3, same


def test_schema_closes_every_object() -> None:
    """Every object with named fields rejects others (free-form maps aside)."""
    open_objects = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                if where not in ("definitions.resourceList", "definitions.envList.items"):
                    open_objects.append(where)
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(SCHEMA, "")
    assert not open_objects, open_objects


def test_defaults_match_the_schema() -> None:
    with load_chart() as chart:
        chart.validate_schema({})
        chart.validate_schema(values_file("values-full.yaml"))


BAD = {
    "unknown top-level key": ({"replicas": 3}, "additional properties 'replicas' not allowed"),
    "unknown nested key": ({"operator": {"replica": 3}}, "additional properties 'replica' not allowed"),
    "unknown settings field": ({"settings": {"retires": 3}}, "additional properties 'retires' not allowed"),
    "wrong type": ({"operator": {"replicas": "two"}}, "/operator/replicas"),
    "wrong type in a list": ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
    "bad enum": ({"settings": {"routingStrategy": "fastest"}}, "/settings/routingStrategy"),
    "bad duration": ({"settings": {"timeouts": {"request": "5 minutes"}}}, "/settings/timeouts/request"),
    "out of range": ({"settings": {"retries": 11}}, "/settings/retries"),
    "no limits": ({"dataplane": {"resources": {"limits": None}}}, "limits"),
    "bad digest": ({"operator": {"image": {"digest": "latest"}}}, "/operator/image/digest"),
    "bad namespace": ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_schema_rejects_bad_values(name: str) -> None:
    values, expected = BAD[name]
    with load_chart() as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.render(values, name="modelgate", namespace="modelgate-system")
    assert expected in str(err.value), str(err.value)


def test_a_bad_values_file_fails_lint() -> None:
    bad = values_file("values-bad.yaml")
    report = helm.lint(str(CHART), bad, strict=True)
    text = "\n".join(report["errors"])
    assert "additional properties 'replicaCount' not allowed" in text, text
    assert "/dataplane/replicas" in text and "want integer" in text, text
