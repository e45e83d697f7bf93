"""The fleet file (name -> agent address) and `--nodes` resolution.

```yaml
nodes:
  n1: {address: 10.0.0.11:50051, endpoint: http://127.0.0.1:8000/v1/completions}
  n2: 10.0.0.12:50051          # shorthand: just the address
```
A `--nodes` entry is a name from the fleet file or a literal host:port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fleetbench.errors import ConfigError

from .yamlfile import load_yaml

ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
NODE_KEYS = {"address", "endpoint", "labels", "ssh_user", "ssh_port"}


@dataclass(frozen=True)
class TlsClient:
    """The controller's side of mutual TLS: the fleet CA and the controller's certificate."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    endpoint: str = ""  # overrides the plan's endpoint URL for this node
    tls: TlsClient | None = None


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
        nodes[str(name)] = Node(str(name), address, str(endpoint), tls)
    return nodes


def resolve_nodes(spec: str, fleet_path: Path | None) -> list[Node]:
    """`n1,n2,10.0.0.5:50051` -> Nodes; names need the fleet file."""
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
        if item not in fleet:
            known = ", ".join(sorted(fleet)) or "none"
            raise ConfigError(f"node {item!r} is not in the fleet file {fleet_path} (known: {known})")
        nodes.append(fleet[item])
    names = [n.name for n in nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--nodes names {', '.join(dupes)} more than once")
    return nodes
