"""One instant for the load of a job's worker processes.

Each worker imports evalscope and builds its prompts before its first request, and that takes
each a different time (0.4 s apart for six workers on a 2-core VM; seconds on a busy server):
without a barrier the first workers run alone for a while and the merged window is stretched, so
the node's throughput comes out low. Each worker marks itself ready with the time it did; once
all have, every worker waits for the same instant, the last mark plus a margin, and starts.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

MARGIN_S = 0.05  # > the poll interval: every worker sees the last mark before the instant
POLL_S = 0.002
TIMEOUT_S = 600.0


class StartBarrier:
    def __init__(self, folder: Path, index: int, count: int, margin_s: float = MARGIN_S,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.folder, self.index, self.count = folder, index, count
        self.margin_s, self.timeout_s = margin_s, timeout_s

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
        go = max(marks) + self.margin_s
        delay = go - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return go
