"""Aggregation at fleet scale: 3 nodes x 100k records merged, percentiles, stored, report written.

Target (issue 8): merge + percentiles + report <= 2 s. Storing 300k rows in SQLite is timed
separately (it is I/O, done once per run as records arrive).
Run: .venv/bin/python bench/aggregation.py [--per-node 100000] [--itl 20]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from fleetbench.controller.aggregate import CLUSTER, aggregate_case, judge
from fleetbench.controller.plan import Expectation
from fleetbench.controller.report.markdown import render_markdown
from fleetbench.controller.report.model import load_report
from fleetbench.controller.store import Store
from fleetbench.records import RequestRecord

PLAN = """name: aggregation bench
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - {id: load, parallel: 84, number: 100000, input_tokens: 6000, output_tokens: 1000}
"""


def synth(node: int, n: int, itl_per_request: int) -> list[RequestRecord]:
    rng = random.Random(node)
    out = []
    t = 1_700_000_000.0 + node * 0.01
    for i in range(n):
        ttft = rng.lognormvariate(0.5, 0.4)
        gaps = tuple(rng.uniform(0.015, 0.025) for _ in range(itl_per_request))
        latency = ttft + sum(gaps)
        out.append(RequestRecord(i, t, t + latency, rng.random() > 0.001, ttft, latency, 6000, 1000,
                                 (latency - ttft) / 999, gaps))
        t += 0.05
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-node", type=int, default=100_000)
    ap.add_argument("--itl", type=int, default=20, help="inter-token gaps kept per request")
    args = ap.parse_args()
    t0 = time.perf_counter()
    by_node = {f"n{i}": synth(i, args.per_node, args.itl) for i in range(1, 4)}
    t_synth = time.perf_counter() - t0

    t0 = time.perf_counter()
    agg = aggregate_case(by_node)
    verdicts = judge(CLUSTER, agg.cluster, [Expectation("ttft_p99_s", "max", 5.0)])
    t_agg = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.sqlite")
        store.create_run("r1", "aggregation bench", "m", PLAN, list(by_node), "bench")
        for node in by_node:
            store.add_node("r1", node, address="x:1", endpoint="", hostname=node, agent_version="",
                           evalscope_version="", clock_offset_s=0.0, rtt_s=0.0, inventory_json="")
        t0 = time.perf_counter()
        for node, recs in by_node.items():
            store.add_requests("r1", "load", node, 0.0, recs)
        t_store_records = time.perf_counter() - t0
        t0 = time.perf_counter()
        for node, figs in agg.nodes.items():
            store.set_figures("r1", "load", node, figs)
        store.set_figures("r1", "load", CLUSTER, agg.cluster, extra={"sum_node_tpm_total": agg.sum_node_tpm_total})
        store.add_verdicts("r1", "load", verdicts)
        store.finish_run("r1", "pass")
        md = render_markdown(load_report(store, "r1"))
        t_report = time.perf_counter() - t0
    total = t_agg + t_report
    n = 3 * args.per_node
    print(f"records: {n:,} ({args.itl} ITL gaps each); synthesis {t_synth:.2f} s (not counted)")
    print(f"merge + figures + percentiles (3 nodes and cluster): {t_agg:.3f} s")
    print(f"figures/verdicts stored + report rendered ({len(md):,} chars): {t_report:.3f} s")
    print(f"total (target <= 2 s): {total:.3f} s -> {total / 2.0:.2f}x of target")
    print(f"storing {n:,} request rows in SQLite: {t_store_records:.2f} s ({n / t_store_records:,.0f} rows/s)")


if __name__ == "__main__":
    main()
