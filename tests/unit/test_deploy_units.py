"""deploy/: the systemd unit (= what `ctl deploy` renders; `systemd-analyze verify` where available), the
Kubernetes manifests (valid YAML, expected kinds, host network, vendor devices) and the container recipe."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
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


def test_the_unit_exists_once():
    """deploy/fleetbench-agent.service is a link to the template `ctl deploy` renders, not a second copy."""
    shipped = DEPLOY / "fleetbench-agent.service"
    assert shipped.is_symlink() and shipped.resolve() == (dp.TEMPLATES / "fleetbench-agent.service").resolve()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["tool"]["setuptools"]["package-data"]["fleetbench.controller.deploy"] == ["templates/*"]


def _every_script(layout: dp.Layout) -> dict[str, str]:
    argv = dp.agent_argv(layout, "127.0.0.1:50051", tls=layout.mode == "systemd-system")
    out = {name: text for name, text in dp.service_files(layout, argv).items() if name.endswith(".sh")}
    out["probe"] = dp.PROBE
    out["system-user"] = dp.system_user_script(layout)
    for mode in ("process", "systemd-system", "systemd-user"):
        out[f"running-{mode}"] = dp.running_script(layout, mode)
        out[f"stop-{mode}"] = dp.stop_script(layout, mode)
    for restart in (True, False):
        out[f"start-{restart}"] = dp.start_script(layout, restart)
    for deps in ("wheels", "index", "python"):
        out[f"install-{deps}"] = dp.install_script(layout, "/usr/bin/python3", deps, "f-0.1-py3-none-any.whl",
                                                   system_site=deps == "python")
    for purge in (True, False):
        out[f"remove-{purge}"] = dp.remove_script(layout, purge)
    return out


@pytest.mark.parametrize("mode", ["systemd-system", "systemd-user", "process"])
def test_every_rendered_script_is_valid_sh_with_no_placeholder_left(mode):
    layout = dp.Layout("/opt/fb dir", "/var/lib/it's data", mode, "/home/u")
    scripts = _every_script(layout)
    for name, text in scripts.items():
        assert "{{" not in text and "}}" not in text, name
        proc = subprocess.run(["sh", "-n", "-c", text], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
    # the quoted paths reach the scripts as one word each
    assert "mkdir -p '/var/lib/it'\"'\"'s data'" in scripts["install-index"]
    assert ("'/opt/fb dir/venv'/bin/python -m pip install -q --disable-pip-version-check "
            "'/opt/fb dir/wheels/f-0.1-py3-none-any.whl[agent]'") in scripts["install-index"]
    assert "--find-links" not in scripts["install-python"] and "[agent]" not in scripts["install-python"]
    assert ("rm -f /etc/systemd/system" in scripts["remove-True"]) == (mode == "systemd-system")
    assert ("rm -rf '/var/lib/it'\"'\"'s data'" in scripts["remove-True"]) and "rm -rf '/var/lib" not in (
        scripts["remove-False"].replace('rm -rf "$f"', ""))
    assert ("enable-linger" in scripts["start-True"]) == (mode == "systemd-user")
    assert scripts["start-True"].rstrip().endswith("&" if mode == "process" else "restart fleetbench-agent.service")


def test_the_supervisor_restarts_the_agent_and_stops_on_term(tmp_path):
    """The rendered supervise.sh for real: it restarts an agent that exits and stops itself and the agent on TERM."""
    layout = dp.Layout(str(tmp_path), str(tmp_path / "data"), "process", str(tmp_path))
    (tmp_path / "run-agent.sh").write_text("#!/bin/sh\necho started >>\"$0.count\"\nexec sleep 0.3\n")
    (tmp_path / "supervise.sh").write_text(dp.render_supervisor(layout))
    sup = subprocess.Popen(["sh", str(tmp_path / "supervise.sh")], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        count = tmp_path / "run-agent.sh.count"
        while time.monotonic() < deadline and not (count.exists() and count.read_text().count("started") >= 2):
            time.sleep(0.2)
        assert count.read_text().count("started") >= 2, "the agent was not restarted"
        assert int((tmp_path / "supervisor.pid").read_text()) == sup.pid
        sup.terminate()
        assert sup.wait(timeout=20) == 0
        assert not (tmp_path / "supervisor.pid").exists() and not (tmp_path / "agent.pid").exists()
        assert "exited with status 0; restart in 5 s" in (tmp_path / "agent.log").read_text()
    finally:
        if sup.poll() is None:
            sup.kill()


def test_a_template_value_missing_is_an_error_not_a_blank():
    with pytest.raises(KeyError):
        dp.scripts.render("install.sh", {"dir": "/x"}, {"system_site": False, "deps_wheels": False,
                                                         "deps_index": False})
