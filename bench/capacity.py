"""The capacity search against the simulator: its probe count and wall time, per node and for several nodes, by
concurrency (`--axis parallel`, the default) or by request rate (`--axis rate`).

Real agents and simulated endpoints on loopback (controller/localfleet.py); every endpoint serves at most
`--limit` requests at once and queues the rest (`--max-concurrency`), so each node's knee is the limit. One
capacity case (p99 TTFT within a bound only the unqueued requests meet) runs through the orchestrator (the
preflight is skipped: not what is measured). By rate: the endpoint serves at most limit / 0.24 s requests/s; the
SLO (p99 TTFT <= 0.5 s) breaks at or below that (Poisson arrivals queue before it), and the answer is printed
against it. Prints, per scope, the answer against the knee, then the probes
(valid and invalid), the wall time and the time per probe.

Run: .venv/bin/python bench/capacity.py [--agents 3] [--limit 8] [--max 64] [--confirm 2] [--axis rate]
     [--probe-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from fleetbench.controller.localfleet import LocalFleet
from fleetbench.controller.orchestrator import Orchestrator
from fleetbench.controller.plan import load_plan
from fleetbench.controller.progress import QuietProgress
from fleetbench.controller.store import Store
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

TTFT_MS, TPOT_MS, OUTPUT_TOKENS = 150, 10, 10  # a request: 150 + 9 × 10 = 240 ms; queued ones wait about that more
PLAN = """\
name: capacity bench
model: demo
endpoint: {{url: http://127.0.0.1:9/v1/completions, api: openai}}
tokenizer: {tokenizer}
cases:
  - id: cap
    type: capacity
    input_tokens: 32
    output_tokens: {output}
    extra_args: {{ignore_eos: true}}
    {axis}
    confirm: {confirm}
    slo: {{ttft_p99_s: {{max: {slo}}}, success_rate: {{min: 1.0}}}}
"""


async def search(fleet: LocalFleet, plan_path: Path, db: Path) -> tuple[str, dict, float]:
    store = Store(db)
    orch = Orchestrator(load_plan(plan_path), fleet.nodes, store, QuietProgress(), preflight=False)
    t0 = time.perf_counter()
    try:
        outcome = await orch.run()
    finally:
        await orch.close()
    wall = time.perf_counter() - t0
    row = next(r for r in store.figures(outcome.run_id) if r["case_id"] == "cap")
    return outcome.state.value, json.loads(row["extra_json"])["capacity"], wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--limit", type=int, default=8, help="each endpoint's concurrency limit: the knee")
    ap.add_argument("--max", type=int, default=64, help="the search range's max per node")
    ap.add_argument("--rps", type=int, default=2, help="requests per stream in each probe")
    ap.add_argument("--confirm", type=int, default=2)
    ap.add_argument("--axis", choices=("parallel", "rate"), default="parallel")
    ap.add_argument("--probe-s", type=float, default=10.0, help="a rate probe's seconds of arrivals")
    args = ap.parse_args()
    service_s = (TTFT_MS + (OUTPUT_TOKENS - 1) * TPOT_MS) / 1000
    by_rate = args.axis == "rate"
    axis = (f"rate: {{min: 1, max: {args.max}}}\n    probe_duration_s: {args.probe_s}" if by_rate else
            f"parallel: {{min: 1, max: {args.max}}}\n    requests_per_stream: {args.rps}")
    knee = f"capacity {args.limit / service_s:.2f} req/s" if by_rate else f"knee {args.limit}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = work / "plan.yaml"
        plan.write_text(PLAN.format(tokenizer=ensure_demo_tokenizer(work / "tokenizer"), output=OUTPUT_TOKENS,
                                    axis=axis, confirm=args.confirm, slo=0.5 if by_rate else 0.3))
        how = f"{args.probe_s:g} s of arrivals per probe" if by_rate else f"{args.rps} requests per stream"
        print(f"{args.agents} agent(s) on loopback, {os.cpu_count()} cores; endpoints: at most {args.limit} at once, "
              f"TTFT {TTFT_MS} ms, TPOT {TPOT_MS} ms; search {args.axis} 1..{args.max}, {how}, confirm "
              f"{args.confirm}", flush=True)
        with LocalFleet(work, size=args.agents, ttft_ms=TTFT_MS, tpot_ms=TPOT_MS,
                        extra_endpoint_args=["--max-concurrency", str(args.limit)]) as fleet:
            state, cap, wall = asyncio.run(search(fleet, plan, work / "bench.sqlite"))
    probes = cap["cluster"]["probes"]
    invalid = sum(1 for p in probes if p["state"] == "invalid")
    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f}"

    for scope, r in cap.items():
        print(f"{scope:8s} max_{args.axis} {r[f'max_{args.axis}']} ({knee})  TPM {num(r['tpm_total'])}  "
              f"goodput TPM {num(r['goodput_tpm'])}")
    print("probes: " + " ".join(f"{p['value']:g}{'*' if p['state'] == 'invalid' else ''}" for p in probes)
          + ("  (* invalid, run again)" if invalid else ""))
    print(f"{state.upper()}: {len(probes)} probes ({invalid} invalid), wall {wall:.1f} s, "
          f"{wall / max(len(probes), 1):.1f} s per probe")


if __name__ == "__main__":
    main()
