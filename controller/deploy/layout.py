"""Where things go on a node and what to do there: pure functions over the fleet file and the node's probe."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetbench.allow import LOOPBACK
from fleetbench.errors import DeployError

from ..fleet import Node

UNIT_NAME = "fleetbench-agent.service"
SYSTEM_USER = "fleetbench"
MANIFEST = "deployed.json"


@dataclass(frozen=True)
class Layout:
    """Where things live on one node."""

    dir: str
    data_dir: str
    mode: str  # systemd-system | systemd-user | process
    home: str
    user: str = ""  # the user a root SSH user runs the agent as (default fleetbench); "": the SSH user itself

    @property
    def venv(self) -> str:
        return f"{self.dir}/venv"

    @property
    def wheels(self) -> str:
        return f"{self.dir}/wheels"

    @property
    def certs(self) -> str:
        return f"{self.dir}/certs"

    @property
    def manifest(self) -> str:
        return f"{self.dir}/{MANIFEST}"

    @property
    def unit_path(self) -> str:
        if self.mode == "systemd-system":
            return f"/etc/systemd/system/{UNIT_NAME}"
        return f"{self.home}/.config/systemd/user/{UNIT_NAME}"

    @property
    def systemctl(self) -> str:
        return "systemctl --user" if self.mode == "systemd-user" else "systemctl"


@dataclass(frozen=True)
class Probe:
    uid: int
    home: str
    has_systemd: bool
    user_bus: bool


def parse_probe(text: str) -> Probe:
    """The answer of templates/probe.sh."""
    lines = text.strip().splitlines()
    if len(lines) < 4 or not lines[0].strip().isdigit():
        raise DeployError(f"unexpected answer from the node's shell: {text[:200]!r}")
    return Probe(int(lines[0]), lines[1].rstrip("/") or "/", lines[2] == "systemd", lines[3] == "userbus")


def remote_path(value: str, home: str) -> str:
    """A node path from the fleet file: absolute, `~/x`, or relative to the SSH user's home."""
    if value.startswith("~/") or value == "~":
        value = home + value[1:]
    return posixpath.normpath(value if value.startswith("/") else posixpath.join(home, value))


def make_layout(node: Node, uid: int, home: str, mode: str) -> Layout:
    """Defaults: root -> /opt/fleetbench and /var/lib/fleetbench; anyone else -> ~/.fleetbench and its data/."""
    default_dir = "/opt/fleetbench" if uid == 0 else f"{home}/.fleetbench"
    d = remote_path(node.deploy.dir, home) if node.deploy.dir else default_dir
    default_data = "/var/lib/fleetbench" if uid == 0 and not node.deploy.dir else f"{d}/data"
    data = remote_path(node.deploy.data_dir, home) if node.deploy.data_dir else default_data
    if d in ("/", home) or data in ("/", home):
        raise DeployError(f"{node.name}: deploy.dir/data_dir must not be / or the home directory itself")
    if node.deploy.user and uid != 0:
        raise DeployError(f"{node.name}: deploy.user {node.deploy.user} needs a root SSH user (otherwise the agent "
                          "runs as the SSH user)")
    # the agent never needs root: a root SSH user runs it as an unprivileged user (systemd unit and process mode)
    user = (node.deploy.user or SYSTEM_USER) if uid == 0 else ""
    return Layout(dir=d, data_dir=data, mode=mode, home=home, user=user)


def runs_as_other_user(layout: Layout) -> bool:
    """A root SSH user deploys an agent that runs as `layout.user`, an account of its own (created if missing)."""
    return layout.user not in ("", "root") and layout.mode in ("systemd-system", "process")


def as_user(layout: Layout, argv: list[str]) -> list[str]:
    """Process mode under a root SSH user: the supervisor (root) starts the agent as `layout.user`
    (setpriv execs it: same pid, signals reach it); HOME is the data dir, as the system unit's user has."""
    return ["env", f"HOME={layout.data_dir}", "setpriv", f"--reuid={layout.user}", f"--regid={layout.user}",
            "--init-groups", "--", *argv]


