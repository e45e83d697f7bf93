"""`ctl deploy` / `ctl undeploy`: install, start, verify and remove the agent on nodes over SSH (asyncssh).

Per node, concurrently: build the fleetbench wheel once on the controller, compare it with what the node
runs (a manifest, `DIR/deployed.json`, holds a fingerprint of the wheel's contents, certificates, listen
address and service files), and only when they differ copy the wheel (and `--wheels DIR`, for nodes without
a package index), create a virtual environment, install, install the fleet's certificates, write a systemd
unit (system unit as root, user unit otherwise) or a supervisor script (restart loop, where no systemd
runs), start the agent and verify it with Ping over gRPC (through an SSH port forward for `connect: ssh`).

Layout on the node (docs/deploy.md): DIR/{venv, wheels, certs, run-agent.sh, supervise.sh, deployed.json,
agent.log}, the data dir (default DIR/data) kept by `undeploy` unless --purge-data.
The pure parts (layout, listen address, scripts, unit, fingerprint, decisions) are functions over plain
data; the I/O is in `deploy_node`/`undeploy_node`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from fleetbench.errors import DeployError, FleetbenchError

from . import tunnels
from .client import AgentClient
from .fleet import Node

UNIT_NAME = "fleetbench-agent.service"
SYSTEM_USER = "fleetbench"
MANIFEST = "deployed.json"
VERIFY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
OK_ACTIONS = ("installed", "upgraded", "unchanged", "started")


@dataclass(frozen=True)
class Wheel:
    path: Path
    version: str
    sha256: str  # of the wheel's contents (names and bytes), not of the zip: rebuilding the same tree matches


@dataclass(frozen=True)
class Options:
    """What the operator asked for, the same for every node."""

    wheel: Wheel
    upgrade: bool = False
    wheels_dir: Path | None = None  # dependency wheels carried to the node: pip --no-index --find-links
    python: str | None = None  # overrides every node's deploy.python
    certs_dir: Path | None = None  # default: the folder of the fleet file's tls.ca
    service: str | None = None  # overrides every node's deploy.service
    verify_timeout_s: float = VERIFY_TIMEOUT_S


@dataclass(frozen=True)
class Layout:
    """Where things live on one node."""

    dir: str
    data_dir: str
    mode: str  # systemd-system | systemd-user | process
    home: str

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


@dataclass
class NodeResult:
    node: str
    target: str  # user@host:port of the SSH connection
    action: str = "failed"  # installed | upgraded | unchanged | started | outdated | failed | removed | absent
    mode: str = ""
    version: str = ""
    detail: str = ""
    seconds: float = 0.0
    changes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.action in (*OK_ACTIONS, "removed", "absent")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- pure parts ---------------------------------------------------------------------------------------------


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
    return Layout(dir=d, data_dir=data, mode=mode, home=home)


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


def agent_argv(layout: Layout, listen: str, tls: bool) -> list[str]:
    argv = [f"{layout.venv}/bin/fleetbench-agent", "serve", "--listen", listen, "--data-dir", layout.data_dir]
    if tls:
        argv += ["--tls-cert", f"{layout.certs}/node.pem", "--tls-key", f"{layout.certs}/node.key",
                 "--tls-ca", f"{layout.certs}/ca.pem"]
    return argv


def render_run_script(argv: list[str]) -> str:
    return ("#!/bin/sh\n# Written by `ctl deploy` (fleetbench): the agent in the foreground; systemd or "
            "supervise.sh runs it.\nexec " + " ".join(shlex.quote(a) for a in argv) + "\n")


def render_supervisor(layout: Layout) -> str:
    """A restart loop for nodes without systemd; SIGTERM to it stops the agent and then itself."""
    d = shlex.quote(layout.dir)
    return f"""#!/bin/sh
