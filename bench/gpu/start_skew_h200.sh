#!/usr/bin/env bash
# On a lent GPU machine (offline, python3 3.12 with torch/transformers): bench/start_skew.py for the
# configurations of issue 13, inside one device command, each step under a share of a wall-clock budget.
#
#   bash bench/gpu/start_skew_h200.sh OUTDIR BUDGET_S STEP...     # from the repo's root
#
# STEP is imports | a3 | slow | a32 | tf (3 agents x 10 runs; 3 agents x 3 runs with n2 preparing 5 s
# slower; 32 agents x A32_RUNS runs, default 3; bench/gpu/tf_serve_h200.py). Wheels: .whl/ (evalscope
# and what the image lacks, fleetbench itself), installed with --prefix /tmp/pfx. Each step's output goes to OUTDIR/<step>.log too.
set -u
out=$1 budget=$2
shift 2
t0=$SECONDS
left() { echo $((budget - (SECONDS - t0))); }

repo=$(pwd)
if [ ! -d /tmp/pfx ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --prefix /tmp/pfx .whl/*.whl || exit 9
fi
# Not from the repo's root: its fleetbench/ folder (without agent/ and controller/, which the wheel maps
# in) would shadow the installed package for `python3 -m fleetbench.agent`.
cd /tmp || exit 9
export PATH=/tmp/pfx/bin:$PATH PYTHONPATH=/tmp/pfx/lib/python3.12/site-packages PYTHONUNBUFFERED=1
echo "installed in $((SECONDS - t0)) s; $(nproc) cores; $(python3 --version)"

for step in "$@"; do
  l=$(left)
  echo "=== $step (budget left ${l} s)"
  case $step in
    imports)
      timeout 120 python3 -c '
import time; t=time.time()
import fleetbench.agent.server, fleetbench.agent.job_process, fleetbench.agent.preflight_job
import fleetbench.controller.cli, fleetbench.controller.orchestrator, fleetbench.controller.localfleet
import evalscope.perf.main, evalscope.perf.arguments, evalscope.perf.plugin.api.openai_api
import grpc, google.protobuf, evalscope, transformers, tokenizers, pydantic, openai, fastapi, uvicorn
from importlib.metadata import version
def v(n):
    try:
        return version(n)
    except Exception:
        return "-"
print("imports ok in %.1f s:" % (time.time() - t), ", ".join(f"{n} {v(n)}" for n in (
    "fleetbench", "evalscope", "grpcio", "protobuf", "transformers", "tokenizers", "torch", "aiohttp",
    "pydantic", "openai", "fastapi", "starlette", "uvicorn", "typer", "numpy", "pandas", "anyio")))
' 2>&1 | tee "$out/imports.log"
      [ "${PIPESTATUS[0]}" = 0 ] || exit 8
      ;;
    a3) timeout $((l < 330 ? l : 330)) python3 "$repo/bench/start_skew.py" --agents 3 --runs 10 2>&1 | tee "$out/a3.log" ;;
    slow) timeout $((l < 150 ? l : 150)) python3 "$repo/bench/start_skew.py" --agents 3 --runs 3 --slow n2=5 2>&1 |
            tee "$out/slow.log" ;;
    a32) timeout $((l - 10)) python3 "$repo/bench/start_skew.py" --agents 32 --runs "${A32_RUNS:-3}" 2>&1 | tee "$out/a32.log" ;;
    tf) transformers serve --help 2>&1 | tee "$out/tf_serve_help.txt" | head -5
        timeout $((l - 10)) python3 "$repo/bench/gpu/tf_serve_h200.py" "$out" ;;
  esac
  echo "=== $step done at $((SECONDS - t0)) s"
done