def choose_mode(wanted: str, has_systemd: bool, uid: int, user_bus: bool) -> str:
    """systemd when it runs there (system unit as root, user unit with a user manager), else a supervisor."""
    if wanted == "process":
        return "process"
    usable = has_systemd and (uid == 0 or user_bus)
    if wanted == "systemd" and not usable:
        why = "systemd does not run there" if not has_systemd else "no systemd user manager for this user"
        raise DeployError(f"deploy.service is systemd but {why}; use service: auto or process")
    if not usable:
        return "process"
    return "systemd-system" if uid == 0 else "systemd-user"


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen_address(node: Node) -> str:
    """Where the agent listens: loopback in tunnel mode or without TLS, every interface with mutual TLS."""
    port = node.agent_port
    listen = node.deploy.listen
    host = listen.rsplit(":", 1)[0] if listen else None
    if node.connect == "ssh":
        if host is not None and not _is_loopback_host(host):
            raise DeployError(f"{node.name}: connect: ssh needs the agent on loopback, not deploy.listen {listen}")
        return listen or f"127.0.0.1:{port}"
    if listen:
        if node.tls is None and not _is_loopback_host(host or ""):
            raise DeployError(f"{node.name}: deploy.listen {listen} is not loopback and the fleet has no tls")
        return listen
    if node.tls is not None:
        return f"0.0.0.0:{port}"
    if _is_loopback_host(node.address.rsplit(":", 1)[0]):
        return f"127.0.0.1:{port}"
    raise DeployError(f"{node.name}: the agent at {node.address} would listen off loopback in plaintext: add "
                      "`tls:` to the fleet file (ctl certs init) or use `connect: ssh` (tunnel mode)")


def agent_argv(layout: Layout, listen: str, tls: bool, node: Node | None = None) -> list[str]:
    argv = [f"{layout.venv}/bin/fleetbench-agent", "serve", "--listen", listen, "--data-dir", layout.data_dir]
    if tls:
        argv += ["--tls-cert", f"{layout.certs}/node.pem", "--tls-key", f"{layout.certs}/node.key",
                 "--tls-ca", f"{layout.certs}/ca.pem"]
    return argv + (confinement_args(node, layout) if node is not None else [])


def confinement_args(node: Node, layout: Layout) -> list[str]:
    """The agent's allow-lists from the fleet file (deploy.allow_paths, deploy.allow_endpoints), as flags.
    Without allow_endpoints: loopback, plus the node's `endpoint` host:port when that is not loopback (the
    fleet file already says the load goes there). Without allow_paths the agent's default, its data dir."""
    args: list[str] = []
    for path in node.deploy.allow_paths:
        args += ["--allow-path", remote_path(path, layout.home)]
    endpoints = list(node.deploy.allow_endpoints)
    if not endpoints and node.endpoint:
        parts = urlsplit(node.endpoint)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        if host and not _is_loopback_host(host):
            endpoints = [*LOOPBACK, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    for entry in endpoints:
        args += ["--allow-endpoint", entry]
    return args


def install_mode(python: str | None, wheels_dir: Path | None) -> str:
    """How pip gets the dependencies: carried wheels, the given Python's packages, or the node's index."""
    if wheels_dir is not None:
        return "wheels"
    return "python" if python else "index"


def local_certs(node: Node, certs_dir: Path | None) -> dict[str, Path]:
    """The node's files from `ctl certs init` (ca.pem, node-NAME.pem/.key) when the fleet uses TLS."""
    if node.tls is None:
        return {}
    d = certs_dir or node.tls.ca.parent
    files = {"ca.pem": d / "ca.pem", "node.pem": d / f"node-{node.name}.pem", "node.key": d / f"node-{node.name}.key"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DeployError(f"{node.name}: the fleet uses TLS but {', '.join(missing)} is missing; run "
                          f"`ctl certs init --node {node.name}=HOST…` (or pass --certs DIR)")
    return files


def fingerprint(wheel_sha256: str, certs: dict[str, str], files: dict[str, str], python: str, deps: str) -> str:
    doc = {"wheel": wheel_sha256, "certs": certs, "files": {k: hashlib.sha256(v.encode()).hexdigest()
                                                            for k, v in sorted(files.items())},
           "python": python, "deps": deps}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def decide(manifest: dict[str, Any] | None, desired: str, running: bool, upgrade: bool) -> str:
    """install | upgrade | start | keep | outdated: what to do on a node, from what it runs."""
    if manifest is None:
        return "install"
    if manifest.get("fingerprint") == desired:
        return "keep" if running else "start"
    return "upgrade" if upgrade else "outdated"
