"""Controller fan-out: `ctl ping`'s work (Ping + clock offset) over 10, 100 and 1000 agents on loopback.

The agents are real `AgentService` gRPC servers (with their own job store), many per process
(one asyncio loop); the controller side is `controller.client.AgentClient`, all nodes at once.
Target (issue 8): 1000 agents < 5 s.  Run: .venv/bin/python bench/fanout.py [--sizes 10,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc

from fleetbench.agent.jobs import JobManager
from fleetbench.agent.service import AgentService
from fleetbench.controller.client import AgentClient
from fleetbench.controller.fleet import Node
from fleetbench.v1 import agent_pb2_grpc as pb_grpc


async def start_agents(n: int, root: Path) -> list[tuple[grpc.aio.Server, int]]:
    servers = []
    for i in range(n):
        server = grpc.aio.server()
        pb_grpc.add_AgentServicer_to_server(AgentService(JobManager(root / f"a{i}")), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append((server, port))
    return servers


async def fan_out(ports: list[int], with_clock: bool) -> tuple[float, int]:
    clients = [AgentClient(Node(f"n{i}", f"127.0.0.1:{p}")) for i, p in enumerate(ports)]
    t0 = time.perf_counter()
    if with_clock:
        results = await asyncio.gather(*(c.clock(samples=3) for c in clients), return_exceptions=True)
    else:
        results = await asyncio.gather(*(c.ping(timeout=30) for c in clients), return_exceptions=True)
    took = time.perf_counter() - t0
    for c in clients:
        await c.close()
    return took, sum(1 for r in results if isinstance(r, BaseException))


async def main_async(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            servers = await start_agents(n, Path(tmp))
            started = time.perf_counter() - t0
            ports = [p for _, p in servers]
            ping_s, ping_err = await fan_out(ports, with_clock=False)
            clock_s, clock_err = await fan_out(ports, with_clock=True)
            for s, _ in servers:
                await s.stop(None)
        print(f"{n:5d} agents (started in {started:.1f} s): ping all {ping_s:.3f} s "
              f"({ping_s / n * 1000:.2f} ms/node, {ping_err} errors); ping + clock offset (3 samples each) "
              f"{clock_s:.3f} s ({clock_err} errors)" + (f"; target < 5 s -> {clock_s / 5:.2f}x" if n >= 1000 else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10,100,1000")
    args = ap.parse_args()
    asyncio.run(main_async([int(x) for x in args.sizes.split(",")]))


if __name__ == "__main__":
    main()
