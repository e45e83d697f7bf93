"""Fault injection seen through real evalscope, and the engine model's TTFT under concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from fleetbench.endpoint.config import EndpointConfig, FaultConfig, preset_config
from fleetbench.endpoint.engine import simulate
from fleetbench.endpoint.server import _pick_fault
from fleetbench.endpoint.testing import EndpointThread, run_evalscope_perf
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

pytestmark = pytest.mark.integration

FAILING = ("http_500", "reset", "malformed", "stall", "slow_first_token")


def test_every_fault_is_a_failed_request_in_evalscope_and_the_run_completes(tmp_path: Path) -> None:
    faults = FaultConfig(
        http_500=0.1,
        reset=0.1,
        malformed=0.1,
        stall=0.1,
        slow_first_token=0.1,
        stall_s=2.5,
        slow_first_token_s=2.5,
        seed=3,
    )
    config = EndpointConfig(ttft_s=0.02, tpot_s=0.004, faults=faults)
    tok = ensure_demo_tokenizer(tmp_path / "tok")
    with EndpointThread(config) as ep:
        run = run_evalscope_perf(
            ep.completions_url,
            tok,
            tmp_path / "out",
            parallel=8,
            number=40,
            input_tokens=20,
            output_tokens=12,
            read_timeout=1,
            no_test_connection=True,
        )
        server = {r.body_sha256: r for r in ep.requests()}
    assert len(run.records) == 40
    kinds: Counter[str] = Counter()
    for rec in run.records:
        truth = server[hashlib.sha256(rec["request"].encode()).hexdigest()]
        kinds[truth.fault or "none"] += 1
        assert bool(rec["success"]) == (truth.fault is None), (truth, rec["success"])
        if truth.fault is None:
            assert (rec["prompt_tokens"], rec["completion_tokens"]) == (20, 12)
    assert set(FAILING) <= set(kinds), kinds  # seed 3 draws every kind at least once
    assert run.metrics["Failed Requests"] == sum(kinds[k] for k in FAILING)
    # deterministic: the same seed gives the same faults for the same arrival order
    assert [r.fault for r in sorted(server.values(), key=lambda r: r.index)] == [
        _pick_fault(faults, i) for i in range(len(server))
    ]


def test_slow_first_token_below_read_timeout_only_raises_ttft() -> None:
    faults = FaultConfig(slow_first_token=1.0, slow_first_token_s=0.3)
    with EndpointThread(EndpointConfig(ttft_s=0.02, tpot_s=0.002, faults=faults)) as ep:
        stats = asyncio.run(_stream_many(ep.completions_url, parallel=1, number=1, prompt_words=5, max_tokens=4))
        rec = ep.requests()[0]
    assert stats[0][0] == pytest.approx(0.32, abs=0.05)
    assert rec.fault == "slow_first_token" and rec.completion_tokens == 4 and rec.status == "fault"


def test_request_log_jsonl(tmp_path: Path) -> None:
    log = tmp_path / "log" / "requests.jsonl"
    with EndpointThread(
        EndpointConfig(ttft_s=0.01, tpot_s=0.001, log_path=log, faults=FaultConfig(http_500=1.0))
    ) as ep:
        asyncio.run(_stream_many(ep.completions_url, parallel=2, number=3, prompt_words=3, max_tokens=2, ok=False))
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 3
    assert {(x["fault"], x["http_status"], x["status"]) for x in lines} == {("http_500", 500, "fault")}
    assert all(x["arrival"] > 1e9 for x in lines)


async def _stream_many(
    url: str, *, parallel: int, number: int, prompt_words: int, max_tokens: int, ok: bool = True
) -> list[tuple[float, float]]:
    """A minimal closed-loop streaming client: (ttft, tpot) per request."""
    body = {"prompt": " ".join(["baba"] * prompt_words), "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    results: list[tuple[float, float]] = []
    queue = list(range(number))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while queue:
                queue.pop()
                start = time.perf_counter()
                stamps: list[float] = []
                async with session.post(url, json=body) as resp:
                    if not ok:
                        await resp.read()
                        continue
                    assert resp.status == 200
                    async for line in resp.content:
                        if line.startswith(b"data: {") and b'"text"' in line:
                            stamps.append(time.perf_counter())
                assert len(stamps) == max_tokens
                results.append((stamps[0] - start, (stamps[-1] - stamps[0]) / max(1, max_tokens - 1)))

        await asyncio.gather(*(worker() for _ in range(parallel)))
    return results


def test_engine_ttft_rises_with_concurrency_like_the_model() -> None:
    config = preset_config("fast")
    assert config.engine is not None
    measured = {}
    with EndpointThread(config) as ep:
        for parallel in (1, 16):
            stats = asyncio.run(
                _stream_many(
                    ep.completions_url, parallel=parallel, number=2 * parallel, prompt_words=512, max_tokens=32
                )
            )
            measured[parallel] = sum(s[0] for s in stats) / len(stats)
        server = ep.requests()
    predicted = {
        p: simulate(config.engine, parallel=p, number=2 * p, input_tokens=512, output_tokens=32).avg_ttft_s
        for p in (1, 16)
    }
    print(f"engine 'fast' avg TTFT measured {measured}, simulated {predicted}")
    assert measured[16] > 5 * measured[1]
    for p in (1, 16):
        assert measured[p] == pytest.approx(predicted[p], rel=0.25, abs=0.01)
    assert all(r.status == "ok" and r.completion_tokens == 32 and r.prompt_tokens == 512 for r in server)


def test_engine_long_prompt_has_longer_ttft() -> None:
    with EndpointThread(preset_config("fast")) as ep:
        short = asyncio.run(_stream_many(ep.completions_url, parallel=1, number=1, prompt_words=100, max_tokens=4))
        long = asyncio.run(_stream_many(ep.completions_url, parallel=1, number=1, prompt_words=20000, max_tokens=4))
    # 20000 tokens at 50k tok/s in 2048-token chunks: ≈ 0.4 s of prefill plus 10 steps
    assert long[0][0] > 0.4 > short[0][0]


def test_engine_frees_the_batch_after_resets_stalls_and_disconnects() -> None:
    faults = FaultConfig(reset=0.5, stall=0.3, stall_s=0.5, seed=1)

    async def run(url: str) -> list[str]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.2)) as session:

            async def one() -> str:
                body = {"prompt": "a b c", "max_tokens": 20, "ignore_eos": True, "stream": True}
                try:
                    async with session.post(url, json=body) as resp:
                        await resp.read()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    return type(exc).__name__
                return "ok"

            return await asyncio.gather(*(one() for _ in range(12)))

    with EndpointThread(preset_config("fast", faults=faults)) as ep:
        outcomes = asyncio.run(run(ep.completions_url))
        time.sleep(0.7)  # stalled handlers wake up, find the client gone
        records = ep.requests()
        core = ep._server.engine.core  # type: ignore[attr-defined]
        assert core.idle and core.kv_used == 0
    assert outcomes.count("ok") == sum(r.fault is None for r in records) > 0
    assert {r.status for r in records if r.fault == "stall"} == {"client_disconnected"}
    assert all(r.completion_tokens == 10 for r in records if r.fault in ("reset", "stall"))
