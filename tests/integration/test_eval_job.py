"""Eval jobs: evalscope's own eval engine against the simulated endpoint, which answers a known subset of a
small local gsm8k dataset right (tests/data/eval: 3 of 5), so the score the job reports is known exactly.
Run first by calling the job runner in a child process, then through a real agent over gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.processes import Agent, alive, children_of, wait_state

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data" / "eval"
GSM8K = DATA / "gsm8k"
ANSWERS = DATA / "answers-3-of-5.jsonl"
RIGHT, QUESTIONS = 3, 5
DONE = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}

# The job runner in a child process, as the agent's job process calls it (offline environment included).
RUNNER = r"""
import os, sys
from pathlib import Path
from fleetbench.agent.job_process import OFFLINE_ENV, Channel
from fleetbench.jobs_schema import EvalSpec
from fleetbench.agent.eval_job import run_eval_job
os.environ.update(OFFLINE_ENV)
channel = Channel(os.fdopen(os.dup(1), "w"))
os.dup2(os.open(sys.argv[1] + "/job.log", os.O_WRONLY | os.O_CREAT, 0o600), 1)
sys.exit(run_eval_job(Path(sys.argv[1]), EvalSpec.from_wire(sys.argv[2]), channel))
"""


@pytest.fixture
def endpoint(tmp_path: Path, start_endpoint):
    """The simulator with canned answers, logging every request it gets."""
    log = tmp_path / "requests.jsonl"
    ep = start_endpoint("--output-tokens", "8", "--answers", str(ANSWERS), "--log", str(log), ttft_ms=5, tpot_ms=1)
    return ep.base, log


def requests_seen(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def eval_spec(url: str, local_path: Path = GSM8K, **extra: Any) -> dict[str, Any]:
    return {"url": url, "model": "demo", "datasets": ["gsm8k"],
            "dataset_args": {"gsm8k": {"local_path": str(local_path)}},
            "generation_config": {"max_tokens": 64}, "eval_batch_size": 2, **extra}


def test_runner_reports_exactly_the_fraction_answered_right(tmp_path: Path, endpoint):
    url, log = endpoint
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    spec = eval_spec(url, dataset_args={"gsm8k": {"local_path": str(GSM8K), "few_shot_num": 0}}, stream=True)
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(job_dir), json.dumps(spec)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, (job_dir / "job.log").read_text()[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]

    scores = json.loads((job_dir / "scores.json").read_text())
    assert [(s["dataset"], s["subset"], s["metric"], s["score"], s["samples"]) for s in scores] == \
        [("gsm8k", "main", "accuracy", RIGHT / QUESTIONS * 100, QUESTIONS)]
    samples = [json.loads(line) for line in (job_dir / "samples.jsonl").read_text().splitlines()]
    assert sorted((s["index"], s["score"]) for s in samples) == [(0, 1.0), (1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0)]

    seen = requests_seen(log)
    assert len(seen) == QUESTIONS and all(r["status"] == "ok" and r["stream"] for r in seen)
    assert sum(r["canned"] for r in seen) == 4  # three right replies, one wrong one, one question unanswered

    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["final"] and (progress[-1]["done"], progress[-1]["total"], progress[-1]["failed"]) == \
        (QUESTIONS, QUESTIONS, 0)
    assert all(e["total"] == QUESTIONS for e in progress)  # the real sample count, known before any request
    assert [e["done"] for e in progress] == sorted(e["done"] for e in progress)
    assert any(e["type"] == "phase" and "gsm8k accuracy 60%" in e["message"] for e in events)
    # evalscope's own report is kept with the job, and nothing was written outside it
    assert (job_dir / "evalscope-eval" / "reports" / "demo" / "gsm8k.json").exists()


def test_eval_job_through_the_agent(tmp_path: Path, endpoint):
    url, log = endpoint
    agent = Agent(tmp_path / "agent").start()
    try:
        # the benchmark's default 4-shot prompt (few-shot examples from the train split) this time
        agent.stub.StartJob(pb.StartJobRequest(job_id="ev", kind=pb.JOB_KIND_EVAL,
                                               spec_json=json.dumps(eval_spec(url, limit=10))))
        st = wait_state(agent.stub, "ev", DONE, 300)
        assert st.state == pb.JOB_STATE_SUCCEEDED, st.error
        chunks = list(agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="ev")))
        result = json.loads(chunks[0].summary.result_json)
        (row,) = result["scores"]
        assert (row["dataset"], row["metric"], row["score"], row["samples"]) == \
            ("gsm8k", "accuracy", RIGHT / QUESTIONS * 100, QUESTIONS)
        assert row["subsets"] == [{"subset": "main", "score": 60.0, "samples": QUESTIONS}]
        events = list(agent.stub.WatchJob(pb.WatchJobRequest(job_id="ev", from_seq=0)))
        assert [e.total for e in events if e.state == pb.JOB_STATE_QUEUED] == [10]  # the spec's hint: limit 10
        running = {e.total for e in events if e.state == pb.JOB_STATE_RUNNING and e.total}
        assert running == {QUESTIONS}  # then the count evalscope loaded: 5 questions
        assert max(e.done for e in events) == QUESTIONS
        seen = requests_seen(log)
        assert len(seen) == QUESTIONS
        prompts = sorted(r["prompt_tokens"] for r in seen)
        assert prompts[0] > 60  # four worked examples precede each question
    finally:
        agent.stop()


def test_missing_local_path_fails_the_job_before_any_request(tmp_path: Path, endpoint):
    url, log = endpoint
    missing = tmp_path / "nowhere" / "gsm8k"
    agent = Agent(tmp_path / "agent").start()
    try:
        agent.stub.StartJob(pb.StartJobRequest(job_id="lost", kind=pb.JOB_KIND_EVAL,
                                               spec_json=json.dumps(eval_spec(url, missing))))
        st = wait_state(agent.stub, "lost", DONE, 120)
        assert st.state == pb.JOB_STATE_FAILED
        assert str(missing) in st.error and "dataset_args.gsm8k.local_path" in st.error
        # a malformed local dataset (no test split for the subset) also fails before anything is sent
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "README.md").write_text("---\nconfigs:\n- config_name: main\n  data_files:\n"
                                         "  - split: test\n    path: main/test.jsonl\n---\n")
        agent.stub.StartJob(pb.StartJobRequest(job_id="empty", kind=pb.JOB_KIND_EVAL,
                                               spec_json=json.dumps(eval_spec(url, empty))))
        st = wait_state(agent.stub, "empty", DONE, 120)
        assert st.state == pb.JOB_STATE_FAILED and st.error
        # an unknown benchmark name is evalscope's own clear error, also before any request
        agent.stub.StartJob(pb.StartJobRequest(job_id="unknown", kind=pb.JOB_KIND_EVAL, spec_json=json.dumps(
            {**eval_spec(url), "datasets": ["gsm9k"], "dataset_args": {"gsm9k": {"local_path": str(GSM8K)}}})))
        st = wait_state(agent.stub, "unknown", DONE, 120)
        assert st.state == pb.JOB_STATE_FAILED and "gsm9k" in st.error and "not found" in st.error
        assert requests_seen(log) == []
        # a bad spec is refused at StartJob, naming the field
        with pytest.raises(Exception) as err:
            agent.stub.StartJob(pb.StartJobRequest(job_id="bad", kind=pb.JOB_KIND_EVAL, spec_json=json.dumps(
                {**eval_spec(url), "dataset_args": {"gsm8k": {"local_pth": "/x"}}})))
        assert "dataset_args.gsm8k: local_pth" in str(err.value)
    finally:
        agent.stop()


def test_cancel_mid_eval_leaves_no_process_and_keeps_the_predictions_made(tmp_path: Path):
    port = free_port()
    slow = subprocess.Popen([sys.executable, "-m", "fleetbench.endpoint", "--port", str(port), "--ttft-ms", "50",
                             "--tpot-ms", "50", "--output-tokens", "20", "--answers", str(ANSWERS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 30, slow)
    agent = Agent(tmp_path / "agent").start()
    try:
        spec = eval_spec(f"http://127.0.0.1:{port}/v1", repeats=40)  # 200 samples of about half a second
        agent.stub.StartJob(pb.StartJobRequest(job_id="cut", kind=pb.JOB_KIND_EVAL, spec_json=json.dumps(spec)))
        predictions = tmp_path / "agent" / "jobs" / "cut" / "evalscope-eval" / "predictions" / "demo" / \
            "gsm8k_main.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not (predictions.exists() and predictions.read_text().count("\n") >= 2):
            time.sleep(0.2)
        assert agent.proc is not None
        kids = children_of(agent.proc.pid)
        assert kids, "the eval runs in a child process"
        t0 = time.time()
        agent.stub.CancelJob(pb.CancelJobRequest(job_id="cut"))
        st = wait_state(agent.stub, "cut", DONE, 30)
        assert st.state == pb.JOB_STATE_CANCELLED and time.time() - t0 < 10
        assert not any(alive(k) for k in kids) and children_of(agent.proc.pid) == []
        kept = predictions.read_text().splitlines()
        assert 2 <= len(kept) < 200 and all(json.loads(line)["model_output"] for line in kept)
        result = json.loads(next(iter(agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="cut")))).summary
                            .result_json)
        assert result["scores"] == []  # evalscope scores a finished run only
    finally:
        agent.stop()
        slow.terminate()
        slow.wait(timeout=10)
