"""agent/budgets.py: a running job's memory and disk budgets, as the watchdog judges them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fleetbench.agent.budgets import (
    GIB,
    MAX_JOB_RSS_CAP,
    default_max_job_rss,
    job_memory,
    over_budget,
    parse_pss,
    parse_stat,
    session_memory,
)

# proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
# cstime priority nice num_threads itrealvalue starttime vsize rss ...
STAT = "4242 (python3 (x) y) S 1 4242 {sid} 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 1 0 100 1000000 {rss} 18446744"


def test_parse_stat_counts_fields_after_the_last_parenthesis():
    assert parse_stat(STAT.format(sid=7, rss=2560)) == (4242, 7, 2560)


def test_session_memory_sums_the_job_session_only_pss_first():
    stats = [STAT.format(sid=7, rss=100), STAT.format(sid=7, rss=50).replace("4242", "4243", 1),
             STAT.format(sid=8, rss=1000), "garbage"]
    assert session_memory(stats, 7, 4096) == 150 * 4096  # no PSS known: resident sizes
    assert session_memory(stats, 9, 4096) == 0
    assert session_memory(stats, 7, 4096, {4242: 10_000}.get) == 10_000 + 50 * 4096  # PSS where known


def test_parse_pss_reads_smaps_rollup():
    text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  2048 kB\nPss:  1500 kB\nPss_Anon: 900 kB\n"
    assert parse_pss(text) == 1500 * 1024
    assert parse_pss("Rss: 1 kB\n") is None


def test_over_budget_names_the_budget_and_the_measure():
    d = Path("/data")
    assert over_budget(int(8.3 * GIB), 8 * GIB, 10 * GIB, GIB, d) == \
        "job memory 8.3 GiB above 8.0 GiB (--max-job-rss-bytes)"
    assert over_budget(GIB, 8 * GIB, int(0.9 * GIB), GIB, d) == \
        "data dir free space 922 MiB below 1.0 GiB (--min-free-bytes) in /data"
    assert over_budget(100 * GIB, 0, 10 * GIB, GIB, d) == ""  # 0: no memory budget
    assert over_budget(GIB, 8 * GIB, GIB, GIB, d) == ""


def test_default_budget_is_at_most_8_gib_and_half_the_ram():
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert default_max_job_rss() == min(MAX_JOB_RSS_CAP, ram // 2)


def test_job_rss_reads_a_real_session():
    """A child in a session of its own (as a job runs) holding 64 MiB: its session's memory says so."""
    code = "import sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); " \
           "time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert child.stdout is not None and child.stdout.readline()
        assert 64 << 20 < job_memory(child.pid) < 512 << 20
    finally:
        child.kill()
        child.wait()
