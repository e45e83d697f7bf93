"""The pure parts of `ctl deploy`: layout, service mode, listen address, scripts, fingerprint, decisions."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest

from fleetbench.controller import deploy as dp
from fleetbench.controller.cli.deploy import apply_ssh_flags
from fleetbench.controller.fleet import DeploySettings, Node, SshSettings, TlsClient
from fleetbench.errors import DeployError

TLS = TlsClient(Path("/c/ca.pem"), Path("/c/controller.pem"), Path("/c/controller.key"))


def node(address: str = "10.0.0.11:50051", **kw) -> Node:
    return Node("n1", address, **kw)


def test_layout_defaults_by_user_and_fleet_paths():
    root = dp.make_layout(node(), 0, "/root", "systemd-system")
    assert (root.dir, root.data_dir, root.venv, root.certs) == (
        "/opt/fleetbench", "/var/lib/fleetbench", "/opt/fleetbench/venv", "/opt/fleetbench/certs")
    assert root.unit_path == "/etc/systemd/system/fleetbench-agent.service" and root.systemctl == "systemctl"
    user = dp.make_layout(node(), 1000, "/home/ops", "systemd-user")
    assert (user.dir, user.data_dir) == ("/home/ops/.fleetbench", "/home/ops/.fleetbench/data")
    assert user.unit_path == "/home/ops/.config/systemd/user/fleetbench-agent.service"
    assert user.systemctl == "systemctl --user"
    rel = dp.make_layout(node(deploy=DeploySettings(dir="fb", data_dir="~/results")), 0, "/root", "process")
    assert (rel.dir, rel.data_dir) == ("/root/fb", "/root/results")
    # a dir given as root keeps its data inside it unless data_dir says otherwise
    assert dp.make_layout(node(deploy=DeploySettings(dir="/srv/fb")), 0, "/root", "process").data_dir == "/srv/fb/data"
    with pytest.raises(DeployError, match="must not be / or the home directory"):
        dp.make_layout(node(deploy=DeploySettings(dir="~")), 1000, "/home/ops", "process")


@pytest.mark.parametrize(("wanted", "systemd", "uid", "bus", "mode"), [
    ("auto", True, 0, False, "systemd-system"),
    ("auto", True, 1000, True, "systemd-user"),
    ("auto", True, 1000, False, "process"),  # no user manager (no lingering session): a supervisor instead
    ("auto", False, 0, False, "process"),
    ("process", True, 0, True, "process"),
    ("systemd", True, 0, False, "systemd-system"),
])
def test_service_mode(wanted, systemd, uid, bus, mode):
    assert dp.choose_mode(wanted, systemd, uid, bus) == mode


def test_systemd_wanted_where_it_does_not_run_is_an_error():
    with pytest.raises(DeployError, match="systemd does not run there"):
        dp.choose_mode("systemd", False, 0, False)


def test_listen_address():
    assert dp.listen_address(node(tls=TLS)) == "0.0.0.0:50051"
    assert dp.listen_address(node(connect="ssh")) == "127.0.0.1:50051"  # tunnel mode: loopback only
    assert dp.listen_address(node(connect="ssh", tls=TLS)) == "127.0.0.1:50051"
    assert dp.listen_address(node("127.0.0.1:7000")) == "127.0.0.1:7000"
    assert dp.listen_address(node(tls=TLS, deploy=DeploySettings(listen="10.0.0.11:50051"))) == "10.0.0.11:50051"
    with pytest.raises(DeployError, match="off loopback in plaintext"):
        dp.listen_address(node())
    with pytest.raises(DeployError, match="needs the agent on loopback"):
        dp.listen_address(node(connect="ssh", deploy=DeploySettings(listen="0.0.0.0:50051")))


def test_agent_command_and_run_script():
    layout = dp.Layout("/opt/my fb", "/var/lib/fleetbench", "process", "/root")
    argv = dp.agent_argv(layout, "127.0.0.1:50051", tls=True)
    assert argv == ["/opt/my fb/venv/bin/fleetbench-agent", "serve", "--listen", "127.0.0.1:50051", "--data-dir",
                    "/var/lib/fleetbench", "--tls-cert", "/opt/my fb/certs/node.pem", "--tls-key",
                    "/opt/my fb/certs/node.key", "--tls-ca", "/opt/my fb/certs/ca.pem"]
    assert "--tls-ca" not in dp.agent_argv(layout, "127.0.0.1:50051", tls=False)
    script = dp.render_run_script(argv)
    assert script.startswith("#!/bin/sh\n")
    exec_line = script.splitlines()[-1]
    assert shlex.split(exec_line) == ["exec", *argv]  # quoted for the shell: a space in a path survives


def test_service_files_by_mode():
    argv = ["/x/venv/bin/fleetbench-agent", "serve", "--listen", "127.0.0.1:1", "--data-dir", "/x/data"]
    process = dp.service_files(dp.Layout("/x", "/x/data", "process", "/root"), argv)
    assert sorted(process) == ["/x/run-agent.sh", "/x/supervise.sh"]
    assert "dir=/x\n" in process["/x/supervise.sh"] and "trap stop TERM INT" in process["/x/supervise.sh"]
    user = dp.service_files(dp.Layout("/home/u/.fleetbench", "/home/u/.fleetbench/data", "systemd-user", "/home/u"),
                            argv)
    unit = user["/home/u/.config/systemd/user/fleetbench-agent.service"]
    assert "User=" not in unit and "WantedBy=default.target" in unit
    assert ("ExecStart=/x/venv/bin/fleetbench-agent serve \\\n    --listen 127.0.0.1:1 \\\n"
            "    --data-dir /x/data") in unit


def test_system_unit_under_home_relaxes_protect_home():
    layout = dp.Layout("/root/fb", "/root/fb/data", "systemd-system", "/root")
    unit = dp.render_unit(layout, dp.agent_argv(layout, "127.0.0.1:1", tls=False))
    assert "ProtectHome=read-only" in unit and "ReadWritePaths=/root/fb/data" in unit


def test_install_script_by_dependency_source():
    layout = dp.Layout("/x", "/x/data", "process", "/root")
    wheels = dp.install_script(layout, "python3", "wheels", "fleetbench-0.1.0-py3-none-any.whl", system_site=False)
    assert "python3 -m venv /x/venv" in wheels
    assert "--no-index --find-links /x/wheels '/x/wheels/fleetbench-0.1.0-py3-none-any.whl[agent]'" in wheels
    given = dp.install_script(layout, "/usr/bin/python3.11", "python", "f.whl", system_site=True)
    assert "/usr/bin/python3.11 -m venv --system-site-packages /x/venv" in given
    assert "_fleetbench_base.pth" in given and "--find-links" not in given
    assert given.splitlines()[-2].endswith("--no-deps --force-reinstall /x/wheels/f.whl")
    assert dp.install_mode(None, None) == "index" and dp.install_mode("py", None) == "python"
    assert dp.install_mode("py", Path("w")) == "wheels"


def test_fingerprint_and_decisions():
    base = dict(wheel_sha256="a", certs={"ca.pem": "1"}, files={"/x/run-agent.sh": "exec x"}, python="python3",
                deps="index")
    fp = dp.fingerprint(**base)
    assert fp == dp.fingerprint(**base)
    for key, value in (("wheel_sha256", "b"), ("certs", {"ca.pem": "2"}), ("files", {"/x/run-agent.sh": "exec y"}),
                       ("python", "/usr/bin/python3"), ("deps", "wheels")):
        assert dp.fingerprint(**{**base, key: value}) != fp, key
    assert dp.decide(None, fp, False, False) == "install"
    assert dp.decide({"fingerprint": fp}, fp, True, False) == "keep"
    assert dp.decide({"fingerprint": fp}, fp, True, True) == "keep"  # nothing to replace
    assert dp.decide({"fingerprint": fp}, fp, False, False) == "start"
    assert dp.decide({"fingerprint": "old"}, fp, True, False) == "outdated"
    assert dp.decide({"fingerprint": "old"}, fp, True, True) == "upgrade"


def test_exit_codes():
    r = [dp.NodeResult("n1", "h", "unchanged"), dp.NodeResult("n2", "h", "installed")]
    assert dp.exit_code(r) == 0
    assert dp.exit_code([*r, dp.NodeResult("n3", "h", "outdated")]) == 1
    assert dp.exit_code([*r, dp.NodeResult("n3", "h", "outdated"), dp.NodeResult("n4", "h", "failed")]) == 2


def test_wheel_hash_ignores_zip_timestamps(tmp_path):
    for name, when in (("a", (2020, 1, 1, 0, 0, 0)), ("b", (2024, 6, 1, 12, 0, 0))):
        with zipfile.ZipFile(tmp_path / f"{name}.whl", "w") as z:
            for member in ("fleetbench/__init__.py", "fleetbench-0.1.0.dist-info/RECORD"):
                z.writestr(zipfile.ZipInfo(member, when), f"content of {member}")
    assert dp.wheel_content_sha256(tmp_path / "a.whl") == dp.wheel_content_sha256(tmp_path / "b.whl")
    with zipfile.ZipFile(tmp_path / "c.whl", "w") as z:
        z.writestr("fleetbench/__init__.py", "changed")
    assert dp.wheel_content_sha256(tmp_path / "c.whl") != dp.wheel_content_sha256(tmp_path / "a.whl")
    assert dp.wheel_version(Path("fleetbench-0.1.1-py3-none-any.whl")) == "0.1.1"


def test_probe_parsing():
    p = dp.parse_probe("1000\n/home/ops\nsystemd\nnobus\n")
    assert p == dp.Probe(uid=1000, home="/home/ops", has_systemd=True, user_bus=False)
    with pytest.raises(DeployError, match="unexpected answer"):
        dp.parse_probe("Welcome!\n")


def test_remove_script_keeps_the_data_dir(tmp_path):
    """The removal script, run by a real /bin/sh on a real tree: everything but the data dir goes."""
    d = tmp_path / "fb"
    for f in ("venv/bin/python", "wheels/f.whl", "certs/node.key", "run-agent.sh", ".hidden", "data/jobs/j1/x"):
        (d / f).parent.mkdir(parents=True, exist_ok=True)
        (d / f).write_text("x")
    layout = dp.Layout(str(d), str(d / "data"), "process", str(tmp_path))
    subprocess.run(["/bin/sh", "-c", dp.remove_script(layout, purge_data=False)], check=True)
    assert [p.name for p in d.iterdir()] == ["data"] and (d / "data/jobs/j1/x").read_text() == "x"
    subprocess.run(["/bin/sh", "-c", dp.remove_script(layout, purge_data=True)], check=True)
    assert not d.exists()


def test_ssh_flags_override_the_fleet_file():
    n = node(ssh=SshSettings(host="h", port=22, user="ops", key=Path("/k")))
    (out,) = apply_ssh_flags([n], None, 2222, None, Path("/kh"))
    assert out.ssh == SshSettings(host="h", port=2222, user="ops", key=Path("/k"), known_hosts=Path("/kh"))
    assert dataclasses.replace(out, ssh=n.ssh) == n


def test_ssh_options_leave_defaults_to_asyncssh():
    from fleetbench.controller.tunnels import ssh_options

    opts = ssh_options(node())
    assert opts["host"] == "10.0.0.11" and not {"port", "username", "client_keys", "known_hosts"} & set(opts)
    opts = ssh_options(node(ssh=SshSettings(port=2222, user="ops", key=Path("/k"), known_hosts=Path("/kh"))))
    assert (opts["port"], opts["username"], opts["client_keys"], opts["known_hosts"]) == (2222, "ops", ["/k"], "/kh")


def test_a_fleetbench_wheel_in_wheels_dir_is_used_unless_source_is_given(tmp_path):
    wheel = tmp_path / "fleetbench-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fleetbench/__init__.py", "__version__ = '0.2.0'")
    got = dp.prepare_wheel(tmp_path, None, tmp_path / "out")
    assert (got.path, got.version, got.sha256) == (wheel, "0.2.0", dp.wheel_content_sha256(wheel))
    with pytest.raises(DeployError, match="is not a directory"):
        dp.prepare_wheel(tmp_path / "missing", None, tmp_path / "out")


def test_the_fleet_files_allow_lists_become_the_agents_flags(tmp_path):
    from fleetbench.controller.fleet import load_fleet
    from fleetbench.errors import ConfigError

    layout = dp.Layout("/opt/fleetbench", "/var/lib/fleetbench", "systemd-system", "/root")
    confined = node(deploy=DeploySettings(allow_paths=("~/models", "/data/sets"),
                                          allow_endpoints=("10.0.0.0/24:8000",)))
    assert dp.confinement_args(confined, layout) == ["--allow-path", "/root/models", "--allow-path", "/data/sets",
                                                     "--allow-endpoint", "10.0.0.0/24:8000"]
    # no allow_endpoints: loopback, plus the node's own endpoint when the fleet file points it elsewhere
    assert dp.confinement_args(node(endpoint="http://10.0.0.5:8000/v1/completions"), layout) == [
        "--allow-endpoint", "127.0.0.0/8", "--allow-endpoint", "[::1]", "--allow-endpoint", "localhost",
        "--allow-endpoint", "10.0.0.5:8000"]
    assert dp.confinement_args(node(endpoint="http://127.0.0.1:8000/v1"), layout) == []
    argv = dp.agent_argv(layout, "127.0.0.1:50051", tls=False, node=confined)
    assert argv[-6:] == ["--allow-path", "/root/models", "--allow-path", "/data/sets", "--allow-endpoint",
                         "10.0.0.0/24:8000"]
    unit = dp.render_unit(layout, argv)
    assert "--allow-path /root/models" in unit and "ProtectHome=read-only" in unit  # it must read /root/models

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("nodes:\n  n1:\n    address: 10.0.0.11:50051\n    deploy:\n"
                     "      allow_paths: [/models, ~/data]\n      allow_endpoints: ['[fd00::5]:8000', engine.local]\n")
    loaded = load_fleet(fleet)["n1"].deploy
    assert (loaded.allow_paths, loaded.allow_endpoints) == (("/models", "~/data"), ("[fd00::5]:8000", "engine.local"))
    fleet.write_text("nodes:\n  n1:\n    address: 10.0.0.11:50051\n    deploy:\n      allow_endpoints: [http://x]\n")
    with pytest.raises(ConfigError,
                       match=r"fleet.yaml:5: nodes.n1.deploy.allow_endpoints\[0\] 'http://x' must be HOST\[:PORT\]"):
        load_fleet(fleet)
    fleet.write_text("nodes:\n  n1:\n    address: 10.0.0.11:50051\n    deploy:\n      allow_paths: [models]\n")
    with pytest.raises(ConfigError, match=r"allow_paths\[0\] must be an absolute path on the node"):
        load_fleet(fleet)


def test_a_root_ssh_user_runs_the_agent_unprivileged():
    root_process = dp.make_layout(node(), 0, "/root", "process")
    assert root_process.user == "fleetbench" and dp.runs_as_other_user(root_process)
    argv = dp.agent_argv(root_process, "127.0.0.1:50051", tls=False)
    script = dp.service_files(root_process, argv)["/opt/fleetbench/run-agent.sh"]
    assert shlex.split(script.splitlines()[-1]) == [
        "exec", "env", "HOME=/var/lib/fleetbench", "setpriv", "--reuid=fleetbench", "--regid=fleetbench",
        "--init-groups", "--", *argv]
    assert "useradd --system" in dp.system_user_script(root_process)
    system = dp.make_layout(node(deploy=DeploySettings(user="svc-fb")), 0, "/root", "systemd-system")
    unit = dp.render_unit(system, dp.agent_argv(system, "127.0.0.1:1", tls=False))
    assert "User=svc-fb" in unit and "Group=svc-fb" in unit and "svc-fb" in dp.system_user_script(system)
    # `user: root` keeps the old behaviour (not recommended); a non-root SSH user runs it as itself
    as_root = dp.make_layout(node(deploy=DeploySettings(user="root")), 0, "/root", "process")
    assert not dp.runs_as_other_user(as_root)
    assert "setpriv" not in dp.service_files(as_root, argv)["/opt/fleetbench/run-agent.sh"]
    ops = dp.make_layout(node(), 1000, "/home/ops", "process")
    assert ops.user == "" and not dp.runs_as_other_user(ops)
    with pytest.raises(DeployError, match=r"deploy\.user svc-fb needs a root SSH user"):
        dp.make_layout(node(deploy=DeploySettings(user="svc-fb")), 1000, "/home/ops", "process")


def test_a_failed_wheel_build_names_its_cause_not_pips_last_hint():
    """Found by a fresh clone: Python 3.11's venv brings setuptools 65.5, which cannot read our SPDX `license`;
    `ctl deploy` then said only "failed: hint: See above for details"."""
    from fleetbench.controller.deploy.wheel import build_failure

    pip_output = """  error: subprocess-exited-with-error

  × Preparing metadata (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [92 lines of output]
      configuration error: `project.license` must be valid exactly by one definition (2 matches found):
      ValueError: invalid pyproject.toml config: `project.license`.
      [end of output]
error: metadata-generation-failed
hint: See above for details.
"""
    cause = build_failure(pip_output)
    assert cause.startswith("configuration error: `project.license` must be valid") and "setuptools>=77" in cause
    assert build_failure("ERROR: Could not build wheels for fleetbench\nhint: See above for details.\n") == \
        "ERROR: Could not build wheels for fleetbench"
