"""The loopback endpoint, fixed-timing mode: protocol, token counts, timing under real evalscope, CLI."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetbench.endpoint.config import EndpointConfig
from fleetbench.endpoint.server import RunningEndpoint
from fleetbench.endpoint.testing import EndpointThread, run_evalscope_perf
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ep() -> Iterator[RunningEndpoint]:
    with EndpointThread(EndpointConfig(ttft_s=0.02, tpot_s=0.002, default_output_tokens=7, model="demo")) as endpoint:
        yield endpoint


def _request(ep: RunningEndpoint, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=30)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _events(raw: bytes) -> list[str]:
    """SSE events: every block must be exactly one `data: ...` line followed by a blank line."""
    text = raw.decode()
    assert text.endswith("\n\n")
    blocks = text[:-2].split("\n\n")
    for block in blocks:
        assert block.startswith("data: ") and "\n" not in block, block
    return [b.removeprefix("data: ") for b in blocks]


def test_models_health_version(ep: RunningEndpoint) -> None:
    status, _, body = _request(ep, "GET", "/v1/models")
    assert status == 200
    models = json.loads(body)
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["demo"]
    assert _request(ep, "GET", "/health")[0] == 200
    status, _, body = _request(ep, "GET", "/version")
    assert status == 200 and "version" in json.loads(body)
    assert ep.url == f"http://127.0.0.1:{ep.port}/v1"


def test_completions_stream_format_and_usage(ep: RunningEndpoint) -> None:
    body = {
        "model": "demo",
        "prompt": "baba bebe bibi",
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    status, headers, raw = _request(ep, "POST", "/v1/completions", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = _events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    tokens, final = chunks[:-1], chunks[-1]
    assert len(tokens) == 5
    assert all(c["object"] == "text_completion" and len(c["choices"]) == 1 for c in tokens)
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None] * 4 + ["length"]
    text = "".join(c["choices"][0]["text"] for c in tokens)
    assert len(text.split()) == 5 and not text.startswith(" ")
    assert final["choices"] == []
    assert final["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert len({c["id"] for c in chunks}) == 1


def test_chat_stream_and_usage_without_include_usage(ep: RunningEndpoint) -> None:
    body = {
        "messages": [{"role": "system", "content": "baba"}, {"role": "user", "content": "bebe bibi bobo"}],
        "max_tokens": 100,
        "stream": True,
    }
    status, _, raw = _request(ep, "POST", "/v1/chat/completions", body)
    assert status == 200
    chunks = [json.loads(e) for e in _events(raw)[:-1]]
    tokens = chunks[:-1]
    assert len(tokens) == 7  # default_output_tokens, under max_tokens
    assert tokens[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert tokens[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"max_tokens": 3}, 3),  # default 7 capped by max_tokens
        ({"max_tokens": 300, "ignore_eos": True}, 300),  # exact with ignore_eos
        ({"max_tokens": 50, "min_tokens": 20}, 20),  # raised to min_tokens
        ({}, 7),
    ],
)
def test_output_length(ep: RunningEndpoint, extra: dict[str, Any], expected: int) -> None:
    status, _, raw = _request(ep, "POST", "/v1/completions", {"prompt": [5, 6, 7, 8], **extra})
    assert status == 200
    payload = json.loads(raw)
    assert payload["object"] == "text_completion"
    assert len(payload["choices"][0]["text"].split()) == expected
    assert payload["usage"] == {"prompt_tokens": 4, "completion_tokens": expected, "total_tokens": 4 + expected}


def test_chat_non_stream(ep: RunningEndpoint) -> None:
    status, _, raw = _request(
        ep, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "a b"}], "max_tokens": 2}
    )
    payload = json.loads(raw)
    assert status == 200 and payload["object"] == "chat.completion"
    assert payload["choices"][0]["message"]["role"] == "assistant"
    assert payload["usage"]["completion_tokens"] == 2 == len(payload["choices"][0]["message"]["content"].split())


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", {"prompt": 5}, {"messages": []}, {"prompt": "a", "max_tokens": -1}]
)
def test_bad_requests_get_400_with_openai_error(ep: RunningEndpoint, body: Any) -> None:
    path = "/v1/chat/completions" if isinstance(body, dict) and "messages" in body else "/v1/completions"
    status, _, raw = _request(ep, "POST", path, body)
    assert status == 400
    assert "message" in json.loads(raw)["error"]


def test_server_request_log(ep: RunningEndpoint) -> None:
    before = len(ep.requests())
    _request(ep, "POST", "/v1/completions", {"prompt": "a b c d", "max_tokens": 4, "ignore_eos": True, "stream": True})
    rec = ep.requests()[before]
    assert (rec.prompt_tokens, rec.completion_tokens, rec.status, rec.fault) == (4, 4, "ok", None)
    assert rec.arrival < rec.first_token <= rec.last_token  # type: ignore[operator]
    assert rec.first_token - rec.arrival == pytest.approx(0.02, abs=0.01)  # type: ignore[operator]
    assert rec.last_token - rec.first_token == pytest.approx(3 * 0.002, abs=0.01)  # type: ignore[operator]


def test_evalscope_parallel_8_timing_and_tokens(tmp_path: Path) -> None:
    """Real evalscope perf at parallel 8: avg TTFT and TPOT within 5% of the configured values.

    evalscope itself adds 4-10 ms between starting its clock and the request
    reaching the server (more on a loaded 2-core machine), so at a 200 ms TTFT
    the error is 4-6 %; with 400 ms it is about 2 %. The server's own TTFT is
    checked to within 1 %.
    """
    tok = ensure_demo_tokenizer(tmp_path / "tok")
    ttft, tpot = 0.400, 0.020
    with EndpointThread(EndpointConfig(ttft_s=ttft, tpot_s=tpot)) as endpoint:
        run = run_evalscope_perf(
            endpoint.completions_url,
            tok,
            tmp_path / "out",
            parallel=8,
            number=32,
            warmup_num=8,
            input_tokens=100,
            output_tokens=30,
        )
        # evalscope's connection test is one more request, with its own short prompt
        server = [r for r in endpoint.requests() if r.prompt_tokens == 100]
    assert len(run.records) == 32 and not run.failed
    assert {r["prompt_tokens"] for r in run.records} == {100}
    assert {r["completion_tokens"] for r in run.records} == {30}
    assert len(server) == 32 + 8 and all(r.completion_tokens == 30 and r.status == "ok" for r in server)
    server_ttft = sum(r.first_token - r.arrival for r in server) / len(server)  # type: ignore[operator]
    server_tpot = sum((r.last_token - r.first_token) / 29 for r in server) / len(server)  # type: ignore[operator]
    avg_ttft = run.metrics["Avg TTFT (ms)"] / 1000
    avg_tpot = run.metrics["Avg TPOT (ms)"] / 1000
    print(
        f"evalscope avg TTFT {avg_ttft * 1000:.2f} ms ({(avg_ttft / ttft - 1) * 100:+.2f}%), "
        f"avg TPOT {avg_tpot * 1000:.3f} ms ({(avg_tpot / tpot - 1) * 100:+.2f}%); "
        f"server TTFT {server_ttft * 1000:.2f} ms, TPOT {server_tpot * 1000:.3f} ms"
    )
    assert server_ttft == pytest.approx(ttft, rel=0.01)
    assert server_tpot == pytest.approx(tpot, rel=0.01)
    assert avg_ttft == pytest.approx(ttft, rel=0.05)
    assert avg_tpot == pytest.approx(tpot, rel=0.05)


def test_cli_prints_url_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleetbench.endpoint.cli",
            "--port",
            "0",
            "--ttft-ms",
            "1",
            "--tpot-ms",
            "1",
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "a b", "max_tokens": 2}))
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["completion_tokens"] == 2 and lines[0]["prompt_tokens"] == 2


def test_cli_help_and_bad_port() -> None:
    out = subprocess.run([sys.executable, "-m", "fleetbench.endpoint.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--ttft-ms" in out.stdout and "--preset" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fleetbench.endpoint.cli", "--port", "70000"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "port" in bad.stderr
    _ = time