# Written by `ctl deploy` (fleetbench): keeps the agent running where no systemd runs.
# The agent is restarted 5 s after it exits. `kill -TERM $(cat {layout.dir}/supervisor.pid)` stops
# the agent and this loop (what `ctl undeploy` and `ctl deploy --upgrade` do).
dir={d}
echo $$ >"$dir/supervisor.pid"
child=
stop() {{
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
    rm -f "$dir/supervisor.pid" "$dir/agent.pid"
    exit 0
}}
trap stop TERM INT
while :; do
    /bin/sh "$dir/run-agent.sh" </dev/null >>"$dir/agent.log" 2>&1 &
    child=$!
    echo "$child" >"$dir/agent.pid"
    wait "$child"
    rc=$?
    echo "$(date '+%Y-%m-%d %H:%M:%S') supervise.sh: the agent exited with status $rc; restart in 5 s" \\
        >>"$dir/agent.log"
    sleep 5 &
    child=$!
    wait "$child"
done
"""


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-:=,+@" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(layout: Layout, argv: list[str]) -> str:
    """The systemd unit: deploy/fleetbench-agent.service with this node's paths (system or user unit)."""
    system = layout.mode == "systemd-system"
    exec_start = " \\\n    ".join(
        [_systemd_quote(argv[0]) + " " + argv[1]]
        + [f"{_systemd_quote(a)} {_systemd_quote(b)}" for a, b in zip(argv[2::2], argv[3::2], strict=True)])
    lines = [
        "[Unit]",
        "Description=fleetbench agent (inventory and benchmark jobs over gRPC)",
        "Documentation=https://github.com/fleetbench/fleetbench/blob/main/docs/agent-api.md",
    ]
    if system:
        lines += ["After=network-online.target", "Wants=network-online.target"]
    lines += ["", "[Service]", "Type=simple"]
    if system:
        lines += [f"User={SYSTEM_USER}", f"Group={SYSTEM_USER}"]
    lines += [f"ExecStart={exec_start}", "Restart=on-failure", "RestartSec=5"]
    if system:
        in_home = any(p == q or p.startswith(q + "/") for p in (layout.dir, layout.data_dir)
                      for q in ("/home", "/root", "/run/user"))
        lines += ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=" + ("read-only" if in_home else "yes"),
                  f"ReadWritePaths={_systemd_quote(layout.data_dir)}", "PrivateTmp=yes"]
    else:
        lines += ["NoNewPrivileges=yes"]
    lines += ["", "[Install]", "WantedBy=" + ("multi-user.target" if system else "default.target"), ""]
    return "# Written by `ctl deploy` (fleetbench); see deploy/README.md.\n" + "\n".join(lines)


def service_files(layout: Layout, argv: list[str]) -> dict[str, str]:
    """Every file `ctl deploy` writes besides the wheel and certificates: path -> text."""
    files = {f"{layout.dir}/run-agent.sh": render_run_script(argv)}
    if layout.mode == "process":
        files[f"{layout.dir}/supervise.sh"] = render_supervisor(layout)
    else:
        files[layout.unit_path] = render_unit(layout, argv)
    return files


def install_mode(python: str | None, wheels_dir: Path | None) -> str:
    """How pip gets the dependencies: carried wheels, the given Python's packages, or the node's index."""
    if wheels_dir is not None:
        return "wheels"
    return "python" if python else "index"


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


