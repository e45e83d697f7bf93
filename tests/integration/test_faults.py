"""Every fault ends (issue 15): real agents, real job processes, a real full disk (a small tmpfs), real signals.
bench/faults.py runs the same faults N times and prints what each cost; docs/reliability.md has its figures."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from support.fleets import Fleet
from support.processes import CTL, Agent

from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED}


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs as the agent's data dir (root only: a loop or tmpfs mount is the real full disk)."""
    mount = tmp_path / "data"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def endpoint(start_endpoint, demo_tokenizer):
    """A simulated endpoint's completions URL (stopped after the test) and the demo tokenizer."""
    return start_endpoint(ttft_ms=20, tpot_ms=5).completions, demo_tokenizer


def spec(url: str, tok: Path, number: int) -> str:
    return json.dumps({"url": url, "model": "demo", "tokenizer_path": str(tok), "number": number, "parallel": 4,
                       "input_tokens": 16, "output_tokens": 20, "extra_args": {"ignore_eos": True}})


def wait_state(stub, job_id: str, timeout: float) -> pb.JobStatus:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=5)
        if st.state in TERMINAL:
            return st
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {st.state} after {timeout} s")


def wait_records(job_dir: Path, min_bytes: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        dbs = list(job_dir.rglob("benchmark_data.db"))
        if dbs and os.path.getsize(dbs[0]) > min_bytes:
            return
        time.sleep(0.3)
    raise AssertionError(f"no records under {job_dir} after {timeout} s")


def stop_agent(agent: Agent) -> None:
    """SIGTERM: the agent exits 0 and its log holds no traceback."""
    rc = agent.stop(timeout=30)
    assert agent.log is not None
    text = agent.log.read_text()
    assert rc == 0 and "Traceback" not in text, text[-3000:]


def test_full_data_dir_fails_the_job_with_its_cause_and_the_agent_recovers(tmp_path, small_disk, endpoint,
                                                                         start_agent):
    url, tok = endpoint
    log = tmp_path / "agent.log"
    agent = start_agent(small_disk.name, "--min-free-bytes", str(1 << 20), log=log)
    try:
        stub = agent.stub
        stub.StartJob(pb.StartJobRequest(job_id="full", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 5000)))
        events: list[pb.JobEvent] = []
        watcher = threading.Thread(target=lambda: events.extend(
            stub.WatchJob(pb.WatchJobRequest(job_id="full"), timeout=120)), daemon=True)
        watcher.start()
        wait_records(small_disk / "jobs" / "full", 40_000, 120)
        subprocess.run(["dd", "if=/dev/zero", f"of={small_disk / 'fill'}", "bs=64k"], capture_output=True)
        t0 = time.time()
        st = wait_state(stub, "full", 15)
        detect_s = time.time() - t0
        assert st.state == pb.JOB_STATE_FAILED and st.error.startswith(f"disk full in {small_disk}"), st.error
        assert detect_s < 10
        watcher.join(timeout=10)
        assert not watcher.is_alive(), "a watcher of the failed job is not left waiting"
        # still full: a new job is refused with the reason, not accepted and hung
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartJob(pb.StartJobRequest(job_id="while-full", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 4)))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "free" in (refused.value.details() or "")  # "disk full in …" or the free-space floor, named
        (small_disk / "fill").unlink()  # space freed: the agent recovers without a restart
        time.sleep(2)
        stub.StartJob(pb.StartJobRequest(job_id="after", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 4)))
        after = wait_state(stub, "after", 120)
        assert after.state == pb.JOB_STATE_SUCCEEDED and after.record_count == 4
        assert stub.GetJob(pb.GetJobRequest(job_id="full")).state == pb.JOB_STATE_FAILED
    finally:
        rc = agent.stop(timeout=30)
    text = log.read_text()
    assert rc == 0 and "Traceback" not in text and "Event loop is closed" not in text, text[-3000:]
    # the stored state survived the full disk (written once space was freed)
    import sqlite3

    con = sqlite3.connect(small_disk / "agent.sqlite")
    (state, error), = con.execute("SELECT state, error FROM jobs WHERE job_id = 'full'").fetchall()
    con.close()
    assert state == pb.JOB_STATE_FAILED and error.startswith("disk full in")


def load_bench():  # type: ignore[no-untyped-def]
    """bench/faults.py, the fault bench: the tests run each of its faults once, on a small plan."""
    import importlib.util

    path = Path(__file__).parents[2] / "bench" / "faults.py"
    spec_ = importlib.util.spec_from_file_location("fault_bench", path)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    sys.modules["fault_bench"] = module
    spec_.loader.exec_module(module)
    return module


BENCH = load_bench()


