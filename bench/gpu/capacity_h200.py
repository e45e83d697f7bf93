"""On a lent GPU machine: the load models of issue 18 against a REAL continuous-batching engine, `transformers serve`
(a random-weight Llama saved on the machine), driven by real agents and `ctl run`, as an operator would.

    python3 bench/gpu/capacity_h200.py OUTDIR [--agents 3] [--max 64]

1. a sweep (parallel 1, 4, 16, 64 per node) with `fixed_output: false` (the engine refuses evalscope's
   min_tokens: docs/plan.md) and `load: each` from every agent to the one engine — the engine's curve;
2. a `capacity` case whose p99 TPOT bound is set from that curve (between the 4- and 16-stream figures, so the
   knee lies inside the range: the point is to see the search find it on a real engine, not to judge the engine);
3. a `load: split` perf case: the cluster's total divided across the agents, one endpoint.

Prints the sweep's figures, every capacity probe (per-node concurrency, p99 TPOT, within the SLO or not), the
answer, and the split case's requests per agent; the JSON reports and engine log land in OUTDIR.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine_fleet import engine_and_agents

WORK = Path("/tmp/fb-cap")
MODEL = WORK / "tiny-llama"
HEAD = """\
name: {name}
model: {model}
endpoint: {{url: http://127.0.0.1:{ep}/v1/completions, api: openai}}
tokenizer: {model}
cases:
"""
SWEEP = """\
  - id: curve
    type: sweep
    parallel: [1, 4, 16, 64]
    number: [8, 32, 128, 256]
    input_tokens: [256]
    output_tokens: [64]
    fixed_output: false
"""
CAPACITY = """\
  - id: capacity
    type: capacity
    input_tokens: 256
    output_tokens: 64
    fixed_output: false
    parallel: {{min: {min}, max: {max}}}
    requests_per_stream: {rps}
    warmup_requests: 4
    slo: {{tpot_p99_s: {{max: {tpot:.4f}}}, success_rate: {{min: 1.0}}}}
"""
SPLIT = """\
  - {{id: split, parallel: {par}, number: {num}, input_tokens: 256, output_tokens: 64, fixed_output: false,
      load: split}}
"""

out = Path(sys.argv[1]).resolve()
log = (out / "capacity.log").open("w")


def say(*parts: object) -> None:
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    log.write(line + "\n")
    log.flush()


def ctl(*args: str) -> int:
    """`ctl ARGS`, its output line by line into the log as it comes (a command cut short still says how far)."""
    t = time.time()
    say(f"$ ctl {' '.join(args)}")
    with subprocess.Popen([sys.executable, "-m", "fleetbench.controller", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            if not line.startswith("case "):  # the per-node start/finish lines: the engine's log has them
                say(line.rstrip())
    say(f"-> exit {p.returncode} after {time.time() - t:.1f} s")
    return p.returncode


def ms(v: object) -> str:
    return "-" if not isinstance(v, int | float) or math.isnan(v) else f"{v * 1000:.1f}"


def recheck(db: Path) -> None:
    """Each stored cluster TPM against the same figure recomputed in plain SQL from the stored request rows (the
    records as they came over the wire), as docs/store.md shows it."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT run_id, case_id, figures_json FROM figures WHERE scope = 'cluster'").fetchall()
    for run_id, case_id, raw in rows:
        tokens, first, last = con.execute(
            "SELECT (SELECT sum(input_tokens + output_tokens) FROM requests WHERE run_id = :run AND case_id = :case "
            "AND success = 1), min(start_time), max(end_time) FROM requests WHERE run_id = :run AND case_id = :case",
            {"run": run_id, "case": case_id}).fetchone()
        stored = json.loads(raw).get("tpm_total")
        if stored is None:  # a warm-up step: in no figure
            continue
        again = tokens / (last - first) * 60 if tokens and last > first else float("nan")  # the report's order
        say(f"recheck {case_id}: stored cluster TPM {stored:,.3f}, from the stored rows {again:,.3f} "
            f"({'equal' if again == stored else f'differ by {again - stored:.3g}'})")
    con.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--min", type=int, default=1)
    ap.add_argument("--max", type=int, default=64)
    ap.add_argument("--no-split", action="store_true", help="skip the split case (a machine's time is short)")
    ap.add_argument("--tpot-ms", type=float, default=0.0,
                    help="the capacity SLO's p99 TPOT bound; given: no sweep first (a machine's time is short)")
    ap.add_argument("--requests-per-stream", type=int, default=4)
    a = ap.parse_args()
    names = [f"n{i + 1}" for i in range(a.agents)]
    fake = ("--ttft-ms", "30", "--tpot-ms", "5", "--max-concurrency", "24")

    def agent_log(name: str) -> Path:  # n1's log comes back from the machine; few files may
        return (out if name == "n1" else WORK) / f"agent-{name}.log"

    with engine_and_agents(WORK, MODEL, out, names, say, log_level="warning", fake_args=fake,
                           agent_log=agent_log) as (fleet, ep):
        db, nodes = WORK / "fb.sqlite", ",".join(names)

        def run(name: str, body: str) -> dict | None:
            plan = WORK / f"{name}.yaml"
            plan.write_text(HEAD.format(name=name, model=MODEL, ep=ep) + body)
            say(f"\n## {name}\n{body.rstrip()}")
            ctl("run", "--plan", str(plan), "--nodes", nodes, "--fleet", str(fleet), "--db", str(db),
                "--out", str(WORK / "reports" / name), "-q")
            found = sorted((WORK / "reports" / name).glob("*.json"))
            if not found:
                return None
            shutil.copy(found[-1], out / f"{name}.json")  # what comes back from the machine: a few files
            if name == "capacity":
                shutil.copy(found[-1].with_suffix(".md"), out / f"{name}.md")
            return json.loads(found[-1].read_text())

        curve = None if a.tpot_ms else run("curve", SWEEP)
        tpot = {}
        for row in curve["cases"][0]["sweep"] if curve else []:
            if row["scope"] != "cluster":
                continue
            f = row["figures"]
            tpot[row["parallel"]] = f["percentiles"]["tpot_s"]["99"]
            say(f"parallel {row['parallel']} per node: cluster TPM {f['tpm_total']:,.0f}  "
                f"TTFT p99 {ms(f['percentiles']['ttft_s']['99'])} ms  TPOT p99 {ms(tpot[row['parallel']])} ms  "
                f"success {f['success_rate']:.3f}  output tokens avg {f['output_tokens_avg']:.1f}")
        if a.tpot_ms:
            bound = a.tpot_ms / 1000
            say(f"capacity SLO: p99 TPOT ≤ {a.tpot_ms:.1f} ms (given)")
        else:
            bound = math.sqrt(tpot[4] * tpot[16]) if tpot.get(4) and tpot.get(16) else 0.05
            say(f"capacity SLO: p99 TPOT ≤ {bound * 1000:.1f} ms (geometric mean of the 4- and 16-stream figures)")
        t = time.time()
        cap = run("capacity", CAPACITY.format(min=a.min, max=a.max, tpot=bound, rps=a.requests_per_stream))
        say(f"capacity case wall time {time.time() - t:.1f} s")
        if cap is not None:
            for case in cap["cases"]:
                for scope, r in (case.get("capacity") or {}).items():
                    say(f"{scope}: max_parallel {r.get('max_parallel')}  TPM {r.get('tpm_total')}  "
                        f"goodput TPM {r.get('goodput_tpm')}  probes {len(r.get('probes', []))}")
                    for p in r.get("probes", []):
                        say(f"   {json.dumps(p)[:300]}")
        recheck(db)
        if a.no_split:
            return 0
        split = run("split", SPLIT.format(par=8 * a.agents + 1, num=32 * a.agents + 2))
        if split is not None:
            case = split["cases"][0]
            say(f"split: load {case['load']!r}, TPM basis {case['tpm_basis']!r}, verdict {case['verdict']}")
            cluster = case.get("cluster") or {}
            say("split cluster:", {k: cluster.get(k) for k in ("requests", "succeeded", "tpm_total")})
            for name, node in (case.get("nodes") or {}).items():
                say(f"split {name}: requests {node.get('requests')} succeeded {node.get('succeeded')}")
        return 0

if __name__ == "__main__":
    raise SystemExit(main())
