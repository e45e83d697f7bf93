"""The job engine's promises on a real agent: idempotent start, one job at a time, resumable watch,
cancel without orphans keeping partial records, restart safety."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc
import pytest
from support.processes import Agent, alive, children_of, wait_state

from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration


@pytest.fixture
def endpoint(start_endpoint, demo_tokenizer):
    return start_endpoint(ttft_ms=50, tpot_ms=20).completions, demo_tokenizer


def spec(url: str, tok: Path, number: int, parallel: int = 2, output: int = 50) -> str:
    return json.dumps({"url": url, "model": "demo", "tokenizer_path": str(tok), "number": number,
                       "parallel": parallel, "input_tokens": 16, "output_tokens": output,
                       "extra_args": {"ignore_eos": True}})


def test_idempotent_start_one_at_a_time_and_resumable_watch(tmp_path, endpoint):
    url, tok = endpoint
    agent = Agent(tmp_path / "agent").start()
    try:
        s = spec(url, tok, number=6)
        first = agent.stub.StartJob(pb.StartJobRequest(job_id="j1", kind=pb.JOB_KIND_PERF, spec_json=s))
        again = agent.stub.StartJob(pb.StartJobRequest(job_id="j1", kind=pb.JOB_KIND_PERF, spec_json=s))
        assert again.job_id == first.job_id and again.created_at == first.created_at
        with pytest.raises(grpc.RpcError) as busy:
            agent.stub.StartJob(pb.StartJobRequest(job_id="j2", kind=pb.JOB_KIND_PERF, spec_json=s))
        assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "busy with job j1" in busy.value.details()
        wait_state(agent.stub, "j1", {3}, 120)
        events = list(agent.stub.WatchJob(pb.WatchJobRequest(job_id="j1", from_seq=0)))
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs) and seqs[0] == 1 and len(set(seqs)) == len(seqs)
        tail = list(agent.stub.WatchJob(pb.WatchJobRequest(job_id="j1", from_seq=seqs[2])))
        assert [e.seq for e in tail] == seqs[3:]  # resumed: nothing missed, nothing repeated
        chunks = list(agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="j1", chunk_size=4)))
        assert chunks[0].HasField("summary") and chunks[0].summary.record_count == 6
        sizes = [len(c.records.records) for c in chunks[1:]]
        assert sizes == [4, 2]
    finally:
        agent.stop()


def test_cancel_stops_the_process_group_and_keeps_partial_records(tmp_path, endpoint):
    url, tok = endpoint
    agent = Agent(tmp_path / "agent").start()
    try:
        agent.stub.StartJob(pb.StartJobRequest(job_id="long", kind=pb.JOB_KIND_PERF,
                                               spec_json=spec(url, tok, number=400, parallel=2, output=50)))
        wait_state(agent.stub, "long", {2}, 60)
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until some requests are recorded
            dbs = list((tmp_path / "agent" / "jobs" / "long").rglob("benchmark_data.db"))
            if dbs and os.path.getsize(dbs[0]) > 8192:
                break
            time.sleep(0.5)
        assert agent.proc is not None
        kids = children_of(agent.proc.pid)
        assert kids, "the job runs in a child process"
        t0 = time.time()
        status = agent.stub.CancelJob(pb.CancelJobRequest(job_id="long"))
        took = time.time() - t0
        assert status.state == pb.JOB_STATE_CANCELLED and took < 10
        time.sleep(0.5)
        assert not [k for k in kids if alive(k)], "no orphan left behind"
        assert 0 < status.record_count < 400
        chunks = list(agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="long")))
        assert sum(len(c.records.records) for c in chunks[1:]) == status.record_count
    finally:
        agent.stop()


def test_agent_killed_mid_job_reports_interrupted_and_keeps_finished_jobs(tmp_path, endpoint):
    url, tok = endpoint
    agent = Agent(tmp_path / "agent").start()
    agent.stub.StartJob(pb.StartJobRequest(job_id="done", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 4)))
    finished = wait_state(agent.stub, "done", {3}, 120)
    agent.stub.StartJob(pb.StartJobRequest(job_id="cut", kind=pb.JOB_KIND_PERF,
                                           spec_json=spec(url, tok, number=400, output=50)))
    wait_state(agent.stub, "cut", {2}, 60)
    time.sleep(8)
    kids = children_of(agent.proc.pid)  # type: ignore[union-attr]
    agent.kill()
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(k) for k in kids):
        time.sleep(0.2)
    assert not any(alive(k) for k in kids), "the job process dies with its agent (no unattended load)"
    agent = Agent(tmp_path / "agent").start()
    try:
        cut = agent.stub.GetJob(pb.GetJobRequest(job_id="cut"))
        assert cut.state == pb.JOB_STATE_INTERRUPTED and "agent restarted" in cut.error
        done = agent.stub.GetJob(pb.GetJobRequest(job_id="done"))
        assert done.state == pb.JOB_STATE_SUCCEEDED and done.record_count == finished.record_count == 4
        chunks = list(agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="done")))
        assert sum(len(c.records.records) for c in chunks[1:]) == 4
    finally:
        agent.stop()
