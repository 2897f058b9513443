"""The chart against the binaries' sources: every flag it passes exists, every settings
field it writes is a RouterSettings field. (The Rust runner, tests/tests/chart.rs, also
parses the rendered operator command lines with the real flag definitions and the
rendered settings with the real RouterSettings type.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from conftest import ROOT, Rendered, component, container, flags


def struct_fields(path: Path, struct: str) -> list[str]:
    """The field names of `pub struct <struct> { … }` in a Rust file, camelCased as serde
    renames them."""
    text = path.read_text()
    m = re.search(rf"pub struct {struct} \{{(.*?)\n\}}", text, re.S)
    assert m, f"no struct {struct} in {path}"
    names = re.findall(r"^\s*pub (?:r#)?([a-z_0-9]+):", m.group(1), re.M)
    return [re.sub(r"_([a-z0-9])", lambda x: x.group(1).upper(), n) for n in names]


def clap_flags(path: Path, struct: str) -> set[str]:
    """The long flags of a clap struct: its fields, kebab-cased."""
    text = path.read_text()
    m = re.search(rf"struct {struct} \{{(.*?)\n\}}", text, re.S)
    assert m, f"no struct {struct} in {path}"
    return {n.replace("_", "-") for n in re.findall(r"^\s*(?:pub )?([a-z_0-9]+):", m.group(1), re.M)}


def test_data_plane_flags_exist(renders: dict[str, Rendered]) -> None:
    known = clap_flags(ROOT / "dataplane/src/main.rs", "Args")
    for scenario, r in renders.items():
        spec = component(r, "Deployment", "dataplane")["spec"]["template"]["spec"]
        used = set(flags(container(spec, "dataplane")["args"]))
        assert used <= known, f"{scenario}: modelgate-dataplane has no {sorted(used - known)}"


def test_operator_flags_exist(renders: dict[str, Rendered]) -> None:
    known = clap_flags(ROOT / "operator/src/controller/mod.rs", "Config") | clap_flags(
        ROOT / "operator/src/main.rs", "RunArgs")
    for scenario, r in renders.items():
        spec = component(r, "Deployment", "operator")["spec"]["template"]["spec"]
        used = set(flags(container(spec, "operator")["args"]))
        assert used <= known, f"{scenario}: modelgate-operator run has no {sorted(used - known)}"


SETTINGS_TYPES: dict[str, tuple[str, str]] = {
    "": ("crds/src/settings.rs", "RouterSettings"),
    "timeouts": ("crds/src/deployment.rs", "Timeouts"),
    "timeouts.stream": ("crds/src/deployment.rs", "StreamTimeouts"),
    "cooldown": ("crds/src/settings.rs", "Cooldown"),
    "masterKey": ("crds/src/settings.rs", "SecretValueSource"),
    "redisUrl": ("crds/src/settings.rs", "SecretValueSource"),
    "masterKey.secretKeyRef": ("crds/src/common.rs", "SecretKeySelector"),
    "redisUrl.secretKeyRef": ("crds/src/common.rs", "SecretKeySelector"),
    "sharedModels[]": ("crds/src/settings.rs", "SharedModel"),
}
FREE_MAPS = {"fallbacks", "contextWindowFallbacks"}


def check_fields(doc: Any, path: str, problems: list[str]) -> None:
    if path in FREE_MAPS:
        return
    if isinstance(doc, list):
        for item in doc:
            check_fields(item, f"{path}[]", problems)
        return
    if not isinstance(doc, dict) or path not in SETTINGS_TYPES:
        return
    file, struct = SETTINGS_TYPES[path]
    known = struct_fields(ROOT / file, struct)
    for k, v in doc.items():
        if k not in known:
            problems.append(f"{path or '<root>'}.{k} is not a field of {struct} ({file})")
        check_fields(v, f"{path}.{k}" if path else k, problems)


def test_settings_fields_exist(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        doc = yaml.safe_load(r.one("ConfigMap")["data"]["settings.yaml"])
        problems: list[str] = []
        check_fields(doc, "", problems)
        assert not problems, f"{scenario}: {problems}"


def test_settings_rendering(renders: dict[str, Rendered]) -> None:
    default = yaml.safe_load(renders["default"].one("ConfigMap")["data"]["settings.yaml"])
    assert default == {"apiVersion": "modelgate.dev/v1alpha1", "kind": "RouterSettings"}
    full = yaml.safe_load(renders["full"].one("ConfigMap")["data"]["settings.yaml"])
    assert full == {
        "apiVersion": "modelgate.dev/v1alpha1",
        "kind": "RouterSettings",
        "routingStrategy": "latency-based",
        "latencyBuffer": 0.2,
        "retries": 3,
        "timeouts": {"request": "2m", "stream": {"firstByte": "20s", "idle": "45s"}},
        "cooldown": {"allowedFails": 5, "cooldownTime": "30s"},
        "fallbacks": {"gpt-4o": ["gpt-4.1", "llama-3.1-70b"]},
        "contextWindowFallbacks": {"gpt-4o-mini": ["gpt-4o"]},
        "dropParams": True,
        "maxRequestBodyBytes": 10485760,
        "masterKey": {"secretKeyRef": {"name": "modelgate-master-key", "key": "key"}},
        "redisUrl": {"secretKeyRef": {"name": "modelgate-redis", "key": "url"}},
        "namespaces": ["team-a", "team-b"],
        "sharedModels": [{"model": "gpt-4o", "namespaces": ["team-b"]}],
    }
    # Every RouterSettings field but apiVersion/kind has a value in values-full.yaml, so a
    # field added to the Rust type fails here until the chart offers it.
    assert set(struct_fields(ROOT / "crds/src/settings.rs", "RouterSettings")) == set(full)
