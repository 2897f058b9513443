"""Every pod of the chart: non-root, read-only root filesystem, no capabilities,
RuntimeDefault seccomp, bounded resources, no host access."""

from __future__ import annotations

from typing import Any

from conftest import Rendered, component


def effective(pod: dict[str, Any], c: dict[str, Any], key: str) -> Any:
    return c.get("securityContext", {}).get(key, pod.get("securityContext", {}).get(key))


def test_every_pod_is_locked_down(renders: dict[str, Rendered]) -> None:
    seen = 0
    for scenario, r in renders.items():
        for name, pod in r.pods():
            where = f"{scenario}: {name}"
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                assert not pod.get(key), where
            for v in pod.get("volumes", []):
                assert "hostPath" not in v, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            for c in pod.get("initContainers", []) + pod["containers"]:
                cw = f"{where} container {c['name']}"
                sc = c.get("securityContext", {})
                assert effective(pod, c, "runAsNonRoot") is True, cw
                uid = effective(pod, c, "runAsUser")
                assert uid is not None and uid != 0, cw
                assert sc.get("readOnlyRootFilesystem") is True, cw
                assert sc.get("allowPrivilegeEscalation") is False, cw
                assert sc.get("privileged") in (None, False), cw
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], cw
                assert not sc.get("capabilities", {}).get("add"), cw
                assert effective(pod, c, "seccompProfile") == {"type": "RuntimeDefault"}, cw
                res = c.get("resources", {})
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{cw}: resources.{kind}"
                seen += 1
    assert seen >= 3 * len(renders)


def test_only_the_operator_gets_an_api_token(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        for name, pod in r.pods():
            if name.startswith("Deployment/") and name.endswith("-operator"):
                continue
            assert pod.get("automountServiceAccountToken") is False, f"{scenario}: {name}"
        dp_sa = component(r, "ServiceAccount", "dataplane")
        assert dp_sa["automountServiceAccountToken"] is False
        # ... and the data plane's ServiceAccount is bound to nothing.
        bound = [s["name"] for b in r.kind("RoleBinding") + r.kind("ClusterRoleBinding") for s in b["subjects"]]
        assert dp_sa["metadata"]["name"] not in bound


def test_secrets_are_mounted_read_only_and_not_world_readable(renders: dict[str, Rendered]) -> None:
    for scenario, r in renders.items():
        for name, pod in r.pods():
            for v in pod.get("volumes", []):
                mode = (v.get("secret") or v.get("projected") or {}).get("defaultMode")
                if "secret" in v or "projected" in v:
                    assert mode is not None and mode & 0o007 == 0, f"{scenario}: {name} volume {v['name']}"
            for c in pod["containers"]:
                for m in c.get("volumeMounts", []):
                    assert m.get("readOnly") is True, f"{scenario}: {name} mount {m['name']}"
