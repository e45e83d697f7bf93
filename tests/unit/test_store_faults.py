"""The controller store under faults: a step's writes land together or not at all (even when the controller is
killed -9 in the middle), a run records its driver and `ctl resume` can tell a live one, and every step has a
no-progress deadline derived from the plan."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from fleetbench.controller import orchestrator
from fleetbench.controller.orchestrator import Step
from fleetbench.controller.plan import EvalCase, HardwareCase, PerfCase
from fleetbench.controller.store import HEARTBEAT_STALE_S, Store
from fleetbench.errors import RunBusyError
from fleetbench.jobs_schema import JobKind
from fleetbench.records import RequestRecord


def rec(i: int) -> RequestRecord:
    return RequestRecord(index=i, start_time=1.0 + i, end_time=2.0 + i, success=True, ttft_s=0.1, latency_s=1.0,
                         input_tokens=10, output_tokens=20, tpot_s=0.01, itl_s=(0.01,), error="", point="")


def count(path, sql: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def test_a_failed_step_leaves_nothing_and_a_good_one_everything(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.create_run("r1", "p", "m", "name: p", ["n1"], "0")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_requests("r1", "c", "n1", 0.0, [rec(i) for i in range(50)])
        store.set_case_node("r1", "c", "n1", state="succeeded")
        with store.transaction():  # nested blocks join the outer one
            store.set_case_node("r1", "c", "n2", state="succeeded")
        assert count(tmp_path / "s.sqlite", "SELECT count(*) FROM requests") == 0  # not visible before the end
        raise RuntimeError("the controller dies half way through the step")
    assert count(tmp_path / "s.sqlite", "SELECT count(*) FROM requests") == 0
    assert store.case_nodes("r1") == []
    with store.transaction():
        store.add_requests("r1", "c", "n1", 0.0, [rec(i) for i in range(50)])
        store.delete_records("r1", "c", "n9")  # its own commit waits for the block too
        store.set_case_node("r1", "c", "n1", state="succeeded")
    assert count(tmp_path / "s.sqlite", "SELECT count(*) FROM requests") == 50
    assert [r["state"] for r in store.case_nodes("r1")] == ["succeeded"]


def test_controller_killed_mid_transaction_leaves_no_half_step(tmp_path):
    db = tmp_path / "s.sqlite"
    Store(db).create_run("r1", "p", "m", "name: p", ["n1"], "0")
    code = textwrap.dedent(f"""
        import os, signal
        from fleetbench.controller.store import Store
        from fleetbench.records import RequestRecord
        s = Store(__import__("pathlib").Path({str(db)!r}))
        with s.transaction():
            s.add_requests("r1", "c", "n1", 0.0, [RequestRecord(index=i, start_time=1.0, end_time=2.0, success=True,
                           ttft_s=0.1, latency_s=1.0, input_tokens=1, output_tokens=1, tpot_s=0.0, itl_s=(),
                           error="", point="") for i in range(1000)])
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -9
    assert count(db, "SELECT count(*) FROM requests") == 0
    assert Store(db).run("r1")["state"] == "running"  # the store opens and is whole


