"""Engines that refuse evalscope's requests or generate nothing, seen through the agent's real job process
and real evalscope: every request is a failed record with one classified line, never a success with 0 tokens
and a TTFT of 0.000 s.

Cases: `--strict` (HTTP 422 for min_tokens/ignore_eos, as `transformers serve` answers), a given HTTP status
and body, and the three replies without content (`data: [DONE]` alone, an empty body, chunks of "" text).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetbench.agent.evalscope_adapter import find_result_dbs, iter_records
from fleetbench.endpoint.config import EndpointConfig, FaultConfig
from fleetbench.endpoint.testing import EndpointThread
from fleetbench.records import RequestRecord

pytestmark = pytest.mark.integration

NUMBER, PARALLEL, INPUT, OUTPUT = 4, 2, 16, 8
UNEXPECTED = "Unexpected fields in the request: {'ignore_eos', 'min_tokens'}"


@pytest.fixture(scope="module")
def tok(demo_tokenizer: Path) -> Path:
    return demo_tokenizer


@dataclass
class Job:
    rc: int
    events: list[dict[str, Any]]
    records: list[RequestRecord]
    log: str

    @property
    def final(self) -> dict[str, Any]:
        return [e for e in self.events if e.get("type") == "progress" and e.get("final")][-1]


def run_job(job_dir: Path, url: str, tok: Path, stream: bool = True) -> Job:
    """One perf job through `python -m fleetbench.agent.job_process`, as the agent starts it."""
    job_dir.mkdir(parents=True)
    spec = {"url": url, "model": "demo", "tokenizer_path": str(tok), "number": NUMBER, "parallel": PARALLEL,
            "input_tokens": INPUT, "output_tokens": OUTPUT, "extra_args": {"ignore_eos": True}, "stream": stream,
            "read_timeout_s": 10, "workers": 1}
    (job_dir / "job.json").write_text(json.dumps({"kind": 1, "spec": spec, "start_at": 0.0}))
    proc = subprocess.run([sys.executable, "-m", "fleetbench.agent.job_process", str(job_dir)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    records = [r for db in find_result_dbs(job_dir / "evalscope") for r in iter_records(db, 0.0)]
    log = (job_dir / "job.log").read_text(errors="replace") if (job_dir / "job.log").exists() else ""
    return Job(proc.returncode, events, records, log)


def stats(url: str) -> dict[str, Any]:
    base = url.split("/v1", 1)[0]
    with urllib.request.urlopen(base + "/fleetbench/stats", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def assert_all_failed(job: Job, error: str) -> None:
    assert job.rc == 0, job.log[-3000:]
    assert len(job.records) == NUMBER, job.log[-3000:]
    assert [r.error for r in job.records] == [error] * NUMBER
    for r in job.records:
        assert not r.success and (r.ttft_s, r.output_tokens, r.latency_s) == (0.0, 0, 0.0)
    # the live progress says the same as the records
    assert (job.final["done"], job.final["failed"]) == (NUMBER, NUMBER)


EMPTY_CASES = {
    # name: (faults, route, stream, the record's error)
    "done-only": (FaultConfig(done_only=1.0), "completions", True, "empty reply: no content chunk"),
    "done-only-non-stream": (FaultConfig(done_only=1.0), "completions", False, "empty reply: no content chunk"),
    "empty-body": (FaultConfig(empty_body=1.0), "completions", True, "empty reply: no content chunk"),
    "empty-body-non-stream": (FaultConfig(empty_body=1.0), "completions", False, "empty reply: 0 output tokens"),
    "empty-chunks": (FaultConfig(empty_chunks=1.0), "completions", True, "empty reply: no content chunk"),
    "empty-chunks-chat": (FaultConfig(empty_chunks=1.0), "chat/completions", True, "empty reply: no content chunk"),
    "empty-chunks-non-stream": (FaultConfig(empty_chunks=1.0), "chat/completions", False,
                                "empty reply: 0 output tokens"),
    "http-429": (FaultConfig(http_error=1.0), "completions", True, "HTTP 429: Too Many Requests (injected fault)"),
    "http-400-detail": (FaultConfig(http_error=1.0, http_error_status=400,
                                    http_error_body='{"detail": "prompt too long"}'),
                        "completions", True, "HTTP 400: prompt too long"),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CASES))
def test_replies_without_content_and_http_errors_are_failed_records(tmp_path: Path, tok: Path, name: str) -> None:
    faults, route, stream, error = EMPTY_CASES[name]
    with EndpointThread(EndpointConfig(ttft_s=0.01, tpot_s=0.002, faults=faults)) as ep:
        job = run_job(tmp_path / "job", f"{ep.url}/{route}", tok, stream=stream)
        server = ep.stats()
    assert_all_failed(job, error)
    assert server["received"] == server["faulted"] == NUMBER and server["answered"] == 0


def test_strict_endpoint_refuses_evalscope_fields_with_422(tmp_path: Path, tok: Path) -> None:
    with EndpointThread(EndpointConfig(ttft_s=0.01, tpot_s=0.002, strict=True)) as ep:
        job = run_job(tmp_path / "job", ep.completions_url, tok)
        server = stats(ep.url)
    assert_all_failed(job, f"HTTP 422: {UNEXPECTED}")
    # the server saw exactly the job's requests, each refused before generating anything
    assert (server["received"], server["rejected"], server["answered"]) == (NUMBER, NUMBER, 0)
    assert server["by_http_status"] == {"422": NUMBER}


def test_strict_endpoint_accepts_the_fields_it_is_told_to(tmp_path: Path, tok: Path) -> None:
    config = EndpointConfig(ttft_s=0.01, tpot_s=0.002, strict=True, allow_fields=("min_tokens", "ignore_eos"))
    with EndpointThread(config) as ep:
        job = run_job(tmp_path / "job", ep.completions_url, tok)
        server = stats(ep.url)
    assert job.rc == 0, job.log[-3000:]
    assert [(r.success, r.output_tokens, r.input_tokens) for r in job.records] == [(True, OUTPUT, INPUT)] * NUMBER
    assert all(r.ttft_s > 0 for r in job.records)
    assert (server["received"], server["rejected"], server["answered"]) == (NUMBER, 0, NUMBER)


def test_strict_and_faults_from_the_command_line(tmp_path: Path) -> None:
    """The CLI flags reach the server: 422 with transformers' body, then a fault with a given status."""
    from fleetbench.controller.localfleet import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fleetbench.endpoint", "--port", str(port), "--strict",
                             "--allow-field", "ignore_eos", "--fault-http", "1", "--fault-http-status", "503"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30, proc)
        url = f"http://127.0.0.1:{port}/v1/completions"

        def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        assert post({"prompt": "a b", "min_tokens": 2, "ignore_eos": True, "top_k": 5}) == \
            (422, {"detail": "Unexpected fields in the request: {'min_tokens', 'top_k'}"})
        status, body = post({"prompt": "a b", "ignore_eos": True, "max_tokens": 2})
        assert status == 503 and body["error"]["code"] == 503
        assert stats(url) | {"by_http_status": None} == {
            "received": 2, "rejected": 1, "answered": 0, "faulted": 1, "disconnected": 0, "running": 0,
            "by_http_status": None, "by_fault": {"http_error": 1}}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
