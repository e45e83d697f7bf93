"""A running job's disk and memory budgets, as the agent's watchdog samples them (agent/jobs.py `sweep`).

The job runs beside a production engine: its process tree's memory (the proportional set size of each of
its processes, so the pages its load-generator workers share count once) is held under a budget
(`--max-job-rss-bytes`) and the data dir's free space above a floor (`--min-free-bytes`, also checked before
it starts). Reading /proc is the I/O; the parsing and the judging are pure functions."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

GIB = 1 << 30
MAX_JOB_RSS_CAP = 8 * GIB  # the default budget is the smaller of this and half the host's memory


def default_max_job_rss() -> int:
    """The smaller of 8 GiB and half of this host's RAM: a load generator needs far less (~0.3 GiB for 100
    streams); a job past it is leaking or mis-specified, and the engine beside it needs the memory."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return MAX_JOB_RSS_CAP
    return min(MAX_JOB_RSS_CAP, ram // 2) if ram > 0 else MAX_JOB_RSS_CAP


def parse_stat(text: str) -> tuple[int, int, int]:
    """(pid, session id, resident pages) from a /proc/PID/stat line; the command name in parentheses may hold
    spaces and parentheses, so fields are counted after its last ')'."""
    fields = text.rsplit(")", 1)[1].split()
    return int(text.split(None, 1)[0]), int(fields[3]), int(fields[21])  # fields 1, 6 (session), 24 (rss)


def parse_pss(text: str) -> int | None:
    """Bytes of the `Pss:` line of /proc/PID/smaps_rollup (kB), None without one."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return None


def session_memory(stats: Iterable[str], session: int, page_size: int,
                   pss: Callable[[int], int | None] = lambda pid: None) -> int:
    """Memory of every process of `session` (a job runs in a session of its own: its pid): each process's
    proportional set size where `pss(pid)` knows it (pages its workers share are counted once in all), else its
    resident size."""
    total = 0
    for text in stats:
        try:
            pid, sid, pages = parse_stat(text)
        except (IndexError, ValueError):
            continue
        if sid == session:
            share = pss(pid)
            total += share if share is not None else pages * page_size
    return total


def read_stats(proc: Path = Path("/proc")) -> list[str]:
    """Every process's stat line; a process that ends while this reads is skipped."""
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                out.append((entry / "stat").read_text())
            except OSError:
                continue
    return out


def read_pss(pid: int) -> int | None:
    try:
        return parse_pss(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except (OSError, ValueError):
        return None  # an older kernel, a process gone: its resident size stands in


def job_memory(session: int) -> int:
    """Memory held by the job whose process group and session is `session` (its process's pid)."""
    return session_memory(read_stats(), session, os.sysconf("SC_PAGE_SIZE"), read_pss)


def size_text(n: float) -> str:
    """8.3 GiB, 412 MiB: how a budget and a measured size are written in a job's cause."""
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / (1 << 20):.0f} MiB"


def over_budget(rss: int, max_rss: int, free: int, min_free: int, data_dir: Path) -> str:
    """Why a running job must end, in one line, or "" while it keeps to its budgets (0: no memory budget)."""
    if max_rss and rss > max_rss:
        return f"job memory {size_text(rss)} above {size_text(max_rss)} (--max-job-rss-bytes)"
    if free < min_free:
        return (f"data dir free space {size_text(free)} below {size_text(min_free)} (--min-free-bytes) in "
                f"{data_dir}")
    return ""
