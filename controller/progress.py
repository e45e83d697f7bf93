"""Where a run's progress goes: a live rich display, plain lines, or JSON events."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class ProgressCounts:
    """A job's counts as the bar shows them: they never go back. The agent's state events (READY, SUCCEEDED …)
    carry no counts and its final count event no throughput; without this every bar ended at `0/N` and
    `0 tok/s`. Keeps the highest done/failed seen and the last non-zero tok/s."""

    def __init__(self) -> None:
        self.done, self.failed, self.output_tps = 0, 0, 0.0

    def update(self, done: int, failed: int, output_tps: float) -> tuple[int, int, float]:
        self.done, self.failed = max(self.done, done), max(self.failed, failed)
        if output_tps > 0:
            self.output_tps = output_tps
        return self.done, self.failed, self.output_tps


@dataclass(frozen=True)
class RunFinished:
    """How a run ended, for the machine-readable stream's last event (`ctl run --json`)."""

    run_id: str
    verdict: str  # pass | fail | error | invalid | incomplete
    exit_code: int
    reasons: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    store: str = ""


class ProgressSink(Protocol):
    def case_started(self, case_id: str, nodes: list[str], total: int) -> None: ...
    def node_progress(self, case_id: str, node: str, done: int, total: int, failed: int, output_tps: float,
                      eta_s: float, message: str) -> None: ...
    def message(self, text: str) -> None: ...
    def case_finished(self, case_id: str) -> None: ...
    def run_finished(self, result: RunFinished) -> None: ...


class QuietProgress:
    """Only the milestones, one line each (CI logs)."""

    def __init__(self, stream=None) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream or sys.stderr
        self._last: dict[str, tuple[int, int, int, float]] = {}  # node -> done, total, failed, tok/s

    def case_started(self, case_id: str, nodes: list[str], total: int) -> None:
        self._last = {}
        each = f"{total} request{'' if total == 1 else 's'} each" if total else "total known once it runs"
        print(f"case {case_id}: started on {', '.join(nodes)} ({each})", file=self.stream)

    def node_progress(self, case_id: str, node: str, done: int, total: int, failed: int, output_tps: float,
                      eta_s: float, message: str) -> None:
        self._last[node] = (done, total, failed, output_tps)

    def message(self, text: str) -> None:
        print(text, file=self.stream)

    def case_finished(self, case_id: str) -> None:
        """The last count of every node: `n1 64/64 (0 failed, 866 tok/s)`."""
        parts = [f"{n} {d}/{t or '?'} ({f} failed" + (f", {tps:,.0f} tok/s)" if tps else ")")
                 for n, (d, t, f, tps) in self._last.items()]
        print(f"case {case_id}: finished" + (": " + ", ".join(parts) if parts else ""), file=self.stream)

    def run_finished(self, result: RunFinished) -> None:
        return None  # the conclusion went out as messages


class JsonProgress:
    """One JSON object per line on stdout (machine output; errors stay one line on stderr). The last event of
    a run is `run_finished`: run id, verdict, exit code, reasons, report paths, store."""

    def __init__(self, stream=None) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream

    def _emit(self, **obj: object) -> None:
        obj["time"] = time.time()
        print(json.dumps(obj, ensure_ascii=False), file=self.stream or sys.stdout, flush=True)

    def case_started(self, case_id: str, nodes: list[str], total: int) -> None:
        self._emit(event="case_started", case=case_id, nodes=nodes, total=total)

    def node_progress(self, case_id: str, node: str, done: int, total: int, failed: int, output_tps: float,
                      eta_s: float, message: str) -> None:
        self._emit(event="progress", case=case_id, node=node, done=done, total=total, failed=failed,
                   output_tps=round(output_tps, 2), eta_s=round(eta_s, 1), message=message)

    def message(self, text: str) -> None:
        self._emit(event="message", text=text)

    def case_finished(self, case_id: str) -> None:
        self._emit(event="case_finished", case=case_id)

    def run_finished(self, result: RunFinished) -> None:
        self._emit(event="run_finished", **asdict(result))


class RichProgress:
    """One live bar per node: requests done, failures, throughput, ETA."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def case_started(self, case_id: str, nodes: list[str], total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.fields[node]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("fail {task.fields[failed]}"), TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("eta {task.fields[eta]}"), TimeElapsedColumn(), TextColumn("{task.fields[msg]}"),
            console=self.console, transient=False,
        )
        self.console.print(f"[bold]case {case_id}[/] on {len(nodes)} node(s)")
        self._progress.start()
        self._tasks = {
            n: self._progress.add_task(case_id, total=total, node=n, failed=0, tps="-", eta="-", msg="")
            for n in nodes
        }

    def node_progress(self, case_id: str, node: str, done: int, total: int, failed: int, output_tps: float,
                      eta_s: float, message: str) -> None:
        if self._progress is None or node not in self._tasks:
            return
        self._progress.update(
            self._tasks[node], completed=done, total=total or None, failed=failed,
            tps=f"{output_tps:,.0f}" if output_tps else "-", eta=f"{eta_s:.0f}s" if eta_s >= 0 else "-",
            msg=message[:40],
        )

    def message(self, text: str) -> None:
        self.console.print(text)

    def case_finished(self, case_id: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def run_finished(self, result: RunFinished) -> None:
        return None
