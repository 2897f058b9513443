"""The Dockerfiles (no container engine runs here: they are read, not built)."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest
import yaml

from conftest import CHART, ROOT

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
WORKSPACE = tomllib.loads((ROOT / "Cargo.toml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("component", ["operator", "dataplane"])
def test_dockerfile(component: str) -> None:
    text = (ROOT / component / "Dockerfile").read_text()
    ins = instructions(text)
    args = dict(re.findall(r"^ARG ([A-Z_]+)=(\S+)$", text, re.M))
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2, "multi-stage: a build stage and the runtime stage"
    assert froms[0].endswith(" AS build")
    # The build stage: the workspace's toolchain or newer, Cargo.lock enforced.
    rust = re.search(r"rust:(\d+\.\d+)", args["RUST_IMAGE"]).group(1)
    assert tuple(map(int, rust.split("."))) >= tuple(map(int, WORKSPACE["workspace"]["package"]["rust-version"].split(".")))
    package = f"modelgate-{component}"
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert f"cargo build --release --locked -p {package} --bin {package}" in runs
    if component == "dataplane":
        # Profile-guided by default (what BENCHMARKS.md measures), plain with PGO=0.
        assert args["PGO"] == "1"
        assert "tests/load/pgo.sh" in runs and "target/pgo/bin/modelgate-dataplane" in runs
        assert (ROOT / "tests/load/pgo.sh").stat().st_mode & 0o111
    assert "SOURCE_DATE_EPOCH" in args
    # The runtime stage: distroless, non-root, no shell needed, exec-form entrypoint.
    assert froms[1] == "${RUNTIME_IMAGE}" and "distroless" in args["RUNTIME_IMAGE"]
    assert args["RUNTIME_IMAGE"].endswith(":nonroot")
    user = [rest for word, rest in ins if word == "USER"][-1]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user)
    # The chart's pods run as this user.
    assert int(user.split(":")[0]) == VALUES["podSecurityContext"]["runAsUser"]
    entry = [rest for word, rest in ins if word == "ENTRYPOINT"][-1]
    assert entry == f'["/usr/local/bin/{package}"]'
    # The build command in the header names the chart's default image.
    image = VALUES[component]["image"]["repository"]
    assert f"docker build -f {component}/Dockerfile -t {image}:{APP_VERSION}" in text
    # Every port the chart uses is exposed.
    exposed = " ".join(rest for word, rest in ins if word == "EXPOSE").split()
    want = ["8080"] if component == "operator" else ["4000", "4001", "9464"]
    assert exposed == want


def test_dockerignore_keeps_the_workspace() -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert "/target" in patterns and "/.git" in patterns

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.lstrip("/")) or fnmatch.fnmatch(path, p.lstrip("/") + "/*")
                   for p in patterns)

    needed = ["Cargo.toml", "Cargo.lock"] + [f"{m}/Cargo.toml" for m in WORKSPACE["workspace"]["members"]]
    needed += [f"{m}/src/lib.rs" for m in ("crds", "dataplane", "operator", "dataplane/api")]
    assert not [p for p in needed if ignored(p)]
    assert ignored("target/debug/x") and ignored("charts/modelgate/values.yaml")
