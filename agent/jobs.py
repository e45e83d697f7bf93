"""Runs jobs in child processes and keeps their state in the agent's SQLite.

A job is a folder under DATA_DIR/jobs/<job_id>/ (job.json, job.log,
clock.json, evalscope's output) plus a row in agent.sqlite. The child runs
in its own process group so a cancel stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetbench.bounds import MAX_DEADLINE_S
from fleetbench.errors import ConfigError, JobError
from fleetbench.jobs_schema import (
    MIN_FREE_BYTES,
    CheckRow,
    HardwareResult,
    JobKind,
    JobOutcome,
    LongContextResult,
    Saturation,
    ScoreRow,
    check_job_id,
    parse_spec,
)
from fleetbench.records import RequestRecord
from fleetbench.secrets import SECRETS_ENV, scrub, split

from . import clock
from . import evalscope_adapter as adapter
from .budgets import default_max_job_rss, job_memory, over_budget
from .confine import Confinement
from .jobspec import spec_total
from .store import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    READY,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    AgentStore,
    EventRow,
    JobRow,
    StoreFull,
    is_disk_full,
)

log = logging.getLogger("fleetbench.agent")

CANCEL_GRACE_S = 5.0
WATCHDOG_S = 1.0  # how often the watchdog looks at every unfinished job
EXIT_GRACE_S = 2.0  # a job process gone this long while its output pipe stays open (a grandchild holds it)
LOG_TAIL_BYTES = 8192
LOW_SPACE_BYTES = 1 << 20  # a job that failed with less free than this in the data dir failed of a full disk


def last_log_line(path: Path) -> str:
    """The last non-empty line of a job's log: the cause when the process died without telling the agent."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


SCRUB_MAX_BYTES = 256 << 20  # files larger than this (record databases) are not searched for secrets
SCRUB_SKIP = (".db", ".sqlite", ".sqlite-wal", ".sqlite-shm")


def write_private(path: Path, text: str) -> None:
    """Write a file only the agent's user can read (0600), whatever the umask, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def private_dir(path: Path) -> Path:
    """A folder only the agent's user can enter (0700), made or tightened. A shared folder (/, or one with
    the sticky bit such as /tmp) is refused rather than closed to everyone else."""
    if path.exists() and (path.resolve() == Path("/") or path.stat().st_mode & stat.S_ISVTX):
        raise ConfigError(f"{path} is a shared folder; give the agent a data dir of its own "
                          f"(e.g. {path / 'fleetbench'})")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def scrub_folder(folder: Path, secrets: list[str]) -> int:
    """Replace each secret by *** in every text file of a finished job (evalscope logs its arguments, API key
    and headers included); returns the number of files changed."""
    changed = 0
    for p in folder.rglob("*"):
        if p.is_symlink() or not p.is_file() or p.name.endswith(SCRUB_SKIP) or p.stat().st_size > SCRUB_MAX_BYTES:
            continue
        data = p.read_bytes()
        clean = scrub(data, secrets)
        if clean != data:
            tmp = p.with_name(f".{p.name}.scrub")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(clean)
            tmp.replace(p)
            changed += 1
    return changed


@dataclass(frozen=True)
class JobResult:
    row: JobRow
    evalscope_summary: dict[str, Any]
    evalscope_percentiles: list[Any]
    record_count: int
    result: JobOutcome = field(default_factory=JobOutcome)  # kind-specific results, load-generator saturation


def merge_saturation(reports: list[Saturation]) -> Saturation:
    """One verdict for a node whose load came from several workers: saturated if any worker was."""
    if len(reports) == 1:
        return reports[0]
    return Saturation(
        saturated=any(r.saturated for r in reports),
        cpu_max=max(r.cpu_max for r in reports),
        lag_max_s=max(r.lag_max_s for r in reports),
        lag_p95_s=max(r.lag_p95_s for r in reports),
        windows=min(r.windows for r in reports),
        workers=tuple(reports),
    )


def long_context_result(records: list[RequestRecord]) -> LongContextResult:
    """Did the long prompt go through, and how long until its first token? Said plainly, per request."""
    ok = [r for r in records if r.success]
    return LongContextResult(
        requests=len(records),
        succeeded=len(ok),
        passed=bool(records) and len(ok) == len(records),
        ttft_s=tuple(r.ttft_s for r in records),
        input_tokens=tuple(r.input_tokens for r in records),
        output_tokens=tuple(r.output_tokens for r in records),
        errors=tuple(r.error for r in records if not r.success),
    )


def _read_saturation(path: Path) -> Saturation | None:
    """A worker's saturation report; None when a failed job (a full disk) left it empty or cut short, so the
    job's records and its cause are still served."""
    try:
        return Saturation.model_validate_json(path.read_text())
    except (OSError, ValueError):
        log.warning("unreadable load-generator report %s: left out", path)
        return None