def wheel_content_sha256(path: Path) -> str:
    """SHA-256 over the wheel's member names and bytes: equal for two builds of the same tree."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            h.update(name.encode() + b"\0" + hashlib.sha256(z.read(name)).digest())
    return h.hexdigest()


def wheel_version(path: Path) -> str:
    parts = path.name.split("-")
    if len(parts) < 5 or not path.name.endswith(".whl"):
        raise DeployError(f"{path.name} is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)")
    return parts[1]


# --- the controller side: the wheel -------------------------------------------------------------------------


def default_source() -> Path | None:
    """The checkout fleetbench runs from (an editable install), or None for an installed wheel."""
    import fleetbench

    root = Path(fleetbench.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "fleetbench"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def find_wheel(dirpath: Path) -> Path | None:
    found = sorted(dirpath.glob("fleetbench-*.whl"))
    return found[-1] if found else None


def build_wheel(source: Path, out: Path) -> Wheel:
    """`pip wheel --no-deps` of a clean copy of the checkout's packages (the tree itself is left alone)."""
    pyproject = source / "pyproject.toml"
    try:
        meta = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeployError(f"cannot read {pyproject}: {exc}") from None
    dirs = set(meta.get("tool", {}).get("setuptools", {}).get("package-dir", {}).values()) or {"fleetbench"}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleetbench-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (source / name).is_file():
                shutil.copy2(source / name, src / name)
        for d in sorted(dirs):
            shutil.copytree(source / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                               "--disable-pip-version-check", "-w", str(out), str(src)],
                              capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise DeployError(f"building the fleetbench wheel from {source} failed: {last[-1] if last else ''}; "
                          "put a built fleetbench-*.whl into --wheels DIR instead")
    built = find_wheel(out)
    if built is None:
        raise DeployError(f"pip wheel made no fleetbench wheel in {out}")
    return Wheel(built, wheel_version(built), wheel_content_sha256(built))


def prepare_wheel(wheels_dir: Path | None, source: Path | None, out: Path) -> Wheel:
    """A fleetbench wheel from --wheels DIR when it holds one, else built from the checkout."""
    if wheels_dir is not None:
        if not wheels_dir.is_dir():
            raise DeployError(f"--wheels {wheels_dir} is not a directory")
        found = find_wheel(wheels_dir)
        if found is not None and source is None:
            return Wheel(found, wheel_version(found), wheel_content_sha256(found))
    src = source or default_source()
    if src is None:
        raise DeployError("no fleetbench checkout to build the wheel from: pass --source DIR, or put a "
                          "fleetbench-*.whl into --wheels DIR")
    return build_wheel(src, out)


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


# --- the node side ------------------------------------------------------------------------------------------


async def sh(conn: asyncssh.SSHClientConnection, node: Node, script: str, what: str, check: bool = True,
             timeout: float = 900) -> str:
    """Run a POSIX shell script on the node; a failure is a DeployError naming the node and the step."""
    try:
        r = await conn.run("sh -c " + shlex.quote(script), check=False, timeout=timeout)
    except asyncssh.TimeoutError:
        raise DeployError(f"{node.name}: {what} took longer than {timeout:.0f} s") from None
    except (asyncssh.Error, OSError) as exc:
        raise DeployError(f"{node.name}: {what} failed: {exc}") from None
    if check and r.exit_status != 0:
        text = str(r.stderr or "").strip() or str(r.stdout or "").strip()
        last = text.splitlines()[-1] if text else "no output"
        raise DeployError(f"{node.name}: {what} failed (exit {r.exit_status}): {last}")
    return str(r.stdout or "")


PROBE = r"""
id -u
printf '%s\n' "$HOME"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd; else echo none; fi
if systemctl --user show-environment >/dev/null 2>&1; then echo userbus; else echo nobus; fi
"""


@dataclass(frozen=True)
class Probe:
    uid: int
    home: str
    has_systemd: bool
    user_bus: bool


def parse_probe(text: str) -> Probe:
    lines = text.strip().splitlines()
    if len(lines) < 4 or not lines[0].strip().isdigit():
        raise DeployError(f"unexpected answer from the node's shell: {text[:200]!r}")
    return Probe(int(lines[0]), lines[1].rstrip("/") or "/", lines[2] == "systemd", lines[3] == "userbus")


def running_script(layout: Layout, mode: str) -> str:
    if mode == "process":
        d = shlex.quote(layout.dir)
        return (f"pid=$(cat {d}/supervisor.pid 2>/dev/null) && kill -0 \"$pid\" 2>/dev/null && "
                f"grep -q supervise.sh /proc/\"$pid\"/cmdline 2>/dev/null && echo running || echo stopped")
    return f"{layout.systemctl} is-active --quiet {UNIT_NAME} && echo running || echo stopped"


