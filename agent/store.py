"""The agent's own SQLite: job state and progress events, so nothing is lost
when the controller goes away or the agent restarts."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fleetbench.errors import JobError

# JobState values (the proto enum), declared once in fleetbench.jobs_schema.
from fleetbench.jobs_schema import TERMINAL_STATES as TERMINAL
from fleetbench.jobs_schema import JobState

log = logging.getLogger("fleetbench.agent")
T = TypeVar("T")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED, READY = (
    JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
    JobState.INTERRUPTED, JobState.READY)


class StoreFull(JobError):
    """The agent's data dir has no space left: the write was not made (and rolled back), the connection
    stays usable, and the same write succeeds once space is freed."""


def is_disk_full(exc: BaseException | str) -> bool:
    """SQLITE_FULL or ENOSPC, from an exception or from a line of a job's log."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "database or disk is full" in text or "no space left on device" in text or "disk quota exceeded" in text


@dataclass(frozen=True)
class JobRow:
    job_id: str
    kind: int
    spec_json: str
    start_at: float
    state: int
    error: str
    created_at: float
    started_at: float
    finished_at: float
    pid: int
    last_seq: int
    record_count: int
    ready_at: float = 0.0  # armed jobs: when preparation ended
    prepare_s: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True)
class EventRow:
    job_id: str
    seq: int
    time: float
    state: int
    payload: dict[str, Any]


class AgentStore:
    """Plain sqlite3, not sqlite-utils: sqlite-utils pulls in pandas and numpy when they are
    installed (they are, beside evalscope), which doubles the idle agent's memory and start-up."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.full = ""  # why the last write failed for lack of space; "" once a write succeeds again
        # 0600 before SQLite opens it: its -wal and -shm files take the database file's mode
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(p, 0o600)
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.row_factory = sqlite3.Row
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kind INTEGER, spec_json TEXT, start_at REAL, "
            "state INTEGER, error TEXT, created_at REAL, started_at REAL, finished_at REAL, pid INTEGER, "
            "last_seq INTEGER, record_count INTEGER, ready_at REAL DEFAULT 0, prepare_s REAL DEFAULT 0)"
        )
        columns = {r["name"] for r in self.con.execute("PRAGMA table_info(jobs)")}
        for name in ("ready_at", "prepare_s"):  # a data dir written by an older agent
            if name not in columns:
                self.con.execute(f"ALTER TABLE jobs ADD COLUMN {name} REAL DEFAULT 0")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS events (job_id TEXT, seq INTEGER, time REAL, state INTEGER, payload TEXT, "
            "PRIMARY KEY (job_id, seq))"
        )

    def _write(self, what: Callable[[], T]) -> T:
        """One write. A full disk rolls it back and raises StoreFull instead of leaving an open, failed
        transaction on the shared connection (which would fail every later write too)."""
        try:
            result = what()
        except (sqlite3.Error, OSError) as exc:
            if self.con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.con.rollback()
            if not is_disk_full(exc):
                raise
            if not self.full:
                log.error("agent store %s: disk full (%s); job states are kept in memory until space is freed",
                          self.path, exc)
            self.full = f"disk full in {self.path.parent}: {exc}"
            raise StoreFull(self.full) from None
        if self.full:
            log.warning("agent store %s: writable again", self.path)
            self.full = ""
        return result

    def get(self, job_id: str) -> JobRow | None:
        row = self.con.execute("SELECT * FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        return JobRow(**dict(row)) if row else None

    def insert(self, job_id: str, kind: int, spec_json: str, start_at: float) -> JobRow:
        row = JobRow(job_id, kind, spec_json, start_at, QUEUED, "", time.time(), 0.0, 0.0, 0, 0, 0, 0.0, 0.0)
        cols = list(row.__dict__)
        self._write(lambda: self.con.execute(
            f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [row.__dict__[c] for c in cols]))
        return row

    def update(self, job_id: str, **fields: Any) -> JobRow:
        allowed = set(JobRow.__dataclass_fields__) - {"job_id"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self._write(lambda: self.con.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?",
                                             [*fields.values(), job_id]))
        row = self.get(job_id)
        assert row is not None
        return row

    def add_event(self, job_id: str, state: int, payload: dict[str, Any]) -> EventRow:
        now = time.time()

        def write() -> int:
            with self.con:  # one transaction: the event and the job's last_seq move together
                self.con.execute("BEGIN")
                seq = int(self.con.execute("SELECT last_seq FROM jobs WHERE job_id = ?", [job_id]).fetchone()[0]) + 1
                self.con.execute("INSERT INTO events (job_id, seq, time, state, payload) VALUES (?, ?, ?, ?, ?)",
                                 [job_id, seq, now, state, json.dumps(payload)])
                self.con.execute("UPDATE jobs SET last_seq = ? WHERE job_id = ?", [seq, job_id])
            return seq

        return EventRow(job_id, self._write(write), now, state, payload)

    def events_after(self, job_id: str, seq: int) -> list[EventRow]:
        rows = self.con.execute("SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", [job_id, seq])
        return [EventRow(r["job_id"], r["seq"], r["time"], r["state"], json.loads(r["payload"])) for r in rows]

    def unfinished(self) -> list[JobRow]:
        rows = self.con.execute("SELECT * FROM jobs WHERE state IN (?, ?, ?)", [QUEUED, RUNNING, READY])
        return [JobRow(**dict(r)) for r in rows]
