"""A simulated continuous-batching engine (see docs/simulator.md).

`EngineCore` is the pure model: a FIFO of waiting sequences, a running batch
bounded by `max_batch` and the KV-cache budget, and steps whose duration
depends on the batch and the prefill work in them. It knows nothing of time
sources, so `simulate()` can run it in virtual time (instantly) and `Engine`
runs it in real time on the event loop, scheduling each step against an
absolute deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from fleetbench.endpoint.config import EngineModel

__all__ = ["Engine", "EngineCore", "SimResult", "Step", "simulate"]


@dataclass(eq=False)
class Sequence:
    prompt: int
    max_new: int
    prefilled: int = 0
    generated: int = 0
    admitted: bool = False
    done: bool = False
    event: asyncio.Event | None = None
    # virtual-time bookkeeping for simulate()
    first_token_at: float | None = None
    last_token_at: float | None = None

    @property
    def reserved(self) -> int:
        return self.prompt + self.max_new


@dataclass
class Step:
    duration: float
    decode: list[Sequence] = field(default_factory=list)
    prefill: list[tuple[Sequence, int]] = field(default_factory=list)


class EngineCore:
    """The scheduling and cost model, independent of any clock."""

    def __init__(self, model: EngineModel) -> None:
        self.model = model
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.kv_used = 0

    def add(self, prompt_tokens: int, max_new_tokens: int) -> Sequence:
        seq = Sequence(prompt=max(1, prompt_tokens), max_new=max(1, max_new_tokens))
        self.waiting.append(seq)
        return seq

    def remove(self, seq: Sequence) -> None:
        """Drop a sequence (finished or abandoned) and free its KV cache."""
        if seq.done:
            return
        seq.done = True
        if seq.admitted:
            self.running.remove(seq)
            self.kv_used -= seq.reserved
        else:
            self.waiting.remove(seq)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def _admit(self) -> None:
        m = self.model
        while self.waiting and len(self.running) < m.max_batch:
            seq = self.waiting[0]
            # A request larger than the whole cache still runs, alone, rather than wait forever.
            if self.kv_used + seq.reserved > m.kv_cache_tokens and self.running:
                break
            self.waiting.popleft()
            seq.admitted = True
            self.kv_used += seq.reserved
            self.running.append(seq)

    def plan(self) -> Step | None:
        """Admit what fits and describe the next step (None when there is nothing to do)."""
        self._admit()
        if not self.running:
            return None
        m = self.model
        step = Step(duration=0.0)
        budget = m.max_prefill_tokens_per_step
        for seq in self.running:
            if seq.prefilled >= seq.prompt:
                step.decode.append(seq)
            elif budget > 0:
                take = min(budget, seq.prompt - seq.prefilled)
                step.prefill.append((seq, take))
                budget -= take
        prefill_tokens = m.max_prefill_tokens_per_step - budget
        step.duration = m.decode_base_s + m.decode_per_seq_s * len(step.decode)
        if prefill_tokens:
            step.duration += m.prefill_overhead_s + prefill_tokens / m.prefill_tokens_per_s
        return step

    def apply(self, step: Step, now: float = 0.0) -> list[Sequence]:
        """Account for a finished step; return the sequences that got a token."""
        out: list[Sequence] = []
        for seq in step.decode:
            if not seq.done:
                seq.generated += 1
                out.append(seq)
        for seq, take in step.prefill:
            if seq.done:
                continue
            seq.prefilled += take
            if seq.prefilled >= seq.prompt:
                seq.generated += 1  # the prefill step samples the first token
                out.append(seq)
        for seq in out:
            if seq.first_token_at is None:
                seq.first_token_at = now
            seq.last_token_at = now
            if seq.generated >= seq.max_new:
                self.remove(seq)
        return out


class Engine:
    """EngineCore driven in real time by one task on the event loop."""

    # If the event loop falls this far behind the simulated GPU, restart the clock from now
    # instead of firing a burst of overdue steps.
    MAX_LAG_S = 0.05

    def __init__(self, model: EngineModel) -> None:
        self.core = EngineCore(model)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fleetbench-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def generate(self, prompt_tokens: int, max_new_tokens: int) -> AsyncGenerator[int, None]:
        """Yield token indices 0..max_new_tokens-1 as the engine produces them."""
        seq = self.core.add(prompt_tokens, max_new_tokens)
        seq.event = asyncio.Event()
        self._wake.set()
        try:
            for i in range(seq.max_new):
                while seq.generated <= i:
                    seq.event.clear()
                    await seq.event.wait()
                yield i
        finally:
            self.core.remove(seq)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t = loop.time()
        while True:
            step = self.core.plan()
            if step is None:
                self._wake.clear()
                await self._wake.wait()
                t = loop.time()
                continue
            t += step.duration
            delay = t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -self.MAX_LAG_S:
                t = loop.time()
            for seq in self.core.apply(step, t):
                if seq.event is not None:
                    seq.event.set()


@dataclass
class SimResult:
    avg_ttft_s: float
    avg_tpot_s: float
    duration_s: float
    output_tokens_per_s: float
    requests: int


def simulate(
    model: EngineModel,
    *,
    parallel: int,
    number: int,
    input_tokens: int,
    output_tokens: int,
    rate: float | None = None,
) -> SimResult:
    """Run the engine in virtual time against a closed-loop client like `evalscope perf`.

    At most `parallel` requests are in flight; with `rate`, request i is not
    sent before i / rate seconds (evenly spaced). TTFT is measured from when
    the request is sent, TPOT as (latency − TTFT) / (output tokens − 1).
    """
    core = EngineCore(model)
    now = 0.0
    sent = 0
    in_flight: dict[Sequence, float] = {}
    done: list[tuple[float, Sequence]] = []
    pending: list[float] = []  # heap of times at which a slot frees and a request may go out

    def send_ready() -> None:
        nonlocal sent
        while sent < number and len(in_flight) < parallel:
            earliest = sent / rate if rate else 0.0
            if earliest > now:
                heapq.heappush(pending, earliest)
                return
            seq = core.add(input_tokens, output_tokens)
            in_flight[seq] = now
            sent += 1

    send_ready()
    while in_flight or sent < number:
        step = core.plan()
        if step is None:
            if not pending:
                break
            now = max(now, heapq.heappop(pending))
            send_ready()
            continue
        now += step.duration
        for seq in core.apply(step, now):
            if seq.done:
                done.append((in_flight.pop(seq), seq))
        while pending and pending[0] <= now:
            heapq.heappop(pending)
        send_ready()
    ttfts = [s.first_token_at - t0 for t0, s in done if s.first_token_at is not None]
    tpots = [
        (s.last_token_at - s.first_token_at) / (s.max_new - 1)
        for _, s in done
        if s.max_new > 1 and s.first_token_at is not None and s.last_token_at is not None
    ]
    total_out = sum(s.generated for _, s in done)
    return SimResult(
        avg_ttft_s=sum(ttfts) / len(ttfts) if ttfts else 0.0,
        avg_tpot_s=sum(tpots) / len(tpots) if tpots else 0.0,
        duration_s=now,
        output_tokens_per_s=total_out / now if now else 0.0,
        requests=len(done),
    )
