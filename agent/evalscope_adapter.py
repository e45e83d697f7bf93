"""The one place that knows evalscope's names, files and tables.

evalscope renames its outputs between releases (v1.0-1.4 print
"Average time to first token (s)", 1.14 writes "Avg TTFT (ms)"), so the rest
of fleetbench reads evalscope only through this module. Nothing here imports
evalscope: the agent stays light and reads evalscope's SQLite output
directly; `perf_arguments` builds the plain dict the job process hands to
evalscope's Python API.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from fleetbench.failures import EMPTY_NO_CHUNK, EMPTY_NO_TOKENS, one_line_error
from fleetbench.jobs_schema import PerfSpec
from fleetbench.records import RequestRecord

# fleetbench's canonical figure name -> (evalscope names across releases, factor to SI units)
SUMMARY_ALIASES: dict[str, tuple[tuple[str, ...], float]] = {
    "wall_time_s": (("Test Duration (s)", "Time taken for tests (s)"), 1.0),
    "requests": (("Total Requests", "Total requests"), 1.0),
    "succeeded": (("Success Requests", "Succeed requests"), 1.0),
    "failed": (("Failed Requests", "Failed requests"), 1.0),
    "output_throughput_tps": (("Output Throughput (tok/s)", "Output token throughput (tok/s)"), 1.0),
    "total_throughput_tps": (("Total Throughput (tok/s)", "Total token throughput (tok/s)"), 1.0),
    "request_throughput_rps": (("Req Throughput (req/s)", "Request throughput (req/s)"), 1.0),
    "latency_avg_s": (("Avg Latency (s)", "Average latency (s)"), 1.0),
    "input_tokens_avg": (("Avg Input Tokens", "Average input tokens per request"), 1.0),
    "output_tokens_avg": (("Avg Output Tokens", "Average output tokens per request"), 1.0),
}
# Millisecond names (1.14) and second names (<= 1.4) of the same figure.
SUMMARY_ALIASES_MS_OR_S: dict[str, tuple[str, str]] = {
    "ttft_avg_s": ("Avg TTFT (ms)", "Average time to first token (s)"),
    "tpot_avg_s": ("Avg TPOT (ms)", "Average time per output token (s)"),
    "itl_avg_s": ("Avg ITL (ms)", "Average inter-token latency (s)"),
}

ERRORS_TABLE = "fleetbench_errors"

# A row evalscope marks successful is a real success only when something was generated: a first content
# chunk (evalscope leaves first_chunk_latency at 0 when a stream carried none: `data: [DONE]` alone, an
# empty body, chunks of "" text) and at least one output token. Anything else is an empty reply: failed.
_GENERATED = "(success AND coalesce(first_chunk_latency, 0) > 0 AND coalesce(completion_tokens, 0) > 0)"


def empty_reply_error(first_chunk_latency: Any, completion_tokens: Any) -> str | None:
    """Why a row evalscope counts as a success generated nothing, or None when it did generate."""
    if not isinstance(first_chunk_latency, int | float) or _nan(first_chunk_latency) or first_chunk_latency <= 0:
        return EMPTY_NO_CHUNK
    if not isinstance(completion_tokens, int | float) or completion_tokens <= 0:
        return EMPTY_NO_TOKENS
    return None


def evalscope_version() -> str:
    try:
        return metadata.version("evalscope")
    except metadata.PackageNotFoundError:
        return ""


def normalize_summary(summary: dict[str, Any]) -> dict[str, float]:
    """evalscope's summary (any supported release) as fleetbench figure names in SI units."""
    out: dict[str, float] = {}
    for name, (keys, factor) in SUMMARY_ALIASES.items():
        for key in keys:
            if isinstance(summary.get(key), int | float):
                out[name] = float(summary[key]) * factor
                break
    for name, (ms_key, s_key) in SUMMARY_ALIASES_MS_OR_S.items():
        if isinstance(summary.get(ms_key), int | float):
            out[name] = float(summary[ms_key]) / 1000.0
        elif isinstance(summary.get(s_key), int | float):
            out[name] = float(summary[s_key])
    return out


def perf_arguments(spec: PerfSpec, outputs_dir: Path, name: str) -> dict[str, Any]:
    """The keyword arguments of evalscope's `Arguments` for one perf run."""
    args: dict[str, Any] = {
        "url": spec.url,
        "model": spec.model,
        "api": spec.api,
        "number": spec.number,
        "parallel": spec.parallel,
        "rate": spec.rate,
        "dataset": spec.dataset,
        "stream": spec.stream,
        "outputs_dir": str(outputs_dir),
        "name": name,
        "no_timestamp": True,
        # commit every record so progress can be read while the run goes on
        "db_commit_interval": 1,
        # The job process checks the endpoint before the start gate; evalscope's own test request
        # would go out at the common start instant and delay the load by a node-dependent time.
        "no_test_connection": True,
        "headers": dict(spec.headers),
    }
    if spec.api_key:
        args["api_key"] = spec.api_key
    if spec.tokenizer_path:
        args["tokenizer_path"] = spec.tokenizer_path
    if spec.dataset_path:
        args["dataset_path"] = spec.dataset_path
    if spec.input_tokens:
        args["min_prompt_length"] = spec.min_input_tokens
        args["max_prompt_length"] = spec.input_tokens
    args["prefix_length"] = spec.prefix_length
    if spec.output_tokens:
        if spec.fixed_output:  # evalscope sends min_tokens only when it is set; some engines refuse the field
            args["min_tokens"] = spec.min_output_tokens
        args["max_tokens"] = spec.output_tokens
    if spec.extra_args:
        args["extra_args"] = dict(spec.extra_args)
    if spec.seed is not None:
        args["seed"] = spec.seed
    if spec.dataset_offset:
        args["dataset_offset"] = spec.dataset_offset
    if spec.connect_timeout_s is not None:
        args["connect_timeout"] = spec.connect_timeout_s
    if spec.read_timeout_s is not None:
        args["read_timeout"] = spec.read_timeout_s
    return args


