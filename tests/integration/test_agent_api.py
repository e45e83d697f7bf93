"""The agent's gRPC surface on a real server: health, Ping, job errors with clear status codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("agent")
    proc = subprocess.Popen([sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_port(port, 30, proc)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    proc.terminate()
    proc.wait(timeout=15)


def test_health_and_ping(agent):
    health = health_pb2_grpc.HealthStub(agent)
    for service in ("", "fleetbench.v1.Agent"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING
    t0 = time.time()
    reply = pb_grpc.AgentStub(agent).Ping(pb.PingRequest())
    assert reply.api_version == "fleetbench.v1" and reply.agent_version and reply.hostname
    assert abs(reply.wall_time - t0) < 5


@pytest.mark.parametrize(
    ("job_id", "spec", "needle"),
    [
        ("../etc", {"url": "http://x:1/v1", "model": "m", "number": 1, "parallel": 1}, "job_id"),
        ("j1", {"url": "file:///etc/passwd", "model": "m", "number": 1, "parallel": 1}, "url must be an http"),
        ("j2", {"url": "http://x:1/v1", "model": "m", "number": 0, "parallel": 1}, "number must be a positive"),
        ("j3", {"url": "http://x:1/v1", "model": "m", "number": 1, "parallel": 1, "cmd": "rm -rf /"}, "unknown"),
        ("j4", {"url": "http://x:1/v1", "model": "m", "number": 4, "parallel": 2, "tokenizer_path": "/t",
                "input_tokens": 8, "range_ratio": 1.5}, "range_ratio must be a number in (0, 1], got 1.5"),
        ("j5", {"url": "http://x:1/v1", "model": "m", "number": 4, "parallel": 2, "tokenizer_path": "/t",
                "input_tokens": 8, "workers": 3}, "workers (3) cannot exceed parallel or number"),
        ("j6", {"url": "http://x:1/v1", "model": "m", "number": 4, "parallel": 2, "tokenizer_path": "/t",
                "input_tokens": 8, "rate": 0}, "rate must be a positive number of requests/s or -1 (no limit), got 0"),
    ],
)
def test_bad_job_specs_are_rejected_naming_the_field(agent, job_id, spec, needle):
    stub = pb_grpc.AgentStub(agent)
    with pytest.raises(grpc.RpcError) as err:
        stub.StartJob(pb.StartJobRequest(job_id=job_id, kind=pb.JOB_KIND_PERF, spec_json=json.dumps(spec)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


@pytest.mark.parametrize(("kind", "spec", "needle"), [
    (pb.JOB_KIND_EVAL, {"url": "http://x:1/v1", "model": "m", "datasets": ["gsm8k"],
                        "dataset_args": {"gsm8k": {"local_path": "/d"}}, "generation_config": {"temperature": 3}},
     "generation_config.temperature must be a number ≥ 0 and ≤ 2, got 3"),
    (pb.JOB_KIND_PREFLIGHT, {"perf": [{"case_id": "c", "spec": {"url": "http://x:1/v1", "model": "m", "number": 0,
                                                                "parallel": 1}}]},
     "perf[0].spec.number must be a positive integer, got 0"),
    (pb.JOB_KIND_SWEEP, {"url": "http://x:1/v1", "model": "m", "number": [1], "parallel": [1]},
     "job kind 2 (sweep) is not supported by this agent"),
    (pb.JOB_KIND_UNSPECIFIED, {}, "job kind 0 is not supported by this agent"),
])
def test_every_kind_is_validated_by_its_model(agent, kind, spec, needle):
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.AgentStub(agent).StartJob(pb.StartJobRequest(job_id="k", kind=kind, spec_json=json.dumps(spec)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_unknown_job_is_not_found(agent):
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.AgentStub(agent).GetJob(pb.GetJobRequest(job_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
