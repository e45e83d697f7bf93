"""Tunnel mode: reach an agent that listens on its node's loopback only, through an SSH local port forward.

A node with `connect: ssh` in the fleet file is dialled over SSH (asyncssh: the fleet file's `ssh:` settings,
then ~/.ssh/config, the user's SSH agent and known_hosts); a local port on 127.0.0.1 forwards to
127.0.0.1:PORT on the node. `forwarded(nodes)` yields the same nodes with `address` replaced by that local
port, so everything that dials an agent (AgentClient, the orchestrator) works unchanged. No port is opened
on the node, and only who may SSH to it can reach the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fleetbench.errors import NodeError

from .fleet import Node

if TYPE_CHECKING:  # asyncssh is imported when a tunnel is needed: every ctl command would pay 0.25 s for it
    import asyncssh

CONNECT_TIMEOUT_S = 20.0


def ssh_options(node: Node) -> dict[str, Any]:
    """asyncssh.connect keyword arguments for a node (pure): only what the fleet file sets.

    Unset values are left to asyncssh, which reads ~/.ssh/config, uses the SSH agent and ~/.ssh keys, and
    checks the host key against ~/.ssh/known_hosts (a host not listed there is refused)."""
    opts: dict[str, Any] = {"host": node.ssh_host, "connect_timeout": CONNECT_TIMEOUT_S, "keepalive_interval": 30}
    if node.ssh.port is not None:
        opts["port"] = node.ssh.port
    if node.ssh.user is not None:
        opts["username"] = node.ssh.user
    if node.ssh.key is not None:
        opts["client_keys"] = [str(node.ssh.key)]
    if node.ssh.known_hosts is not None:
        opts["known_hosts"] = str(node.ssh.known_hosts)
    return opts


def ssh_label(node: Node) -> str:
    user = f"{node.ssh.user}@" if node.ssh.user else ""
    return f"{user}{node.ssh_host}:{node.ssh.port or 22}"


async def connect(node: Node) -> asyncssh.SSHClientConnection:
    """An SSH connection to the node; every failure becomes one NodeError line naming the node."""
    import asyncssh

    try:
        return await asyncssh.connect(**ssh_options(node))
    except asyncssh.HostKeyNotVerifiable as exc:
        raise NodeError(f"{node.name}: ssh {ssh_label(node)}: host key not verifiable ({exc.reason}); add the "
                        "node to known_hosts (ssh-keyscan) or set ssh.known_hosts in the fleet file") from None
    except asyncssh.PermissionDenied as exc:
        raise NodeError(f"{node.name}: ssh {ssh_label(node)}: permission denied ({exc.reason}); check ssh.user, "
                        "ssh.key or the SSH agent") from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        reason = getattr(exc, "reason", "") or getattr(exc, "strerror", "") or str(exc) or type(exc).__name__
        raise NodeError(f"{node.name}: ssh {ssh_label(node)} failed: {reason}") from None


async def forward(conn: asyncssh.SSHClientConnection, node: Node) -> tuple[asyncssh.SSHListener, Node]:
    """A local port on 127.0.0.1 forwarded to the agent's port on the node's loopback; the node dialling it."""
    listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", node.agent_port)
    return listener, dataclasses.replace(node, address=f"127.0.0.1:{listener.get_port()}")


@contextlib.asynccontextmanager
async def forwarded(nodes: list[Node]) -> AsyncIterator[list[Node]]:
    """The nodes, those with `connect: ssh` rewritten to a local forwarded port open for the block's duration."""
    if not any(n.connect == "ssh" for n in nodes):
        yield nodes
        return
    ssh_nodes = [n for n in nodes if n.connect == "ssh"]
    results = await asyncio.gather(*(connect(n) for n in ssh_nodes), return_exceptions=True)
    conns = [r for r in results if not isinstance(r, BaseException)]
    try:
        for r in results:
            if isinstance(r, BaseException):
                raise r
        local: dict[str, Node] = {}
        for node, conn in zip(ssh_nodes, conns, strict=True):
            _listener, local[node.name] = await forward(conn, node)
        yield [local.get(n.name, n) for n in nodes]
    finally:
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.wait_closed()
