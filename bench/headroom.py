"""Headroom: the highest streamed output tokens/s one node's load generator sustains while its
figures stay true — fleetbench with one worker, fleetbench with `workers: N`, and `evalscope perf`
run directly, side by side on the same simulated endpoint (bench/fidelity.py's machinery).

The simulator runs in fixed mode with a short TPOT so that the token rate, streams / TPOT, climbs
fast; concurrency steps up (8, 16, 32, ...); a client leaves after two failing steps in a row, and
the bench ends when every client has left. A step counts for a
client while its per-request errors against the server's log stay within the limits below (the same
test for all three; fleetbench's saturation detector is reported beside it: where it first fires);
the client's headroom is the highest output tokens/s it measured (first request sent → last reply
received) at a step that counts.

Two limits are reported, since they break at very different loads:
- "TPOT": TPOT mean |error| ≤ 2 % (the streaming figure the throughput comes from);
- "TTFT+TPOT": TTFT and TPOT mean |error| each ≤ 2 % of the truth (issue 8's relative target; its
  1 ms absolute target is not met by any client on a 2-core machine, see docs/performance.md).
Target (issue 8): sharded fleetbench ≥ 2× evalscope-direct.

Run: .venv/bin/python bench/headroom.py [--streams 8,16,32,64,128,256,512] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from fidelity import TARGET_PCT, Side, measure  # type: ignore[import-not-found]

from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer


def counts(side: Side, limit: str) -> bool:
    """The same test for every client: its errors against the server's truth. (Only fleetbench has a
    saturation detector; where it fires is printed beside, not used to disqualify.)"""
    if side.unmatched:
        return False
    if side.tpot.mean_pct > TARGET_PCT:
        return False
    return limit == "TPOT" or side.ttft.mean_pct <= TARGET_PCT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="8,16,32,64,128,256,512")
    ap.add_argument("--workers", type=int, default=max(2, (os.cpu_count() or 2) // 2),
                    help="fleetbench workers for the sharded run (default: half the CPUs, at least 2)")
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--tpot-ms", type=float, default=5.0)
    ap.add_argument("--input-tokens", type=int, default=128)
    ap.add_argument("--output-tokens", type=int, default=200)
    ap.add_argument("--requests-per-stream", type=float, default=3.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.preset = None
    sides = [("fleetbench w=1", 1), (f"fleetbench w={args.workers}", args.workers), ("evalscope-direct", 0)]
    work = Path(tempfile.mkdtemp(prefix="fb-headroom-"))
    tok = ensure_demo_tokenizer(work / "tok")
    print(f"simulator: fixed TTFT {args.ttft_ms:g} ms, TPOT {args.tpot_ms:g} ms; {args.input_tokens} in / "
          f"{args.output_tokens} out; {os.cpu_count()} CPUs (the simulator runs on the same machine)", flush=True)
    best: dict[tuple[str, str], tuple[float, int]] = {}
    peak: dict[str, tuple[float, int]] = {}
    first_saturated: dict[str, int] = {}
    fails: dict[str, int] = {name: 0 for name, _ in sides}  # consecutive failing steps per client
    for i, streams in enumerate(int(x) for x in args.streams.split(",")):
        number = max(16, int(streams * args.requests_per_stream))
        t0 = time.perf_counter()
        active = [s for s in sides if fails[s[0]] < 2]  # a client is dropped after two failing steps in a row
        result = measure(work, tok, streams, number, args, active, order_flip=i % 2 == 1)
        for s in result:
            sat = s.run.saturation
            print(f"{streams:4d} streams {s.name:16s} {s.run.output_tps:8.0f} tok/s | "
                  f"TTFT err {s.ttft.mean_abs_ms:7.2f} ms {s.ttft.mean_pct:6.2f}% | "
                  f"TPOT err {s.tpot.mean_abs_ms:6.3f} ms {s.tpot.mean_pct:5.2f}%"
                  + (f" | CPU max {sat.get('cpu_max', 0):.0%} lag p95 {sat.get('lag_p95_s', 0) * 1000:.0f} ms"
                     f"{' SATURATED' if sat.get('saturated') else ''}" if sat else ""), flush=True)
            if s.run.saturation.get("saturated"):
                first_saturated.setdefault(s.name, streams)
            if s.run.output_tps > peak.get(s.name, (0.0, 0))[0]:
                peak[s.name] = (s.run.output_tps, streams)
            for limit in ("TPOT", "TTFT+TPOT"):
                if counts(s, limit) and s.run.output_tps > best.get((s.name, limit), (0.0, 0))[0]:
                    best[(s.name, limit)] = (s.run.output_tps, streams)
            fails[s.name] = 0 if counts(s, "TPOT") else fails[s.name] + 1
        print(f"     ({time.perf_counter() - t0:.0f} s)", flush=True)
        if all(n >= 2 for n in fails.values()):
            break
    print()
    print("| client | headroom, TPOT error ≤ 2 % (tok/s @ streams) | headroom, TTFT and TPOT ≤ 2 % | "
          "highest tok/s measured at all | saturation first flagged at |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _ in sides:
        cells = []
        for limit in ("TPOT", "TTFT+TPOT"):
            tps, st = best.get((name, limit), (0.0, 0))
            cells.append(f"{tps:,.0f} @ {st}" if st else "none")
        tps, st = peak.get(name, (0.0, 0))
        flagged = (f"{first_saturated[name]} streams" if name in first_saturated else "never") \
            if name != "evalscope-direct" else "(no detector)"
        print(f"| {name} | {cells[0]} | {cells[1]} | {tps:,.0f} @ {st} | {flagged} |")
    direct = best.get(("evalscope-direct", "TPOT"), (0.0, 0))[0]
    sharded = best.get((sides[1][0], "TPOT"), (0.0, 0))[0]
    single = best.get((sides[0][0], "TPOT"), (0.0, 0))[0]
    if direct:
        print(f"\nTPOT-limit headroom: sharded / evalscope-direct = {sharded / direct:.2f}× (target ≥ 2×); "
              f"single worker / evalscope-direct = {single / direct:.2f}×")
    if args.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
