"""deploy/: the systemd unit (= what `ctl deploy` renders; `systemd-analyze verify` where available), the
Kubernetes manifests (valid YAML, expected kinds, host network, vendor devices) and the container recipe."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from fleetbench.controller import deploy as dp

DEPLOY = Path(__file__).parents[2] / "deploy"
ROOT = DEPLOY.parent


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file: comments dropped, continuation lines joined."""
    out, section, pending = [], "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _, value = line.partition("=")
            out.append((section, key, " ".join(value.split())))
    return out


def default_system_unit(prefix: str = "/opt/fleetbench") -> str:
    layout = dp.Layout(prefix, "/var/lib/fleetbench", "systemd-system", "/root")
    return dp.render_unit(layout, dp.agent_argv(layout, "0.0.0.0:50051", tls=True))


def test_ctl_deploy_renders_the_shipped_unit():
    assert directives(default_system_unit()) == directives((DEPLOY / "fleetbench-agent.service").read_text())


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed (no systemd)")
@pytest.mark.parametrize("which", ["shipped", "rendered-system", "rendered-user"])
def test_systemd_analyze_verify(tmp_path, which):
    """verify checks that ExecStart's program exists: the unit points at a stand-in agent under tmp_path."""
    agent = tmp_path / "venv" / "bin" / "fleetbench-agent"
    agent.parent.mkdir(parents=True)
    agent.write_text("#!/bin/sh\n")
    agent.chmod(0o755)
    if which == "shipped":
        text = (DEPLOY / "fleetbench-agent.service").read_text().replace("/opt/fleetbench", str(tmp_path))
    elif which == "rendered-system":
        text = default_system_unit(str(tmp_path))
    else:
        layout = dp.Layout(str(tmp_path), str(tmp_path / "data"), "systemd-user", "/home/u")
        text = dp.render_unit(layout, dp.agent_argv(layout, "127.0.0.1:50051", tls=False))
    unit = tmp_path / "fleetbench-agent.service"
    unit.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


def manifests() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
            for p in sorted((DEPLOY / "k8s").glob("*.yaml"))}


def test_manifests_are_yaml_with_the_expected_kinds():
    docs = manifests()
    kinds = {name: [d["kind"] for d in ds] for name, ds in docs.items()}
    assert kinds == {"daemonset-ascend.yaml": ["DaemonSet"], "daemonset-hygon.yaml": ["DaemonSet"],
                     "daemonset-nvidia.yaml": ["DaemonSet"], "kustomization.yaml": ["Kustomization"],
                     "namespace.yaml": ["Namespace"]}
    assert sorted(docs["kustomization.yaml"][0]["resources"]) == sorted(n for n in docs if n != "kustomization.yaml")


def _pod(doc: dict) -> dict:
    assert doc["apiVersion"] == "apps/v1" and doc["metadata"]["namespace"] == "fleetbench"
    assert doc["spec"]["selector"]["matchLabels"] == doc["spec"]["template"]["metadata"]["labels"]
    return doc["spec"]["template"]["spec"]


@pytest.mark.parametrize(("vendor", "selector", "mounts", "resource"), [
    ("nvidia", {"nvidia.com/gpu.present": "true"}, set(), "nvidia.com/gpu"),
    ("ascend", {"accelerator": "huawei-Ascend910"},
     {"/usr/local/Ascend/driver", "/dev/davinci_manager", "/dev/davinci0", "/dev/davinci7", "/dev/devmm_svm",
      "/dev/hisi_hdc", "/usr/local/bin/npu-smi"}, "huawei.com/Ascend910"),
    ("hygon", {"hygon.com/dcu": "true"}, {"/dev/kfd", "/dev/mkfd", "/dev/dri", "/opt/hyhal"}, "hygon.com/dcu"),
])
def test_daemonsets_per_vendor(vendor, selector, mounts, resource):
    (doc,) = manifests()[f"daemonset-{vendor}.yaml"]
    pod = _pod(doc)
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == selector
    (agent,) = pod["containers"]
    args = agent["args"]
    assert args[0] == "serve" and "--listen=0.0.0.0:50051" in args  # off loopback: only with mutual TLS
    assert {"--tls-cert=/etc/fleetbench/certs/node-$(NODE_NAME).pem", "--tls-ca=/etc/fleetbench/certs/ca.pem"} <= set(
        args)
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in agent["env"]
    assert "--allow-path=/data/models" in args  # jobs may read the models mount, nothing else
    volumes = {v["name"]: v for v in pod["volumes"]}
    host_paths = {volumes[m["name"]]["hostPath"]["path"]: m["mountPath"] for m in agent["volumeMounts"]
                  if "hostPath" in volumes[m["name"]]}
    assert mounts <= set(host_paths) and all(host_paths[p] == p for p in mounts)
    assert host_paths["/var/lib/fleetbench"] == "/var/lib/fleetbench" and host_paths["/data/models"] == "/data/models"
    assert volumes["certs"]["secret"]["secretName"] == "fleetbench-certs"
    # the accelerator resource is named (how to pin the agent to devices) but not requested: the agent
    # must not take devices away from the inference server
    text = (DEPLOY / "k8s" / f"daemonset-{vendor}.yaml").read_text()
    assert resource in text and resource not in str(agent.get("resources", {}))
    if vendor == "nvidia":
        assert pod["runtimeClassName"] == "nvidia"
        assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"} in agent["env"]
        assert agent["securityContext"]["runAsNonRoot"] is True
    else:
        assert agent["securityContext"]["privileged"] is True
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kustomize_builds_offline():
    proc = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert sorted(d["kind"] for d in docs) == ["DaemonSet", "DaemonSet", "DaemonSet", "Namespace"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for d in docs if d["kind"] == "DaemonSet" for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {f"fleetbench-agent:{version}"}


def test_containerfile_copies_what_the_wheel_needs_and_runs_the_agent():
    text = (DEPLOY / "Containerfile").read_text()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {src.rstrip("/") for line in re.findall(r"^COPY (?!--)(.+)$", text, re.M) for src in line.split()[:-1]}
    assert set(meta["tool"]["setuptools"]["package-dir"].values()) | {"pyproject.toml", "README.md"} == copied
    assert all((ROOT / c).exists() for c in copied)
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    assert entry and entry.group(1) in meta["project"]["scripts"]
    assert re.search(r"^USER 10001$", text, re.M)
    ignore = (DEPLOY / "Containerfile.dockerignore").read_text().split()
    assert {f"!{c}/" if (ROOT / c).is_dir() else f"!{c}" for c in copied} <= set(ignore)
