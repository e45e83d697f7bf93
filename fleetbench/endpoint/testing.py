"""Helpers for tests and benches: run real `evalscope perf` against an endpoint and read its records.

evalscope is run in a child process (its Python API, not a shell string): it
installs uvloop, signal handlers and global logging, which must not leak into
the caller.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbench.endpoint.config import EndpointConfig
from fleetbench.endpoint.server import RunningEndpoint, start_endpoint

__all__ = ["EndpointThread", "PerfRun", "run_evalscope_perf"]

_CHILD = r"""
import json, sys
from evalscope.perf.main import run_perf_benchmark
run_perf_benchmark(json.loads(sys.argv[1]))
"""


@dataclass
class PerfRun:
    metrics: dict[str, Any]  # evalscope's benchmark_summary.json, e.g. "Avg TTFT (ms)"
    records: list[dict[str, Any]]  # rows of the `result` table of benchmark_data.db
    output_dir: Path
    stdout: str

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if not r["success"]]

    @property
    def succeeded(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["success"]]

    def metric(self, prefix: str) -> float:
        """The summary figure whose name starts with `prefix` (e.g. 'Avg TTFT')."""
        for key, value in self.metrics.items():
            if key.startswith(prefix):
                return float(value)
        raise KeyError(f"no metric starting with {prefix!r} in {sorted(self.metrics)}")


def run_evalscope_perf(
    url: str,
    tokenizer_path: Path | str,
    outputs_dir: Path | str,
    *,
    model: str = "demo",
    parallel: int = 1,
    number: int = 1,
    input_tokens: int = 32,
    output_tokens: int = 16,
    timeout_s: float = 300.0,
    **extra: Any,
) -> PerfRun:
    """Run `evalscope perf` (random dataset, streaming, ignore_eos) in a child process and return its results."""
    outputs_dir = Path(outputs_dir)
    args: dict[str, Any] = {
        "url": url,
        "api": "openai",
        "model": model,
        "tokenizer_path": str(tokenizer_path),
        "dataset": "random",
        "min_prompt_length": input_tokens,
        "max_prompt_length": input_tokens,
        "max_tokens": output_tokens,
        "min_tokens": output_tokens,
        "extra_args": {"ignore_eos": True},
        "parallel": parallel,
        "number": number,
        "stream": True,
        "outputs_dir": str(outputs_dir),
        "no_timestamp": True,
        "name": "run",
        "seed": 42,
    }
    args.update(extra)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # The child's output goes to a file, not a pipe: reading a pipe here would keep this
    # process's main thread busy (and holding the GIL) while an in-process endpoint serves.
    outputs_dir.mkdir(parents=True, exist_ok=True)
    log_path = outputs_dir / "evalscope-child.log"
    with open(log_path, "wb") as log:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args)],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    stdout = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"evalscope perf failed (exit {proc.returncode}):\n{stdout[-4000:]}")
    dbs = sorted(outputs_dir.rglob("benchmark_data.db"))
    if not dbs:
        raise RuntimeError(f"evalscope wrote no benchmark_data.db under {outputs_dir}:\n{stdout[-4000:]}")
    with sqlite3.connect(dbs[-1]) as conn:
        conn.row_factory = sqlite3.Row
        records = [dict(row) for row in conn.execute("SELECT * FROM result")]
    summary = dbs[-1].parent / "benchmark_summary.json"
    metrics: dict[str, Any] = json.loads(summary.read_text()) if summary.exists() else {}
    return PerfRun(metrics=metrics, records=records, output_dir=dbs[-1].parent, stdout=stdout)


class EndpointThread:
    """Run an endpoint on its own event loop in a daemon thread (for synchronous tests and tools).

    with EndpointThread(EndpointConfig(ttft_s=0.05)) as ep:
        requests.post(ep.url + "/completions", ...)
        ep.requests()
    """

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._endpoint: RunningEndpoint | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunningEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RunningEndpoint:
        ready = threading.Event()
        error: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._endpoint = self._loop.run_until_complete(start_endpoint(self.config))
            except BaseException as exc:
                error.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fleetbench-endpoint", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            raise error[0]
        assert self._endpoint is not None
        return self._endpoint

    def stop(self) -> None:
        loop, endpoint = self._loop, self._endpoint
        if loop is None or endpoint is None:
            return
        asyncio.run_coroutine_threadsafe(endpoint.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)
        loop.close()
        self._loop = self._endpoint = None
