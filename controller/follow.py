"""Following one agent job to its end, shared by the run's steps and the preflight.

The controller never waits silently: a job that sends no event for `no_progress_s` (a deadline derived from
the plan, Step.no_progress_s) is looked at once more (GetJob) and, still without progress, ends that node's part
of the step as an ERROR naming what was seen; before that, every quarter of the deadline says how long it has
been quiet."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

from fleetbench.errors import FleetbenchError, NodeError
from fleetbench.jobs_schema import JobState

from .client import AgentClient

WATCH_RETRIES = 5
JOB_DONE = frozenset(s.value for s in JobState if s.terminal)
STATE_NAMES = {s.value: s.label for s in JobState}
CHECK_S = 0.5  # how often the deadline is looked at
CANCEL_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 5.0  # the last look at a quiet job: an agent that does not answer in this is not answering


class StalledError(NodeError):
    """A job made no progress within its deadline, or its agent stopped answering."""


async def _watch(client: AgentClient, job_id: str, on_event: Callable[[Any], None], from_seq: int,
                 retries: int) -> tuple[int, int]:
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


async def follow_job(client: AgentClient, job_id: str, on_event: Callable[[Any], None], from_seq: int = 0,
                     retries: int = WATCH_RETRIES, no_progress_s: float = math.inf,
                     on_quiet: Callable[[float], None] | None = None) -> tuple[int, int]:
    """Watch `job_id` until it has ended, resuming from the last event seen after a dropped stream (the
    agent replays every event after `from_seq`); `on_event` gets each event. Returns (final state, last seq).
    Gives up with the NodeError after `retries` failed attempts in a row, and with a StalledError (the job
    cancelled, best effort) after `no_progress_s` without an event; `on_quiet(seconds)` is told along the way."""
    seen: dict[str, Any] = {"seq": from_seq, "at": time.monotonic(), "event": None}

    def record(ev: Any) -> None:
        seen.update(seq=ev.seq, at=time.monotonic(), event=ev)
        on_event(ev)

    task = asyncio.create_task(_watch(client, job_id, record, from_seq, retries))
    warn_every = max(no_progress_s / 4, 5.0)
    warned = 0
    try:
        while True:
            await asyncio.wait({task}, timeout=CHECK_S)
            if task.done():
                return task.result()
            quiet = time.monotonic() - seen["at"]
            if quiet < no_progress_s:
                if on_quiet is not None and int(quiet // warn_every) > warned:
                    warned = int(quiet // warn_every)
                    on_quiet(quiet)
                continue
            try:  # one last look before giving up: has it ended, or has the stream missed events?
                status = await client.get_job(job_id, timeout=PROBE_TIMEOUT_S)
            except NodeError as exc:
                raise StalledError(f"no progress for {quiet:.0f} s (limit {no_progress_s:.0f} s) and the agent "
                                   f"does not answer: {exc}") from None
            if status.state in JOB_DONE or status.last_seq > seen["seq"]:
                task.cancel()  # a stuck stream: watch again from the last event seen
                with contextlib.suppress(asyncio.CancelledError, NodeError):
                    await task
                seen["at"], warned = time.monotonic(), 0
                task = asyncio.create_task(_watch(client, job_id, record, int(seen["seq"]), retries))
                continue
            ev = seen["event"]
            where = f", {ev.done} of {ev.total} requests done" if ev is not None and ev.total else ""
            with contextlib.suppress(FleetbenchError, TimeoutError):  # stop its load; the step is judged without it
                await asyncio.wait_for(client.cancel_job(job_id), CANCEL_TIMEOUT_S)
            raise StalledError(f"no progress for {quiet:.0f} s (limit {no_progress_s:.0f} s): job "
                               f"{STATE_NAMES.get(status.state, status.state)}{where}; cancelled")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, NodeError):
                await task
