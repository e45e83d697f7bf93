"""Agent footprint: start-up time (process start -> gRPC answering) and idle RSS.

Targets (issue 4): idle RSS <= 80 MB, start-up <= 1 s; evalscope is imported only in the
job's child process. Run: .venv/bin/python bench/agent_idle.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from fleetbench.controller.localfleet import free_port
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run() -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"127.0.0.1:{port}",
                                 "--data-dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = pb_grpc.AgentStub(channel)
            while True:
                try:
                    stub.Ping(pb.PingRequest(), timeout=0.5)
                    break
                except grpc.RpcError:
                    if time.perf_counter() - t0 > 30:
                        raise
                    time.sleep(0.01)
            startup = time.perf_counter() - t0
            time.sleep(2.0)  # idle
            rss = rss_mb(proc.pid)
            channel.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return startup, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    results = [one_run() for _ in range(args.runs)]
    startups, rsses = [r[0] for r in results], [r[1] for r in results]
    print(f"agent start-up to first Ping: median {statistics.median(startups):.3f} s "
          f"(min {min(startups):.3f}, max {max(startups):.3f}) over {args.runs} runs; target <= 1 s "
          f"-> {statistics.median(startups) / 1.0:.2f}x of target")
    print(f"agent idle RSS: median {statistics.median(rsses):.1f} MB (max {max(rsses):.1f}); target <= 80 MB "
          f"-> {statistics.median(rsses) / 80:.2f}x of target")


if __name__ == "__main__":
    main()
