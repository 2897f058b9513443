"""docs/install.md, followed to the letter.

Its `sh` blocks run in order in one bash (`set -euo pipefail`) in a scratch folder, with
stand-ins on PATH for the programs that would reach a cluster, a registry or the image
builder: `helm`, `kubectl`, `modelgate-operator`, `docker` and `git`. Each records what
it was asked. `kubectl create` runs the real kubectl with `--dry-run=client -o yaml`, so
the objects it would create are real. The suite then plays the records back against the
chart: every `helm install`/`upgrade` is rendered with the values it names (files,
`--set`, `--reuse-values`) and validated; every `kubectl apply` is validated (custom
resources against the CRDs); every name a `kubectl get`/`wait`/`delete`/`patch` uses must
exist in what the chart renders or what the guide created; the pod the guide runs must
reach the data-plane Service. The guide's `yaml` blocks are validated too: whole objects
against Kubernetes and the CRDs, values fragments by rendering the chart with them.

`modelgate-operator import litellm` is the real importer: the Rust runner
(tests/tests/chart.rs) runs it on the guide's LiteLLM config with the guide's arguments
before this suite and hands its output over in `MODELGATE_CHART_IMPORTED` (run alone,
the suite takes a built binary from `MODELGATE_OPERATOR_BIN` instead). The Rust runner
also compiles every resource the guide applies, with the settings of its last
`helm upgrade`, exactly as the operator would (`MODELGATE_CHART_ARTIFACTS`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import (
    CHART,
    KUBE_VERSIONS,
    ROOT,
    Rendered,
    component,
    container,
    deep_merge,
    flags,
    load_yaml_docs,
    record_rendering,
    render,
    write_artifact,
)
from test_crds import validate_custom_resource

DOC = ROOT / "docs" / "install.md"
RELEASE_NS = "modelgate-system"
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())

# --- the stand-ins -------------------------------------------------------------------

SHIM = r'''
import json, os, subprocess, sys
name = os.path.basename(sys.argv[0])
argv = sys.argv[1:]
record = {"cmd": name, "argv": argv, "cwd": os.getcwd()}
log = os.environ["DOC_LOG"]

def files_named(args, opts):
    out = {}
    for i, a in enumerate(args):
        for o in opts:
            if a == o and i + 1 < len(args):
                path = args[i + 1]
            elif a.startswith(o + "="):
                path = a[len(o) + 1:]
            else:
                continue
            if path != "-":
                with open(path) as f:
                    out[path] = f.read()
    return out

status = 0
stdout = ""
if name == "helm":
    record["files"] = files_named(argv, ["-f", "--values"])
elif name == "kubectl":
    verb = argv[0] if argv else ""
    if verb == "create":
        real = subprocess.run([os.environ["REAL_KUBECTL"], *argv, "--dry-run=client", "-o", "yaml"],
                              capture_output=True, text=True)
        record["created"] = real.stdout
        record["stderr"] = real.stderr
        status = real.returncode
        if status == 0:
            stdout = real.stdout if "-o" in argv else ""
    elif verb == "apply":
        record["files"] = files_named(argv, ["-f", "--filename"])
        if "-" in argv:
            record["stdin"] = sys.stdin.read()
    elif verb == "get" and any("jsonpath" in a for a in argv):
        stdout = "ZG9jLXRlc3QtdmFsdWU="  # base64 of "doc-test-value"
elif name == "modelgate-operator":
    imported = os.environ.get("MODELGATE_CHART_IMPORTED")
    if argv[:2] == ["import", "litellm"] and imported:
        out_dir = argv[argv.index("--output-dir") + 1]
        os.makedirs(out_dir, exist_ok=True)
        for f in ("resources.yaml", "settings.yaml"):
            with open(os.path.join(imported, "out", f)) as src, open(os.path.join(out_dir, f), "w") as dst:
                dst.write(src.read())
        with open(os.path.join(imported, "args.json")) as f:
            record["imported_args"] = json.load(f)
        with open(os.path.join(imported, "stderr.txt")) as f:
            sys.stderr.write(f.read())
    elif os.environ.get("MODELGATE_OPERATOR_BIN"):
        real = subprocess.run([os.environ["MODELGATE_OPERATOR_BIN"], *argv])
        record["imported_args"] = argv
        status = real.returncode
    else:
        record["unavailable"] = True
        sys.stderr.write("modelgate-operator stand-in: neither MODELGATE_CHART_IMPORTED nor "
                         "MODELGATE_OPERATOR_BIN is set (run the suite through `cargo test -p "
                         "modelgate-tests --test chart`, or point MODELGATE_OPERATOR_BIN at a build)\n")
        status = 3
elif name == "git":
    stdout = "1700000000\n"
with open(log, "a") as f:
    f.write(json.dumps(record) + "\n")
sys.stdout.write(stdout)
sys.exit(status)
'''

SHIMMED = ["helm", "kubectl", "modelgate-operator", "docker", "git"]


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line) of every fenced block, nested (indented) ones included."""
    out = []
    for m in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```\s*$", text, re.S | re.M):
        indent = len(m.group(1))
        body = "".join(line[indent:] if line.strip() else "\n" for line in m.group(3).splitlines(keepends=True))
        out.append((m.group(2), body, text[: m.start()].count("\n") + 1))
    return out


BLOCKS = code_blocks(DOC.read_text())


def test_the_guide_has_the_sections_the_issue_asks_for() -> None:
    headings = re.findall(r"^#+ (.+)$", DOC.read_text(), re.M)
    for h in ("Prerequisites", "Install", "Provider credentials", "A first model",
              "Calling the endpoint from a pod", "Sidecar mode", "Upgrading", "Uninstalling",
              "Migrating from LiteLLM", "Building the images"):
        assert h in headings, h
    assert {lang for lang, _, _ in BLOCKS} <= {"sh", "yaml"}, "blocks are sh (run) or yaml (validated)"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("install-doc")
    bindir = work / "bin"
    bindir.mkdir()
    for name in SHIMMED:
        shim = bindir / name
        shim.write_text(f"#!{sys.executable}\n{SHIM}")
        shim.chmod(0o755)
    real_kubectl = shutil.which("kubectl")
    assert real_kubectl, "kubectl is needed (its client-side dry run makes the guide's objects)"
    script = "set -euo pipefail\n" + "\n".join(
        f"# docs/install.md:{line}\n{body}" for lang, body, line in BLOCKS if lang == "sh"
    )
    (work / "guide.sh").write_text(script)
    cwd = work / "cwd"
    cwd.mkdir()
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "HOME": str(work),
        "DOC_LOG": str(work / "log.jsonl"),
        "REAL_KUBECTL": real_kubectl,
        "OPENAI_API_KEY": "sk-doc-test-openai",
        "AZURE_API_KEY": "doc-test-azure",
        "LANG": "C.UTF-8",
    }
    for k in ("MODELGATE_CHART_IMPORTED", "MODELGATE_OPERATOR_BIN"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    proc = subprocess.run(["bash", str(work / "guide.sh")], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()] if (
        work / "log.jsonl").exists() else []
    return {"proc": proc, "records": records, "cwd": cwd}


def test_every_command_runs(run: dict[str, Any]) -> None:
    proc = run["proc"]
    hint = ""
    if any(r.get("unavailable") for r in run["records"]):
        hint = ("\n(the importer's output was not handed over: run the suite through "
                "`cargo test -p modelgate-tests --test chart`, or set MODELGATE_OPERATOR_BIN)")
    assert proc.returncode == 0, f"the guide's commands failed ({proc.returncode}):\n{proc.stderr}{hint}"
    assert {"helm", "kubectl", "modelgate-operator", "docker"} <= {r["cmd"] for r in run["records"]}


# --- playing the records back ------------------------------------------------------------

class Cluster:
    """What the guide created, and the release as Helm would hold it."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self.values: dict[str, Any] | None = None
        self.rendered: Rendered | None = None
        self.last_rendered: Rendered | None = None
        self.installed = False
        self.renders = 0

    def find(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        pools = self.objects + (self.rendered.objects if self.rendered else [])
        for o in pools:
            if o["kind"].lower() == kind.lower() and o["metadata"]["name"] == name and (
                    namespace is None or o["metadata"].get("namespace") in (namespace, None)):
                return o
        return None


def option(argv: list[str], *names: str) -> list[str]:
    out = []
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                out.append(argv[i + 1])
            elif n.startswith("--") and a.startswith(n + "="):
                out.append(a[len(n) + 1:])
    return out


def positional(argv: list[str], takes_value: set[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--":
            break
        if a.startswith("-"):
            if a in takes_value:
                skip = True
            continue
        out.append(a)
    return out


HELM_VALUED = {"-n", "--namespace", "-f", "--values", "--set", "--set-string", "--version", "--timeout"}
KUBECTL_VALUED = {"-n", "--namespace", "-f", "--filename", "-o", "--output", "-l", "--selector", "-p",
                  "--patch", "--type", "--for", "--timeout", "--image", "--restart", "--from-literal",
                  "--from-file"}
KINDS = {
    "deployment": "Deployment", "deployments": "Deployment", "pod": "Pod", "pods": "Pod",
    "secret": "Secret", "secrets": "Secret", "lease": "Lease", "crd": "CustomResourceDefinition",
    "namespace": "Namespace", "modeldeployment": "ModelDeployment", "modeldeployments": "ModelDeployment",
    "modelgroupalias": "ModelGroupAlias", "modelgroupaliases": "ModelGroupAlias", "events": "Event",
}


def validate(o: dict[str, Any], where: str) -> None:
    if o["apiVersion"].startswith("modelgate.dev/"):
        validate_custom_resource(o, where)
        return
    for v in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(o, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{where}: {o['kind']}/{o['metadata'].get('name')}: {'.'.join(map(str, e.path))}: {e.message}")


def helm_values(record: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    import helm_python as helm

    argv = record["argv"]
    values: dict[str, Any] = dict(previous or {}) if "--reuse-values" in argv else {}
    for path in option(argv, "-f", "--values"):
        values = deep_merge(values, yaml.safe_load(record["files"][path]) or {})
    for expr in option(argv, "--set"):
        values = deep_merge(values, helm.parse_set_string(expr))
    for expr in option(argv, "--set-string"):
        values = deep_merge(values, helm.parse_set_string_values(expr))
    return values


@pytest.fixture(scope="module")
def played(run: dict[str, Any]) -> dict[str, Any]:
    assert run["proc"].returncode == 0, run["proc"].stderr
    c = Cluster()
    checks: list[str] = []
    runs: list[dict[str, Any]] = []
    for n, r in enumerate(run["records"]):
        argv = r["argv"]
        where = f"command {n + 1}: {r['cmd']} {' '.join(argv)}"
        if r["cmd"] == "helm":
            verb = argv[0]
            pos = positional(argv[1:], HELM_VALUED)
            ns = option(argv, "-n", "--namespace")
            if verb in ("install", "upgrade", "template"):
                release, chart = pos[0], pos[1]
                assert release == "modelgate" and chart == "charts/modelgate", where
                assert ns == [RELEASE_NS], where
                if verb == "upgrade" and "--install" not in argv:
                    assert c.installed, f"{where}: upgrade of a release that is not installed"
                if verb == "install":
                    assert not c.installed, f"{where}: the release is already installed"
                values = helm_values(r, c.values)
                rendered = render(values, upgrade=verb == "upgrade" and c.installed)
                for o in rendered.objects:
                    validate(o, where)
                c.renders += 1
                record_rendering(f"doc-{c.renders}", rendered)
                if verb == "template":
                    # The GitOps path: no Secret of the chart's own, the one created by hand.
                    assert not rendered.kind("Secret"), where
                    name = values["adminToken"]["existingSecret"]
                    assert c.find("Secret", name, RELEASE_NS), f"{where}: Secret {name} was not created"
                    continue
                c.values, c.rendered, c.installed = values, rendered, True
                c.last_rendered = rendered
                checks.append(f"rendered {verb}")
            elif verb == "test":
                assert pos == ["modelgate"] and ns == [RELEASE_NS] and c.installed, where
                assert c.rendered and c.rendered.one("Pod")["metadata"]["annotations"]["helm.sh/hook"] == "test"
            elif verb == "uninstall":
                assert pos == ["modelgate"] and ns == [RELEASE_NS] and c.installed, where
                c.installed, c.rendered = False, None
            else:
                pytest.fail(f"{where}: not a command this suite checks")
        elif r["cmd"] == "kubectl":
            play_kubectl(c, r, where, runs)
        elif r["cmd"] == "modelgate-operator":
            assert argv[:2] == ["import", "litellm"], where
            assert r["imported_args"] == argv, f"{where}: the importer ran with {r['imported_args']}"
        elif r["cmd"] == "docker":
            assert argv[0] == "build", where
            dockerfile = option(argv, "-f")[0]
            assert (ROOT / dockerfile).is_file(), where
            tag = option(argv, "-t")[0]
            comp = dockerfile.split("/")[0]
            image = DEFAULTS[comp]["image"]
            assert tag == f"{image['repository']}:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}", where
            assert positional(argv[1:], {"-f", "-t", "--build-arg"}) == ["."], where
        elif r["cmd"] == "git":
            assert argv == ["log", "-1", "--format=%ct"], where
    return {"cluster": c, "runs": runs}


def play_kubectl(c: Cluster, r: dict[str, Any], where: str, runs: list[dict[str, Any]]) -> None:
    argv = r["argv"]
    verb = argv[0]
    ns_opt = option(argv, "-n", "--namespace")
    ns = ns_opt[0] if ns_opt else None
    pos = positional(argv[1:], KUBECTL_VALUED)
    if verb == "create":
        docs = load_yaml_docs(r["created"])
        assert docs, f"{where}: {r.get('stderr')}"
        for o in docs:
            validate(o, where)
            if o["kind"] == "Namespace" and c.find("Namespace", o["metadata"]["name"], None):
                continue
            c.objects.append(o)
    elif verb == "apply":
        texts = [r["stdin"]] if "-" in option(argv, "-f", "--filename") else []
        texts += list(r["files"].values())
        assert texts, where
        for text in texts:
            for o in load_yaml_docs(text):
                validate(o, where)
                if o["apiVersion"].startswith("modelgate.dev/"):
                    o.setdefault("metadata", {}).setdefault("namespace", "default")
                c.objects.append(o)
    elif verb in ("get", "wait", "describe", "delete", "patch", "rollout"):
        if verb == "rollout":
            assert pos[0] in ("status", "restart"), where
            pos = pos[1:]
        targets: list[tuple[str, str | None]] = []
        if pos and "/" in pos[0]:
            targets = [(p.split("/")[0], p.split("/")[1]) for p in pos]
        elif pos:
            kinds = pos[0].split(",")
            names = pos[1:]
            targets = [(k, nm) for k in kinds for nm in names] if names else [(k, None) for k in kinds]
        for kind_word, name in targets:
            assert kind_word in KINDS, f"{where}: unknown kind {kind_word}"
            kind = KINDS[kind_word]
            if name is None:
                continue
            if kind == "Lease":
                op = component(c.last_rendered, "Deployment", "operator")["spec"]["template"]["spec"]
                assert name == flags(container(op, "operator")["args"])["lease-name"], where
                continue
            if kind == "Namespace":
                assert name == RELEASE_NS, where
                continue
            obj = c.find(kind, name, ns) or (c.last_rendered and next(
                (o for o in c.last_rendered.objects if o["kind"] == kind and o["metadata"]["name"] == name), None))
            assert obj, f"{where}: no {kind} {name} in namespace {ns}"
            jsonpath = [a for a in argv if "jsonpath" in a]
            if jsonpath:
                key = re.search(r"\{\.data\.([\w.-]+)\}", " ".join(argv)).group(1)
                assert key in obj.get("data", {}) or key in obj.get("stringData", {}), f"{where}: no key {key}"
            if verb == "patch":
                patch = json.loads(option(argv, "-p", "--patch")[0])
                assert set(patch) == {"stringData"} and set(patch["stringData"]) <= set(obj.get("data", {})), where
            if verb == "wait":
                assert option(argv, "--for") == ["condition=Ready"], where
        selectors = option(argv, "-l", "--selector")
        if selectors:
            snapshot = (ROOT / "operator/src/snapshot.rs").read_text()
            label = re.search(r'SNAPSHOT_LABEL: &str = "([^"]+)"', snapshot).group(1)
            assert selectors == [f"{label}=true"] and ns == RELEASE_NS, where
    elif verb == "run":
        runs.append({"argv": argv, "where": where, "values": c.values, "rendered": c.rendered,
                     "env": {}})
    else:
        pytest.fail(f"{where}: not a command this suite checks")


def test_every_helm_install_and_upgrade_renders_and_validates(played: dict[str, Any]) -> None:
    assert played["cluster"].renders >= 4


def test_the_pod_the_guide_runs_reaches_the_endpoint(played: dict[str, Any]) -> None:
    runs = played["runs"]
    assert len(runs) == 1
    argv = runs[0]["argv"]
    rendered: Rendered = runs[0]["rendered"]
    image = option(argv, "--image")[0]
    test_image = DEFAULTS["test"]["image"]
    assert image == f"{test_image['repository']}:{test_image['tag']}", "the same curl image as helm test"
    command = argv[argv.index("--") + 1:]
    assert command[0] == "curl"
    url = next(a for a in command if a.startswith("http"))
    m = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    svc = component(rendered, "Deployment", "dataplane")["metadata"]["name"]
    assert host == f"{svc}.{RELEASE_NS}.svc"
    assert port == rendered.one("Service", svc)["spec"]["ports"][0]["port"]
    assert path == "/v1/chat/completions"
    body = json.loads(option(command, "-d")[0])
    cluster: Cluster = played["cluster"]
    names = {o["spec"].get("alias") or o["spec"].get("model") for o in cluster.objects
             if o["kind"] in ("ModelDeployment", "ModelGroupAlias")}
    assert body["model"] in names
    headers = option(command, "-H")
    # The master key the guide set up is sent (its value came from `kubectl get secret`).
    assert "Authorization: Bearer doc-test-value" in headers
    namespace = option(argv, "-n")[0]
    # The data plane's NetworkPolicy lets the API port in from that namespace.
    np = rendered.one("NetworkPolicy")
    api_rule = next(rule for rule in np["spec"]["ingress"] if rule["ports"][0]["port"] == "http")
    assert "from" not in api_rule, f"pods of {namespace} could not reach the API port"


def test_every_credential_the_guide_refers_to_exists(played: dict[str, Any]) -> None:
    cluster: Cluster = played["cluster"]
    secrets = {(o["metadata"].get("namespace"), o["metadata"]["name"]): set(o.get("data", {})) | set(o.get("stringData", {}))
               for o in cluster.objects if o["kind"] == "Secret"}

    def refs(node: Any) -> list[dict[str, str]]:
        if isinstance(node, dict):
            found = [node["secretKeyRef"]] if isinstance(node.get("secretKeyRef"), dict) else []
            return found + [x for v in node.values() for x in refs(v)]
        if isinstance(node, list):
            return [x for v in node for x in refs(v)]
        return []

    checked = 0
    for o in cluster.objects:
        if o["kind"] == "ModelDeployment":
            for ref in refs(o["spec"]):
                assert ref["key"] in secrets.get((o["metadata"]["namespace"], ref["name"]), set()), (
                    f"{o['metadata']['name']} refers to Secret {ref['name']} key {ref['key']}, which the guide does not create")
                checked += 1
    settings = yaml.safe_load(cluster.last_rendered.one("ConfigMap")["data"]["settings.yaml"])
    for field in ("masterKey", "redisUrl"):
        if field in settings:
            ref = settings[field]["secretKeyRef"]
            assert ref["key"] in secrets.get((RELEASE_NS, ref["name"]), set()), field
            checked += 1
    assert checked >= 4


def test_the_guides_resources_go_to_the_compiler(played: dict[str, Any]) -> None:
    """Hands the applied resources and the last settings to the Rust runner."""
    cluster: Cluster = played["cluster"]
    docs = [o for o in cluster.objects if o["kind"] in ("ModelDeployment", "ModelGroupAlias", "Secret")]
    write_artifact("doc", "manifests.yaml", yaml.safe_dump_all(docs, sort_keys=False))
    write_artifact("doc", "settings.yaml", cluster.last_rendered.one("ConfigMap")["data"]["settings.yaml"])
    assert len([d for d in docs if d["kind"] == "ModelDeployment"]) >= 4


# --- the yaml blocks -----------------------------------------------------------------------

YAML_BLOCKS = [(body, line) for lang, body, line in BLOCKS if lang == "yaml"]


@pytest.mark.parametrize("body,line", YAML_BLOCKS, ids=[f"install.md:{line}" for _, line in YAML_BLOCKS])
def test_yaml_blocks_are_valid(body: str, line: int) -> None:
    docs = load_yaml_docs(body)
    where = f"docs/install.md:{line}"
    if all("apiVersion" in d and "kind" in d for d in docs):
        for d in docs:
            validate(d, where)
        return
    # A fragment of the chart's values: the chart renders with it and validates.
    rendered = render(docs[0], api_versions=["monitoring.coreos.com/v1", "cert-manager.io/v1"])
    for o in rendered.objects:
        if o["apiVersion"] in ("monitoring.coreos.com/v1", "cert-manager.io/v1"):
            continue
        validate(o, where)


def test_the_sidecar_snippet_is_what_the_operator_looks_for(default_render: Rendered) -> None:
    deployments = [d for body, _ in YAML_BLOCKS for d in load_yaml_docs(body) if d.get("kind") == "Deployment"]
    assert len(deployments) == 1
    pod = deployments[0]["spec"]["template"]
    assert pod["metadata"]["labels"]["modelgate.dev/dataplane"] == "true"
    sidecar = next(c for c in pod["spec"]["initContainers"] if c["name"] == "modelgate")
    assert sidecar["restartPolicy"] == "Always"
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    args = flags(sidecar["args"])
    assert ports["modelgate-admin"] == int(args["admin-listen"].rsplit(":", 1)[1])
    assert ports["http"] == int(args["listen"].rsplit(":", 1)[1]) == 4000
    assert "table-file" not in args, "sidecars get pushes only"
    # The image and the token Secret are the chart's.
    chart_dp = container(component(default_render, "Deployment", "dataplane")["spec"]["template"]["spec"], "dataplane")
    assert sidecar["image"] == chart_dp["image"]
    assert args["admin-token-file"] == flags(chart_dp["args"])["admin-token-file"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == sidecar["volumeMounts"][0]["name"])
    assert volume["secret"]["secretName"] == "modelgate-admin-token"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    # Locked down like the chart's own pods.
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"cpu", "memory"} <= set(sidecar["resources"]["limits"])
    # Its flags exist.
    from test_binaries import clap_flags
    assert set(args) <= clap_flags(ROOT / "dataplane/src/main.rs", "Args")


def test_the_guides_tables_name_what_the_chart_renders(default_render: Rendered) -> None:
    text = DOC.read_text()
    table = text.split("## What gets installed", 1)[1].split("## Prerequisites", 1)[0]
    names = set(re.findall(r"`([a-z0-9.-]+)`", table))
    rendered = {o["metadata"]["name"] for o in default_render.objects}
    # The operator's runtime objects (snapshot Secrets, Lease), the container ports, the
    # built-in roles the aggregated ClusterRoles extend, values keys.
    runtime = {"modelgate-routing-table", "modelgate-routing-table-1", "modelgate-operator"}
    ports = {p["name"] for _, spec in default_render.pods() for c in spec["containers"] for p in c.get("ports", [])}
    known = rendered | runtime | ports | {"view", "edit", "admin", RELEASE_NS} | set(DEFAULTS)
    unknown = {n for n in names if n not in known and not re.fullmatch(r"-?\d+|[a-z]+\.yaml", n)}
    assert not unknown, f"docs/install.md names {sorted(unknown)}, which the chart does not render"
