"""The fleet file (name -> agent address) and `--nodes` resolution.

```yaml
nodes:
  n1: {address: 10.0.0.11:50051, endpoint: http://127.0.0.1:8000/v1/completions}
  n2: 10.0.0.12:50051          # shorthand: just the address
```
A `--nodes` entry is a name from the fleet file or a literal host:port.

For `ctl deploy` and tunnel mode a node may also carry (docs/deploy.md):
```yaml
  n3:
    address: gpu3.example:50051   # with connect: ssh the host is the SSH host, the port the agent's on its loopback
    connect: ssh                  # direct (default) | ssh: reach the agent through an SSH port forward
    ssh: {user: ops, port: 22, key: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts, host: 10.0.0.13}
    deploy: {dir: /opt/fleetbench, data_dir: /var/lib/fleetbench, python: python3, service: auto}
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.errors import ConfigError

from .yamlfile import Located, load_yaml

ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
LABEL_RE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")
NODE_KEYS = {"address", "endpoint", "labels", "ssh_user", "ssh_port", "ssh", "connect", "deploy"}
SSH_KEYS = {"host", "user", "port", "key", "known_hosts"}
DEPLOY_KEYS = {"dir", "data_dir", "python", "service", "listen"}
CONNECT_MODES = ("direct", "ssh")
SERVICE_MODES = ("auto", "systemd", "process")


@dataclass(frozen=True)
class TlsClient:
    """The controller's side of mutual TLS: the fleet CA and the controller's certificate."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class SshSettings:
    """How to reach a node over SSH; None fields fall back to ~/.ssh/config and asyncssh's defaults."""

    host: str | None = None  # default: the host of the node's address
    port: int | None = None
    user: str | None = None
    key: Path | None = None  # default: the user's SSH agent and ~/.ssh keys
    known_hosts: Path | None = None  # default: ~/.ssh/known_hosts (never disabled)


@dataclass(frozen=True)
class DeploySettings:
    """Where `ctl deploy` puts the agent on the node; None fields get defaults by SSH user (controller/deploy.py)."""

    dir: str | None = None
    data_dir: str | None = None
    python: str | None = None  # a Python that already has the dependencies: venv with system site-packages
    service: str = "auto"  # auto | systemd | process
    listen: str | None = None  # default: 127.0.0.1:PORT (tunnel or loopback), 0.0.0.0:PORT with TLS


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    endpoint: str = ""  # overrides the plan's endpoint URL for this node
    tls: TlsClient | None = None
    connect: str = "direct"  # direct | ssh (tunnel mode: an SSH local port forward to the agent's loopback port)
    ssh: SshSettings = SshSettings()
    deploy: DeploySettings = DeploySettings()
    labels: tuple[tuple[str, str], ...] = ()  # e.g. (("gpu", "h200"), ("rack", "a3")); `--nodes gpu=h200` selects

    @property
    def ssh_host(self) -> str:
        return self.ssh.host or self.address.rsplit(":", 1)[0].strip("[]")

    @property
    def agent_port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


def check_address(address: str, where: str) -> str:
    m = ADDRESS_RE.match(address)
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(f"{where}: {address!r} is not a host:port address")
    return address


def load_fleet(path: Path) -> dict[str, Node]:
    doc = load_yaml(path, "fleet")
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("nodes"), dict):
        raise doc.error("nodes", "the fleet file needs a `nodes:` mapping of name -> address")
    unknown = set(doc.data) - {"nodes", "version", "tls"}
    if unknown:
        raise doc.error(sorted(unknown)[0], "is not a known key (allowed: nodes, tls, version)")
    tls = None
    if "tls" in doc.data:
        raw_tls = doc.data["tls"]
        if not isinstance(raw_tls, dict) or set(raw_tls) != {"ca", "cert", "key"}:
            raise doc.error("tls", "needs exactly ca, cert and key (paths, relative to the fleet file)")
        tls = TlsClient(*(path.parent / str(raw_tls[k]) for k in ("ca", "cert", "key")))
    nodes: dict[str, Node] = {}
    for name, raw in doc.data["nodes"].items():
        where = f"nodes.{name}"
        if isinstance(raw, str):
            raw = {"address": raw}
        if not isinstance(raw, dict):
            raise doc.error(where, "must be an address or a mapping with `address`")
        for key in raw:
            if key not in NODE_KEYS:
                raise doc.error(f"{where}.{key}", f"is not a known key (allowed: {', '.join(sorted(NODE_KEYS))})")
        address = raw.get("address")
        if not isinstance(address, str):
            raise doc.error(f"{where}.address", "is required")
        line = doc.lines.get(f"{where}.address")
        check_address(address, f"{path}:{line} {where}.address" if line else f"{path} {where}.address")
        endpoint = raw.get("endpoint", "") or ""
        if endpoint and not str(endpoint).startswith(("http://", "https://")):
            raise doc.error(f"{where}.endpoint", "must start with http:// or https://")
        connect = raw.get("connect", "direct")
        if connect not in CONNECT_MODES:
            raise doc.error(f"{where}.connect", f"must be one of {', '.join(CONNECT_MODES)}, not {connect!r}")
        nodes[str(name)] = Node(str(name), address, str(endpoint), tls, connect, _ssh_settings(doc, path, where, raw),
                                _deploy_settings(doc, where, raw), _labels(doc, where, raw.get("labels")))
    return nodes


