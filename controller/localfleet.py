"""A fleet on loopback: N simulated endpoints and N real agents as child processes.

Used by `ctl demo` and by the integration tests; every part is the real
program (the agent's gRPC server, the endpoint's HTTP server), only the
inference engine is simulated.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fleetbench.errors import FleetbenchError

from .fleet import Node

AGENT_READY = re.compile(r"listening on [\w.\-\[\]:]*:(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise FleetbenchError(f"process {proc.args!r} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise FleetbenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


@dataclass
class LocalFleet:
    workdir: Path
    size: int = 3
    ttft_ms: float = 200.0
    tpot_ms: float = 20.0
    extra_endpoint_args: list[str] = field(default_factory=list)
    agent_env: dict[str, dict[str, str]] = field(default_factory=dict)  # node name -> extra environment
    node_endpoint_args: dict[str, list[str]] = field(default_factory=dict)  # node name -> its endpoint's extra args
    allow_paths: list[Path] | None = None
    """the agents' --allow-path roots; default: the folder holding `workdir`, where the demo and the tests
    keep tokenizers and datasets (the agents' endpoints are on loopback, their default --allow-endpoint)"""
    nodes: list[Node] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    agent_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> LocalFleet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            for i in range(1, self.size + 1):
                name = f"n{i}"
                ep_port, agent_port = free_port(), free_port()
                ep = subprocess.Popen(
                    [sys.executable, "-m", "fleetbench.endpoint", "--host", "127.0.0.1", "--port", str(ep_port),
                     "--model", "demo", "--ttft-ms", str(self.ttft_ms), "--tpot-ms", str(self.tpot_ms),
                     *self.extra_endpoint_args, *self.node_endpoint_args.get(name, [])],
                    stdout=(logs / f"endpoint-{name}.log").open("wb"), stderr=subprocess.STDOUT, env=env,
                )
                self.procs.append(ep)
                self.start_agent(name, agent_port)
                self.nodes.append(Node(name, f"127.0.0.1:{agent_port}",
                                       f"http://127.0.0.1:{ep_port}/v1/completions"))
                wait_for_port(ep_port, 30, ep)
            for node in self.nodes:
                wait_for_port(int(node.address.rsplit(":", 1)[1]), 30, self.agent_procs[node.name])
        except BaseException:
            self.stop()
            raise
        return self

    def start_agent(self, name: str, port: int) -> subprocess.Popen[bytes]:
        log = (self.workdir / "logs" / f"agent-{name}.log").open("ab")
        roots = self.allow_paths if self.allow_paths is not None else [self.workdir.resolve().parent]
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(self.workdir / "agents" / name), *(f"--allow-path={r}" for r in roots)],
            stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **self.agent_env.get(name, {})),
        )
        self.procs.append(proc)
        self.agent_procs[name] = proc
        return proc

    def write_fleet_file(self, path: Path) -> Path:
        lines = ["nodes:"]
        lines += [f"  {n.name}: {{address: \"{n.address}\", endpoint: \"{n.endpoint}\"}}" for n in self.nodes]
        path.write_text("\n".join(lines) + "\n")
        return path

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def __enter__(self) -> LocalFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
