"""The pieces fit: names the binaries must agree on, ports, selectors, probes, shutdown
timing, TLS, the test hook."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import NAMESPACE, Rendered, component, container, flags, values_file


def pod(r: Rendered, comp: str) -> dict[str, Any]:
    return component(r, "Deployment", comp)["spec"]["template"]


def args(r: Rendered, comp: str) -> dict[str, str]:
    return flags(container(pod(r, comp)["spec"], comp)["args"])


def ports(c: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_operator_finds_the_data_plane_pods(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        t = pod(r, "dataplane")
        assert t["metadata"]["labels"]["modelgate.dev/dataplane"] == "true", scenario
        assert "modelgate.dev/dataplane" not in pod(r, "operator")["metadata"]["labels"]
        c = container(t["spec"], "dataplane")
        a = flags(c["args"])
        assert ports(c) == {"http": 4000, "modelgate-admin": 4001, "metrics": 9464}
        assert a["listen"] == "0.0.0.0:4000" and a["admin-listen"] == "0.0.0.0:4001"
        assert a["metrics-listen"] == "0.0.0.0:9464"


def test_the_snapshot_volume_holds_every_part_the_operator_writes(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        base = args(r, "operator")["table-secret"]
        spec = pod(r, "dataplane")["spec"]
        c = container(spec, "dataplane")
        table_dir = flags(c["args"])["table-file"]
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == table_dir)
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        sources = volume["projected"]["sources"]
        # operator/src/snapshot.rs: MAX_PARTS = 8 Secrets, "<base>" then "<base>-1" … "<base>-7".
        assert [s["secret"]["name"] for s in sources] == [base] + [f"{base}-{i}" for i in range(1, 8)], scenario
        assert all(s["secret"]["optional"] is True and "items" not in s["secret"] for s in sources), scenario


def test_the_settings_configmap_is_the_one_the_operator_reads(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        cm = r.one("ConfigMap")
        assert cm["metadata"]["name"] == args(r, "operator")["settings-configmap"], scenario
        assert set(cm["data"]) == {"settings.yaml"}


def test_the_operator_gets_its_namespace_and_identity_from_the_pod(default_render: Rendered) -> None:
    env = {e["name"]: e for e in container(pod(default_render, "operator")["spec"], "operator")["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    a = args(default_render, "operator")
    assert container(pod(default_render, "operator")["spec"], "operator")["args"][0] == "run"
    assert a["listen"] == "0.0.0.0:8080" and "namespace" not in a
    op = container(pod(default_render, "operator")["spec"], "operator")
    assert ports(op) == {"metrics": 8080}
    assert op["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert op["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_operator_replicas_and_disruption_budget(renders: dict[str, Rendered]) -> None:
    assert component(renders["default"], "Deployment", "operator")["spec"]["replicas"] == 2
    assert component(renders["default"], "PodDisruptionBudget", "operator")["spec"]["maxUnavailable"] == 1
    assert component(renders["full"], "Deployment", "operator")["spec"]["replicas"] == 3
    # One replica: a budget would block every node drain.
    assert not [p for p in renders["minimal"].kind("PodDisruptionBudget")]


def test_probes_and_graceful_shutdown(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        spec = pod(r, "dataplane")["spec"]
        c = container(spec, "dataplane")
        assert c["readinessProbe"]["httpGet"] == {"path": "/health/readiness", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health/liveliness", "port": "http"}
        sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = int(flags(c["args"])["drain-seconds"])
        assert spec["terminationGracePeriodSeconds"] > sleep + drain, scenario
    full = pod(renders["full"], "dataplane")["spec"]
    assert full["terminationGracePeriodSeconds"] == 15 + 120 + 10


def test_services_select_the_right_pods(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        dp_labels = pod(r, "dataplane")["metadata"]["labels"]
        op_labels = pod(r, "operator")["metadata"]["labels"]
        for svc in r.kind("Service"):
            comp = svc["metadata"]["labels"]["app.kubernetes.io/component"]
            target = dp_labels if comp == "dataplane" else op_labels
            other = op_labels if comp == "dataplane" else dp_labels
            assert matches(svc["spec"]["selector"], target), svc["metadata"]["name"]
            assert not matches(svc["spec"]["selector"], other), svc["metadata"]["name"]
            for p in svc["spec"]["ports"]:
                assert p["targetPort"] in ("http", "metrics"), "the admin port is on no Service"
        api = r.one("Service", component(r, "Deployment", "dataplane")["metadata"]["name"])
        assert [p["targetPort"] for p in api["spec"]["ports"]] == ["http"]


def test_the_api_service(renders: dict[str, Rendered]) -> None:
    full = renders["full"].one("Service", "llm-dataplane")
    assert full["spec"]["type"] == "LoadBalancer" and full["spec"]["ports"][0]["port"] == 80
    assert full["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}


def test_the_network_policy_keeps_the_admin_port_for_the_operator(renders: dict[str, Rendered]) -> None:
    for scenario in ("default", "full"):
        r = renders[scenario]
        np = r.one("NetworkPolicy")
        assert matches(np["spec"]["podSelector"]["matchLabels"], pod(r, "dataplane")["metadata"]["labels"])
        assert np["spec"]["policyTypes"] == ["Ingress"]
        by_port = {rule["ports"][0]["port"]: rule for rule in np["spec"]["ingress"]}
        assert set(by_port) == {"modelgate-admin", "http", "metrics"}
        admin_from = by_port["modelgate-admin"]["from"]
        assert len(admin_from) == 1 and set(admin_from[0]) == {"podSelector"}
        selector = admin_from[0]["podSelector"]["matchLabels"]
        assert matches(selector, pod(r, "operator")["metadata"]["labels"])
        assert not matches(selector, pod(r, "dataplane")["metadata"]["labels"])
        if scenario == "default":
            assert "from" not in by_port["http"] and "from" not in by_port["metrics"]
        else:
            test_pod = r.one("Pod")
            assert any(matches(p.get("podSelector", {}).get("matchLabels", {"-": "-"}), test_pod["metadata"]["labels"])
                       for p in by_port["http"]["from"]), "the helm test pod reaches the API"
    assert not renders["minimal"].kind("NetworkPolicy")


def test_autoscaling(renders: dict[str, Rendered]) -> None:
    for scenario in ("full", "autoscaling-cpu", "autoscaling-memory"):
        r = renders[scenario]
        dp = component(r, "Deployment", "dataplane")
        assert "replicas" not in dp["spec"], scenario
        hpa = r.one("HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": dp["metadata"]["name"]}
    assert [m["resource"]["name"] for m in renders["autoscaling-memory"].one("HorizontalPodAutoscaler")["spec"]["metrics"]] == ["memory"]
    assert component(renders["default"], "Deployment", "dataplane")["spec"]["replicas"] == 2


def test_a_target_is_required_for_autoscaling() -> None:
    from conftest import render
    import helm_python as helm

    with pytest.raises(helm.HelmRenderError, match="targetCPUUtilizationPercentage or targetMemory"):
        render({"dataplane": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}})


def test_disruption_budgets_select_their_pods(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        for pdb in r.kind("PodDisruptionBudget"):
            comp = pdb["metadata"]["labels"]["app.kubernetes.io/component"]
            assert matches(pdb["spec"]["selector"]["matchLabels"], pod(r, comp)["metadata"]["labels"])
    assert component(renders["full"], "PodDisruptionBudget", "dataplane")["spec"] == {
        "minAvailable": 2, "selector": component(renders["full"], "PodDisruptionBudget", "dataplane")["spec"]["selector"]}


def test_service_monitors_scrape_the_metrics_services(full_render: Rendered) -> None:
    for sm in full_render.kind("ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        svcs = [s for s in full_render.kind("Service") if matches(sel, s["metadata"]["labels"])]
        assert len(svcs) == 1, sm["metadata"]["name"]
        assert [p["name"] for p in svcs[0]["spec"]["ports"]] == [sm["spec"]["endpoints"][0]["port"]]
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_admin_tls_wiring(renders: dict[str, Rendered]) -> None:
    full = renders["full"]
    op, dp = args(full, "operator"), args(full, "dataplane")
    cert = full.one("Certificate")
    assert op["dataplane-tls-server-name"] == "dataplane.llm.internal" == cert["spec"]["dnsNames"][0]
    assert op["dataplane-ca-secret"] == "dataplane-admin-ca"
    spec = pod(full, "dataplane")["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "admin-tls")
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]
    mount = next(m for m in container(spec, "dataplane")["volumeMounts"] if m["name"] == "admin-tls")
    assert dp["admin-tls-cert"] == f"{mount['mountPath']}/tls.crt"
    assert dp["admin-tls-key"] == f"{mount['mountPath']}/tls.key"
    assert {i["key"] for i in volume["secret"]["items"]} == {"tls.crt", "tls.key"}

    own = renders["tls-own-secret"]
    op = args(own, "operator")
    assert op["dataplane-ca-secret"] == "admin-cert"
    assert op["dataplane-tls-server-name"] == "modelgate-dataplane.modelgate-system.svc"
    assert not own.kind("Certificate")
    for r in (renders["default"], renders["minimal"]):
        assert not {"dataplane-ca-secret", "dataplane-tls-server-name"} & set(args(r, "operator"))
        assert not {"admin-tls-cert", "admin-tls-key"} & set(args(r, "dataplane"))


def test_upstream_ca_and_proxy(renders: dict[str, Rendered]) -> None:
    c = container(pod(renders["full"], "dataplane")["spec"], "dataplane")
    assert flags(c["args"])["ca-bundle"] == "/etc/modelgate/upstream-ca/bundle.pem"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "http://proxy.example.com:3128"
    assert env["NO_PROXY"].startswith("localhost,127.0.0.1,.svc")
    c = container(pod(renders["proxy-https-only"], "dataplane")["spec"], "dataplane")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert set(env) == {"HTTPS_PROXY", "NO_PROXY"}
    assert "env" not in container(pod(renders["default"], "dataplane")["spec"], "dataplane")


def test_extra_args_are_appended(renders: dict[str, Rendered]) -> None:
    r = renders["extra-args"]
    assert container(pod(r, "dataplane")["spec"], "dataplane")["args"][-1] == "--ca-bundle=/etc/ssl/extra.pem"
    assert container(pod(r, "operator")["spec"], "operator")["args"][-1] == "--debounce=100ms"


def test_images_default_to_the_app_version(renders: dict[str, Rendered]) -> None:
    assert container(pod(renders["default"], "operator")["spec"], "operator")["image"] == "ghcr.io/modelgate/operator:0.1.0"
    assert container(pod(renders["default"], "dataplane")["spec"], "dataplane")["image"] == "ghcr.io/modelgate/dataplane:0.1.0"
    full = container(pod(renders["full"], "dataplane")["spec"], "dataplane")["image"]
    assert full == "registry.example.com/modelgate/dataplane:0.1.0-rc.1@sha256:" + "1" * 64


def test_the_helm_test_pod(renders: dict[str, Rendered]) -> None:
    for scenario in ("default", "master-key", "full"):
        r = renders[scenario]
        test = r.one("Pod")
        assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert test["spec"]["restartPolicy"] == "Never"
        c = test["spec"]["containers"][0]
        svc = component(r, "Deployment", "dataplane")["metadata"]["name"]
        port = r.one("Service", svc)["spec"]["ports"][0]["port"]
        base = f"http://{svc}.{NAMESPACE}.svc:{port}"
        urls = [a for a in c["args"] if a.startswith("http")]
        assert urls == [f"{base}/health/readiness", f"{base}/v1/models"], scenario
        assert "--fail" in c["args"] and "--fail-early" in c["args"]
        key = (values_file("values-full.yaml")["settings"]["masterKey"]["secretKeyRef"] if scenario == "full"
               else {"name": "mk", "key": "key"} if scenario == "master-key" else None)
        if key:
            env = {e["name"]: e for e in c["env"]}
            assert env["MODELGATE_MASTER_KEY"]["valueFrom"]["secretKeyRef"] == key
            assert "Authorization: Bearer $(MODELGATE_MASTER_KEY)" in c["args"]
        else:
            assert "env" not in c and not any("Authorization" in a for a in c["args"])
