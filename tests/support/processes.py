"""Real agents and simulated endpoints on loopback, and what tests ask of them over gRPC and /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc

CTL = [sys.executable, "-m", "fleetbench.controller"]
TEST_DATA = Path(__file__).parents[1] / "data"
# Folders every test agent may read besides its test's own (the agent's --allow-path): the repo's tests/data
# and what session fixtures made (tests/conftest.py adds the demo tokenizer's folder).
SHARED_ROOTS: list[Path] = [TEST_DATA]
DONE = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


class Agent:
    """`fleetbench-agent serve` on a free loopback port, with a blocking stub; `args` are more of serve's options,
    `log` a file for its output (none: discarded)."""

    def __init__(self, data: Path, *args: str, log: Path | None = None) -> None:
        self.data, self.port, self.args, self.log = data, free_port(), args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        # the test's tokenizer and datasets (beside the data dir) and the shared roots
        allow = [arg for root in (self.data.parent, *SHARED_ROOTS) for arg in ("--allow-path", str(root))]
        with self.log.open("wb") if self.log else open(os.devnull, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "fleetbench.agent", "serve", "--listen",
                                          f"127.0.0.1:{self.port}", "--data-dir", str(self.data), *allow, *self.args],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 30, self.proc)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.AgentStub(self.channel)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.channel.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then its exit status (None: never started)."""
        if self.proc is not None and self.proc.poll() is None:
            self.channel.close()
            self.proc.terminate()
            self.proc.wait(timeout=timeout)
        return None if self.proc is None else self.proc.returncode


class Endpoint:
    """`fleetbench-endpoint` (the simulated engine) on a free loopback port; `base` is its http://…:PORT/v1."""

    def __init__(self, *args: str, ttft_ms: float = 20, tpot_ms: float = 2) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "fleetbench.endpoint", "--port", str(self.port),
                                      "--ttft-ms", f"{ttft_ms:g}", "--tpot-ms", f"{tpot_ms:g}", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, 30, self.proc)
        self.base = f"http://127.0.0.1:{self.port}/v1"

    @property
    def completions(self) -> str:
        return f"{self.base}/completions"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def wait_state(stub: pb_grpc.AgentStub, job_id: str, states: set[int], timeout: float) -> pb.JobStatus:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = stub.GetJob(pb.GetJobRequest(job_id=job_id))
        if st.state in states:
            return st
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not reach {states}")


def fetch(agent: Agent, job_id: str) -> tuple[pb.JobSummary, list[pb.RequestRecord]]:
    """A finished job's summary and records, streamed in chunks of 7 (so that several chunks come)."""
    summary, records = None, []
    for chunk in agent.stub.GetJobResult(pb.GetJobResultRequest(job_id=job_id, chunk_size=7)):
        if chunk.HasField("summary"):
            summary = chunk.summary
        else:
            records.extend(chunk.records.records)
    assert summary is not None
    return summary, records


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