def stop_script(layout: Layout, mode: str) -> str:
    """Stop the agent (and its supervisor); waits until the processes are gone."""
    if mode != "process":
        return f"{layout.systemctl} disable --now {UNIT_NAME} >/dev/null 2>&1 || true"
    d = shlex.quote(layout.dir)
    steps = int(STOP_TIMEOUT_S / 0.2)
    return f"""
alive() {{ [ -n "$1" ] && kill -0 "$1" 2>/dev/null && grep -q "$2" /proc/"$1"/cmdline 2>/dev/null; }}
sup=$(cat {d}/supervisor.pid 2>/dev/null); agent=$(cat {d}/agent.pid 2>/dev/null)
alive "$sup" supervise.sh && kill -TERM "$sup"
i=0
while [ $i -lt {steps} ] && {{ alive "$sup" supervise.sh || alive "$agent" run-agent.sh || \
        alive "$agent" fleetbench-agent; }}; do sleep 0.2; i=$((i + 1)); done
alive "$sup" supervise.sh && kill -KILL "$sup"
alive "$agent" run-agent.sh && kill -KILL "$agent"
alive "$agent" fleetbench-agent && kill -KILL "$agent"
rm -f {d}/supervisor.pid {d}/agent.pid
true
"""


def start_script(layout: Layout, restart: bool) -> str:
    if layout.mode == "process":
        d = shlex.quote(layout.dir)
        return (f"cd {d} && if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi; "
                f"$s nohup /bin/sh {d}/supervise.sh </dev/null >/dev/null 2>&1 &")
    linger = "loginctl enable-linger \"$(id -un)\" >/dev/null 2>&1 || true; " if layout.mode == "systemd-user" else ""
    verb = "restart" if restart else "start"
    return (f"{linger}{layout.systemctl} daemon-reload && {layout.systemctl} enable {UNIT_NAME} >/dev/null 2>&1 && "
            f"{layout.systemctl} {verb} {UNIT_NAME}")


def install_script(layout: Layout, python: str, deps: str, wheel_name: str, system_site: bool) -> str:
    """Create the venv (once) and install the wheel; with `--python` the venv also sees that Python's packages."""
    q = shlex.quote
    venv, wheel = q(layout.venv), q(f"{layout.wheels}/{wheel_name}")
    agent = q(f"{layout.wheels}/{wheel_name}[agent]")  # the agent's dependencies (evalscope …): the extra
    pip = f"{venv}/bin/python -m pip install -q --disable-pip-version-check"
    site_flag = "--system-site-packages " if system_site else ""
    lines = ["set -e", f"mkdir -p {q(layout.data_dir)}",
             f"[ -x {venv}/bin/python ] || {q(python)} -m venv {site_flag}{venv}"]
    if system_site:
        # A venv made from another venv's Python does not see that venv's packages; a .pth file chains them.
        lines.append(
            f"base=$({q(python)} -c 'import sysconfig as s; p = s.get_paths(); "
            f"print(p[\"purelib\"]); p[\"platlib\"] != p[\"purelib\"] and print(p[\"platlib\"])')")
        lines.append(f"site=$({venv}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')")
        lines.append('printf "%s\\n" "$base" >"$site/_fleetbench_base.pth"')
    if deps == "wheels":
        lines.append(f"{pip} --no-index --find-links {q(layout.wheels)} {agent}")
    elif deps == "index":
        lines.append(f"{pip} {agent}")
    lines.append(f"{pip} --no-deps --force-reinstall {wheel}")
    lines.append(f"{venv}/bin/fleetbench-agent version")
    return "\n".join(lines)