def test_live_driver_is_this_host_pid_alive_with_a_fresh_heartbeat(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.create_run("r1", "p", "m", "name: p", ["n1"], "0")
    assert store.live_driver("r1") == ""  # never claimed (a run stored by an older controller)
    store.claim_run("r1")
    assert store.live_driver("r1") == ""  # this process itself may go on
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.db.table("runs").update("r1", {"driver_pid": other.pid})
        assert store.live_driver("r1").startswith(f"pid {other.pid} on ")
        store.db.table("runs").update("r1", {"heartbeat_at": time.time() - HEARTBEAT_STALE_S - 1})
        assert store.live_driver("r1") == ""  # no heartbeat for too long: gone whatever the pid says
        store.heartbeat("r1")
        assert store.live_driver("r1")
        with pytest.raises(RunBusyError, match=f"^run r1 is being driven by pid {other.pid} on "):
            store.claim_run("r1", force=False)  # checked and written in one transaction: refused, nothing written
        assert store.run("r1")["driver_pid"] == other.pid
        store.claim_run("r1")  # --force
        assert store.run("r1")["driver_pid"] == os.getpid()
        store.db.table("runs").update("r1", {"driver_pid": other.pid})
    finally:
        other.kill()
        other.wait()
    assert store.live_driver("r1") == ""  # killed -9: its pid is gone, the fresh heartbeat does not matter
    store.db.table("runs").update("r1", {"driver_pid": other.pid, "driver_host": "elsewhere"})
    assert "on elsewhere" in store.live_driver("r1")  # another host: only the heartbeat can tell
    store.release_run("r1")
    assert store.live_driver("r1") == ""
    store.claim_run("r1", force=False)  # nobody drives it: claimed
    assert store.run("r1")["driver_pid"] == os.getpid()
    assert json.loads(store.run("r1")["nodes"]) == ["n1"]


def perf(**kw: object) -> PerfCase:
    args: dict = {"id": "c", "parallel": 4, "number": 8, "input_tokens": 1000, "output_tokens": 500, **kw}
    return PerfCase(**args)


def test_no_progress_deadline_comes_from_the_plan(monkeypatch):
    monkeypatch.delenv(orchestrator.NO_PROGRESS_ENV, raising=False)
    step = Step("c", JobKind.PERF, perf=perf())
    assert step.no_progress_s == orchestrator.NO_PROGRESS_FLOOR_S + 1000 / 500 + 500 * 0.2
    longer = Step("c", JobKind.LONG_CONTEXT, perf=perf(input_tokens=128_000, output_tokens=8000, type="long_context"))
    assert longer.no_progress_s > step.no_progress_s + 1600
    ev = Step("e", JobKind.EVAL, eval=EvalCase("e", ("aime25",), timeout_s=600))
    assert ev.no_progress_s == orchestrator.NO_PROGRESS_FLOOR_S + 1200
    ev = Step("e", JobKind.EVAL, eval=EvalCase("e", ("aime25",), generation_config={"max_tokens": 32000}))
    assert ev.no_progress_s == orchestrator.NO_PROGRESS_FLOOR_S + 6400
    assert Step("e", JobKind.EVAL, eval=EvalCase("e", ("aime25",))).no_progress_s == orchestrator.EVAL_NO_PROGRESS_S
    hw = Step("h", JobKind.HARDWARE, hardware=HardwareCase("h", "stress", duration_s=300))
    assert hw.no_progress_s == orchestrator.NO_PROGRESS_FLOOR_S + 600
    monkeypatch.setenv(orchestrator.NO_PROGRESS_ENV, "7")
    assert step.no_progress_s == 7.0
    monkeypatch.setenv(orchestrator.NO_PROGRESS_ENV, "nonsense")
    assert step.no_progress_s > 120


def test_job_deadline_comes_from_the_plan(monkeypatch):
    """StartJobRequest.deadline_s: preparation, then every wave of `parallel` requests given the whole no-progress
    deadline, plus a rate's pacing; an eval without `limit` has none."""
    monkeypatch.delenv(orchestrator.NO_PROGRESS_ENV, raising=False)
    ready = orchestrator.READY_TIMEOUT_S
    step = Step("c", JobKind.PERF, perf=perf(number=10))  # 3 waves of 4
    assert step.deadline_s == ready + 3 * (orchestrator.NO_PROGRESS_FLOOR_S + 1000 / 500 + 500 * 0.2)
    paced = Step("c", JobKind.PERF, perf=perf(number=10, rate=0.5))
    assert paced.deadline_s == step.deadline_s + 20
    ev = Step("e", JobKind.EVAL, eval=EvalCase("e", ("a", "b"), timeout_s=600, limit=5, eval_batch_size=4))
    assert ev.deadline_s == ready + 3 * (orchestrator.NO_PROGRESS_FLOOR_S + 1200)
    assert Step("e", JobKind.EVAL, eval=EvalCase("e", ("aime25",))).deadline_s == 0.0
    hw = Step("h", JobKind.HARDWARE, hardware=HardwareCase("h", "stress", duration_s=300))
    assert hw.deadline_s == ready + 16 * (orchestrator.NO_PROGRESS_FLOOR_S + 600)
    monkeypatch.setenv(orchestrator.NO_PROGRESS_ENV, "7")
    assert step.deadline_s == ready + 3 * 7.0
