"""Safe to leave on a production server (issue 15, items 1 and 2) on a real agent over gRPC: the trial's
exfiltration and resource attacks are refused at StartJob with a sentence naming the field and what is
allowed, nothing is written for a refused job, and the agent goes on serving."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fleetbench import bounds as B
from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

class Agent:
    def __init__(self, data: Path, *flags: str) -> None:
        self.data, self.port = data, free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "fleetbench.agent", "serve", "--listen",
                                      f"127.0.0.1:{self.port}", "--data-dir", str(data), *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, 30, self.proc)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.AgentStub(self.channel)

    def refused(self, spec: dict[str, object] | str, kind: int = pb.JOB_KIND_PERF, job_id: str = "j") -> grpc.RpcError:
        raw = spec if isinstance(spec, str) else json.dumps(spec)
        with pytest.raises(grpc.RpcError) as err:
            self.stub.StartJob(pb.StartJobRequest(job_id=job_id, kind=kind, spec_json=raw), timeout=30)
        return err.value

    def stop(self) -> str:
        self.channel.close()
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=20)
        return err.decode()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("confine")


@pytest.fixture(scope="module")
def agent(work: Path) -> Iterator[Agent]:
    models = work / "models"
    ensure_demo_tokenizer(models / "tok")
    a = Agent(work / "agent", "--allow-path", str(models))
    yield a
    log = a.stop()
    assert "Traceback" not in log and "RecursionError" not in log, log


def perf(work: Path, **kw: object) -> dict[str, object]:
    return {"url": "http://127.0.0.1:9/v1/completions", "model": "demo", "number": 1, "parallel": 1,
            "tokenizer_path": str(work / "models" / "tok"), "input_tokens": 8, **kw}


def test_reading_etc_shadow_is_refused_naming_the_allowed_roots(agent, work):
    err = agent.refused(perf(work, dataset="line_by_line", dataset_path="/etc/shadow"), job_id="shadow")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == (f"dataset_path /etc/shadow is outside the paths this agent may read "
                             f"({(work / 'models').resolve()}); start the agent with --allow-path DIR "
                             "(fleet file: deploy.allow_paths)")
    (work / "models" / "etc").symlink_to("/etc")
    err = agent.refused(perf(work, tokenizer_path=str(work / "models" / "etc")), job_id="link")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "(resolves to /etc)" in err.details()
    ev = {"url": "http://127.0.0.1:9/v1", "model": "demo", "datasets": ["gsm8k"],
          "dataset_args": {"gsm8k": {"local_path": "/root/.ssh"}}}
    err = agent.refused(ev, kind=pb.JOB_KIND_EVAL, job_id="eval")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("dataset_args.gsm8k.local_path /root/.ssh is outside")
    assert not (work / "agent" / "jobs" / "shadow").exists()  # nothing written for a refused job


def test_load_to_another_host_is_refused_naming_the_allowed_hosts(agent, work):
    err = agent.refused(perf(work, url="http://192.0.2.10:8000/v1/completions"), job_id="away")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == ("url http://192.0.2.10:8000/v1/completions is not an endpoint this agent may send load "
                             "to (allowed: 127.0.0.0/8, [::1], localhost); start the agent with --allow-endpoint "
                             "HOST[:PORT] (fleet file: deploy.allow_endpoints)")
    pre = {"perf": [{"case_id": "c", "spec": perf(work, url="http://192.0.2.10/v1")}]}
    err = agent.refused(pre, kind=pb.JOB_KIND_PREFLIGHT, job_id="pre")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and err.details().startswith("perf[0].spec.url")
    with pytest.raises(grpc.RpcError) as inv:
        agent.stub.GetInventory(pb.InventoryRequest(endpoint_url="http://192.0.2.10/v1"), timeout=30)
    assert inv.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_bounds_depth_and_size_are_refused_cleanly(agent, work):
    err = agent.refused(perf(work, parallel=10**9, number=10**9), job_id="huge")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"number must be at most {B.MAX_NUMBER}, got 1000000000"
    err = agent.refused("[" * 100_000 + "]" * 100_000, job_id="deep")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"job spec is nested more than {B.MAX_JSON_DEPTH} deep"
    err = agent.refused(json.dumps(perf(work))[:-1] + ', "rate": Infinity}', job_id="inf")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "Infinity" in err.details()
    two_mb = json.dumps(perf(work, model="m" * 2_000_000))
    err = agent.refused(two_mb, job_id="big")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == f"job spec is {len(two_mb)} bytes; the limit is {B.MAX_SPEC_BYTES} bytes"
    err = agent.refused(json.dumps(perf(work, model="m" * 10_000_000)), job_id="bigger")  # beyond gRPC's own limit
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not (work / "agent" / "jobs" / "big").exists() and not (work / "agent" / "jobs" / "bigger").exists()
    assert agent.stub.Ping(pb.PingRequest(), timeout=10).api_version == "fleetbench.v1"  # still serving


def test_a_job_is_refused_on_a_nearly_full_data_dir(tmp_path):
    a = Agent(tmp_path / "agent", "--allow-path", str(tmp_path), "--min-free-bytes", str(1 << 60))
    try:
        ensure_demo_tokenizer(tmp_path / "tok")
        err = a.refused(perf(tmp_path, tokenizer_path=str(tmp_path / "tok")), job_id="full")
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "GiB free in" in err.details() and "at least 1073741824.00 GiB free" in err.details()
    finally:
        a.stop()


def test_ctl_run_with_a_tokenizer_outside_the_allowed_paths_is_error_in_one_line(tmp_path, fresh_fleet):
    tok = ensure_demo_tokenizer(tmp_path / "outside" / "tok")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
name: confined
model: demo
endpoint: {{url: "http://127.0.0.1:1/v1/completions"}}
tokenizer: {tok}
cases:
  - {{id: p, parallel: 1, number: 2, input_tokens: 8, output_tokens: 4}}
""")
    # its agent may read its own folder and the shared test roots, not tmp_path/outside
    fleet = fresh_fleet(1, ttft_ms=200, tpot_ms=20)
    proc = fleet.run(plan, tmp_path / "s.sqlite", tmp_path / "out", timeout=120)
    fleet.stop()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert "n1: confinement: the agent may not read that file or send load to that endpoint: " \
           f"perf[0].spec.tokenizer_path {tok} is outside the paths this agent may read" in out
    assert "ERROR" in out
