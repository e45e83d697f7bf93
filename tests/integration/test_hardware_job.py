"""The hardware job (kind 6) on real agents over gRPC, with CPU stand-ins for the accelerators
(FLEETBENCH_TEST_HW_STANDIN: numpy kernels in the job process, the same lifecycle): progress, the result
the controller reads, refusal beside a loaded engine, cancel without orphans, restart safety, SKIPPED
everywhere on this machine without accelerators; then `ctl run` on a local fleet where one stand-in of one
node is slow: FAIL naming the node and the accelerator, and the report's Hardware checks in every format."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from support.processes import Agent, children_of, wait_state

from fleetbench.jobs_schema import JobOutcome
from fleetbench.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
DONE = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED}
STANDIN = "FLEETBENCH_TEST_HW_STANDIN"
SMALL = {"matmul_size": 128, "copy_mib": 4}


def result(agent: Agent, job_id: str) -> JobOutcome:
    for chunk in agent.stub.GetJobResult(pb.GetJobResultRequest(job_id=job_id)):
        if chunk.HasField("summary"):
            return JobOutcome.from_wire(chunk.summary.result_json)  # as the controller reads it
    raise AssertionError("no summary")


def start(agent: Agent, job_id: str, **spec: object) -> None:
    agent.stub.StartJob(pb.StartJobRequest(job_id=job_id, kind=pb.JOB_KIND_HARDWARE, spec_json=json.dumps(spec)))


def test_quick_and_standard_on_stand_ins_report_every_check_with_progress(tmp_path, monkeypatch):
    monkeypatch.setenv(STANDIN, json.dumps({"count": 2}))
    agent = Agent(tmp_path / "agent").start()
    try:
        start(agent, "q", level="quick", expected_count=2)
        assert wait_state(agent.stub, "q", DONE, 60).state == pb.JOB_STATE_SUCCEEDED
        hw = result(agent, "q").hardware
        assert hw is not None and hw.level == "quick" and [d.name for d in hw.devices] == ["CPU stand-in"] * 2
        by = {(c.name, c.index): c for c in hw.checks}
        assert by[("accelerator_count", -1)].status == "pass"
        assert by[("ecc_uncorrected_volatile", 1)].status == "pass"
        assert not any(c.status == "measured" and c.name != "accelerator_count" for c in hw.checks)  # no load

        start(agent, "s", level="standard", **SMALL)
        events = list(agent.stub.WatchJob(pb.WatchJobRequest(job_id="s")))
        assert events[-1].state == pb.JOB_STATE_SUCCEEDED
        assert any("accelerator 1: matrix multiply" in e.message for e in events)
        assert any(e.total == 3 and e.done == 1 for e in events)  # 2 accelerators + the all-reduce
        hw = result(agent, "s").hardware
        assert hw is not None and hw.backend == "cpu-standin (numpy)"
        figures = {(c.name, c.index): c for c in hw.checks if c.status == "measured" and c.index >= 0}
        assert set(figures) == {(n, i) for n in ("gemm_bf16_tflops", "memcpy_d2d_gbps", "h2d_gbps", "d2h_gbps")
                                for i in (0, 1)}
        assert all(c.value and c.value > 0 for c in figures.values())
        allreduce = next(c for c in hw.checks if c.name == "allreduce_busbw_gbps")
        assert allreduce.status == "skipped" and "all_reduce_perf" in allreduce.detail
    finally:
        agent.stop()


def test_an_accelerator_the_kernels_runtime_does_not_see_is_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(STANDIN, json.dumps({"count": 2, "visible": 1}))
    agent = Agent(tmp_path / "agent").start()
    try:
        start(agent, "s", level="standard", **SMALL)
        assert wait_state(agent.stub, "s", DONE, 60).state == pb.JOB_STATE_SUCCEEDED
        hw = result(agent, "s").hardware
        assert hw is not None
        gemm = {c.index: c for c in hw.checks if c.name == "gemm_bf16_tflops"}
        assert gemm[0].status == "measured" and gemm[1].status == "skipped"
        assert gemm[1].detail == "cpu-standin (numpy) sees 1 accelerator(s), not this one"
    finally:
        agent.stop()


def test_standard_refuses_beside_a_loaded_engine_unless_the_case_allows_it(tmp_path, monkeypatch):
    monkeypatch.setenv(STANDIN, json.dumps({"count": 2, "used_mib": {"1": 9000}}))
    agent = Agent(tmp_path / "agent").start()
    try:
        start(agent, "busy", level="standard", **SMALL)
        st = wait_state(agent.stub, "busy", DONE, 60)
        assert st.state == pb.JOB_STATE_FAILED
        assert "hardware standard refused" in st.error
        assert "CPU stand-in 1: 9,000 of 16,384 MiB in use (55%)" in st.error
        assert "allow_busy: true" in st.error
        start(agent, "allowed", level="standard", allow_busy=True, **SMALL)
        assert wait_state(agent.stub, "allowed", DONE, 60).state == pb.JOB_STATE_SUCCEEDED
        start(agent, "quick", level="quick")  # quick sends no load: it runs beside an engine
        assert wait_state(agent.stub, "quick", DONE, 60).state == pb.JOB_STATE_SUCCEEDED
    finally:
        agent.stop()


def test_stress_reports_progress_cancels_without_orphans_and_is_interrupted_by_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv(STANDIN, json.dumps({"count": 2}))
    agent = Agent(tmp_path / "agent").start()
    try:
        start(agent, "st", level="stress", duration_s=120, **SMALL)
        deadline = time.time() + 60
        seen = None
        for ev in agent.stub.WatchJob(pb.WatchJobRequest(job_id="st")):
            if ev.total == 120 and ev.done >= 1:
                seen = ev
                break
            assert time.time() < deadline
        assert seen is not None and seen.state == pb.JOB_STATE_RUNNING
        pid = agent.stub.GetJob(pb.GetJobRequest(job_id="st"))
        assert pid.state == pb.JOB_STATE_RUNNING
        t0 = time.time()
        agent.stub.CancelJob(pb.CancelJobRequest(job_id="st"))
        assert wait_state(agent.stub, "st", DONE, 30).state == pb.JOB_STATE_CANCELLED
        assert time.time() - t0 < 15
        assert agent.proc is not None and children_of(agent.proc.pid) == []

        start(agent, "st2", level="stress", duration_s=120, **SMALL)
        wait_state(agent.stub, "st2", {pb.JOB_STATE_RUNNING}, 30)
        agent.kill()
        agent.start()
        st = wait_state(agent.stub, "st2", DONE, 30)
        assert st.state == pb.JOB_STATE_INTERRUPTED and "agent restarted" in st.error
    finally:
        agent.stop()


def test_without_accelerators_every_check_is_skipped_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.delenv(STANDIN, raising=False)
    agent = Agent(tmp_path / "agent").start()
    try:
        start(agent, "none", level="standard", **SMALL)
        assert wait_state(agent.stub, "none", DONE, 60).state == pb.JOB_STATE_SUCCEEDED
        hw = result(agent, "none").hardware
        assert hw is not None and hw.devices == ()
        statuses = {c.name: c.status for c in hw.checks}
        assert statuses["accelerators"] == "skipped" and "pass" not in statuses.values()
        reason = next(c.detail for c in hw.checks if c.name == "accelerators")
        assert reason.startswith("no accelerator management tool answered:") and "nvidia-smi" in reason
    finally:
        agent.stop()


PLAN = """\
version: 1
name: hardware on stand-ins
model: demo
endpoint: {url: "http://127.0.0.1:1/v1/completions"}
cases:
  - id: hw-quick
    type: hardware
    level: quick
    expected_count: 2
  - id: hw-standard
    type: hardware
    level: standard
    matmul_size: 192
    copy_mib: 4
    fleet_tolerance: 0.9
    expect:
      gemm_bf16_tflops: {min: 0.0000001}