def find_result_dbs(outputs_dir: Path) -> list[Path]:
    """evalscope's per-run databases under a job's output folder, oldest first."""
    return sorted(outputs_dir.rglob("benchmark_data.db"), key=lambda p: p.stat().st_mtime)


class Progress(NamedTuple):
    """A result database's count so far; `first_start` is the earliest request's start (perf_counter, shared by
    every process on the node; 0 before any), so a rate is over the load's time, not the preparation's."""

    done: int
    failed: int
    output_tokens: int
    first_start: float


def read_progress(db_path: Path) -> Progress:
    """Requests done, failed, output tokens and the first request's start so far, read while evalscope writes.
    Empty replies (see `empty_reply_error`) count as failed, as `iter_records` makes them."""
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1.0) as con:
            row = con.execute(
                f"SELECT count(*), count(*) - coalesce(sum(CASE WHEN {_GENERATED} THEN 1 ELSE 0 END), 0), "
                f"coalesce(sum(CASE WHEN {_GENERATED} THEN completion_tokens END), 0), "
                "coalesce(min(CASE WHEN start_time > 0 THEN start_time END), 0) FROM result"
            ).fetchone()
    except sqlite3.Error:
        return Progress(0, 0, 0, 0.0)
    return Progress(int(row[0]), int(row[1]), int(row[2]), float(row[3]))


def iter_records(db_path: Path, clock_offset_s: float, point: str = "") -> Iterator[RequestRecord]:
    """evalscope's `result` rows as RequestRecords on the wall clock.

    evalscope times requests with `perf_counter`; `clock_offset_s` (wall time
    minus perf_counter, sampled once in the job process) puts them on the
    node's wall clock. Rows are streamed, never loaded all at once.

    A row evalscope marks successful that generated nothing becomes a failed
    record ("empty reply: no content chunk" / "empty reply: 0 output tokens"),
    never a success with TTFT 0. Every failed record's error is one classified
    line (`fleetbench.failures.one_line_error`): databases written before the
    job process did that hold multi-line tracebacks.
    """
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        has_errors = bool(
            con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (ERRORS_TABLE,)).fetchone()
        )
        join = f"LEFT JOIN {ERRORS_TABLE} e ON e.result_rowid = r.rowid" if has_errors else ""
        error_col = "e.error" if has_errors else "NULL"
        cur = con.execute(
            "SELECT r.rowid, r.start_time, r.completed_time, r.success, r.first_chunk_latency, r.latency, "
            "r.prompt_tokens, r.completion_tokens, r.time_per_output_token, r.inter_token_latencies, "
            f"{error_col} FROM result r {join} ORDER BY r.rowid"
        )
        for row in cur:
            rowid, start, end, success, ttft, latency, pt, ct, tpot, itl_json, error = row
            try:
                itl = tuple(float(x) for x in (json.loads(itl_json) or [])) if itl_json else ()
            except (ValueError, TypeError):
                itl = ()
            ok = bool(success)
            if ok and (empty := empty_reply_error(ttft, ct)) is not None:
                ok, error = False, empty
            yield RequestRecord(
                index=int(rowid) - 1,
                start_time=float(start or 0.0) + clock_offset_s,
                end_time=float(end or 0.0) + clock_offset_s,
                success=ok,
                ttft_s=float(ttft or 0.0) if ok else 0.0,
                latency_s=float(latency or 0.0) if ok else 0.0,
                input_tokens=int(pt or 0) if ok else 0,
                output_tokens=int(ct or 0) if ok else 0,
                tpot_s=float(tpot or 0.0) if ok and not _nan(tpot) else 0.0,
                itl_s=itl if ok else (),
                error="" if ok else one_line_error(error or "request failed (evalscope recorded no error text)"),
                point=point,
            )
    finally:
        con.close()


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def read_summary_files(run_dir: Path) -> tuple[dict[str, Any], list[Any]]:
    """evalscope's own summary and percentile table for one run folder."""
    summary: dict[str, Any] = {}
    percentiles: list[Any] = []
    s = run_dir / "benchmark_summary.json"
    p = run_dir / "benchmark_percentile.json"
    if s.exists():
        summary = json.loads(s.read_text())
    if p.exists():
        percentiles = json.loads(p.read_text())
    return summary, percentiles