@pytest.mark.parametrize("fault", ["agent-kill", "endpoint-stop", "disk-full", "controller-kill", "controller-term"])
def test_every_fault_ends_and_is_never_a_wrong_pass(tmp_path, fault):
    if fault == "disk-full" and os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = BENCH.run_round(fault, tmp_path, number=24, no_progress_s=20.0, stop_s=30.0)
    assert r.completed and r.lost >= 0, r
    if fault == "controller-kill":  # resume re-attaches: every answered request stored once, judged PASS
        assert (r.verdict, r.step_state, r.lost, r.ctl_rc) == ("pass", "pass", 0, 0), r
        return
    if fault == "controller-term":  # cancelled on every agent, stored interrupted: INCOMPLETE, never judged
        assert (r.run_state, r.verdict, r.step_state, r.ctl_rc) == ("interrupted", "incomplete", "", 3), r
        assert r.detect_s < 30 and "interrupted" in r.reason
        return
    assert r.stored > 0, r  # the unfaulted node's records at least
    assert r.step_state in ("fail", "invalid") and r.verdict in ("fail", "invalid"), r
    if fault == "agent-kill":  # the restarted agent says the job was interrupted; its records kept are stored
        assert r.step_state == "invalid" and "interrupted" in r.reason and r.detect_s < 30, r
    elif fault == "endpoint-stop":  # every later request fails: FAIL on success_rate, with the error classes
        assert r.step_state in ("fail", "invalid") and r.detect_s < 120, r
        assert r.reason.startswith("success_rate") and "connection" in r.reason, r
    elif fault == "disk-full":  # the job dies of the full disk, or the watchdog stops it at the free-space floor
        assert r.step_state == "invalid" and r.detect_s < 30, r
        assert "disk full in" in r.reason or re.search(r"data dir free space \d+ MiB below 1\.0 GiB", r.reason), r


def test_a_stopped_agents_job_is_cancelled_once_it_continues(tmp_path):
    """SIGSTOP n2's agent mid-case: the controller gives up on n2 (no progress for 10 s, then 5 s for a last
    look) and keeps asking its agent to cancel the job; SIGCONT at 20 s, while n1 still runs (120 requests, ~32 s):
    the job is cancelled within seconds and n2's endpoint gets no more requests. The step is INVALID."""
    r = BENCH.run_round("agent-stop", tmp_path, number=120, no_progress_s=10.0, stop_s=20.0)
    assert r.completed and r.stored > 0 and r.ctl_rc != 0, r
    assert (r.verdict, r.step_state) == ("invalid", "invalid"), r
    assert "no progress for" in r.reason and r.detect_s < 20, r
    assert re.search(r"\[n2\] load: no progress for \d s \(ERROR after 10 s without any\)", r.console)  # not silent
    assert r.n2_job.startswith("cancelled:"), r.n2_job  # the agent stored the controller's cancel
    assert "given up on: its agent answered the cancel" in r.console, r.console[-2000:]
    # the load stopped within seconds of SIGCONT: n2's endpoint got its last request right after
    assert 0.0 <= r.load_after_s < 5.0, r


def test_the_agent_cancels_a_job_past_its_deadline_even_after_being_stopped(tmp_path, endpoint, start_agent):
    """StartJobRequest.deadline_s on the agent's monotonic clock: an agent stopped (SIGSTOP) past the deadline of
    its job ends the job within seconds of SIGCONT, no controller needed; the endpoint's counter stops rising.
    A deadline out of bounds is refused."""
    url, tok = endpoint
    stats = url.split("/v1/")[0] + "/fleetbench/stats"
    agent = start_agent("data", log=tmp_path / "agent.log")
    assert agent.proc is not None
    try:
        stub = agent.stub
        for bad in (-1.0, math.inf, 1e12):
            with pytest.raises(grpc.RpcError) as refused:
                stub.StartJob(pb.StartJobRequest(job_id="bad", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 4),
                                                 deadline_s=bad))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (refused.value.details() or "").startswith("deadline_s must be between 0 (none) and"), bad
        limit = 30.0
        started = time.monotonic()
        stub.StartJob(pb.StartJobRequest(job_id="long", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 5000),
                                         deadline_s=limit))
        wait_records(tmp_path / "data" / "jobs" / "long", 20_000, limit - 5)
        assert stub.GetJob(pb.GetJobRequest(job_id="long")).state == pb.JOB_STATE_RUNNING
        agent.proc.send_signal(signal.SIGSTOP)
        time.sleep(limit + 2 - (time.monotonic() - started))  # the deadline passes while the agent is stopped
        agent.proc.send_signal(signal.SIGCONT)
        t0 = time.monotonic()
        st = wait_state(stub, "long", 15)
        ended_s = time.monotonic() - t0
        assert st.state == pb.JOB_STATE_CANCELLED, st
        assert st.error.startswith(f"deadline of {limit:.0f} s passed (the job ran ") and \
            st.error.endswith("s): cancelled by the agent"), st.error
        assert ended_s < 8, ended_s
        assert 0 < st.record_count < 5000
        time.sleep(0.5)
        before = json.loads(urllib.request.urlopen(stats, timeout=5).read())["received"]
        time.sleep(2.0)
        assert json.loads(urllib.request.urlopen(stats, timeout=5).read())["received"] == before  # load stopped
    finally:
        agent.proc.send_signal(signal.SIGCONT)
        rc = agent.stop(timeout=30)
    text = (tmp_path / "agent.log").read_text()
    assert rc == 0 and "Traceback" not in text, text[-3000:]


