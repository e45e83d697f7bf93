"""Fidelity: fleetbench's per-request TTFT and TPOT against the simulator's server-side truth,
beside `evalscope perf` run directly on the same endpoint with the same load, in one run.

For each level of concurrent streams the bench starts a fresh simulated endpoint
(`python -m fleetbench.endpoint --log`, its own process), then

- fleetbench: a perf job through a real agent's `JobManager` (the agent's job code, in this
  process; it starts `fleetbench.agent.job_process` as a child, which runs evalscope with
  fleetbench's hooks, exactly as a `ctl run` does on a node), records read back with
  `JobManager.records()` — the records the agent streams to the controller;
- evalscope-direct: `evalscope perf` through its Python API `run_perf_benchmark` in a child
  process (fleetbench.endpoint.testing.run_evalscope_perf), same endpoint, same load;

the two in alternating order from one level to the next. Each client record is matched to the
server's log line through the SHA-256 of the request body (evalscope keeps the body it sent in
its `result` table; the server logs the hash of the bytes it received), so warm-up and
connection-test requests drop out and nothing relies on order or clocks.

Truth (per request, server clock): TTFT = first token written to the socket − arrival (the
handler's entry, headers parsed); TPOT = (last token − first token) / (tokens − 1). The client's
TTFT runs from just before it sends the request to when it has parsed the first SSE event, so
client − server TTFT = request transit + the server's HTTP stack before the handler + response
transit + the client's parsing and scheduling delay: the error the client adds. TPOT's transit
terms cancel. Error figures: mean |client − server| in ms and as % of the mean truth, and the
mean signed error (bias). Target (issue 8): mean error ≤ 1 ms and ≤ 2 %, never worse than
evalscope-direct.

Run: .venv/bin/python bench/fidelity.py [--streams 1,8,64,256,512] [--quick] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbench.agent import evalscope_adapter as adapter
from fleetbench.agent.confine import Confinement
from fleetbench.agent.jobs import JobManager
from fleetbench.agent.jobspec import KIND_PERF
from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.endpoint.testing import run_evalscope_perf
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

TARGET_MS = 1.0
TARGET_PCT = 2.0


# --- pure: matching and error statistics ------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One request seen by the client and by the server (seconds)."""

    client_ttft: float
    client_tpot: float
    server_ttft: float
    server_tpot: float
    tokens: int


@dataclass(frozen=True)
class ErrorStats:
    n: int
    mean_abs_ms: float
    mean_pct: float  # mean |error| as % of the mean truth
    bias_ms: float  # mean signed error (client − server)
    p99_abs_ms: float
    truth_ms: float  # mean truth

    @property
    def within_target(self) -> bool:
        return self.mean_abs_ms <= TARGET_MS and self.mean_pct <= TARGET_PCT


def truth_of(line: dict[str, Any]) -> tuple[float, float] | None:
    """(TTFT, TPOT) of one server log line, None for a request that did not stream ≥ 2 tokens."""
    if line.get("status") != "ok" or line.get("first_token") is None or line.get("last_token") is None:
        return None
    n = int(line.get("completion_tokens") or 0)
    if n < 2:
        return None
    return line["first_token"] - line["arrival"], (line["last_token"] - line["first_token"]) / (n - 1)


def match(client: list[tuple[str, float, float, int]], server: dict[str, dict[str, Any]]) -> tuple[list[Pair], int]:
    """Pair client records (body sha256, ttft, tpot, tokens) with the server's lines; (pairs, unmatched)."""
    pairs: list[Pair] = []
    missing = 0
    for sha, ttft, tpot, tokens in client:
        line = server.get(sha)
        truth = truth_of(line) if line else None
        if truth is None or tokens < 2:
            missing += 1
            continue
        pairs.append(Pair(ttft, tpot, truth[0], truth[1], tokens))
    return pairs, missing


