"""The agent's own SQLite: job state and progress events, so nothing is lost
when the controller goes away or the agent restarts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

# JobState values, mirrored from the proto enum so this module stays pure data.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = 1, 2, 3, 4, 5, 6
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, INTERRUPTED})


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
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.table("jobs").create(
            {
                "job_id": str, "kind": int, "spec_json": str, "start_at": float, "state": int, "error": str,
                "created_at": float, "started_at": float, "finished_at": float, "pid": int,
                "last_seq": int, "record_count": int,
            },
            pk="job_id",
            if_not_exists=True,
        )
        self.db.table("events").create(
            {"job_id": str, "seq": int, "time": float, "state": int, "payload": str},
            pk=("job_id", "seq"),
            if_not_exists=True,
        )

    def get(self, job_id: str) -> JobRow | None:
        rows = list(self.db.table("jobs").rows_where("job_id = ?", [job_id]))
        return JobRow(**rows[0]) if rows else None

    def insert(self, job_id: str, kind: int, spec_json: str, start_at: float) -> JobRow:
        row = JobRow(job_id, kind, spec_json, start_at, QUEUED, "", time.time(), 0.0, 0.0, 0, 0, 0)
        self.db.table("jobs").insert(row.__dict__)
        return row

    def update(self, job_id: str, **fields: Any) -> JobRow:
        self.db.table("jobs").update(job_id, fields)
        row = self.get(job_id)
        assert row is not None
        return row

    def add_event(self, job_id: str, state: int, payload: dict[str, Any]) -> EventRow:
        with self.db.conn:
            seq = self.db.execute("SELECT last_seq FROM jobs WHERE job_id = ?", [job_id]).fetchone()[0] + 1
            now = time.time()
            self.db.execute(
                "INSERT INTO events (job_id, seq, time, state, payload) VALUES (?, ?, ?, ?, ?)",
                [job_id, seq, now, state, json.dumps(payload)],
            )
            self.db.execute("UPDATE jobs SET last_seq = ? WHERE job_id = ?", [seq, job_id])
        return EventRow(job_id, seq, now, state, payload)

    def events_after(self, job_id: str, seq: int) -> list[EventRow]:
        return [
            EventRow(r["job_id"], r["seq"], r["time"], r["state"], json.loads(r["payload"]))
            for r in self.db.table("events").rows_where("job_id = ? AND seq > ?", [job_id, seq], order_by="seq")
        ]

    def unfinished(self) -> list[JobRow]:
        return [JobRow(**r) for r in self.db.table("jobs").rows_where("state IN (?, ?)", [QUEUED, RUNNING])]