class JobManager:
    def __init__(self, data_dir: Path, max_running: int = 1, confinement: Confinement | None = None,
                 min_free_bytes: int = MIN_FREE_BYTES, max_job_rss_bytes: int | None = None) -> None:
        self.data_dir = private_dir(data_dir)  # 0700: job specs, logs and the store are the operator's only
        self.jobs_dir = private_dir(data_dir / "jobs")
        self.confinement = confinement or Confinement.of(data_dir)
        self.min_free_bytes = min_free_bytes
        # a running job's process tree may hold this much memory, PSS (0: no budget); agent/budgets.py
        self.max_job_rss_bytes = default_max_job_rss() if max_job_rss_bytes is None else max_job_rss_bytes
        self.store = AgentStore(data_dir / "agent.sqlite")
        self.max_running = max_running
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._secrets: dict[str, dict[str, str]] = {}  # job id -> its API key and headers, while it runs
        self._changed = asyncio.Condition()
        # terminal states a full disk kept out of the store: reported from here, written when space is freed
        self._final: dict[str, tuple[str, dict[str, Any]]] = {}
        self._exited: dict[str, float] = {}  # job id -> when its process was first seen gone, pipe still open
        # job id -> (time.monotonic() when StartJob accepted it, its deadline_s): the monotonic clock runs on
        # while the agent is stopped (SIGSTOP), so a job past its deadline is cancelled as soon as it continues
        self._deadlines: dict[str, tuple[float, float]] = {}
        self._reasons: dict[str, str] = {}  # job id -> why the agent itself ended it (cancel reason, watchdog cause)
        self._background: set[asyncio.Task[Any]] = set()  # the watchdog's cancels under way
        self._over: dict[str, str] = {}  # job id -> the budget it broke: the watchdog killed it, it ends FAILED
        self._watchdog: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def recover(self) -> None:
        """After a restart: jobs that were running are interrupted; their children are stopped."""
        for row in self.store.unfinished():
            if row.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(row.pid, signal.SIGKILL)
            fields = {"state": INTERRUPTED, "finished_at": time.time(), "record_count": self._count_records(row.job_id),
                      "error": "interrupted: the agent restarted while the job ran; records measured before are kept"}
            try:
                self.store.update(row.job_id, **fields)
                self.store.add_event(row.job_id, INTERRUPTED, {"type": "state",
                                                               "message": "interrupted by agent restart"})
            except StoreFull:  # the agent still starts: the state is reported from memory until space is freed
                self._final[row.job_id] = ("interrupted by agent restart", fields)
            log.warning("job %s was running when the agent stopped: marked interrupted", row.job_id)

    def start_watchdog(self) -> None:
        """Every WATCHDOG_S: end jobs whose process is gone, write states a full disk held back."""
        self._watchdog = asyncio.create_task(self._watchdog_loop())

    async def shutdown(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for job_id in list(self._procs):
            await self.cancel(job_id, reason="agent shutting down")
        for task in [*self._tasks.values(), *self._background]:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), CANCEL_GRACE_S)
        with contextlib.suppress(Exception):
            self._flush_final()

    # --- commands --------------------------------------------------------------------------

    async def start(self, job_id: str, kind: int, spec_json: str, start_at: float, armed: bool = False,
                    deadline_s: float = 0.0) -> JobRow:
        """Start a job. `armed`: prepare everything, report READY, and send nothing until `start_at()`
        gives the instant (the controller's two-phase start: every node ready first, then one instant).
        `deadline_s` (> 0): the watchdog cancels the job that long after now, whoever can reach this agent."""
        check_job_id(job_id)
        existing = self.store.get(job_id)
        if existing is not None:
            return existing  # idempotent: never a second run (and the first deadline stands)
        if not (math.isfinite(deadline_s) and 0 <= deadline_s <= MAX_DEADLINE_S):
            raise ConfigError(f"deadline_s must be between 0 (none) and {MAX_DEADLINE_S:.0f} seconds, "
                              f"not {deadline_s}")
        spec = parse_spec(kind, spec_json)  # ConfigError (INVALID_ARGUMENT) for a bad spec or kind
        self.confinement.check_spec(spec)  # ConfinementError (PERMISSION_DENIED): files and hosts not allowed
        total = spec_total(spec)
        running = [j for j, t in self._tasks.items() if not t.done() and not self._require(j).terminal]
        if len(running) >= self.max_running:
            raise JobError(f"agent is busy with job {running[0]}; one job at a time (start it again when done)")
        self._check_free_space()
        try:
            job_dir = private_dir(self.jobs_dir / job_id)
            public, secrets = split(json.loads(spec.model_dump_json()))  # API key and headers: memory only
            write_private(job_dir / "job.json", json.dumps({"kind": kind, "spec": public,
                                                            "start_at": 0.0 if armed else start_at, "armed": armed}))
        except OSError as exc:  # refused with the reason, never an UNKNOWN traceback
            where = f"disk full in {self.data_dir}" if is_disk_full(exc) else f"cannot write {self.jobs_dir / job_id}"
            raise JobError(f"{where}: {exc.strerror or exc}") from None
        row = self.store.insert(job_id, kind, json.dumps(public), start_at)
        self._secrets[job_id] = secrets
        if deadline_s > 0:
            self._deadlines[job_id] = (time.monotonic(), deadline_s)
        self.store.add_event(job_id, QUEUED, {"type": "state", "message": "queued", "total": total})
        self._tasks[job_id] = asyncio.create_task(self._run(job_id, job_dir, total))
        return row

    async def start_at(self, job_id: str, start_at: float) -> JobRow:
        """The second phase: the instant (this agent's clock) at which an armed job sends its first request.
        Written to the job folder, where the job process (every worker of it) polls for it."""
        row = self._require(job_id)
        if row.terminal:
            raise JobError(f"job {job_id} has already ended ({row.error or 'no detail'}); it cannot be started")
        if not math.isfinite(start_at) or start_at <= 0:
            raise ConfigError(f"start_at must be a Unix time in seconds, not {start_at}")
        go = self.jobs_dir / job_id / "go"
        if go.exists():
            return row  # idempotent: the first instant given stands
        tmp = go.with_suffix(".tmp")
        tmp.write_text(repr(start_at))
        tmp.replace(go)  # atomic: the job process reads the whole instant or nothing
        await self._set_state(job_id, RUNNING, f"start at {start_at:.3f} (in {start_at - clock.now():.3f} s)")
        return self._require(job_id)

    async def cancel(self, job_id: str, reason: str = "cancelled by the controller") -> JobRow:
        row = self._require(job_id)
        if row.terminal:
            return row
        self._cancelled.add(job_id)
        self._reasons.setdefault(job_id, reason)
        proc = self._procs.get(job_id)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), CANCEL_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)
        return self._require(job_id)

    def get(self, job_id: str) -> JobRow:
        return self._require(job_id)

    async def watch(self, job_id: str, from_seq: int) -> AsyncIterator[EventRow]:
        """Events after `from_seq`, then live ones, until the job has ended."""
        self._require(job_id)
        seq = from_seq
        while True:
            async with self._changed:
                events = self.store.events_after(job_id, seq)
                row = self._require(job_id)
                if not events and not row.terminal:
                    await self._changed.wait()
                    continue
            for ev in events:
                seq = ev.seq
                yield ev
            if row.terminal and not self.store.events_after(job_id, seq):
                return

    def result(self, job_id: str) -> JobResult:
        row = self._require(job_id)
        if not row.terminal:
            raise JobError(f"job {job_id} has not finished yet (state {row.state}); watch it first")
        summary: dict[str, Any] = {}
        percentiles: list[Any] = []
        dbs = adapter.find_result_dbs(self.jobs_dir / job_id / "evalscope")
        if dbs:
            summary, percentiles = adapter.read_summary_files(dbs[-1].parent)
        job_dir = self.jobs_dir / job_id
        parts: dict[str, Any] = {}
        reports = [r for r in map(_read_saturation, sorted(job_dir.glob("saturation*.json"))) if r is not None]
        if reports:
            parts["saturation"] = merge_saturation(reports)
        if row.kind == JobKind.LONG_CONTEXT:
            parts["long_context"] = long_context_result(list(self.records(job_id)))
        elif row.kind == JobKind.EVAL:
            scores = job_dir / "scores.json"
            parts["scores"] = [ScoreRow.model_validate(s) for s in json.loads(scores.read_text())] \
                if scores.exists() else []
        elif row.kind == JobKind.PREFLIGHT:  # the checks' verdicts (agent/preflight_job.py)
            checks = job_dir / "preflight.json"
            parts["preflight"] = [CheckRow.model_validate(c) for c in json.loads(checks.read_text())] \
                if checks.exists() else []
        elif row.kind == JobKind.HARDWARE:  # agent/hardware_job.py; absent when the job failed before any check
            hw = job_dir / "hardware.json"
            if hw.exists():
                parts["hardware"] = HardwareResult.model_validate_json(hw.read_text())
        if len(dbs) > 1:  # several workers (`workers: 0` resolved on the node)
            # evalscope's summary covers one worker only: the node's figures come from the merged records
            parts["worker_summaries"] = [adapter.read_summary_files(db.parent)[0] for db in sorted(dbs)]
            summary, percentiles = {}, []
        result = JobOutcome(**parts)
        return JobResult(row, summary, percentiles, row.record_count, result)

    def records(self, job_id: str) -> Iterator[RequestRecord]:
        """Every record of the job; several databases (workers) are numbered on as one sequence."""
        job_dir = self.jobs_dir / job_id
        root = job_dir / "evalscope"
        offset = self._clock_offset(job_dir)
        index = 0
        for db in sorted(adapter.find_result_dbs(root)):
            for rec in adapter.iter_records(db, offset):
                yield replace(rec, index=index)
                index += 1

    # --- internals -------------------------------------------------------------------------

    def _check_free_space(self) -> None:
        """A job writes its records, logs and evalscope's outputs here: refuse to start one on a nearly full
        disk rather than fill it beside the engine."""
        free = shutil.disk_usage(self.data_dir).free
        if free < self.min_free_bytes:
            raise JobError(f"only {free / 2**30:.2f} GiB free in {self.data_dir}; this agent starts a job only with "
                           f"at least {self.min_free_bytes / 2**30:.2f} GiB free (--min-free-bytes "
                           f"{self.min_free_bytes}): free some space")

    def _require(self, job_id: str) -> JobRow:
        check_job_id(job_id)
        row = self.store.get(job_id)
        if row is None:
            raise JobError(f"no job {job_id} on this agent")
        if job_id in self._final:  # ended while the disk was full: the state the store could not take yet
            row = replace(row, **self._final[job_id][1])
        return row

    @staticmethod
    def _clock_offset(job_dir: Path) -> float:
        try:
            return float(json.loads((job_dir / "clock.json").read_text())["wall_minus_perf_counter"])
        except (OSError, ValueError, KeyError):
            return 0.0

    def _count_records(self, job_id: str) -> int:
        return sum(1 for _ in self.records(job_id))

    async def _event(self, job_id: str, state: int, payload: dict[str, Any]) -> None:
        async with self._changed:
            with contextlib.suppress(StoreFull):  # a progress event lost to a full disk: the final state is kept
                self.store.add_event(job_id, state, payload)
            self._changed.notify_all()

    async def _set_state(self, job_id: str, state: int, message: str, **fields: Any) -> None:
        async with self._changed:
            try:
                self.store.update(job_id, state=state, **fields)
                self.store.add_event(job_id, state, {"type": "state", "message": message})
            except StoreFull:
                if state in TERMINAL:  # reported from memory; the watchdog writes it once space is freed
                    self._final[job_id] = (message, {"state": state, **fields})
            finally:
                self._changed.notify_all()

    async def _finish(self, job_id: str, state: int, message: str, **fields: Any) -> None:
        """A job's terminal state, once: a later report of the same end (watchdog, then the task) changes nothing."""
        if self._require(job_id).terminal:
            return
        await self._set_state(job_id, state, message, **fields)

    def _flush_final(self) -> None:
        for job_id, (message, fields) in list(self._final.items()):
            self.store.update(job_id, **fields)  # StoreFull: still full, try again on the next round
            self.store.add_event(job_id, int(fields["state"]), {"type": "state", "message": message})
            del self._final[job_id]
            log.info("job %s: final state written after the disk was freed", job_id)

    def cause(self, job_id: str, rc: int | None, error: str = "") -> str:
        """Why a job process ended badly, in one line: its own error message, else the last line of its log;
        a full disk is named as such, with the data dir and its free space."""
        job_dir = self.jobs_dir / job_id
        tail = last_log_line(job_dir / "job.log")
        if not error:
            if rc is None:
                how = "is gone"
            elif rc < 0:
                how = f"was killed by {signal.Signals(-rc).name}" if -rc in signal.valid_signals() \
                    else f"was killed by signal {-rc}"
            else:
                how = f"exited with code {rc}"
            error = f"job process {how}" + (f": {tail}" if tail else f" (see {job_dir / 'job.log'})")
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = -1
        # the job process may die of a full disk before it can say so (exit 120: Python could not flush the
        # log at exit): the data dir's free space tells
        if is_disk_full(error) or is_disk_full(tail) or self.store.full or 0 <= free < LOW_SPACE_BYTES:
            return f"disk full in {self.data_dir} ({max(free, 0) / 1e6:.1f} MB free): {error}"[:500]
        return error[:500]

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_S)
            try:
                await self.sweep()
            except Exception:  # the watchdog never dies: one bad round is logged, the next one runs
                log.exception("watchdog round failed")

    def _past_deadline(self) -> None:
        """Cancel (in the background: the round goes on) every job past its deadline_s. Measured on this agent's
        monotonic clock, which a SIGSTOP of the agent does not pause: the first round after SIGCONT ends it."""
        now = time.monotonic()
        for job_id, (started, limit) in list(self._deadlines.items()):
            if now - started <= limit or job_id in self._cancelled:
                continue
            reason = (f"deadline of {limit:.0f} s passed (the job ran {now - started:.0f} s): cancelled by the "
                      "agent")
            log.error("watchdog: job %s: %s", job_id, reason)
            task = asyncio.create_task(self.cancel(job_id, reason=reason))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _watch_budgets(self) -> None:
        """End (SIGKILL to its group, FAILED with the cause) a running job whose process tree holds more memory
        than --max-job-rss-bytes, or while the data dir has less free space than --min-free-bytes: the engine
        beside it keeps its memory and its disk."""
        alive = {j: p for j, p in self._procs.items() if p.returncode is None and j not in self._over}
        if not alive:
            return
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = self.min_free_bytes  # unreadable: not a reason to stop a job
        for job_id, proc in alive.items():
            rss = await asyncio.to_thread(job_memory, proc.pid) if self.max_job_rss_bytes else 0
            why = over_budget(rss, self.max_job_rss_bytes, free, self.min_free_bytes, self.data_dir)
            if why:
                log.error("watchdog: job %s: %s: stopped", job_id, why)
                self._over[job_id] = why
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

    async def sweep(self) -> None:
        """One watchdog round. A job is never left RUNNING without a live process behind it, past its deadline,
        or beyond its memory and disk budgets."""
        self._past_deadline()
        await self._watch_budgets()
        if self._final:
            with contextlib.suppress(StoreFull):
                async with self._changed:
                    self._flush_final()
                    self._changed.notify_all()
        for row in self.store.unfinished():
            if row.job_id in self._final:
                continue
            task, proc = self._tasks.get(row.job_id), self._procs.get(row.job_id)
            if task is not None and not task.done():
                if proc is None or proc.returncode is None:
                    continue  # running, or starting its process
                gone = self._exited.setdefault(row.job_id, time.monotonic())
                if time.monotonic() - gone < EXIT_GRACE_S:
                    continue
                # the process is gone but something it started holds its output open: stop the group; the task
                # then reads the end of the output and ends the job with its real exit status
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                continue
            error = self.cause(row.job_id, proc.returncode if proc is not None else None)
            log.error("watchdog: job %s has no running process: %s", row.job_id, error)
            await self._finish(row.job_id, FAILED, error, error=error, finished_at=time.time(),
                               record_count=await asyncio.to_thread(self._count_records, row.job_id))

    async def _run(self, job_id: str, job_dir: Path, total: int) -> None:
        """The job's whole life; whatever goes wrong in here ends the job FAILED with the reason."""
        try:
            await self._run_process(job_id, job_dir, total)
        except Exception as exc:
            log.exception("job %s: the agent lost track of it", job_id)
            error = self.cause(job_id, None, f"the agent lost track of the job: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):  # else the watchdog ends it on its next round
                await self._finish(job_id, FAILED, error, error=error, finished_at=time.time(),
                                   record_count=await asyncio.to_thread(self._count_records, job_id))
        finally:
            self._procs.pop(job_id, None)
            self._exited.pop(job_id, None)
            self._deadlines.pop(job_id, None)
            self._over.pop(job_id, None)
            await self._forget_secrets(job_id, job_dir)

    async def _forget_secrets(self, job_id: str, job_dir: Path) -> None:
        """The job's API key and headers leave the agent with the job, and its files keep none of them."""
        secrets = list(self._secrets.pop(job_id, {}).values())
        if secrets:
            try:
                await asyncio.to_thread(scrub_folder, job_dir, secrets)
            except OSError as exc:
                log.warning("job %s: could not scrub its API key and headers from its files: %s", job_id, exc)

    async def _run_process(self, job_id: str, job_dir: Path, total: int) -> None:
        error = ""
        env = {k: v for k, v in os.environ.items() if k != SECRETS_ENV}
        if self._secrets.get(job_id):
            env[SECRETS_ENV] = json.dumps(self._secrets[job_id])  # readable by this user only (/proc/PID/environ)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fleetbench.agent.job_process", str(job_dir),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True, cwd=job_dir, env=env,
            )
        except OSError as exc:
            await self._finish(job_id, FAILED, f"could not start the job process: {exc}",
                               error=self.cause(job_id, None, str(exc)), finished_at=time.time())
            return
        self._procs[job_id] = proc
        if job_id in self._cancelled:  # cancelled while its process was starting: it sends nothing
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await self._set_state(job_id, RUNNING, "running", started_at=time.time(), pid=proc.pid)
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("type") == "error":
                error = str(msg.get("message", "job failed"))
            if msg.get("type") == "ready":
                prepare_s = float(msg.get("prepare_s") or 0.0)
                if not (job_dir / "go").exists():  # a resent ready after StartAt changes nothing
                    await self._set_state(job_id, READY, f"ready: prepared in {prepare_s:.2f} s; waiting for the "
                                                         "start instant", ready_at=time.time(), prepare_s=prepare_s)
                continue
            await self._event(job_id, self._require(job_id).state, msg)
        rc = await proc.wait()
        self._procs.pop(job_id, None)
        await self._forget_secrets(job_id, job_dir)  # before the end is told: results are read scrubbed
        count = await asyncio.to_thread(self._count_records, job_id)
        now = time.time()
        if job_id in self._over:  # the watchdog stopped it: a budget broken (a full disk is named as such)
            error = self.cause(job_id, rc, self._over.pop(job_id))
            await self._finish(job_id, FAILED, error, error=error, finished_at=now, record_count=count)
        elif job_id in self._cancelled:
            reason = self._reasons.get(job_id, "cancelled by the controller")
            await self._finish(job_id, CANCELLED, f"{reason}; records measured so far are kept",
                               error="cancelled" if reason == "cancelled by the controller" else reason,
                               finished_at=now, record_count=count)
        elif rc == 0:
            await self._finish(job_id, SUCCEEDED, "finished", finished_at=now, record_count=count)
        else:
            error = self.cause(job_id, rc, error)
            await self._finish(job_id, FAILED, error, error=error, finished_at=now, record_count=count)
