"""The walking skeleton end to end: `ctl demo` on three real agents and endpoints on loopback,
real gRPC, real evalscope; every figure checked against the raw records and against evalscope."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbench.agent.evalscope_adapter import normalize_summary
from fleetbench.controller.demo import DEMO_TPOT_MS, DEMO_TTFT_MS
from fleetbench.controller.report.model import load_report
from fleetbench.controller.store import Store

pytestmark = pytest.mark.integration

CTL = [sys.executable, "-m", "fleetbench.controller"]
TTFT_S, TPOT_S = DEMO_TTFT_MS / 1000, DEMO_TPOT_MS / 1000


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`ctl demo` as README says, from an empty folder: the default store (FLEETBENCH_DB) and report folder
    (FLEETBENCH_OUT) point into `work`, the agents' scratch space is --workdir."""
    work = tmp_path_factory.mktemp("demo")
    cwd = tmp_path_factory.mktemp("cwd")
    env = dict(os.environ, FLEETBENCH_DB=str(work / "fleetbench.sqlite"), FLEETBENCH_OUT=str(work / "report"))
    proc = subprocess.run([*CTL, "demo", "--workdir", str(work / "scratch"), "--quiet"], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(cwd.iterdir()) == []  # nothing left where the user stood
    con = sqlite3.connect(work / "fleetbench.sqlite")
    con.row_factory = sqlite3.Row
    (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
    return work, con, run_id, proc


def test_cluster_tpm_recomputes_from_requests_table(demo_run):
    work, con, run_id, proc = demo_run
    row = con.execute(
        "SELECT sum(input_tokens + output_tokens) AS tokens, sum(output_tokens) AS out_tokens, "
        "max(end_time) - min(start_time) AS window, count(*) AS n FROM requests WHERE run_id = ? "
        "AND case_id = 'perf-demo' AND success = 1",
        [run_id],
    ).fetchone()
    assert row["n"] == 3 * 64
    expected_tpm = row["tokens"] / row["window"] * 60
    report = load_report(Store(work / "fleetbench.sqlite"), run_id)
    case = report.cases[0]  # perf-demo; the other cases: test_plan_kinds, test_plan_eval
    assert case.cluster.tpm_total == pytest.approx(expected_tpm, rel=1e-12)
    assert case.cluster.tpm_output == pytest.approx(row["out_tokens"] / row["window"] * 60, rel=1e-12)
    # the per-node sum is computed from each node's own window and shown beside it
    per_node = con.execute(
        "SELECT node, sum(input_tokens + output_tokens) * 60.0 / (max(end_time) - min(start_time)) AS tpm "
        "FROM requests WHERE run_id = ? AND case_id = 'perf-demo' GROUP BY node", [run_id]).fetchall()
    assert case.sum_node_tpm_total == pytest.approx(sum(r["tpm"] for r in per_node), rel=1e-9)
    md = next((work / "report").glob("*.md")).read_text()
    assert f"**{case.cluster.tpm_total:,.0f}**" in md
    assert f"Σ per-node TPM (total) = {case.sum_node_tpm_total:,.0f}" in md
    assert "cluster TPM" in proc.stderr


def test_node_figures_equal_what_evalscope_printed(demo_run):
    work, _, run_id, _ = demo_run
    report = load_report(Store(work / "fleetbench.sqlite"), run_id)
    case = report.cases[0]  # perf-demo; the other cases: test_plan_kinds, test_plan_eval
    assert set(case.evalscope_summaries) == {"n1", "n2", "n3"}
    for node, raw in case.evalscope_summaries.items():
        ev = normalize_summary(raw)
        ours = case.node_figures[node]
        # evalscope rounds to 4 decimals, and to 2 decimals of a millisecond for TTFT/TPOT/ITL
        for name in ("wall_time_s", "output_throughput_tps", "total_throughput_tps", "request_throughput_rps",
                     "latency_avg_s", "input_tokens_avg", "output_tokens_avg"):
            assert ours.value(name) == pytest.approx(ev[name], abs=1.5e-4), (node, name)
        for name in ("ttft_avg_s", "tpot_avg_s", "itl_avg_s"):
            assert ours.value(name) == pytest.approx(ev[name], abs=5.1e-6), (node, name)
        assert ev["requests"] == ours.requests == 64


def test_measured_ttft_and_tpot_within_15_percent_of_configured(demo_run):
    work, _, run_id, _ = demo_run
    report = load_report(Store(work / "fleetbench.sqlite"), run_id)
    case = report.cases[0]  # perf-demo; the other cases: test_plan_kinds, test_plan_eval
    for figs in [*case.node_figures.values(), case.cluster]:
        # loose on purpose: a shared 2-core machine adds client-side delay; bench/fidelity.py measures precision
        assert figs.ttft_avg_s == pytest.approx(TTFT_S, rel=0.15)
        assert figs.tpot_avg_s == pytest.approx(TPOT_S, rel=0.15)
        assert figs.input_tokens_avg == 256 and figs.output_tokens_avg == 64


def test_nodes_started_together(demo_run):
    work, _, run_id, _ = demo_run
    case = load_report(Store(work / "fleetbench.sqlite"), run_id).cases[0]
    assert 0 <= case.start_skew_s < 1.5  # a 2-core CI machine loads three evalscope processes at once
    assert case.verdict == "pass"


def test_requests_table_has_documented_columns(demo_run):
    _, con, _, _ = demo_run
    cols = {r["name"] for r in con.execute("PRAGMA table_info(requests)")}
    assert {"run_id", "node", "case_id", "start_time", "end_time", "ttft_s", "latency_s", "input_tokens",
            "output_tokens", "success"} <= cols
    doc = (Path(__file__).parents[2] / "docs" / "store.md").read_text()
    for c in cols:
        assert f"`{c}`" in doc, f"docs/store.md does not document requests.{c}"


def test_report_command_regenerates_same_markdown(demo_run, tmp_path):
    work, _, run_id, _ = demo_run
    proc = subprocess.run([*CTL, "report", run_id, "--db", str(work / "fleetbench.sqlite"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / f"{run_id}.md").read_text() == (work / "report" / f"{run_id}.md").read_text()
    runs = subprocess.run([*CTL, "runs", "--db", str(work / "fleetbench.sqlite"), "--json"], capture_output=True,
                          text=True, timeout=120)
    assert json.loads(runs.stdout)[0]["run_id"] == run_id


def test_each_node_reports_whether_its_load_generator_saturated(demo_run):
    work, _, run_id, _ = demo_run
    case = load_report(Store(work / "fleetbench.sqlite"), run_id).cases[0]
    assert set(case.saturation) == {"n1", "n2", "n3"}
    for s in case.saturation.values():
        assert s["windows"] >= 3 and 0 < s["cpu_max"] <= 2.0 and isinstance(s["saturated"], bool)


def test_report_environment_groups_identical_machines_and_states_drift(demo_run):
    work, _, run_id, _ = demo_run
    md = (work / "report" / f"{run_id}.md").read_text()
    env = md.split("### 1.2 Test environment", 1)[1].split("## 2.", 1)[0]
    assert "| Machines | n1, n2, n3 | 3 |" in env  # one configuration, three machines (seed 000's "上述机器数量 3")
    assert "drift: none" in env


def test_json_report_numbers_equal_the_store_to_the_last_digit(demo_run):
    work, con, run_id, _ = demo_run
    doc = json.loads((work / "report" / f"{run_id}.json").read_text())
    assert doc["schema"] == "fleetbench.report/1" and doc["run_id"] == run_id
    case = doc["cases"][0]
    assert [c["id"] for c in doc["cases"]] == ["perf-demo", "sweep-demo", "long-context-demo", "accuracy-demo"]
    stored = {r["scope"]: json.loads(r["figures_json"]) for r in
              con.execute("SELECT scope, figures_json FROM figures WHERE run_id = ? AND case_id = 'perf-demo'",
                          [run_id])}
    assert case["cluster"] == stored["cluster"]
    for node in ("n1", "n2", "n3"):
        assert case["nodes"][node] == stored[node]
    verdicts = {(r["scope"], r["figure"], r["op"]): r["measured"] for r in
                con.execute("SELECT scope, figure, op, measured FROM verdicts WHERE run_id = ? AND "
                            "case_id = 'perf-demo'", [run_id])}
    assert {(v["scope"], v["figure"], v["op"]): v["measured"] for v in case["verdicts"]} == verdicts


def test_demo_run_is_in_the_default_store_and_shown_on_one_screen(demo_run):
    """Issue 16 items 1-3: after `ctl demo`, `ctl runs` (default store) lists it, its last line says how to
    see it, `ctl show latest` fits one screen, `ctl compare` of the run with itself too."""
    work, _, run_id, proc = demo_run
    assert proc.stderr.strip().splitlines()[-1].startswith(f"next: ctl show {run_id}")
    env = dict(os.environ, FLEETBENCH_DB=str(work / "fleetbench.sqlite"), COLUMNS="80")
    runs = subprocess.run([*CTL, "runs"], capture_output=True, text=True, timeout=120, env=env)
    assert runs.stdout.splitlines()[2].split()[0] == run_id
    show = subprocess.run([*CTL, "show", "latest"], capture_output=True, text=True, timeout=120, env=env)
    lines = show.stdout.splitlines()
    assert show.returncode == 0 and lines[0] == f"run {run_id}: PASS" and len(lines) <= 40
    for case in ("perf-demo", "sweep-demo", "long-context-demo", "accuracy-demo"):
        assert any(line.startswith(f"{case} (") for line in lines), case
    assert "gsm8k: score 80.00" in show.stdout
    same = subprocess.run([*CTL, "compare", run_id[:-2], "latest"], capture_output=True, text=True, timeout=120,
                          env=env)
    lines = same.stdout.splitlines()
    assert same.returncode == 0 and len(lines) <= 40 and all(len(line) <= 80 for line in lines)
    assert "✗" not in same.stdout.replace("✗ 0 regression", "")  # a run against itself: nothing changed