def remove_script(layout: Layout, purge_data: bool) -> str:
    """Remove what deploy wrote; the data dir stays unless purge_data (also when it lies inside DIR)."""
    q = shlex.quote
    d, data = q(layout.dir), q(layout.data_dir)
    lines = ["set -e"]
    if layout.mode != "process":
        lines.append(f"rm -f {q(layout.unit_path)}; {layout.systemctl} daemon-reload >/dev/null 2>&1 || true")
    lines.append(f"if [ -d {d} ]; then for f in {d}/* {d}/.[!.]*; do [ -e \"$f\" ] || continue; "
                 f"[ \"$f\" = {data} ] && continue; rm -rf \"$f\"; done; fi")
    if purge_data:
        lines.append(f"rm -rf {data}")
    lines.append(f"rmdir {d} 2>/dev/null || true")
    return "\n".join(lines)


async def read_manifest(conn: asyncssh.SSHClientConnection, node: Node, layout: Layout) -> dict[str, Any] | None:
    text = await sh(conn, node, f"cat {shlex.quote(layout.manifest)} 2>/dev/null || true", "reading the manifest")
    if not text.strip():
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return {"fingerprint": "unreadable"}
    return doc if isinstance(doc, dict) else {"fingerprint": "unreadable"}


async def find_layout(conn: asyncssh.SSHClientConnection, node: Node, wanted_service: str) -> tuple[Probe, Layout]:
    probe = parse_probe(await sh(conn, node, PROBE, "probing the node"))
    try:
        mode = choose_mode(wanted_service, probe.has_systemd, probe.uid, probe.user_bus)
    except DeployError as exc:
        raise DeployError(f"{node.name}: {exc}") from None
    return probe, make_layout(node, probe.uid, probe.home, mode)


async def is_running(conn: asyncssh.SSHClientConnection, node: Node, layout: Layout, mode: str) -> bool:
    return (await sh(conn, node, running_script(layout, mode), "checking the agent")).strip() == "running"


async def verify(conn: asyncssh.SSHClientConnection, node: Node, timeout_s: float) -> str:
    """Ping the agent over gRPC (through the SSH connection for connect: ssh) until it answers; its version."""
    deadline = time.monotonic() + timeout_s
    listener: asyncssh.SSHListener | None = None
    target = node
    if node.connect == "ssh":
        listener, target = await tunnels.forward(conn, node)
    client = AgentClient(target)
    last = ""
    try:
        while True:
            try:
                reply = await client.ping(timeout=5.0)
                return str(reply.agent_version)
            except FleetbenchError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise DeployError(f"{node.name}: the agent does not answer Ping after {timeout_s:.0f} s: {last}")
            await asyncio.sleep(0.5)
    finally:
        await client.close()
        if listener is not None:
            listener.close()


async def agent_log_tail(conn: asyncssh.SSHClientConnection, node: Node, layout: Layout) -> str:
    if layout.mode == "process":
        script = f"tail -n 3 {shlex.quote(layout.dir)}/agent.log 2>/dev/null || true"
    else:
        user = "--user " if layout.mode == "systemd-user" else ""
        script = f"journalctl {user}-u {UNIT_NAME} -n 3 --no-pager -o cat 2>/dev/null || true"
    with contextlib.suppress(FleetbenchError):
        return " | ".join(line.strip() for line in (await sh(conn, node, script, "reading the log")).splitlines())
    return ""


async def put_text(sftp: asyncssh.SFTPClient, path: str, text: str, mode: int) -> None:
    async with sftp.open(path, "w") as f:
        await f.write(text)
    await sftp.chmod(path, mode)


async def deploy_node(node: Node, opts: Options) -> NodeResult:
    """Install or upgrade, start and verify the agent on one node; never raises (the result says)."""
    t0 = time.monotonic()
    res = NodeResult(node.name, tunnels.ssh_label(node))
    try:
        listen = listen_address(node)
        certs = local_certs(node, opts.certs_dir)
        conn = await tunnels.connect(node)
        async with conn:
            await _deploy(conn, node, opts, listen, certs, res)
    except FleetbenchError as exc:
        res.action, res.detail = "failed", str(exc)
    except (OSError, asyncssh.Error) as exc:
        res.action, res.detail = "failed", f"{node.name}: {type(exc).__name__}: {exc}"
    res.seconds = time.monotonic() - t0
    return res