def error_stats(errors_s: list[float], truths_s: list[float]) -> ErrorStats:
    if not errors_s:
        return ErrorStats(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    abs_ms = sorted(abs(e) * 1000 for e in errors_s)
    mean_abs = sum(abs_ms) / len(abs_ms)
    truth_ms = sum(truths_s) / len(truths_s) * 1000
    p99 = abs_ms[max(0, math.ceil(0.99 * len(abs_ms)) - 1)]
    return ErrorStats(len(abs_ms), mean_abs, 100 * mean_abs / truth_ms if truth_ms else math.nan,
                      sum(errors_s) / len(errors_s) * 1000, p99, truth_ms)


def ttft_tpot_errors(pairs: list[Pair]) -> tuple[ErrorStats, ErrorStats]:
    ttft = error_stats([p.client_ttft - p.server_ttft for p in pairs], [p.server_ttft for p in pairs])
    tpot = error_stats([p.client_tpot - p.server_tpot for p in pairs], [p.server_tpot for p in pairs])
    return ttft, tpot


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- I/O: endpoint, the two clients ----------------------------------------------------------


@dataclass
class Endpoint:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def lines(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.log.exists():
            for raw in self.log.read_text().splitlines():
                rec = json.loads(raw)
                out[rec["body_sha256"]] = rec
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_endpoint(work: Path, ttft_ms: float, tpot_ms: float, preset: str | None = None) -> Endpoint:
    port = free_port()
    log = work / f"server-{port}.jsonl"
    args = [sys.executable, "-m", "fleetbench.endpoint", "--port", str(port), "--log", str(log),
            "--ttft-ms", str(ttft_ms), "--tpot-ms", str(tpot_ms)]
    if preset:
        args += ["--preset", preset]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=(work / f"server-{port}.err").open("wb"))
    wait_for_port(port, 30, proc)
    return Endpoint(proc, f"http://127.0.0.1:{port}/v1/completions", log)


@dataclass
class ClientRun:
    records: list[tuple[str, float, float, int]]  # (body sha256, ttft, tpot, output tokens), successes only
    failed: int
    wall_s: float  # first request sent -> last reply received
    output_tokens: int
    saturation: dict[str, Any] = field(default_factory=dict)

    @property
    def output_tps(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s > 0 else 0.0


def _db_bodies(job_dir: Path) -> list[str]:
    """Request bodies in the order `JobManager.records()` yields records (databases by path, rows by rowid)."""
    bodies: list[str] = []
    for db in sorted(adapter.find_result_dbs(job_dir / "evalscope")):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            bodies += [row[0] or "" for row in con.execute("SELECT request FROM result ORDER BY rowid")]
    return bodies


async def _fleetbench_async(data_dir: Path, spec: dict[str, Any]) -> ClientRun:
    jobs = JobManager(data_dir, confinement=Confinement.of(data_dir, [data_dir.parent]))  # the tokenizer is beside
    job_id = "fidelity"
    await jobs.start(job_id, KIND_PERF, json.dumps(spec), 0.0)
    async for _ in jobs.watch(job_id, 0):
        pass
    result = jobs.result(job_id)
    if result.row.error:
        raise RuntimeError(f"fleetbench job failed: {result.row.error}")
    recs = list(jobs.records(job_id))
    bodies = _db_bodies(jobs.jobs_dir / job_id)
    if len(bodies) != len(recs):
        raise RuntimeError(f"{len(recs)} records but {len(bodies)} request bodies")
    ok = [(sha(b), r.ttft_s, r.tpot_s, r.output_tokens) for b, r in zip(bodies, recs, strict=True) if r.success]
    ok_recs = [r for r in recs if r.success]
    wall = (max(r.end_time for r in ok_recs) - min(r.start_time for r in ok_recs)) if ok_recs else 0.0
    return ClientRun(ok, len(recs) - len(ok_recs), wall, sum(r.output_tokens for r in ok_recs),
                     result.result.get("saturation", {}))


PREVIEW_DIR = Path(__file__).resolve().parent / "preview_client_fix"


def run_fleetbench(work: Path, url: str, tok: Path, streams: int, number: int, input_tokens: int,
                   output_tokens: int, workers: int = 1, preview_fix: bool = False) -> ClientRun:
    spec = {"url": url, "model": "demo", "parallel": streams, "number": number, "tokenizer_path": str(tok),
            "input_tokens": input_tokens, "output_tokens": output_tokens, "extra_args": {"ignore_eos": True},
            "workers": min(workers, streams)}  # a worker runs at least one stream
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "FLEETBENCH_PREVIEW_CLIENT_FIX")}
    if preview_fix:  # the job processes the agent starts inherit this environment
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PREVIEW_DIR), saved["PYTHONPATH"]]))
        os.environ["FLEETBENCH_PREVIEW_CLIENT_FIX"] = "1"
    try:
        return asyncio.run(_fleetbench_async(Path(tempfile.mkdtemp(dir=work, prefix="agent-")), spec))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_direct(work: Path, url: str, tok: Path, streams: int, number: int, input_tokens: int,
               output_tokens: int) -> ClientRun:
    run = run_evalscope_perf(url, tok, Path(tempfile.mkdtemp(dir=work, prefix="direct-")), parallel=streams,
                             number=number, input_tokens=input_tokens, output_tokens=output_tokens, timeout_s=1800)
    ok = [r for r in run.records if r["success"]]
    recs = [(sha(r["request"]), float(r["first_chunk_latency"]), float(r["time_per_output_token"] or 0.0),
             int(r["completion_tokens"] or 0)) for r in ok]
    wall = (max(r["completed_time"] for r in ok) - min(r["start_time"] for r in ok)) if ok else 0.0
    return ClientRun(recs, len(run.records) - len(ok), wall, sum(int(r["completion_tokens"] or 0) for r in ok))


# --- the bench -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    name: str
    ttft: ErrorStats
    tpot: ErrorStats
    run: ClientRun
    unmatched: int


