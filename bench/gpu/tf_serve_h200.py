"""On a lent GPU machine: `ctl preflight` and `ctl run` of 3 real agents against ONE `transformers serve`
(continuous batching, a random-weight Llama saved on the machine), then which request fields that engine
takes. Everything printed here goes to OUTDIR/tf_serve.log too; the engine's log is OUTDIR/engine.log.

    python3 bench/gpu/tf_serve_h200.py OUTDIR

Expected (transformers 5.17): the engine answers HTTP 422 "Unexpected fields in the request" to evalscope's
min_tokens / ignore_eos, so `ctl preflight` and `ctl run` end with exit 2 within seconds, naming those
fields, and no load reaches the engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from engine_fleet import engine_and_agents

WORK = Path("/tmp/fb-tf")
MODEL = WORK / "tiny-llama"

PLAN = """\
name: transformers serve ({label})
model: {model}
endpoint: {{url: http://127.0.0.1:{ep}/v1/completions, api: openai}}
tokenizer: {model}
cases:
  - id: perf-256-32
    parallel: 4
    number: 16
    input_tokens: 256
    output_tokens: 32
{extra}"""

out = Path(sys.argv[1]).resolve()
log = (out / "tf_serve.log").open("w")


def say(*parts: object) -> None:
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    log.write(line + "\n")
    log.flush()


def post(ep: int, path: str, body: dict) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{ep}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def ctl(*args: str, timeout: int = 240) -> int:
    t = time.time()
    try:
        p = subprocess.run([sys.executable, "-m", "fleetbench.controller", *args], capture_output=True, text=True,
                           timeout=timeout)
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, text = -1, f"{(e.stdout or b'').decode()}{(e.stderr or b'').decode()}\n(timed out after {timeout} s)"
    say(f"$ ctl {' '.join(args)}")
    say(text.rstrip())
    say(f"-> exit {rc} after {time.time() - t:.1f} s")
    return rc


def completions_in_engine_log() -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in (out / "engine.log").read_text(errors="replace").splitlines():
        if "POST /v1/completions" in line:
            status = line.rsplit('"', 1)[-1].strip() or "?"
            counts[status] = counts.get(status, 0) + 1
    return counts


def main() -> int:
    with engine_and_agents(WORK, MODEL, out, ("n1", "n2", "n3"), say) as (fleet, ep):
        db, rep = WORK / "fb.sqlite", WORK / "report"
        plans = {}
        for label, extra in (("ignore_eos", "    extra_args: {ignore_eos: true}\n"), ("no-extra-args", "")):
            plans[label] = WORK / f"plan-{label}.yaml"
            plans[label].write_text(PLAN.format(label=label, model=MODEL, ep=ep, extra=extra))

        say("\n## a perf case with extra_args {ignore_eos: true}")
        ctl("preflight", "--plan", str(plans["ignore_eos"]), "--nodes", "n1,n2,n3", "--fleet", str(fleet), "-q")
        say("engine log, POST /v1/completions by status:", completions_in_engine_log())
        ctl("run", "--plan", str(plans["ignore_eos"]), "--nodes", "n1,n2,n3", "--fleet", str(fleet), "--db", str(db),
            "--out", str(rep), "-q")
        say("engine log, POST /v1/completions by status:", completions_in_engine_log())

        say("\n## the same case without extra_args")
        ctl("preflight", "--plan", str(plans["no-extra-args"]), "--nodes", "n1,n2,n3", "--fleet", str(fleet), "-q")
        say("engine log, POST /v1/completions by status:", completions_in_engine_log())

        say("\n## which fields the engine takes (/v1/completions, one request each)")
        from openai.types.completion_create_params import CompletionCreateParamsBase

        say("accepted by 5.17's validator (openai's CompletionCreateParamsBase keys + generation_config, seed, "
            "stream):", sorted(CompletionCreateParamsBase.__mutable_keys__ | {"generation_config", "seed", "stream"}))
        base = {"model": str(MODEL), "prompt": "baba bebe bibi bobo", "max_tokens": 8, "temperature": 0.0}
        probes = {
            "plain (model, prompt, max_tokens, temperature)": {},
            "stream + stream_options": {"stream": True, "stream_options": {"include_usage": True}},
            "min_tokens": {"min_tokens": 8},
            "ignore_eos": {"ignore_eos": True},
            "top_k": {"top_k": 5},
            "repetition_penalty": {"repetition_penalty": 1.1},
            "stop_token_ids": {"stop_token_ids": [2]},
            "seed": {"seed": 1},
            "generation_config min_new_tokens": {"generation_config": json.dumps({"min_new_tokens": 8,
                                                                                  "max_new_tokens": 8})},
        }
        for what, fields in probes.items():
            status, body = post(ep, "/v1/completions", {**base, **fields})
            say(f"{what}: HTTP {status} {' '.join(body.split())[:200]}")
        status, body = post(ep, "/v1/chat/completions", {"model": str(MODEL), "max_tokens": 8, "min_tokens": 8,
                                                        "messages": [{"role": "user", "content": "baba"}]})
        say(f"chat + min_tokens: HTTP {status} {' '.join(body.split())[:200]}")
        return 0

if __name__ == "__main__":
    raise SystemExit(main())
