"""Sweep and long-context jobs on a real agent over gRPC: every point its own result, in order,
records labelled with their point; a long-context check says plainly whether the request went through."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
from test_job_lifecycle import Agent, wait_state  # same folder: pytest puts it on sys.path

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer
from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
DONE = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


def start_endpoint(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fleetbench.endpoint", "--port", str(port), "--ttft-ms", "20",
                             "--tpot-ms", "2", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 30, proc)
    return proc, f"http://127.0.0.1:{port}/v1/completions"


def fetch(agent: Agent, job_id: str) -> tuple[pb.JobSummary, list[pb.RequestRecord]]:
    summary, records = None, []
    for chunk in agent.stub.GetJobResult(pb.GetJobResultRequest(job_id=job_id, chunk_size=7)):
        if chunk.HasField("summary"):
            summary = chunk.summary
        else:
            records.extend(chunk.records.records)
    assert summary is not None
    return summary, records


def test_sweep_runs_every_point_in_order_with_its_own_result(tmp_path):
    tok = ensure_demo_tokenizer(tmp_path / "tok")
    ep, url = start_endpoint()
    agent = Agent(tmp_path / "agent").start()
    try:
        sweep = {"url": url, "model": "demo", "tokenizer_path": str(tok), "parallel": [1, 2], "number": [2, 4],
                 "input_tokens": [16, 32], "output_tokens": [8], "loops": 2, "extra_args": {"ignore_eos": True}}
        agent.stub.StartJob(pb.StartJobRequest(job_id="sw", kind=pb.JOB_KIND_SWEEP, spec_json=json.dumps(sweep)))
        st = wait_state(agent.stub, "sw", DONE, 240)
        assert st.state == pb.JOB_STATE_SUCCEEDED, st.error
        summary, records = fetch(agent, "sw")
        points = json.loads(summary.result_json)["points"]
        labels = [p["point"] for p in points]
        # loop-major, then input, output, (parallel, number) pairs: the order the points ran in
        assert labels == [f"in{i}-out8-p{p}-n{n}-loop{lp}" for lp in (1, 2) for i in (16, 32)
                          for p, n in ((1, 2), (2, 4))]
        expected = [(i, 8, p, n, lp) for lp in (1, 2) for i in (16, 32) for p, n in ((1, 2), (2, 4))]
        for p, params in zip(points, expected, strict=True):
            assert p["evalscope_summary"]["Total Requests"] == p["number"]  # evalscope's own count, per point
            assert (p["input_tokens"], p["output_tokens"], p["parallel"], p["number"], p["loop"]) == params
        assert len(records) == 2 * 2 * (2 + 4) == summary.record_count
        assert [r.index for r in records] == list(range(len(records)))
        by_point: dict[str, list[pb.RequestRecord]] = {}
        for r in records:
            by_point.setdefault(r.point, []).append(r)
        assert list(by_point) == labels  # records come in point order
        for p in points:
            rs = by_point[p["point"]]
            assert len(rs) == p["number"] and all(r.success for r in rs)
            assert {r.input_tokens for r in rs} == {p["input_tokens"]}
        for a, b in itertools.pairwise(labels):  # a point starts after the previous one ended
            assert min(r.start_time for r in by_point[b]) >= max(r.end_time for r in by_point[a]) - 1e-3
        events = list(agent.stub.WatchJob(pb.WatchJobRequest(job_id="sw", from_seq=0)))
        assert max(e.total for e in events) == 24
        assert any("point 8/8" in e.message for e in events)
    finally:
        agent.stop()
        ep.terminate()


def test_long_context_reports_success_and_ttft_then_a_plain_failure(tmp_path):
    tok = ensure_demo_tokenizer(tmp_path / "tok")
    ep, url = start_endpoint()
    bad, bad_url = start_endpoint("--fault-500", "1.0")
    agent = Agent(tmp_path / "agent").start()
    try:
        spec = {"url": url, "model": "demo", "tokenizer_path": str(tok), "number": 1, "parallel": 1,
                "input_tokens": 8192, "output_tokens": 4}
        agent.stub.StartJob(pb.StartJobRequest(job_id="lc", kind=pb.JOB_KIND_LONG_CONTEXT,
                                               spec_json=json.dumps(spec)))
        assert wait_state(agent.stub, "lc", DONE, 180).state == pb.JOB_STATE_SUCCEEDED
        summary, records = fetch(agent, "lc")
        lc = json.loads(summary.result_json)["long_context"]
        assert lc["passed"] is True and lc["succeeded"] == 1 and lc["errors"] == []
        assert lc["ttft_s"] == [records[0].ttft_s] and records[0].ttft_s > 0
        assert lc["input_tokens"] == [records[0].input_tokens] and records[0].input_tokens >= 8000

        agent.stub.StartJob(pb.StartJobRequest(job_id="lc-bad", kind=pb.JOB_KIND_LONG_CONTEXT,
                                               spec_json=json.dumps({**spec, "url": bad_url})))
        assert wait_state(agent.stub, "lc-bad", DONE, 180).state == pb.JOB_STATE_SUCCEEDED  # the job ran
        lc = json.loads(fetch(agent, "lc-bad")[0].result_json)["long_context"]
        assert lc["passed"] is False and lc["succeeded"] == 0 and "500" in lc["errors"][0]
    finally:
        agent.stop()
        ep.terminate()
        bad.terminate()


@pytest.mark.parametrize("spec, message", [
    ({"parallel": [1, 2], "number": [2, 4, 6]}, "number must be one value or a list as long as parallel"),
    ({"parallel": [1, 0], "number": 2}, "parallel[] must be a positive integer"),
    ({"parallel": [1], "number": 2, "loops": 0}, "loops must be a positive integer"),
])
def test_bad_sweep_specs_are_refused_naming_the_field(tmp_path, spec, message):
    agent = Agent(tmp_path / "agent").start()
    try:
        base = {"url": "http://127.0.0.1:1/v1/completions", "model": "m", "tokenizer_path": "/x",
                "input_tokens": [16], "output_tokens": [8]}
        with pytest.raises(Exception) as err:
            agent.stub.StartJob(pb.StartJobRequest(job_id="bad", kind=pb.JOB_KIND_SWEEP,
                                                   spec_json=json.dumps({**base, **spec})))
        assert message in str(err.value)
    finally:
        agent.stop()
