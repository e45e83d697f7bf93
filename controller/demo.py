"""`ctl demo`: the embedded default. Three agents and three simulated endpoints on
loopback, a built-in plan in the shape of seed 000, the store and the report."""

from __future__ import annotations

from pathlib import Path

from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

from .localfleet import LocalFleet
from .progress import ProgressSink

# The simulated engine: 0.5 s to the first token, then 20 ms per token (seed 000's TPOT target).
DEMO_TTFT_MS, DEMO_TPOT_MS = 500.0, 20.0

DEMO_PLAN = """\
# fleetbench demo plan: seed 000's shape, scaled to a laptop.
name: fleetbench demo acceptance
model: demo
endpoint: {{url: http://127.0.0.1:8000/v1/completions, api: openai, api_key: EMPTY}}
tokenizer: {tokenizer}
cases:
  - id: perf-demo
    type: perf
    purpose: Check TTFT/TPOT and cluster throughput of the (simulated) serving engine on every node.
    rate: -1
    parallel: 8
    number: 64
    input_tokens: 256
    output_tokens: 64
    extra_args: {{ignore_eos: true}}
    expect:
      ttft_avg_s: {{max: 2.0}}
      tpot_avg_s: {{max: 0.025}}
      success_rate: {{min: 1.0}}
cluster:
  expect:
    tpm_total: {{min: 100000}}
"""


def run_demo(workdir: Path, progress: ProgressSink) -> int:
    from .cli import execute_plan

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer = ensure_demo_tokenizer(workdir / "tokenizer")
    plan_path = workdir / "demo-plan.yaml"
    plan_path.write_text(DEMO_PLAN.format(tokenizer=tokenizer))
    progress.message(f"demo: starting 3 agents and 3 simulated endpoints on loopback (work dir {workdir})")
    with LocalFleet(workdir, size=3, ttft_ms=DEMO_TTFT_MS, tpot_ms=DEMO_TPOT_MS) as fleet:
        fleet.write_fleet_file(workdir / "fleet.yaml")
        return execute_plan(plan_path, fleet.nodes, workdir / "fleetbench.sqlite", workdir / "report", progress)
