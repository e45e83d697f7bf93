"""On a GPU machine: a real agent (NVML inventory) and `ctl run` of a plan against bench/gpu/engine.py.

    python bench/gpu/run.py OUTDIR     # writes the reports, the inventory and the logs to OUTDIR
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

PLAN = """\
name: fleetbench on a real GPU ({gpu})
model: demo
endpoint: {{url: http://127.0.0.1:{ep}/v1/completions}}
tokenizer: {tok}
cases:
  - id: perf-512-128
    purpose: a perf case against a real (random-weight) model on the GPU
    parallel: 8
    number: 64
    input_tokens: 512
    output_tokens: 128
    extra_args: {{ignore_eos: true}}
    expect: {{success_rate: {{min: 1.0}}}}
  - id: concurrency
    type: sweep
    purpose: TTFT and TPOT grow with concurrency as the GPU is shared
    parallel: [1, 4, 16]
    number: [8, 16, 32]
    input_tokens: [1024]
    output_tokens: [64]
    extra_args: {{ignore_eos: true}}
    expect: {{success_rate: {{min: 1.0}}}}
  - id: long-16k
    type: long_context
    input_tokens: 16000
    output_tokens: 16
    extra_args: {{ignore_eos: true}}
    expect: {{success_rate: {{min: 1.0}}}}
"""


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    work = Path("/tmp/fb-gpu")
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    ep, ag = free_port(), free_port()
    logs = [open(out / "engine.log", "w"), open(out / "agent.log", "w")]  # noqa: SIM115
    engine = subprocess.Popen([sys.executable, str(Path(__file__).with_name("engine.py")), "--port", str(ep),
                               "--log", str(work / "engine-requests.jsonl")], stdout=logs[0], stderr=subprocess.STDOUT,
                              env=env)
    agent = subprocess.Popen([sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"127.0.0.1:{ag}",
                              "--data-dir", str(work / "agent"), "--allow-path", str(work)],
                             stdout=logs[1], stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(ag, 60, agent)
        wait_for_port(ep, 300, engine)
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True).stdout.strip().splitlines()[0]
        plan = work / "plan.yaml"
        plan.write_text(PLAN.format(gpu=gpu, ep=ep, tok=ensure_demo_tokenizer(work / "tok")))
        (work / "fleet.yaml").write_text(f'nodes:\n  gpu1: {{address: "127.0.0.1:{ag}", '
                                         f'endpoint: "http://127.0.0.1:{ep}/v1/completions"}}\n')
        ctl = [sys.executable, "-m", "fleetbench.controller"]
        t0 = time.time()
        inv = subprocess.run([*ctl, "inventory", "--nodes", "gpu1", "--fleet", str(work / "fleet.yaml"),
                              "--db", str(work / "fb.sqlite")], capture_output=True, text=True, env=env)
        (out / "inventory.txt").write_text(inv.stdout + inv.stderr)
        run = subprocess.run([*ctl, "run", "--plan", str(plan), "--nodes", "gpu1", "--fleet", str(work / "fleet.yaml"),
                              "--db", str(work / "fb.sqlite"), "--out", str(work / "report"), "-q"],
                             capture_output=True, text=True, env=env)
        (out / "run.log").write_text(run.stdout + run.stderr + f"\nexit {run.returncode}, {time.time() - t0:.0f} s\n")
        for f in (work / "report").iterdir():
            if f.suffix in (".md", ".html", ".json"):
                (out / f.name).write_bytes(f.read_bytes())
        print(run.stderr[-3000:])
        return run.returncode
    finally:
        for p in (agent, engine):
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