"""


def test_ctl_run_names_the_slow_accelerator_and_reports_hardware_in_every_format(tmp_path, fresh_fleet):
    """n2's accelerator 1 runs at 1 % speed: ≥ 90 % below the fleet median (a tolerance wide enough that the
    CPU timing noise of healthy stand-ins never reaches it), so the standard case FAILS naming n2 #1."""
    healthy = json.dumps({"count": 2})
    env = {"n1": {STANDIN: healthy}, "n2": {STANDIN: json.dumps({"count": 2, "slow": {"1": 0.01}})},
           "n3": {STANDIN: healthy}}
    fleet = fresh_fleet(3, ttft_ms=200, tpot_ms=20, agent_env=env)
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "out"
    proc = subprocess.run(fleet.run_argv(plan, tmp_path / "db.sqlite", out), capture_output=True, text=True,
                          timeout=400)
    fleet.stop()
    assert proc.returncode == 1, proc.stdout + proc.stderr  # FAIL
    assert "hw-quick: PASS" in proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert re.search(r"case hw-standard: hardware: \d+ passed, 4 failed, \d+ skipped, 0 broke; FAIL", said)  # n2 #1
    assert "FAIL hw-standard n2: accelerator #1 gemm_bf16_tflops" in proc.stdout + proc.stderr
    doc = json.loads(next(out.glob("*.json")).read_text())
    cases = {c["id"]: c for c in doc["cases"]}
    assert cases["hw-quick"]["case_type"] == "hardware" and cases["hw-standard"]["verdict"] == "fail"
    gemm = {(r["node"], r["index"]): r for r in cases["hw-standard"]["hardware"] if r["check"] == "gemm_bf16_tflops"}
    assert len(gemm) == 6 and [k for k, r in gemm.items() if r["status"] == "fail"] == [("n2", 1)]
    values = sorted(r["measured"] for r in gemm.values())
    assert gemm[("n2", 1)]["fleet_median"] == pytest.approx((values[2] + values[3]) / 2)  # recomputable
    slow = gemm[("n2", 1)]
    assert slow["fleet_fraction"] == pytest.approx(slow["measured"] / slow["fleet_median"])
    md_path = next(out.glob("*.md"))
    md = md_path.read_text()
    assert "Hardware checks (level standard)" in md and "| n2 | #1 CPU stand-in | gemm_bf16_tflops |" in md
    assert "Outliers and failures: n2 #1 CPU stand-in gemm_bf16_tflops" in md
    shown = json.loads(subprocess.run([sys.executable, "-m", "fleetbench.controller", "show", md_path.stem, "--db",
                                       str(tmp_path / "db.sqlite"), "--json"], check=True, capture_output=True,
                                      text=True, timeout=120).stdout)
    assert {(r["case_id"], r["node"], r["idx"]) for r in shown["hardware"]
            if r["check"] == "gemm_bf16_tflops" and r["status"] == "fail"} == {("hw-standard", "n2", 1)}
    zh = tmp_path / "zh"
    subprocess.run([sys.executable, "-m", "fleetbench.controller", "report", md_path.stem, "--db",
                    str(tmp_path / "db.sqlite"), "--out", str(zh), "--format", "md", "--lang", "zh"], check=True,
                   capture_output=True, timeout=120)
    zh_md = next(zh.glob("*.md")).read_text()
    assert "硬件检查（级别 standard）" in zh_md and "不通过" in zh_md and "集群中位数" in zh_md
    html = next(out.glob("*.html")).read_text()
    assert "gemm_bf16_tflops (TFLOP/s) per accelerator" in html and "#c5221f" in html  # the outlier in red
    from openpyxl import load_workbook

    wb = load_workbook(next(out.glob("*.xlsx")), read_only=True)
    rows = list(wb["Hardware checks"].iter_rows(values_only=True))
    row = next(r for r in rows if (r[0], r[1], r[2], r[5]) == ("hw-standard", "n2", 1, "gemm_bf16_tflops"))
    assert row[6] == pytest.approx(gemm[("n2", 1)]["measured"]) and row[12] == "fail"


def test_a_node_whose_every_check_is_skipped_makes_the_case_invalid_not_pass(tmp_path, fresh_fleet):
    fleet = fresh_fleet(1, ttft_ms=200, tpot_ms=20)  # this machine has no accelerator and no tool
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.split("  - id: hw-standard")[0].replace("    expected_count: 2\n", ""))
    proc = subprocess.run(fleet.run_argv(plan, tmp_path / "db.sqlite", tmp_path / "out"), capture_output=True,
                          text=True, timeout=300)
    fleet.stop()
    text = proc.stdout + proc.stderr
    assert proc.returncode == 3, text  # INVALID
    assert "every check was SKIPPED" in text
