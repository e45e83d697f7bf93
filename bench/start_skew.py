"""Start skew of the two-phase start: how far apart the nodes' first requests go out.

Real agents and simulated endpoints on loopback (controller/localfleet.py), a small perf case run
`--runs` times through the orchestrator (the preflight is skipped: it is not what is measured). The
skew of one run is max − min over nodes of the node's first request's start time, each on the
controller's clock (the records as stored). Targets (issue 13): 3 agents ≤ 20 ms on a 16-core host and
≤ 50 ms on a 2-core VM; 32 agents ≤ 100 ms. `--slow NODE=SECONDS` makes one node prepare that much
longer (the others must wait for it, so the skew must not grow).

Run: .venv/bin/python bench/start_skew.py [--agents 3] [--runs 10] [--slow n2=5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from fleetbench.controller.localfleet import LocalFleet
from fleetbench.controller.orchestrator import Orchestrator
from fleetbench.controller.plan import load_plan
from fleetbench.controller.progress import QuietProgress
from fleetbench.controller.store import Store
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

PLAN = """\
name: start skew
model: demo
endpoint: {{url: http://127.0.0.1:8000/v1/completions, api: openai}}
tokenizer: {tokenizer}
cases:
  - id: skew
    parallel: {parallel}
    number: {number}
    input_tokens: 128
    output_tokens: 16
    extra_args: {{ignore_eos: true}}
"""


def skew_of(store: Store, run_id: str) -> tuple[float, float]:
    """(start skew, common window) of the run's one case, from the stored records."""
    row = store.db.execute(
        "SELECT max(first) - min(first), max(last) - min(first) FROM (SELECT node, min(start_time) AS first, "
        "max(end_time) AS last FROM requests WHERE run_id = ? GROUP BY node)", [run_id]).fetchone()
    return float(row[0]), float(row[1])


async def measure(fleet: LocalFleet, plan_path: Path, db: Path, runs: int) -> list[tuple[float, float, str]]:
    out = []
    for i in range(runs):
        store = Store(db)
        orch = Orchestrator(load_plan(plan_path), fleet.nodes, store, QuietProgress(), preflight=False)
        t0 = time.perf_counter()
        try:
            outcome = await orch.run()
        finally:
            await orch.close()
        skew, window = skew_of(store, outcome.run_id)
        out.append((skew, window, outcome.state.value))
        step_s = time.perf_counter() - t0
        print(f"run {i + 1:2d}: skew {skew * 1000:7.1f} ms  window {window:6.2f} s  step {step_s:5.1f} s"
              f"  {outcome.state.upper()}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--number", type=int, default=16)
    ap.add_argument("--slow", action="append", default=[], help="NODE=SECONDS: that node prepares slower")
    args = ap.parse_args()
    agent_env: dict[str, dict[str, str]] = {}
    for item in args.slow:
        node, _, seconds = item.partition("=")
        agent_env[node] = {"FLEETBENCH_TEST_PREPARE_DELAY_S": seconds}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer = ensure_demo_tokenizer(work / "tokenizer")
        plan = work / "plan.yaml"
        plan.write_text(PLAN.format(tokenizer=tokenizer, parallel=args.parallel, number=args.number))
        print(f"{args.agents} agents on loopback, {os.cpu_count()} cores, {args.runs} runs, parallel "
              f"{args.parallel} number {args.number} per node" + (f", slow: {', '.join(args.slow)}" if args.slow
                                                                   else ""), flush=True)
        with LocalFleet(work, size=args.agents, ttft_ms=50, tpot_ms=5, agent_env=agent_env,
                        allow_paths=[work]) as fleet:
            results = asyncio.run(measure(fleet, plan, work / "bench.sqlite", args.runs))
    skews = [s for s, _, _ in results]
    print(f"start skew over {len(skews)} runs: median {statistics.median(skews) * 1000:.1f} ms, "
          f"max {max(skews) * 1000:.1f} ms; states: {', '.join(sorted({st for _, _, st in results}))}")


if __name__ == "__main__":
    main()
