"""Following one agent job to its end, shared by the run's steps and the preflight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fleetbench.errors import NodeError
from fleetbench.jobs_schema import JobState

from .client import AgentClient

WATCH_RETRIES = 5
JOB_DONE = frozenset(s.value for s in JobState if s.terminal)


async def follow_job(client: AgentClient, job_id: str, on_event: Callable[[Any], None], from_seq: int = 0,
                     retries: int = WATCH_RETRIES) -> tuple[int, int]:
    """Watch `job_id` until it has ended, resuming from the last event seen after a dropped stream (the
    agent replays every event after `from_seq`); `on_event` gets each event. Returns (final state, last seq).
    Gives up with the NodeError after `retries` failed attempts in a row."""
    last_seq, attempts = from_seq, 0
    while True:
        try:
            async for ev in client.watch(job_id, last_seq):
                last_seq, attempts = ev.seq, 0
                on_event(ev)
            status = await client.get_job(job_id)
            if status.state in JOB_DONE:
                return int(status.state), last_seq
        except NodeError:
            attempts += 1
            if attempts > retries:
                raise
            await asyncio.sleep(min(2.0 ** attempts * 0.25, 5.0))
