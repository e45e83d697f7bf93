"""Every fault on the agent ends: a full store is reported and recovers, a job whose process is gone is FAILED
with its cause within seconds (the watchdog), never left RUNNING.

SQLite's own size limit (PRAGMA max_page_count) gives the store a real SQLITE_FULL ("database or disk is full")
without a mount; tests/integration/test_faults.py fills a real tmpfs data dir."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from fleetbench.agent import jobs as jobs_module
from fleetbench.agent.jobs import JobManager, last_log_line
from fleetbench.agent.store import FAILED, RUNNING, AgentStore, StoreFull, is_disk_full
from fleetbench.jobs_schema import JobKind


def fill(store: AgentStore) -> None:
    """Cap the database at its current size plus a page: the next writes get SQLITE_FULL."""
    pages = store.con.execute("PRAGMA page_count").fetchone()[0]
    store.con.execute(f"PRAGMA max_page_count = {pages + 1}")


def test_full_store_raises_store_full_and_recovers_when_space_returns(tmp_path):
    store = AgentStore(tmp_path / "agent.sqlite")
    store.insert("j1", JobKind.PERF, "{}", 0.0)
    fill(store)
    with pytest.raises(StoreFull, match=r"disk full in .*database or disk is full"):
        for i in range(10_000):
            store.add_event("j1", RUNNING, {"message": "x" * 2000, "i": i})
    assert store.full.startswith(f"disk full in {tmp_path}")
    assert not store.con.in_transaction  # rolled back: the connection is not poisoned
    before = store.get("j1")
    assert before is not None
    # the event and last_seq moved together or not at all
    (count,) = store.con.execute("SELECT count(*) FROM events WHERE job_id = 'j1'").fetchone()
    assert before.last_seq == count
    store.con.execute("PRAGMA max_page_count = 1073741823")  # space freed
    ev = store.add_event("j1", FAILED, {"message": "after"})
    assert ev.seq == count + 1 and store.full == ""
    assert store.update("j1", state=FAILED, error="e").state == FAILED


def test_disk_full_is_recognised_in_errors_and_log_lines():
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(OSError(28, "No space left on device"))
    assert is_disk_full("OSError: [Errno 28] No space left on device: 'x'")
    assert not is_disk_full("HTTP 500: internal error")


def test_last_log_line_skips_blank_lines_and_reads_only_the_tail(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("a\n" * 10_000 + "Traceback ...\nOSError: disk\n\n  \n")
    assert last_log_line(log) == "OSError: disk"
    assert last_log_line(tmp_path / "missing.log") == ""


def test_job_ended_while_store_full_reported_from_memory_then_written(tmp_path):
    async def go() -> None:
        jobs = JobManager(tmp_path)
        jobs.store.insert("j1", JobKind.PERF, "{}", 0.0)
        fill(jobs.store)
        with pytest.raises(StoreFull):
            for i in range(10_000):
                jobs.store.add_event("j1", RUNNING, {"message": "x" * 2000, "i": i})
        await jobs._finish("j1", FAILED, "boom", error="disk full in X", finished_at=time.time())
        row = jobs.get("j1")  # GetJob answers the terminal state at once, from memory
        assert row.state == FAILED and row.error == "disk full in X"
        events = [ev async for ev in jobs.watch("j1", 0)]  # a watcher is not left waiting for ever
        assert events
        await jobs.sweep()  # still full: kept in memory, nothing raised
        assert jobs.get("j1").state == FAILED
        jobs.store.con.execute("PRAGMA max_page_count = 1073741823")
        await jobs.sweep()
        stored = jobs.store.get("j1")
        assert stored is not None and stored.state == FAILED and stored.error == "disk full in X"
        assert jobs.store.events_after("j1", stored.last_seq - 1)[0].payload["message"] == "boom"

    asyncio.run(go())


def test_cause_names_the_signal_and_the_last_line_of_the_log(tmp_path):
    jobs = JobManager(tmp_path)
    (tmp_path / "jobs" / "j1").mkdir(parents=True)
    (tmp_path / "jobs" / "j1" / "job.log").write_text("loading evalscope\nMemoryError: out of memory\n")
    assert jobs.cause("j1", -9) == "job process was killed by SIGKILL: MemoryError: out of memory"
    assert jobs.cause("j1", 3) == "job process exited with code 3: MemoryError: out of memory"
    assert jobs.cause("j1", 1, "ValueError: bad") == "ValueError: bad"  # the process's own message first


def test_watchdog_fails_a_running_job_that_nothing_runs(tmp_path):
    """A job left RUNNING with no live task or process (its task died): FAILED on the next round, with why."""

    async def go() -> None:
        jobs = JobManager(tmp_path)
        jobs.store.insert("j1", JobKind.PERF, "{}", 0.0)
        jobs.store.update("j1", state=RUNNING, pid=0)
        (tmp_path / "jobs" / "j1").mkdir(parents=True)
        (tmp_path / "jobs" / "j1" / "job.log").write_text("RuntimeError: the last words\n")
        jobs.start_watchdog()
        t0 = time.monotonic()
        while not jobs.get("j1").terminal and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        row = jobs.get("j1")
        assert row.state == FAILED and row.error == "job process is gone: RuntimeError: the last words"
        assert time.monotonic() - t0 < 3 * jobs_module.WATCHDOG_S
        await jobs.shutdown()

    asyncio.run(go())


def test_result_of_a_job_cut_short_by_a_full_disk_is_still_served(tmp_path):
    """A full disk leaves the load generator's report empty: the job's state and cause are still served."""
    jobs = JobManager(tmp_path)
    jobs.store.insert("j1", JobKind.PERF, "{}", 0.0)
    jobs.store.update("j1", state=FAILED, error="disk full in X")
    (tmp_path / "jobs" / "j1").mkdir(parents=True)
    (tmp_path / "jobs" / "j1" / "saturation.json").write_text("")
    (tmp_path / "jobs" / "j1" / "saturation-worker-1.json").write_text('{"saturated": tr')
    res = jobs.result("j1")
    assert res.row.error == "disk full in X" and res.result.saturation is None and res.record_count == 0