def fault_run(plan_file: Callable[..., Path], fresh_fleet: Callable[..., Fleet], number: int) -> tuple[Fleet, Path]:
    """A fleet of one node of its own (the test faults it) and the fault bench's plan of `number` requests."""
    return fresh_fleet(1, ttft_ms=50, tpot_ms=10), plan_file(BENCH.PLAN.format(tokenizer="{tokenizer}", number=number))


def test_resume_of_a_live_run_is_refused_unless_forced(tmp_path, plan_file, fresh_fleet):
    """Two drivers of one run: `ctl resume` while `ctl run` is alive is refused in one line (exit 2); once
    that controller is killed -9, the same resume is accepted and completes the run."""
    fleet, plan = fault_run(plan_file, fresh_fleet, 40)
    db = tmp_path / "s.sqlite"
    ctl = subprocess.Popen(fleet.run_argv(plan, db, tmp_path / "out", "-q"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    BENCH.wait_for(lambda: BENCH.node_state(db, "n1") == "running", 180, "the case to run")
    run_id = BENCH.rows(db, "SELECT run_id FROM runs")[0]["run_id"]
    resume = [*CTL, "resume", run_id, "--db", str(db), "--fleet", str(fleet.fleet_file), "--out",
              str(tmp_path / "out"), "-q"]
    refused = subprocess.run(resume, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert line.startswith(f"error: run {run_id} is being driven by pid {ctl.pid} on {socket.gethostname()} "
                           "(heartbeat "), line
    assert line.endswith("pass --force if it is gone") and len(line.splitlines()) == 1
    ctl.kill()
    ctl.wait(timeout=30)
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    fleet.stop()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (run,) = BENCH.rows(db, "SELECT state, verdict, driver_pid FROM runs")
    assert (run["state"], run["verdict"], run["driver_pid"]) == ("finished", "pass", 0)


BARRIER = """\
import os, sys, time
from fleetbench.controller.cli import main  # imported before the barrier: both start from the same point
from fleetbench.controller import orchestrator, runner, store  # noqa: F401
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
sys.argv = ["ctl", *sys.argv[2:]]
main()
"""


def test_two_resumes_started_together_one_drives_the_other_exits_2_naming_it(tmp_path, plan_file, fresh_fleet):
    """A run whose driver was killed -9; two `ctl resume RUN` started at the same moment (each imports ctl, waits
    on one file, then runs it in the same process: its pid is the driver's), while the agent is slow to answer
    (stopped for 2 s: both would pass a check made before asking the agents). The run is claimed in one write
    transaction, so exactly one drives it (exit 0, PASS) and the other exits 2 with one line naming the winner."""
    # 80 requests (~20 s): the winner still drives the run when the loser, however slow to start, claims it
    fleet, plan = fault_run(plan_file, fresh_fleet, 80)
    db, go = tmp_path / "s.sqlite", tmp_path / "go"
    ctl = subprocess.Popen(fleet.run_argv(plan, db, tmp_path / "out", "-q"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    BENCH.wait_for(lambda: BENCH.node_state(db, "n1") == "running", 180, "the case to run")
    run_id = BENCH.rows(db, "SELECT run_id FROM runs")[0]["run_id"]
    ctl.kill()
    ctl.wait(timeout=30)
    resumes = [subprocess.Popen([sys.executable, "-c", BARRIER, str(go), "resume", run_id, "--db", str(db),
                                 "--fleet", str(fleet.fleet_file), "--out", str(tmp_path / "out"), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(8.0)  # both imported and waiting at the barrier
    agent = fleet.local.agent_procs["n1"]
    agent.send_signal(signal.SIGSTOP)
    go.touch()
    time.sleep(2.0)
    agent.send_signal(signal.SIGCONT)
    done = [(p.pid, *p.communicate(timeout=300), p.returncode) for p in resumes]
    fleet.stop()
    by_rc = {rc: (pid, err) for pid, _out, err, rc in done}
    assert sorted(by_rc) == [0, 2], done  # one drove the run to its end, the other was refused
    winner, (_, refused) = by_rc[0][0], by_rc[2]
    line = refused.strip()
    assert line.startswith(f"error: run {run_id} is being driven by pid {winner} on {socket.gethostname()} "
                           "(heartbeat "), line
    assert line.endswith("pass --force if it is gone") and len(line.splitlines()) == 1, line
    (run,) = BENCH.rows(db, "SELECT state, verdict, driver_pid FROM runs")
    assert (run["state"], run["verdict"], run["driver_pid"]) == ("finished", "pass", 0)
    n = BENCH.rows(db, "SELECT count(*) AS n, count(DISTINCT idx) AS d FROM requests WHERE case_id = 'load'")[0]
    assert n["n"] == n["d"] == 80  # every record once


def test_a_job_over_its_memory_budget_fails_with_the_cause(tmp_path, endpoint, start_agent):
    """--max-job-rss-bytes 40 MiB: the job's process tree (Python, evalscope) passes it while it prepares; the
    watchdog kills the group and the job is FAILED naming both sizes; the endpoint gets no more load."""
    url, tok = endpoint
    agent = start_agent("data", "--max-job-rss-bytes", str(40 << 20), log=tmp_path / "agent.log")
    try:
        agent.stub.StartJob(pb.StartJobRequest(job_id="fat", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 5000)))
        st = wait_state(agent.stub, "fat", 60)
        assert st.state == pb.JOB_STATE_FAILED, st
        assert re.fullmatch(r"job memory \d+ MiB above 40 MiB \(--max-job-rss-bytes\)", st.error), st.error
        assert int(st.error.split()[2]) > 40
    finally:
        stop_agent(agent)


def test_a_job_below_the_free_space_floor_fails_with_the_cause(tmp_path, start_endpoint, demo_tokenizer, start_agent):
    """A 64 MiB tmpfs data dir, --min-free-bytes 32 MiB: the job starts (~60 MiB free), then a 40 MiB file
    leaves less than the floor; the watchdog stops the job within seconds, FAILED naming free space and floor."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    data = tmp_path / "data"
    data.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(data)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    agent = None
    try:
        url, tok = start_endpoint(ttft_ms=20, tpot_ms=5).completions, demo_tokenizer
        agent = start_agent(data.name, "--min-free-bytes", str(32 << 20), log=tmp_path / "agent.log")
        agent.stub.StartJob(pb.StartJobRequest(job_id="big", kind=pb.JOB_KIND_PERF, spec_json=spec(url, tok, 5000)))
        wait_records(data / "jobs" / "big", 20_000, 120)
        subprocess.run(["dd", "if=/dev/zero", f"of={data / 'fill'}", "bs=1M", "count=40"], capture_output=True,
                       check=True)
        t0 = time.time()
        st = wait_state(agent.stub, "big", 15)
        assert time.time() - t0 < 5
        assert st.state == pb.JOB_STATE_FAILED, st
        assert re.fullmatch(rf"data dir free space \d+ MiB below 32 MiB \(--min-free-bytes\) in {data}", st.error), \
            st.error
        assert 0 < st.record_count < 5000
        stop_agent(agent)
        agent = None
    finally:
        if agent is not None:
            agent.kill()
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_a_run_that_ends_with_its_agent_stopped_says_the_job_may_still_run(tmp_path, plan_file, fresh_fleet):
    """One node, its agent stopped mid-case: the controller gives up (no progress for 5 s, then 5 s for a last
    look), the run ends INVALID at once, and its one last cancel finds the agent still stopped: the console says
    the job may still run and that its agent ends it at its deadline (never a silent leftover load)."""
    fleet, plan = fault_run(plan_file, fresh_fleet, 120)
    db = tmp_path / "s.sqlite"
    url = fleet.nodes[0].endpoint
    ctl = subprocess.Popen(fleet.run_argv(plan, db, tmp_path / "out"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=dict(os.environ, FLEETBENCH_NO_PROGRESS_S="5"))
    BENCH.wait_for(lambda: BENCH.node_state(db, "n1") == "running", 180, "the case to run")
    base = BENCH.answered(url)
    BENCH.wait_for(lambda: BENCH.answered(url) - base >= 4, 60, "the case's first requests")
    agent = fleet.local.agent_procs["n1"]
    agent.send_signal(signal.SIGSTOP)
    try:
        out, _ = ctl.communicate(timeout=120)
    finally:
        agent.send_signal(signal.SIGCONT)
    fleet.stop()
    assert ctl.returncode == 3, out[-3000:]  # INVALID
    job = f"{BENCH.rows(db, 'SELECT run_id FROM runs')[0]['run_id']}.load"
    assert re.search(rf"\[n1\] job {re.escape(job)} may still be running: its agent does not answer the cancel "
                     r"\(.*\); the agent ends it at its deadline", out), out[-3000:]
