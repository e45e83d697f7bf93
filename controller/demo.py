"""`ctl demo`: the embedded default. Three agents and three simulated endpoints on
loopback, a built-in plan in the shape of seed 000 (perf, a concurrency sweep, a long-context
request and an accuracy eval), the store and the report."""

from __future__ import annotations

import json
from pathlib import Path

from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

from .localfleet import LocalFleet
from .plan import load_plan
from .progress import ProgressSink
from .runner import run_plan
from .store import Store

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
    purpose: Verify TTFT and TPOT meet their targets with 8 concurrent requests per node, and the cluster's TPM.
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
  - id: sweep-demo
    type: sweep
    purpose: Measure throughput and latency at concurrency 1, 4 and 8 on all nodes at once, to find the best load.
    parallel: [1, 4, 8]
    number: [4, 16, 32]
    input_tokens: [256]
    output_tokens: [32]
    extra_args: {{ignore_eos: true}}
    expect:
      success_rate: {{min: 1.0}}
  - id: long-context-demo
    type: long_context
    purpose: Verify every node answers one very long prompt (16k tokens here; 128k on a production fleet).
    input_tokens: 16000
    output_tokens: 16
    extra_args: {{ignore_eos: true}}
    expect:
      success_rate: {{min: 1.0}}
  - id: accuracy-demo
    type: eval
    purpose: Verify answer accuracy matches the model's official gsm8k score, at most 1 point below it.
    datasets: [gsm8k]
    dataset_args: {{gsm8k: {{local_path: {gsm8k}, few_shot_num: 0}}}}
    generation_config: {{max_tokens: 64}}
    eval_batch_size: 4
    expect:
      score: {{official: 80.0, tolerance: 1.0}}
cluster:
  expect:
    tpm_total: {{min: 100000}}
"""


# A five-question gsm8k in the layout evalscope loads offline (openai/gsm8k's `main` config), and the
# simulated engine's canned replies: right for four questions, so the demo's score is exactly 80.
DEMO_GSM8K = [
    ("Tom has 3 apples and buys 4 more. How many apples does Tom have now?", "3 + 4 = 7 apples.\n#### 7"),
    ("A box holds 6 eggs. How many eggs are in 5 boxes?", "6 * 5 = 30 eggs.\n#### 30"),
    ("Sara had 20 dollars and spent 8 dollars on lunch. How many dollars does Sara have left?",
     "20 - 8 = 12.\n#### 12"),
    ("There are 9 birds on a fence and 2 fly away. How many birds are left?", "9 - 2 = 7 birds.\n#### 7"),
    ("A baker makes 12 rolls per tray and bakes 3 trays. How many rolls does the baker make?", "12 * 3 = 36.\n#### 36"),
]
GSM8K_CARD = """---
configs:
- config_name: main
  data_files:
  - split: test
    path: main/test.jsonl
  - split: train
    path: main/train.jsonl
---
# gsm8k, five questions (fleetbench demo)
"""
DEMO_REPLIES = [
    ("Tom has 3 apples", "3 + 4 = 7. The answer is \\boxed{7}."),
    ("A box holds 6 eggs", "5 boxes hold \\boxed{30} eggs."),
    ("Sara had 20 dollars", "She has \\boxed{12} dollars left."),
    ("There are 9 birds", "\\boxed{7} birds are left."),
]


def write_demo_eval_data(workdir: Path) -> tuple[Path, Path]:
    """The demo's local gsm8k folder and the simulator's answers file."""
    main = workdir / "datasets" / "gsm8k" / "main"
    main.mkdir(parents=True, exist_ok=True)
    (main.parent / "README.md").write_text(GSM8K_CARD)
    rows = [json.dumps({"question": q, "answer": a}) + "\n" for q, a in DEMO_GSM8K]
    (main / "test.jsonl").write_text("".join(rows))
    (main / "train.jsonl").write_text("".join(rows[:1]))
    answers = workdir / "datasets" / "demo-answers.jsonl"
    answers.write_text("".join(json.dumps({"contains": c, "reply": r}) + "\n" for c, r in DEMO_REPLIES))
    return main.parent, answers


def run_demo(workdir: Path, progress: ProgressSink) -> int:
    """Run the demo plan on a local fleet; returns the run's exit code."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer = ensure_demo_tokenizer(workdir / "tokenizer")
    plan_path = workdir / "demo-plan.yaml"
    gsm8k, answers = write_demo_eval_data(workdir)
    plan_path.write_text(DEMO_PLAN.format(tokenizer=tokenizer, gsm8k=gsm8k))
    progress.message(f"demo: starting 3 agents and 3 simulated endpoints on loopback (work dir {workdir})")
    with LocalFleet(workdir, size=3, ttft_ms=DEMO_TTFT_MS, tpot_ms=DEMO_TPOT_MS,
                    extra_endpoint_args=["--answers", str(answers)], allow_paths=[workdir]) as fleet:
        fleet.write_fleet_file(workdir / "fleet.yaml")
        result = run_plan(load_plan(plan_path), fleet.nodes, Store(workdir / "fleetbench.sqlite"), workdir / "report",
                          progress)
        return result.exit_code
