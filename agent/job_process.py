"""The job's child process: runs evalscope through its Python API.

Run as `python -m fleetbench.agent.job_process JOB_DIR`. It is the only
place that imports evalscope, so a crash, evalscope's global state or a
cancel never reaches the agent. It talks to the agent through JSON lines on
its original stdout (progress, errors); evalscope's own logging goes to
JOB_DIR/job.log.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from fleetbench.jobs_schema import JobKind, PerfSpec, parse_spec
from fleetbench.secrets import SECRETS_ENV, merge

from . import client_overhead, clock
from .datasets import sharegpt_to_line_by_line
from .endpoint_check import check_endpoint
from .evalscope_adapter import ERRORS_TABLE, find_result_dbs, perf_arguments, read_progress
from .jobspec import auto_workers
from .saturation import CpuSampler, SaturationReport, watch_loop_lag
from .start_barrier import NoStartInstant, StartBarrier

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MODELSCOPE_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
PROGRESS_INTERVAL_S = 0.5


class Channel:
    """JSON lines to the agent, safe to call from several threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, **event: Any) -> None:
        event.setdefault("time", time.time())
        with self._lock:
            self._stream.write(json.dumps(event) + "\n")
            self._stream.flush()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the agent dies, so no load is left running unattended."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _check_paths(spec: PerfSpec) -> None:
    for name in ("tokenizer_path", "dataset_path"):
        value = getattr(spec, name)
        if value and not Path(value).exists():
            raise FileNotFoundError(f"{name} {value} does not exist on this node")


def _install_hooks(start_at: float, saturation: list[SaturationReport] | None = None,
                   barrier: StartBarrier | None = None) -> None:
    """Gate the first request on `start_at` (and, in a worker, on its siblings being ready: `barrier`)
    and keep each failed request's error text.

    evalscope stores no error text in its database; the hook writes it to a
    side table keyed by the result row, read back by the adapter.
    """
    from evalscope.perf.core import http_client, metrics_consumer

    original_post = http_client.AioHttpClient.post

    lag_watch: list[asyncio.Task[None]] = []
    barrier_wait: list[asyncio.Task[float]] = []

    async def gated_post(self: Any, body: Any) -> Any:
        loop = asyncio.get_running_loop()
        if saturation and not any(t.get_loop() is loop and not t.done() for t in lag_watch):
            # first request of a run: watch evalscope's own loop (each run has a new loop)
            lag_watch.append(loop.create_task(watch_loop_lag(saturation[0])))
        if barrier is not None:
            if not barrier_wait:
                barrier_wait.append(loop.create_task(barrier.wait()))
            if not barrier_wait[0].done():
                try:  # every stream of this worker waits for the one instant
                    await asyncio.shield(barrier_wait[0])
                except NoStartInstant as exc:  # armed and the controller never said when: no load at all
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    os._exit(3)
                if clock.start_delay_s() > 0:  # test hook: this node misses the common start
                    await asyncio.sleep(clock.start_delay_s())
        delay = start_at - clock.now()
        if delay > 0:
            await asyncio.sleep(delay)
        if saturation:
            saturation[0].load_started.set()  # CPU before this is set-up (tokenizer, prompts), not load
        return await original_post(self, body)

    http_client.AioHttpClient.post = gated_post  # type: ignore[method-assign]

    original_insert = metrics_consumer.insert_benchmark_data

    def insert_with_error(cursor: sqlite3.Cursor, data: Any) -> None:
        original_insert(cursor, data)
        if not data.success:
            from fleetbench.failures import one_line_error

            cursor.execute(f"CREATE TABLE IF NOT EXISTS {ERRORS_TABLE}(result_rowid INTEGER PRIMARY KEY, error TEXT)")
            # one classified line, HTTP status kept: "HTTP 422: Unexpected fields ...", "connection refused: ..."
            error = one_line_error(str(data.error or ""), data.status_code)
            cursor.execute(f"INSERT INTO {ERRORS_TABLE} VALUES (?, ?)", (cursor.lastrowid, error))

    metrics_consumer.insert_benchmark_data = insert_with_error


