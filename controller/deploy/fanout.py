"""Every node at once: one coroutine per node (each never raises), and the exit code of them all."""

from __future__ import annotations

import asyncio

from ..fleet import Node
from .remote import NodeResult, Options, deploy_node, undeploy_node


async def deploy_all(nodes: list[Node], opts: Options) -> list[NodeResult]:
    return list(await asyncio.gather(*(deploy_node(n, opts) for n in nodes)))


async def undeploy_all(nodes: list[Node], purge_data: bool, service: str | None = None) -> list[NodeResult]:
    return list(await asyncio.gather(*(undeploy_node(n, purge_data, service) for n in nodes)))


def exit_code(results: list[NodeResult]) -> int:
    """0 every node done, 1 a node keeps an older version (needs --upgrade), 2 a node failed."""
    if any(r.action == "failed" for r in results):
        return 2
    return 1 if any(r.action == "outdated" for r in results) else 0