def measure(work: Path, tok: Path, streams: int, number: int, args: argparse.Namespace,
            sides: list[tuple[str, int]], order_flip: bool) -> list[Side]:
    """One endpoint, each client (name, workers) in turn, errors against its log. Workers 0 is
    evalscope-direct; a negative count is fleetbench with the client fix previewed (--preview-client-fix)."""
    ep = start_endpoint(work, args.ttft_ms, args.tpot_ms, args.preset)
    runs: dict[str, ClientRun] = {}
    try:
        for name, workers in (list(reversed(sides)) if order_flip else sides):
            if workers == 0:
                runs[name] = run_direct(work, ep.url, tok, streams, number, args.input_tokens, args.output_tokens)
            else:
                runs[name] = run_fleetbench(work, ep.url, tok, streams, number, args.input_tokens,
                                            args.output_tokens, abs(workers), preview_fix=workers < 0)
        time.sleep(0.2)  # the last log lines are written when each request ends
        server = ep.lines()
    finally:
        ep.stop()
    out = []
    for name, _ in sides:
        pairs, missing = match(runs[name].records, server)
        ttft, tpot = ttft_tpot_errors(pairs)
        out.append(Side(name, ttft, tpot, runs[name], missing + runs[name].failed))
    return out


def fmt(e: ErrorStats) -> str:
    return f"{e.mean_abs_ms:7.2f} ms {e.mean_pct:6.2f}% (bias {e.bias_ms:+.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,8,64,256,512", help="concurrent streams, comma-separated")
    ap.add_argument("--quick", action="store_true", help="streams 1,8,64 only")
    ap.add_argument("--requests-per-stream", type=float, default=4.0, help="number = streams × this (min 16)")
    ap.add_argument("--ttft-ms", type=float, default=200.0)
    ap.add_argument("--tpot-ms", type=float, default=20.0)
    ap.add_argument("--preset", default=None, help="simulate an engine (fast, h200-like) instead of fixed timing")
    ap.add_argument("--input-tokens", type=int, default=128)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--workers", default="1", help="fleetbench load-generator workers to compare, e.g. 1,2")
    ap.add_argument("--preview-client-fix", action="store_true",
                    help="also run fleetbench with fleetbench.agent.client_overhead installed in its job processes "
                         "(proxy/netrc resolved once per session), before the job process hooks it up itself")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    levels = [1, 8, 64] if args.quick else [int(x) for x in args.streams.split(",")]
    sides = [(f"fleetbench w={w}", int(w)) for w in args.workers.split(",")]
    if args.preview_client_fix:
        sides += [(f"fleetbench w={w} +fix", -int(w)) for w in args.workers.split(",")]
    sides.append(("evalscope-direct", 0))
    work = Path(tempfile.mkdtemp(prefix="fb-fidelity-"))
    tok = ensure_demo_tokenizer(work / "tok")
    mode = f"preset {args.preset}" if args.preset else f"fixed TTFT {args.ttft_ms:g} ms, TPOT {args.tpot_ms:g} ms"
    print(f"simulator: {mode}; {args.input_tokens} in / {args.output_tokens} out, ignore_eos; "
          f"{os.cpu_count()} CPUs; work {work}", flush=True)
    rows: list[tuple[int, list[Side]]] = []
    for i, streams in enumerate(levels):
        number = max(16, int(streams * args.requests_per_stream))
        t0 = time.perf_counter()
        result = measure(work, tok, streams, number, args, sides, order_flip=i % 2 == 1)
        rows.append((streams, result))
        for s in result:
            sat = s.run.saturation
            flag = (" SATURATED" if sat.get("saturated") else "") if sat else ""
            print(f"{streams:4d} streams {s.name:22s} n={s.ttft.n:5d} TTFT {fmt(s.ttft)} p99 {s.ttft.p99_abs_ms:6.2f}"
                  f" | TPOT {fmt(s.tpot)} | {s.run.output_tps:7.0f} tok/s, {s.unmatched} failed/unmatched"
                  + (f" | client CPU max {sat.get('cpu_max', 0):.0%}, lag p95 "
                     f"{sat.get('lag_p95_s', 0) * 1000:.0f} ms{flag}" if sat else ""), flush=True)
        print(f"     ({time.perf_counter() - t0:.0f} s for this level)", flush=True)
    print()
    print("| streams | client | TTFT mean abs error | TTFT % | TPOT mean abs error | TPOT % | "
          "TTFT error ratio to evalscope-direct | within target (≤ 1 ms and ≤ 2 %) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for streams, result in rows:
        direct = result[-1]
        for s in result:
            ratio = s.ttft.mean_abs_ms / direct.ttft.mean_abs_ms if direct.ttft.mean_abs_ms else math.nan
            ok = "yes" if s.ttft.within_target and s.tpot.within_target else "no"
            print(f"| {streams} | {s.name} | {s.ttft.mean_abs_ms:.2f} ms | {s.ttft.mean_pct:.2f} % | "
                  f"{s.tpot.mean_abs_ms:.3f} ms | {s.tpot.mean_pct:.2f} % | "
                  f"{'' if s is direct else f'{ratio:.2f}×'} | {ok} |")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