def _watch_progress(out_dir: Path, total: int, channel: Channel, stop: threading.Event) -> None:
    """Counts, output tok/s and ETA every PROGRESS_INTERVAL_S, over the time since the first request went (the
    preparation and the wait for the common start are not load: they made the first rates read low)."""
    last: tuple[int, int, int] | None = None
    while not stop.wait(PROGRESS_INTERVAL_S):
        dbs = find_result_dbs(out_dir) if out_dir.exists() else []
        if not dbs:
            continue
        parts = [read_progress(db) for db in dbs]
        done, failed, out_tokens = (sum(p.done for p in parts), sum(p.failed for p in parts),
                                    sum(p.output_tokens for p in parts))
        first = min((p.first_start for p in parts if p.first_start > 0), default=0.0)
        if (done, failed, out_tokens) == last or not first:
            continue
        last = (done, failed, out_tokens)
        elapsed = time.perf_counter() - first
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else -1.0
        channel.send(
            type="progress", done=done, total=total, failed=failed,
            output_tps=out_tokens / elapsed if elapsed > 0 else 0.0, elapsed_s=elapsed, eta_s=eta,
        )


def _write_saturation(job_dir: Path, report: SaturationReport, channel: Channel, suffix: str = "") -> None:
    """The load generator's own limits, kept with the job so the report can warn about a client-bound run."""
    (job_dir / f"saturation{suffix}.json").write_text(json.dumps(report.to_dict()))
    if report.saturated:
        channel.send(type="phase", message=f"warning: load generator saturated (CPU {report.cpu_max:.0%} of a "
                                           f"core, loop lag p95 {report.lag_p95_s * 1000:.0f} ms): figures may be "
                                           "client-bound")


