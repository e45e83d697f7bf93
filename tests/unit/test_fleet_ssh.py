"""Fleet file: per-node `ssh:`, `connect:` and `deploy:`; errors name file:line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.controller.fleet import DeploySettings, SshSettings, load_fleet, resolve_nodes
from fleetbench.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "fleet.yaml"
    p.write_text(text)
    return p


def test_ssh_connect_and_deploy_keys(tmp_path):
    fleet = write(tmp_path, """nodes:
  n1:
    address: gpu1.example:50051
    connect: ssh
    ssh: {user: ops, port: 2222, key: keys/id_ed25519, known_hosts: /etc/ssh/ssh_known_hosts, host: 10.0.0.11}
    deploy: {dir: /opt/fb, data_dir: /data/fb, python: /usr/bin/python3.11, service: process}
  n2: 10.0.0.12:50051
  n3: {address: '10.0.0.13:50051', ssh_user: admin, ssh_port: 22}
""")
    nodes = load_fleet(fleet)
    n1, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]
    assert n1.connect == "ssh" and n1.ssh_host == "10.0.0.11" and n1.agent_port == 50051
    assert n1.ssh == SshSettings(host="10.0.0.11", port=2222, user="ops", key=tmp_path / "keys" / "id_ed25519",
                                 known_hosts=Path("/etc/ssh/ssh_known_hosts"))
    assert n1.deploy == DeploySettings(dir="/opt/fb", data_dir="/data/fb", python="/usr/bin/python3.11",
                                       service="process")
    # defaults: direct, SSH to the address's host with asyncssh's defaults (agent, ~/.ssh/config, known_hosts)
    assert n2.connect == "direct" and n2.ssh == SshSettings() and n2.ssh_host == "10.0.0.12"
    assert n2.deploy == DeploySettings()
    # the older flat keys still work
    assert n3.ssh.user == "admin" and n3.ssh.port == 22
    assert resolve_nodes("n1", fleet)[0] == n1


def test_home_relative_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fleet = write(tmp_path, "nodes:\n  n1: {address: 'h:1', ssh: {key: ~/.ssh/id_ed25519}}\n")
    assert load_fleet(fleet)["n1"].ssh.key == tmp_path / "home" / ".ssh" / "id_ed25519"


@pytest.mark.parametrize(("body", "message"), [
    ("  n1: {address: 'h:1', connect: tunnel}\n", r"fleet.yaml:2: nodes.n1.connect must be one of direct, ssh"),
    ("  n1:\n    address: 'h:1'\n    ssh: {port: 70000}\n", r"fleet.yaml:4: nodes.n1.ssh.port must be a port number"),
    ("  n1:\n    address: 'h:1'\n    ssh: {usr: x}\n", r"fleet.yaml:4: nodes.n1.ssh.usr is not a known key"),
    ("  n1:\n    address: 'h:1'\n    ssh: x\n", r"fleet.yaml:4: nodes.n1.ssh must be a mapping"),
    ("  n1:\n    address: 'h:1'\n    ssh_user: a\n    ssh: {user: b}\n",
     r"fleet.yaml:4: nodes.n1.ssh_user conflicts with nodes.n1.ssh.user"),
    ("  n1:\n    address: 'h:1'\n    deploy: {service: docker}\n",
     r"fleet.yaml:4: nodes.n1.deploy.service must be one of auto, systemd, process"),
    ("  n1:\n    address: 'h:1'\n    deploy:\n      listen: nowhere\n",
     r"fleet.yaml:5: nodes.n1.deploy.listen 'nowhere' is not a host:port"),
    ("  n1:\n    address: 'h:1'\n    deploy: {dir: ''}\n", r"fleet.yaml:4: nodes.n1.deploy.dir must be a non-empty"),
])
def test_errors_name_file_line_and_field(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_fleet(write(tmp_path, "nodes:\n" + body))
