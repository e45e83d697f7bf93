"""One instant for the load of a job's worker processes.

Each worker imports evalscope and builds its prompts before its first request, and that takes
each a different time (0.4 s apart for six workers on a 2-core VM; seconds on a busy server):
without a barrier the first workers run alone for a while and the merged window is stretched, so
the node's throughput comes out low. Each worker marks itself ready with the time it did; once
all have, every worker waits for the same instant, the last mark plus a margin, and starts.

Armed (the controller's two-phase start): once all have marked, the job is READY (`on_all_ready`, called
by the one process that sees the last mark: a single-process job itself, or the workers' parent), and
every process waits for the instant the agent writes to `go_file` (StartAt), on the agent's clock.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from . import clock

MARGIN_S = 0.05  # > the poll interval: every worker sees the last mark before the instant
POLL_S = 0.002
TIMEOUT_S = 600.0
ARMED_TIMEOUT_S = float(os.environ.get("FLEETBENCH_ARMED_TIMEOUT_S", "900"))  # READY with no start instant


class NoStartInstant(RuntimeError):
    """An armed job got no start instant in time: the controller is gone; send nothing."""


def read_go(go_file: Path) -> float | None:
    try:
        return float(go_file.read_text())
    except (OSError, ValueError):
        return None


async def wait_for_go(go_file: Path, timeout_s: float = ARMED_TIMEOUT_S) -> float:
    """Poll for the agent's start instant (agent clock), then sleep until it; returns it."""
    deadline = time.monotonic() + timeout_s
    while (go := read_go(go_file)) is None:
        if time.monotonic() > deadline:
            raise NoStartInstant(f"no start instant within {timeout_s:.0f} s of being ready; sending nothing")
        await asyncio.sleep(POLL_S)
    delay = go - clock.now()
    if delay > 0:
        await asyncio.sleep(delay)
    return go


class StartBarrier:
    def __init__(self, folder: Path, index: int, count: int, margin_s: float = MARGIN_S,
                 timeout_s: float = TIMEOUT_S, go_file: Path | None = None,
                 on_all_ready: Callable[[], None] | None = None) -> None:
        self.folder, self.index, self.count = folder, index, count
        self.margin_s, self.timeout_s = margin_s, timeout_s
        self.go_file, self.on_all_ready = go_file, on_all_ready

    def mark_ready(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".ready-{self.index}.{os.getpid()}"
        tmp.write_text(repr(time.time()))
        tmp.replace(self.folder / f"ready-{self.index}")  # atomic: a reader sees the whole time or no file

    def marks(self) -> list[float]:
        return [float(p.read_text()) for p in self.folder.glob("ready-*")]

    async def wait(self) -> float:
        """Mark ready, wait for every worker, then until the common instant (returned, wall clock).
        After the timeout (a sibling that never got ready) it goes on alone rather than never."""
        self.mark_ready()
        deadline = time.time() + self.timeout_s
        while len(marks := self.marks()) < self.count and time.time() < deadline:
            await asyncio.sleep(POLL_S)
        if self.on_all_ready is not None:
            self.on_all_ready()
        if self.go_file is not None:
            return await wait_for_go(self.go_file)
        go = max(marks) + self.margin_s
        delay = go - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return go