def _run_workers(job_dir: Path, spec: PerfSpec, channel: Channel, armed: bool = False) -> int:
    """Split the load over `spec.workers` processes that start together (the same start gate)
    and write their records side by side; the agent merges them like the cluster merge does.
    Armed, this process reports the job READY once every worker has marked itself ready."""
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_progress, args=(job_dir / "evalscope", spec.number, channel, stop),
                               daemon=True)
    channel.send(type="phase", message=f"starting {spec.workers} load-generator workers")
    procs = [
        subprocess.Popen([sys.executable, "-m", "fleetbench.agent.job_process", str(job_dir), "--worker", str(i)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(spec.workers)
    ]
    watcher.start()
    try:
        # a worker that fails ends the job: its siblings would otherwise wait at the start barrier
        barrier = StartBarrier(job_dir / "start-barrier", 0, spec.workers)
        announced = not armed
        while (codes := [p.poll() for p in procs]) and None in codes and not any(codes):
            if not announced and len(barrier.marks()) >= spec.workers:
                announced = True
                _announce_ready(channel)
            time.sleep(0.1 if announced else 0.005)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        stop.set()
        watcher.join(timeout=2)
    failed = [i for i, c in enumerate(codes) if c not in (0, None)]  # None: stopped because a sibling failed
    if failed:
        raise RuntimeError(f"load-generator worker(s) {failed} failed; see {job_dir / 'job.log'}")
    return 0


def run(job_dir: Path, channel: Channel, worker: int | None = None) -> int:
    job = json.loads((job_dir / "job.json").read_text())
    # job.json holds *** for the API key and headers; the agent passes their values in the environment
    job["spec"] = merge(job["spec"], json.loads(os.environ.get(SECRETS_ENV) or "{}"))
    kind = int(job.get("kind", 1))
    start_at = float(job.get("start_at") or 0.0)
    armed = bool(job.get("armed"))
    if armed and clock.prepare_delay_s() > 0:  # test hook: a node that prepares slowly
        time.sleep(clock.prepare_delay_s())
    if kind == JobKind.EVAL:
        from .eval_job import run_eval_job

        return run_eval_job(job_dir, parse_spec(kind, job["spec"]), channel)
    if kind == JobKind.PREFLIGHT:
        from .preflight_job import run_preflight_job

        return run_preflight_job(job_dir, parse_spec(kind, job["spec"]), channel)
    if kind == JobKind.HARDWARE:
        from .hardware_job import run_hardware_job

        return run_hardware_job(job_dir, parse_spec(kind, job["spec"]), channel)
    spec = parse_spec(kind, job["spec"])
    if spec.workers == 0:  # the same answer in the agent's job process and in every worker
        cores = len(os.sched_getaffinity(0))
        spec = spec.model_copy(update={"workers": auto_workers(spec.parallel, spec.number, cores)})
        if worker is None:
            channel.send(type="phase", message=f"{spec.workers} load-generator worker(s) for {spec.parallel} streams "
                                               f"on {cores} cores (workers: auto)")
    _check_paths(spec)
    check_endpoint(spec.url)
    out_dir = job_dir / "evalscope"
    if worker is None:
        _write_clock(job_dir)
        if spec.workers > 1:
            return _run_workers(job_dir, spec, channel, armed)
    barrier = None
    go_file = job_dir / "go" if armed else None
    if worker is not None:
        barrier = StartBarrier(job_dir / "start-barrier", worker, spec.workers, go_file=go_file)
        spec = spec.shard(worker)
        out_dir = out_dir / f"worker-{worker}"
    elif armed:  # one process: it is ready when its first request is about to go
        barrier = StartBarrier(job_dir / "start-barrier", 0, 1, go_file=go_file,
                               on_all_ready=lambda: _announce_ready(channel))
    channel.send(type="phase", message="loading evalscope")
    spec = _local_dataset(job_dir, spec)
    _run_perf(job_dir, spec, out_dir, channel, start_at, worker=worker, watch=worker is None, barrier=barrier)
    dbs = find_result_dbs(out_dir)
    if dbs and worker is None:
        done, failed, *_ = read_progress(dbs[-1])
        channel.send(type="progress", done=done, total=spec.number, failed=failed, output_tps=0.0,
                     elapsed_s=0.0, eta_s=0.0, final=True)
    return 0


def _announce_ready(channel: Channel) -> None:
    """Armed job: evalscope loaded, tokenizer and first prompts built, endpoint reachable; the agent marks
    the job READY and the controller, once every node is, gives one start instant."""
    channel.send(type="ready", prepare_s=time.time() - _STARTED_AT)


def _local_dataset(job_dir: Path, spec: PerfSpec) -> PerfSpec:
    """A ShareGPT file becomes evalscope's line_by_line form, written once in the job folder."""
    if spec.dataset != "share_gpt":
        return spec
    target = job_dir / "sharegpt-prompts.jsonl"
    if not target.exists():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        sharegpt_to_line_by_line(Path(spec.dataset_path), tmp)
        tmp.replace(target)  # workers may race here; the rename is atomic
    return spec.model_copy(update={"dataset": "line_by_line", "dataset_path": str(target)})


def _write_clock(job_dir: Path) -> None:
    # evalscope's times are perf_counter readings (CLOCK_MONOTONIC, shared by every process
    # on the node); this one offset maps them, for every worker, to the wall clock.
    (job_dir / "clock.json").write_text(json.dumps({"wall_minus_perf_counter": clock.now() - time.perf_counter()}))


_HOOKS: list[SaturationReport] = []
_STARTED_AT = time.time()


def _run_perf(job_dir: Path, spec: PerfSpec, out_dir: Path, channel: Channel, start_at: float,
              worker: int | None = None, watch: bool = True, barrier: StartBarrier | None = None) -> None:
    """One evalscope perf run into `out_dir`, its first request gated on `start_at`."""
    from evalscope.perf.arguments import Arguments
    from evalscope.perf.main import run_perf_benchmark

    saturation = SaturationReport()
    if not _HOOKS:  # the hooks wrap evalscope's functions once per process; the report they feed is swapped
        _install_hooks(start_at, _HOOKS, barrier)
        client_overhead.install()  # no per-request proxy/netrc lookups inside the TTFT clock
    _HOOKS[:] = [saturation]
    sampler = CpuSampler(saturation)
    args = Arguments(**perf_arguments(spec, out_dir, name="run"))
    if start_at > clock.now():
        channel.send(type="phase", message=f"waiting {start_at - clock.now():.1f}s for the common start")
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_progress, args=(out_dir, spec.number, channel, stop),
                               daemon=True)
    if watch:
        watcher.start()
    sampler.start()
    try:
        run_perf_benchmark(args)
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(timeout=2)
        sampler.stop()
        _write_saturation(job_dir, saturation, channel, "" if worker is None else f"-worker-{worker}")


def main() -> int:
    _die_with_parent()
    os.environ.update(OFFLINE_ENV)
    if os.environ.get("FLEETBENCH_TEST_HW_STANDIN"):  # CPU stand-ins for accelerators (agent/hardware_probe.py):
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread, before
            os.environ.setdefault(name, "1")  # numpy loads: spinning BLAS threads on a shared CPU make timings noise
    job_dir = Path(sys.argv[1])
    worker = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--worker" else None
    # Keep the original stdout for the agent; everything else printed goes to the log.
    channel = Channel(os.fdopen(os.dup(1), "w", buffering=1))
    log_fd = os.open(job_dir / "job.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        return run(job_dir, channel, worker)
    except BaseException as exc:  # report every failure to the agent in one line
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        channel.send(type="error", message=f"{type(exc).__name__}: {first_line}"[:500])
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