def _labels(doc: Located, where: str, raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise doc.error(f"{where}.labels", "must be a mapping of label to value (e.g. {gpu: h200, rack: a3})")
    out = []
    for key, value in raw.items():
        if not LABEL_RE.match(str(key)) or isinstance(value, dict | list) or not LABEL_RE.match(str(value)):
            raise doc.error(f"{where}.labels.{key}", "label and value must be letters, digits, '.', '_' or '-'")
        out.append((str(key), str(value)))
    return tuple(sorted(out))


def _mapping(doc: Located, where: str, raw: Any, allowed: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise doc.error(where, f"must be a mapping (keys: {', '.join(sorted(allowed))})")
    for key in raw:
        if key not in allowed:
            raise doc.error(f"{where}.{key}", f"is not a known key (allowed: {', '.join(sorted(allowed))})")
    return raw


def _text(doc: Located, where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise doc.error(where, "must be a non-empty string")
    return str(value)


def _ssh_settings(doc: Located, path: Path, where: str, raw: dict[str, Any]) -> SshSettings:
    """`ssh: {host, user, port, key, known_hosts}`; the older `ssh_user`/`ssh_port` keys still count."""
    ssh = dict(_mapping(doc, f"{where}.ssh", raw.get("ssh"), SSH_KEYS))
    for old in ("user", "port"):
        if f"ssh_{old}" in raw:
            if old in ssh:
                raise doc.error(f"{where}.ssh_{old}", f"conflicts with {where}.ssh.{old}: keep one")
            ssh[old] = raw[f"ssh_{old}"]
    port = ssh.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        field = f"{where}.ssh.port" if "ssh" in raw and "port" in raw["ssh"] else f"{where}.ssh_port"
        raise doc.error(field, "must be a port number (1-65535)")

    def local(key: str) -> Path | None:
        value = _text(doc, f"{where}.ssh.{key}", ssh.get(key))
        return None if value is None else path.parent / Path(value).expanduser()

    return SshSettings(host=_text(doc, f"{where}.ssh.host", ssh.get("host")), port=port,
                       user=_text(doc, f"{where}.ssh.user", ssh.get("user")), key=local("key"),
                       known_hosts=local("known_hosts"))


def _deploy_settings(doc: Located, where: str, raw: dict[str, Any]) -> DeploySettings:
    d = _mapping(doc, f"{where}.deploy", raw.get("deploy"), DEPLOY_KEYS)
    service = d.get("service", "auto")
    if service not in SERVICE_MODES:
        raise doc.error(f"{where}.deploy.service", f"must be one of {', '.join(SERVICE_MODES)}, not {service!r}")
    listen = _text(doc, f"{where}.deploy.listen", d.get("listen"))
    if listen is not None:
        line = doc.lines.get(f"{where}.deploy.listen")
        check_address(listen, f"{doc.path}:{line} {where}.deploy.listen" if line else f"{where}.deploy.listen")
    return DeploySettings(dir=_text(doc, f"{where}.deploy.dir", d.get("dir")),
                          data_dir=_text(doc, f"{where}.deploy.data_dir", d.get("data_dir")),
                          python=_text(doc, f"{where}.deploy.python", d.get("python")), service=service,
                          listen=listen)


def resolve_nodes(spec: str, fleet_path: Path | None) -> list[Node]:
    """`n1,n2,10.0.0.5:50051` -> Nodes; names need the fleet file. `label=value` selects every node of the
    fleet file with that label, in the file's order (`gpu=h200,n7` mixes both)."""
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise ConfigError("--nodes is empty: give node names from the fleet file or host:port addresses")
    fleet: dict[str, Node] | None = None
    nodes: list[Node] = []
    for item in items:
        if ADDRESS_RE.match(item):
            nodes.append(Node(item, check_address(item, "--nodes")))
            continue
        if fleet is None:
            if fleet_path is None or not fleet_path.exists():
                raise ConfigError(
                    f"node {item!r} is not host:port and there is no fleet file "
                    f"({fleet_path or 'fleet.yaml'}); pass --fleet or use host:port"
                )
            fleet = load_fleet(fleet_path)
        if "=" in item:
            key, _, value = item.partition("=")
            chosen = [n for n in fleet.values() if (key.strip(), value.strip()) in n.labels]
            if not chosen:
                raise ConfigError(f"no node of the fleet file {fleet_path} has the label {item!r}")
            nodes += chosen
            continue
        if item not in fleet:
            known = ", ".join(sorted(fleet)) or "none"
            raise ConfigError(f"node {item!r} is not in the fleet file {fleet_path} (known: {known})")
        nodes.append(fleet[item])
    names = [n.name for n in nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--nodes names {', '.join(dupes)} more than once")
    return nodes
