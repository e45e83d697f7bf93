"""Secrets at rest (issue 15, item 4) on real agents and a real run: the engine gets the API key and headers
(an endpoint that demands them answers every request), yet no file of the agent (job.json, job.log,
agent.sqlite, evalscope's outputs) nor the controller's store or report holds them; the data dir is 0700 and
its files 0600."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from support.processes import CTL, wait_state

from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration

KEY = "sk-fleetbench-test-7f3a9c"


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def assert_private(data: Path) -> None:
    assert mode(data) == 0o700 and mode(data / "jobs") == 0o700
    for p in data.rglob("*"):
        if p.is_dir():
            assert mode(p) & 0o077 == 0, p
        elif p.is_file():
            assert mode(p) & 0o077 == 0, p  # nothing group- or world-readable


@pytest.fixture
def locked_endpoint(start_endpoint):
    """A simulated endpoint that answers only requests carrying KEY (stopped after the test)."""
    return start_endpoint("--api-key", KEY, ttft_ms=5, tpot_ms=1).completions


def test_headers_reach_the_engine_and_leave_no_trace_on_the_agent(tmp_path, locked_endpoint, start_agent,
                                                                   demo_tokenizer):
    old = os.umask(0o022)  # the agent tightens whatever umask it is started with
    try:
        agent = start_agent("agent")
    finally:
        os.umask(old)
    try:
        tok = demo_tokenizer
        spec = {"url": locked_endpoint, "model": "demo", "tokenizer_path": str(tok), "number": 6, "parallel": 2,
                "input_tokens": 16, "output_tokens": 8, "headers": {"Authorization": f"Bearer {KEY}"}}
        agent.stub.StartJob(pb.StartJobRequest(job_id="auth", kind=pb.JOB_KIND_PERF, spec_json=json.dumps(spec)))
        st = wait_state(agent.stub, "auth", {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED}, 120)
        assert st.state == pb.JOB_STATE_SUCCEEDED and st.record_count == 6, st.error
        records = list(agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="auth")))
        assert all(r.success for c in records for r in c.records.records)  # the engine got the header: 200s
        no_key = dict(spec, headers={}, number=2)
        agent.stub.StartJob(pb.StartJobRequest(job_id="nokey", kind=pb.JOB_KIND_PERF, spec_json=json.dumps(no_key)))
        wait_state(agent.stub, "nokey", {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED}, 120)
        failed = [r for c in agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="nokey")) for r in c.records.records]
        assert failed and not any(r.success for r in failed) and "401" in failed[0].error  # the lock is real
    finally:
        agent.stop()
    data = tmp_path / "agent"
    assert files_holding(data, KEY) == []
    job = json.loads((data / "jobs" / "auth" / "job.json").read_text())
    assert job["spec"]["headers"] == {"Authorization": "***"}
    with sqlite3.connect(data / "agent.sqlite") as con:
        (stored,) = con.execute("SELECT spec_json FROM jobs WHERE job_id = 'auth'").fetchone()
    assert KEY not in stored and json.loads(stored)["headers"] == {"Authorization": "***"}
    assert_private(data)
    assert mode(data / "agent.sqlite") == 0o600 and mode(data / "jobs" / "auth" / "job.json") == 0o600


def test_a_run_with_an_api_key_stores_and_reports_none_of_it(tmp_path, demo_tokenizer, fresh_fleet):
    tok = demo_tokenizer
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""\
name: keyed
model: demo
endpoint: {{url: "http://127.0.0.1:1/v1/completions", api_key: {KEY}}}
tokenizer: {tok}
cases:
  - {{id: p, parallel: 2, number: 4, input_tokens: 8, output_tokens: 4, expect: {{success_rate: {{min: 1}}}}}}
""")
    db, out = tmp_path / "s.sqlite", tmp_path / "out"
    fleet = fresh_fleet(1, ttft_ms=5, tpot_ms=1, extra_endpoint_args=["--api-key", KEY])
    proc = fleet.run(plan, db, out, timeout=300)
    fleet.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr  # PASS: every request carried the key
    assert KEY not in proc.stdout + proc.stderr
    with sqlite3.connect(db) as con:
        (plan_yaml,) = con.execute("SELECT plan_yaml FROM runs").fetchone()
        run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
    assert KEY not in plan_yaml and 'api_key: "***"' in plan_yaml
    assert files_holding(out, KEY) == [] and len(list(out.iterdir())) == 4
    assert KEY.encode() not in db.read_bytes()
    agent_data = fleet.agent_db("n1").parent
    assert files_holding(agent_data, KEY) == []
    assert_private(agent_data)
    resume = subprocess.run([*CTL, "resume", run_id, "--db", str(db), "--fleet", str(fleet.fleet_file), "--out",
                             str(out)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "FLEETBENCH_API_KEY": ""})
    assert resume.returncode == 2 and "Traceback" not in resume.stderr
    assert f"run {run_id} was started with an API key, which the store does not keep: set FLEETBENCH_API_KEY" \
        in resume.stdout + resume.stderr
