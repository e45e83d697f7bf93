"""The node side of `ctl deploy` / `ctl undeploy`: one SSH connection per node runs the rendered scripts.

Per node: probe, compare the manifest's fingerprint with what would be installed, and only when they differ
copy the wheel (and --wheels DIR), install, install the certificates, write the unit or supervisor, start
and verify with Ping over gRPC (through an SSH port forward for `connect: ssh`). Errors become the node's
result, never an exception: the other nodes go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import posixpath
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from fleetbench.errors import DeployError, FleetbenchError

from .. import tunnels
from ..client import AgentClient
from ..fleet import Node
from .layout import (
    UNIT_NAME,
    Layout,
    Probe,
    agent_argv,
    choose_mode,
    decide,
    fingerprint,
    install_mode,
    listen_address,
    local_certs,
    make_layout,
    parse_probe,
    runs_as_other_user,
)
from .scripts import (
    PROBE,
    install_script,
    remove_script,
    running_script,
    service_files,
    start_script,
    stop_script,
    system_user_script,
)
from .wheel import Wheel

VERIFY_TIMEOUT_S = 90.0
OK_ACTIONS = ("installed", "upgraded", "unchanged", "started")


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
    argv = agent_argv(layout, listen, tls=bool(certs), node=node)
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
        if runs_as_other_user(layout):
            await sh(conn, node, system_user_script(layout), f"creating the {layout.user} system user")
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