async def _deploy(conn: asyncssh.SSHClientConnection, node: Node, opts: Options, listen: str,
                  certs: dict[str, Path], res: NodeResult) -> None:
    python = opts.python or node.deploy.python
    _probe, layout = await find_layout(conn, node, opts.service or node.deploy.service)
    res.mode = layout.mode
    argv = agent_argv(layout, listen, tls=bool(certs))
    files = service_files(layout, argv)
    deps = install_mode(python, opts.wheels_dir)
    cert_hashes = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in certs.items()}
    desired = fingerprint(opts.wheel.sha256, cert_hashes, files, python or "python3", deps)
    manifest = await read_manifest(conn, node, layout)
    old_mode = str(manifest.get("mode", layout.mode)) if manifest else layout.mode
    running = await is_running(conn, node, layout, old_mode)
    action = decide(manifest, desired, running, opts.upgrade)
    if action == "outdated":
        res.action, res.version = "outdated", str(manifest.get("version", "?")) if manifest else ""
        res.detail = (f"runs {res.version} ({str(manifest.get('wheel_sha256', ''))[:12] if manifest else ''}), "
                      f"not {opts.wheel.version} ({opts.wheel.sha256[:12]}) or its settings differ: "
                      "pass --upgrade to replace it")
        return
    if action == "keep":
        res.version = await verify(conn, node, opts.verify_timeout_s)
        res.action, res.detail = "unchanged", f"{listen}; nothing changed"
        return
    if action == "start":
        await sh(conn, node, start_script(layout, restart=False), "starting the agent")
        res.changes.append("started")
        await _verify_or_fail(conn, node, layout, opts, res)
        res.action, res.detail = "started", f"{listen}; was installed but not running"
        return
    # install or upgrade
    q = shlex.quote
    await sh(conn, node, f"mkdir -p {q(layout.dir)} {q(layout.wheels)} {q(layout.data_dir)} && "
                         f"chmod 700 {q(layout.dir)}", "creating directories")
    async with conn.start_sftp_client() as sftp:
        carried = [opts.wheel.path]
        if opts.wheels_dir is not None:
            carried += [p for p in sorted(opts.wheels_dir.glob("*.whl")) if p.name != opts.wheel.path.name]
        for p in carried:
            dest = f"{layout.wheels}/{p.name}"
            with contextlib.suppress(asyncssh.SFTPError):
                if p != opts.wheel.path and (await sftp.stat(dest)).size == p.stat().st_size:
                    continue
            await sftp.put(str(p), dest)
        res.changes.append(f"copied {len(carried)} wheel(s)")
        if running:  # before pip replaces the files under it
            await sh(conn, node, stop_script(layout, old_mode), "stopping the old agent")
            res.changes.append("stopped the old agent")
        await sh(conn, node, install_script(layout, python or "python3", deps, opts.wheel.path.name,
                                            system_site=bool(python)), "installing fleetbench")
        res.changes.append(f"installed {opts.wheel.path.name} ({deps})")
        if certs:
            await sh(conn, node, f"mkdir -p {q(layout.certs)} && chmod 700 {q(layout.certs)}", "creating certs/")
            for name, p in certs.items():
                await put_text(sftp, f"{layout.certs}/{name}", p.read_text(), 0o600 if name.endswith(".key") else 0o644)
            res.changes.append("installed certificates")
        if layout.mode != "process":
            await sh(conn, node, f"mkdir -p {q(posixpath.dirname(layout.unit_path))}", "creating the unit folder")
        for path, text in files.items():
            await put_text(sftp, path, text, 0o755 if path.endswith(".sh") else 0o644)
        if layout.mode == "systemd-system":
            await sh(conn, node, _system_user_script(layout), "creating the fleetbench system user")
        await sh(conn, node, start_script(layout, restart=True), "starting the agent")
        res.changes.append(f"started ({layout.mode})")
        await _verify_or_fail(conn, node, layout, opts, res)
        doc = {"version": opts.wheel.version, "wheel": opts.wheel.path.name, "wheel_sha256": opts.wheel.sha256,
               "fingerprint": desired, "mode": layout.mode, "listen": listen, "dir": layout.dir,
               "data_dir": layout.data_dir, "python": python or "python3", "deps": deps,
               "deployed_at": time.time()}
        await put_text(sftp, layout.manifest, json.dumps(doc, indent=2) + "\n", 0o644)
    res.action = "upgraded" if manifest is not None else "installed"
    res.detail = f"{listen}; " + ", ".join(res.changes)


