"""The simulator's concurrency limit (`--max-concurrency`): requests beyond it queue, and the wait is in their
TTFT — the knee the capacity search finds."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from fleetbench.endpoint.config import EndpointConfig
from fleetbench.endpoint.testing import EndpointThread
from fleetbench.errors import ConfigError

pytestmark = pytest.mark.integration

TTFT, TPOT, TOKENS = 0.15, 0.01, 11  # one request: 0.15 + 10 × 0.01 = 0.25 s


def first_token_after(port: int, out: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps({"model": "demo", "prompt": "hi", "stream": True,
                                                             "max_tokens": TOKENS, "ignore_eos": True}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    first = 0.0
    for line in resp:
        if line.startswith(b"data: {") and not first:
            first = time.perf_counter() - t0
    conn.close()
    out.append(first)


def ttfts(port: int, clients: int) -> list[float]:
    out: list[float] = []
    threads = [threading.Thread(target=first_token_after, args=(port, out)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(out)


def test_requests_beyond_the_limit_wait_and_their_ttft_counts_the_wait():
    with EndpointThread(EndpointConfig(ttft_s=TTFT, tpot_s=TPOT, max_concurrency=2)) as ep:
        at_limit = ttfts(ep.port, 2)
        above = ttfts(ep.port, 4)
        stats = ep.stats()
    assert all(t < TTFT + 0.08 for t in at_limit), at_limit
    assert all(t < TTFT + 0.08 for t in above[:2]), above
    # the other two waited for a slot: one request's duration (0.25 s) more
    assert all(TTFT + 0.25 - 0.02 < t < TTFT + 0.25 + 0.1 for t in above[2:]), above
    assert stats["answered"] == 6


def test_no_limit_by_default_and_a_bad_limit_is_refused():
    with EndpointThread(EndpointConfig(ttft_s=TTFT, tpot_s=TPOT)) as ep:
        assert all(t < TTFT + 0.08 for t in ttfts(ep.port, 4))
    with pytest.raises(ConfigError, match="max_concurrency"):
        EndpointConfig(max_concurrency=-1).validate()
