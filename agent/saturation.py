"""Is the load generator itself the bottleneck?

evalscope's client is one Python process with one event loop. When it uses
nearly a whole core, or its loop falls behind its own timers, the latencies
it measures include its own queueing: a client-bound number nobody should
sign off. The job process samples both while the load runs and the result
says so.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CPU_SATURATED = 0.90  # share of one core, sustained over a sampling window
LAG_SATURATED_S = 0.050  # event-loop lag beyond which request timings are distorted
SAMPLE_S = 1.0


@dataclass
class SaturationReport:
    cpu_samples: list[float] = field(default_factory=list)  # share of one core per window
    lag_samples_s: list[float] = field(default_factory=list)
    # set when the first request goes out: CPU spent before (loading the tokenizer, generating a 128k
    # prompt) is set-up, not load, and is not sampled (without it a long-context job was "saturated")
    load_started: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def cpu_max(self) -> float:
        return max(self.cpu_samples, default=0.0)

    @property
    def lag_max_s(self) -> float:
        return max(self.lag_samples_s, default=0.0)

    @property
    def lag_p95_s(self) -> float:
        if not self.lag_samples_s:
            return 0.0
        data = sorted(self.lag_samples_s)
        return data[max(0, math.ceil(0.95 * len(data)) - 1)]

    def saturated_windows(self) -> int:
        return sum(1 for c in self.cpu_samples if c >= CPU_SATURATED)

    @property
    def saturated(self) -> bool:
        """Client-bound: a quarter of the CPU windows (at least two) near a full core, or the loop late by
        more than the threshold in over 5% of its samples (a single spike, e.g. prompt generation, is not)."""
        windows = self.saturated_windows()
        cpu_bound = windows >= 2 and windows >= len(self.cpu_samples) / 4
        return cpu_bound or (len(self.lag_samples_s) >= 3 and self.lag_p95_s >= LAG_SATURATED_S)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu_max": round(self.cpu_max, 3), "lag_max_s": round(self.lag_max_s, 4),
                "lag_p95_s": round(self.lag_p95_s, 4),
                "windows": len(self.cpu_samples), "saturated_windows": self.saturated_windows(),
                "saturated": self.saturated,
                "cpu_threshold": CPU_SATURATED, "lag_threshold_s": LAG_SATURATED_S}


def process_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def thread_cpu_seconds(native_id: int) -> float | None:
    """CPU time of one thread of this process (Linux /proc), None where it cannot be read."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as f:
            fields_ = f.read().rsplit(")", 1)[1].split()
        return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


class CpuSampler(threading.Thread):
    """Samples the load generator's CPU use (share of one core) every SAMPLE_S seconds.

    What saturates is the one thread that runs evalscope's event loop: `loop_thread` (a native
    thread id, by default the thread that creates the sampler). Other threads (a tokenizer's or
    a math library's pool, this sampler) do not delay requests and are not counted; on a
    16-core GPU server they took the process to 290 % of a core at one stream. Where the
    thread cannot be read, the whole process is sampled."""

    def __init__(self, report: SaturationReport, interval_s: float = SAMPLE_S, loop_thread: int | None = None) -> None:
        super().__init__(daemon=True, name="fleetbench-cpu-sampler")
        self.report, self.interval_s = report, interval_s
        self.loop_thread = threading.get_native_id() if loop_thread is None else loop_thread
        self._stop_event = threading.Event()

    def _cpu(self) -> float:
        cpu = thread_cpu_seconds(self.loop_thread)
        return process_cpu_seconds() if cpu is None else cpu

    def run(self) -> None:
        last_cpu, last_t = self._cpu(), time.monotonic()
        baseline_under_load = self.report.load_started.is_set()
        while not self._stop_event.wait(self.interval_s):
            cpu, now = self._cpu(), time.monotonic()
            if not baseline_under_load:
                # still setting up, or the interval in which the load began: that interval holds
                # set-up work too (a 16k prompt being built), so it only moves the baseline on
                baseline_under_load = self.report.load_started.is_set()
                last_cpu, last_t = cpu, now
                continue
            if now > last_t:
                self.report.cpu_samples.append((cpu - last_cpu) / (now - last_t))
            last_cpu, last_t = cpu, now

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


async def watch_loop_lag(report: SaturationReport, interval_s: float = 0.1) -> None:
    """Runs inside the load generator's event loop: how late does a timer fire? Only once the load has
    begun, skipping the interval in which it began: an armed job waits for its start instant with the
    loop busy building the other streams' prompts (set-up, not load; found on an idle 16-core H200,
    where a 4-stream job read "loop lag p95 306 ms, saturated")."""
    loop = asyncio.get_running_loop()
    began = False
    while True:
        t0 = loop.time()
        await asyncio.sleep(interval_s)
        if not report.load_started.is_set():
            continue
        if not began:
            began = True
            continue
        report.lag_samples_s.append(max(0.0, loop.time() - t0 - interval_s))