def _system_user_script(layout: Layout) -> str:
    q = shlex.quote
    return (f"id -u {SYSTEM_USER} >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "
            f"{q(layout.data_dir)} --shell /usr/sbin/nologin {SYSTEM_USER}; "
            f"chown -R {SYSTEM_USER}: {q(layout.data_dir)}; "
            f"if [ -d {q(layout.certs)} ]; then chown -R {SYSTEM_USER}: {q(layout.certs)}; fi; "
            f"chmod 755 {q(layout.dir)}")


async def _verify_or_fail(conn: asyncssh.SSHClientConnection, node: Node, layout: Layout, opts: Options,
                          res: NodeResult) -> None:
    try:
        res.version = await verify(conn, node, opts.verify_timeout_s)
    except DeployError as exc:
        tail = await agent_log_tail(conn, node, layout)
        raise DeployError(f"{exc}{'; agent log: ' + tail if tail else ''}") from None


async def undeploy_node(node: Node, purge_data: bool, service: str | None = None) -> NodeResult:
    """Stop and remove the agent on one node; the data dir stays unless purge_data. Never raises."""
    t0 = time.monotonic()
    res = NodeResult(node.name, tunnels.ssh_label(node))
    try:
        conn = await tunnels.connect(node)
        async with conn:
            _probe, layout = await find_layout(conn, node, service or node.deploy.service)
            manifest = await read_manifest(conn, node, layout)
            mode = str(manifest.get("mode", layout.mode)) if manifest else layout.mode
            layout = dataclasses.replace(layout, mode=mode)
            res.mode = mode
            present = (await sh(conn, node, f"[ -d {shlex.quote(layout.dir)} ] && echo yes || echo no",
                                "looking for the install")).strip() == "yes"
            if not present and manifest is None:
                res.action, res.detail = "absent", f"nothing under {layout.dir}"
            else:
                res.version = str(manifest.get("version", "")) if manifest else ""
                await sh(conn, node, stop_script(layout, mode), "stopping the agent")
                await sh(conn, node, remove_script(layout, purge_data), "removing the install")
                kept = "data dir removed" if purge_data else f"data dir {layout.data_dir} kept"
                res.action, res.detail = "removed", f"stopped and removed {layout.dir}; {kept}"
    except FleetbenchError as exc:
        res.action, res.detail = "failed", str(exc)
    except (OSError, asyncssh.Error) as exc:
        res.action, res.detail = "failed", f"{node.name}: {type(exc).__name__}: {exc}"
    res.seconds = time.monotonic() - t0
    return res


async def deploy_all(nodes: list[Node], opts: Options) -> list[NodeResult]:
    return list(await asyncio.gather(*(deploy_node(n, opts) for n in nodes)))


async def undeploy_all(nodes: list[Node], purge_data: bool, service: str | None = None) -> list[NodeResult]:
    return list(await asyncio.gather(*(undeploy_node(n, purge_data, service) for n in nodes)))


def exit_code(results: list[NodeResult]) -> int:
    """0 every node done, 1 a node keeps an older version (needs --upgrade), 2 a node failed."""
    if any(r.action == "failed" for r in results):
        return 2
    return 1 if any(r.action == "outdated" for r in results) else 0
