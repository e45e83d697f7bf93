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

from dataclasses import dataclass
from pathlib import Path

from fleetbench.errors import ConfigError
from fleetbench.fleet_schema import ADDRESS_RE, FleetDoc, NodeDoc, fleet_json_schema, is_address

from .yamlfile import load_yaml

__all__ = ["ADDRESS_RE", "DeploySettings", "Node", "SshSettings", "TlsClient", "check_address", "fleet_json_schema",
           "load_fleet", "resolve_nodes"]


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
    user: str | None = None  # the account a root SSH user runs the agent as; default fleetbench
    allow_paths: tuple[str, ...] = ()  # the agent's --allow-path roots; () = its data dir
    allow_endpoints: tuple[str, ...] = ()  # its --allow-endpoint entries; () = loopback (+ the node's endpoint)


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
    if not is_address(address):
        raise ConfigError(f"{where}: {address!r} is not a host:port address")
    return address


def load_fleet(path: Path) -> dict[str, Node]:
    """The fleet file's nodes by name, validated by the schema (fleetbench.fleet_schema): every problem is
    a ConfigError naming the file, line and field."""
    fleet = load_yaml(path, "fleet").validate(FleetDoc)
    tls = None
    if fleet.tls is not None:
        tls = TlsClient(*(path.parent / p for p in (fleet.tls.ca, fleet.tls.cert, fleet.tls.key)))
    return {name: _node(path, name, raw, tls) for name, raw in fleet.nodes.items()}


def _node(path: Path, name: str, raw: NodeDoc, tls: TlsClient | None) -> Node:
    ssh = raw.ssh
    d = raw.deploy

    def local(value: str | None) -> Path | None:  # relative to the fleet file, ~ allowed
        return None if value is None else path.parent / Path(value).expanduser()

    return Node(
        name, raw.address, raw.endpoint or "", tls, raw.connect,
        # `ssh: {…}`; the older `ssh_user`/`ssh_port` keys still count
        SshSettings(host=ssh.host if ssh else None, port=(ssh.port if ssh else None) or raw.ssh_port,
                    user=(ssh.user if ssh else None) or raw.ssh_user, key=local(ssh.key if ssh else None),
                    known_hosts=local(ssh.known_hosts if ssh else None)),
        DeploySettings(dir=d.dir, data_dir=d.data_dir, python=d.python, service=d.service, listen=d.listen,
                       user=d.user, allow_paths=d.allow_paths or (), allow_endpoints=d.allow_endpoints or ())
        if d else DeploySettings(),
        tuple(sorted((raw.labels or {}).items())),
    )


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
