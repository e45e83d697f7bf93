"""How a perf case is split over load-generator workers (issue 8: `workers: N`)."""

import asyncio
import json
import time

import pytest

from fleetbench.agent.jobspec import KIND_PERF, auto_workers, parse_spec, split_in_proportion
from fleetbench.agent.start_barrier import StartBarrier
from fleetbench.errors import ConfigError


def _spec(parallel: int, number: int, workers: int, rate: float = 0.0):
    spec = parse_spec(KIND_PERF, json.dumps({
        "url": "http://127.0.0.1:1/v1/completions", "model": "m", "tokenizer_path": "/t", "input_tokens": 8,
        "output_tokens": 8, "parallel": parallel, "number": number, "workers": workers}))
    return spec.model_copy(update={"rate": rate})


def test_requests_follow_streams_so_every_worker_runs_the_same_rounds():
    # found by bench/headroom.py: 192 requests over 64 streams in 6 workers went 32 each, so the
    # two 10-stream workers ran a 4th round and stretched the node's window by a third
    shards = [_spec(64, 192, 6).shard(i) for i in range(6)]
    assert [s.parallel for s in shards] == [11, 11, 11, 11, 10, 10]
    assert [s.number for s in shards] == [33, 33, 33, 33, 30, 30]
    assert {-(-s.number // s.parallel) for s in shards} == {3}
    assert [s.dataset_offset for s in shards] == [0, 33, 66, 99, 132, 162]  # distinct prompts
    assert all(s.workers == 1 for s in shards)


def test_rate_follows_streams():
    shards = [_spec(3, 30, 2, rate=9.0).shard(i) for i in range(2)]
    assert [s.rate for s in shards] == [6.0, 3.0]
    assert sum(s.rate for s in shards) == 9.0


def test_split_sums_exactly_and_leaves_no_worker_idle():
    for total in range(1, 60):
        for weights in ([1], [2, 1], [11, 11, 10], [7, 1, 1, 1], [5, 5, 5, 4], [100, 1]):
            if total < len(weights):
                continue
            shares = split_in_proportion(total, weights)
            assert sum(shares) == total and min(shares) >= 1, (total, weights, shares)
    assert split_in_proportion(10, [2, 1, 1, 1]) == [4, 2, 2, 2]


def test_workers_start_at_one_instant(tmp_path):
    # each worker reaches its first request at a different time (imports, prompts); all start together
    async def worker(i: int, ready_after_s: float) -> tuple[float, float]:
        await asyncio.sleep(ready_after_s)
        go = await StartBarrier(tmp_path, i, 3).wait()
        return go, time.time()

    async def main():
        return await asyncio.gather(worker(0, 0.0), worker(1, 0.3), worker(2, 0.15))

    results = asyncio.run(main())
    gos = {go for go, _ in results}
    assert len(gos) == 1
    started = [t for _, t in results]
    assert max(started) - min(started) < 0.02
    assert min(started) >= gos.pop()


def test_a_worker_that_never_gets_ready_does_not_hold_the_others_forever(tmp_path):
    t0 = time.time()
    asyncio.run(StartBarrier(tmp_path, 0, 2, timeout_s=0.3).wait())
    assert 0.3 <= time.time() - t0 < 2


def test_auto_workers_one_per_64_streams_within_half_the_cores():
    assert auto_workers(1, 1, 16) == 1
    assert auto_workers(64, 640, 16) == 1
    assert auto_workers(84, 168, 2) == 1  # seed 000's load on a 2-core machine: the engine needs the other core
    assert auto_workers(84, 168, 16) == 2
    assert auto_workers(512, 2048, 16) == 8  # 6 workers measured TPOT within 0.4 % at 512 streams on 16 cores
    assert auto_workers(1024, 4096, 16) == 8  # half the cores at most
    assert auto_workers(1024, 4096, 192) == 16
    assert auto_workers(200, 3, 64) == 3  # never more workers than requests


def test_workers_zero_means_auto_and_negative_is_refused():
    assert _spec(8, 8, 0).workers == 0
    with pytest.raises(ConfigError, match="workers must be a non-negative integer"):
        _spec(8, 8, -1)
