"""The pure parts behind `ctl` as a daily tool (issue 16, items 1-9): run references, figure display,
the comparison and its regression marks, `ctl show`'s screen, JUnit, `--nodes` mistakes, `ctl ping`'s
explanations, the plan outline and progress counts. The CLI itself: tests/integration/test_cli_daily.py."""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.report_sample import RUN_ID, sample_report, sample_store

from fleetbench.controller.cli import spaced_nodes
from fleetbench.controller.compare import classify, compare_reports
from fleetbench.controller.display import figure_label, fmt_cell, fmt_delta, fmt_figure
from fleetbench.controller.fleet import Node, resolve_nodes
from fleetbench.controller.history import resolve_run, resolve_run_ref
from fleetbench.controller.plan import CapacityCase, PerfCase, SweepCase
from fleetbench.controller.plan_outline import outline_case
from fleetbench.controller.progress import ProgressCounts
from fleetbench.controller.reach import explain
from fleetbench.controller.report.csv_report import SEED001_FIELDS, write_csv
from fleetbench.controller.report.junit import render_junit
from fleetbench.controller.summary import show_lines
from fleetbench.errors import ConfigError, StoreError

IDS = ["r20261129-100000-aaaa", "r20261129-090000-bbbb", "r20261128-090000-cccc"]  # newest first


@pytest.mark.parametrize(("ref", "want"), [
    ("r20261129-090000-bbbb", IDS[1]), ("r20261128", IDS[2]), ("r20261129-1", IDS[0]), ("latest", IDS[0]),
    ("latest~0", IDS[0]), ("latest~1", IDS[1]), ("latest~2", IDS[2]), (" latest ", IDS[0]),
])
def test_run_refs(ref, want):
    assert resolve_run_ref(ref, IDS, "s.db") == want


@pytest.mark.parametrize(("ref", "needle"), [
    ("r20261129", "ambiguous in s.db: 2 runs match (r20261129-100000-aaaa, r20261129-090000-bbbb)"),
    ("latest~3", "holds only 3 run(s)"), ("latest~-1", "after latest~ comes a number"), ("x", "no run 'x' in s.db"),
    ("", "no run '' in s.db"),
])
def test_bad_run_refs_say_why(ref, needle):
    with pytest.raises(StoreError) as exc:
        resolve_run_ref(ref, IDS, "s.db")
    assert needle in str(exc.value)


def test_latest_of_an_empty_store():
    with pytest.raises(StoreError, match=r"no runs in s\.db"):
        resolve_run_ref("latest", [], "s.db")


def test_store_resolves_refs(tmp_path):
    store = sample_store(tmp_path / "s.sqlite")
    assert resolve_run(store, "latest") == resolve_run(store, RUN_ID[:5]) == RUN_ID


@pytest.mark.parametrize(("figure", "value", "text", "cell"), [
    ("tpm_total", 2759310.4, "2,759,310 tok/min", "2,759,310"), ("ttft_avg_s", 0.02007, "20.07 ms", "20.07"),
    ("tpot_p99_s", 1.5, "1,500.00 ms", "1,500.00"), ("success_rate", 0.9922, "99.22%", "99.22%"),
    ("score:gsm8k", 80.0, "80.00", "80.00"), ("output_throughput_tps", 866.14, "866.14 tok/s", "866.14"),
    ("tpm_total@p8-in256-out32", 1e6, "1,000,000 tok/min", "1,000,000"), ("ttft_avg_s", math.nan, "n/a", "n/a"),
    ("ttft_avg_s", None, "n/a", "n/a"),
])
def test_figures_for_people_through_the_catalogue(figure, value, text, cell):
    assert fmt_figure(figure, value) == text
    assert fmt_cell(figure, value) == cell


def test_labels_carry_the_cells_unit():
    assert figure_label("tpot_avg_s") == "TPOT avg (ms)"
    assert figure_label("tpm_total") == "TPM (tok/min)"
    assert figure_label("success_rate") == "success rate"
    assert figure_label("tpm_total@p8-in256-out32") == "TPM p8-in256-out32"
    assert figure_label("score:gsm8k") == "score gsm8k"


def test_deltas_carry_a_sign_in_the_figure_unit():
    assert fmt_delta("tpot_avg_s", 0.0015) == "+1.50"
    assert fmt_delta("tpm_total", -12000.4) == "-12,000"
    assert fmt_delta("success_rate", 0.0) == "±0%"
    assert fmt_delta("success_rate", -0.005) == "-0.5%"


@pytest.mark.parametrize(("figure", "a", "b", "change"), [
    ("tpm_total", 100.0, 94.0, "regression"), ("tpm_total", 100.0, 96.0, ""), ("tpm_total", 100.0, 110.0,
                                                                                "improvement"),
    ("ttft_avg_s", 1.0, 1.06, "regression"), ("ttft_avg_s", 1.0, 0.9, "improvement"),
    ("success_rate", 1.0, 0.999, "regression"), ("score:gsm8k", 80.0, 79.9, "regression"),
    ("tpm_total", math.nan, 1.0, ""), ("tpm_total", 0.0, 1.0, "improvement"),
])
def test_regressions_by_direction_and_threshold(figure, a, b, change):
    assert classify(figure, a, b, 5.0) == change


def _slower(report):
    """The sample run with every TPOT 10 % higher on perf-6k-1k and one case verdict better."""
    cases = []
    for c in report.cases:
        if c.case_id == "perf-6k-1k":
            def slow(f):
                return dataclasses.replace(f, tpot_avg_s=f.tpot_avg_s * 1.1)
            c = dataclasses.replace(c, cluster=slow(c.cluster),
                                    node_figures={n: slow(f) for n, f in c.node_figures.items()}, state="pass")
        cases.append(c)
    return dataclasses.replace(report, run_id="r-b", cases=cases)


def test_compare_cluster_rows_first_then_nodes_with_verdicts():
    a = sample_report()
    b = _slower(a)
    cmp = compare_reports(a, b, per_node=True)
    assert [v.case_id for v in cmp.verdicts] == ["", *[c.case_id for c in a.cases]]
    perf = next(v for v in cmp.verdicts if v.case_id == "perf-6k-1k")
    assert (perf.a, perf.b, perf.change) == ("invalid", "pass", "improvement")
    scopes = [r.scope for r in cmp.rows]
    assert scopes.index("n1") > max(i for i, s in enumerate(scopes) if s == "cluster")
    row = next(r for r in cmp.rows if (r.case_id, r.scope, r.figure) == ("perf-6k-1k", "cluster", "tpot_avg_s"))
    assert row.delta_pct == pytest.approx(10.0) and row.change == "regression"
    assert row.b == a.cases[0].cluster.tpot_avg_s * 1.1
    sweep = [r.figure for r in cmp.rows if r.case_id == "sweep-128" and r.scope == "cluster"]
    assert sweep and all(f.startswith("tpm_total@p") for f in sweep)
    assert any(r.figure == "score:gsm8k" for r in cmp.rows)
    assert [r.scope for r in compare_reports(a, b).rows] == ["cluster"] * sum(1 for s in scopes if s == "cluster")


def test_compare_sweep_point_is_the_mean_over_loops():
    a = sample_report()
    sweep = next(c for c in a.cases if c.case_id == "sweep-128")
    rows = [r for r in sweep.sweep if r.scope == "cluster" and r.parallel == 2]
    want = sum(r.figures.tpm_total for r in rows) / len(rows)
    got = next(r for r in compare_reports(a, a).rows if r.case_id == "sweep-128" and r.figure.startswith(
        "tpm_total@p2"))
    assert len(rows) == 2 and got.a == pytest.approx(want, rel=1e-15)


def test_show_is_one_screen_with_reasons_and_validity():
    report = sample_report()
    lines = show_lines(report, "ctl show X --full")
    assert len(lines) <= 40
    assert lines[0] == f"run {RUN_ID}: ERROR"
    assert any("NOT VALID: load_generator n2" in line for line in lines)
    perf = report.cases[0].cluster
    assert any(f"cluster TPM {perf.tpm_total:,.0f} tok/min" in line for line in lines)
    assert any(line.strip().startswith("gsm8k: score 40.00") for line in lines)
    assert lines[-1] == "the full report: ctl show X --full"


def test_junit_one_test_case_per_case_and_scope_with_reasons():
    report = sample_report()
    root = ET.fromstring(render_junit(report))
    cases = root.findall(".//testcase")
    assert len(cases) == sum(len(c.scope_states) for c in report.cases) == int(root.get("tests"))
    by_name = {c.get("name"): c for c in cases}
    assert by_name["sweep-128 [cluster]"].find("*") is None  # PASS
    fail = by_name["gsm8k [n2]"].find("failure")
    assert fail is not None and "score:gsm8k: measured 20" in fail.get("message")
    invalid = by_name["perf-6k-1k [n2]"].find("error")
    assert invalid is not None and invalid.get("type") == "INVALID"
    assert int(root.get("failures")) + int(root.get("errors")) == sum(1 for c in cases if c.find("*") is not None)


def test_junit_never_passes_a_case_whose_state_is_worse_than_its_scopes():
    report = sample_report()
    sweep = next(c for c in report.cases if c.case_id == "sweep-128")
    broken = dataclasses.replace(sweep, state="invalid")
    root = ET.fromstring(render_junit(dataclasses.replace(report, cases=[broken])))
    (extra,) = [c for c in root.findall(".//testcase") if c.get("name") == "sweep-128 [case]"]
    assert extra.find("error").get("type") == "INVALID"


def test_csv_summary_has_seed_001_columns_and_the_stored_values(tmp_path):
    import csv

    store = sample_store(tmp_path / "s.sqlite")
    from fleetbench.controller.report.model import load_report

    report = load_report(store, RUN_ID)
    paths = write_csv(store, report, tmp_path / "csv")
    assert [p.name for p in paths] == [f"{RUN_ID}.{n}.csv" for n in ("summary", "percentiles", "sweep", "requests")]
    rows = list(csv.DictReader(paths[0].open()))
    assert list(rows[0])[3:3 + len(SEED001_FIELDS)] == SEED001_FIELDS
    perf = next(r for r in rows if r["case"] == "perf-6k-1k" and r["scope"] == "cluster")
    cl = report.cases[0].cluster
    assert float(perf["mean_tpot_ms"]) == cl.tpot_avg_s * 1000
    assert float(perf["p99_ttft_ms"]) == cl.percentiles["ttft_s"][99] * 1000
    assert int(perf["total_output_tokens"]) == cl.output_tokens
    (n,) = store.db.execute("SELECT count(*) FROM requests WHERE run_id = ?", [RUN_ID]).fetchone()
    assert sum(1 for _ in paths[3].open()) == n + 1


@pytest.mark.parametrize(("spec", "needle"), [
    ("n1 n2", "separated by commas, not spaces (--nodes n1,n2)"), ("gpu=", "has an empty value"),
    ("=h200", "without a label name"), ("10.0.0.1:99999", "bad port '99999'"), ("h:abc", "bad port 'abc'"),
    ("nn1", "did you mean n1?"), ("gpu=h20", "did you mean h200?"), ("gpo=h200", "did you mean gpu?"),
    (" , ", "names no node"),
])
def test_nodes_mistakes_are_named(tmp_path, spec, needle):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("nodes:\n  n1: {address: 127.0.0.1:1, labels: {gpu: h200}}\n  n2: 127.0.0.1:2\n")
    with pytest.raises(ConfigError) as exc:
        resolve_nodes(spec, fleet)
    assert needle in str(exc.value)


def test_spaced_nodes_in_argv():
    assert "--nodes n1,n2,n3" in spaced_nodes(["run", "--nodes", "n1", "n2", "n3", "--plan", "p.yaml"])
    assert spaced_nodes(["run", "-n", "n1,n2", "--plan", "p.yaml"]) is None
    assert spaced_nodes(["show", "latest"]) is None


@pytest.mark.parametrize(("error", "status", "needle"), [
    ("n1 (10.0.0.1:50051) is unreachable: failed to connect to all addresses; last error: UNKNOWN: "
     "ipv4:10.0.0.1:50051: Failed to connect to remote host: Connection refused", "unreachable",
     "is fleetbench-agent running there and listening on port 50051?"),
    ("n1 (gpu9:50051) is unreachable: DNS resolution failed for gpu9:50051: C-ares status is not ARES_SUCCESS",
     "unresolvable", "cannot resolve the host name 'gpu9'"),
    ("n1 (10.0.0.1:50051) is unreachable: Deadline Exceeded", "timeout", "firewall drops port 50051"),
    ("n1 (10.0.0.1:50051): TLS connection refused (handshake failed)", "TLS refused", "TLS connection refused"),
])
def test_ping_explains_why(error, status, needle):
    host = "gpu9" if "gpu9" in error else "10.0.0.1"
    why = explain(Node("n1", f"{host}:50051"), error)
    assert why.status == status and needle in why.line and "\n" not in why.line


def test_progress_counts_never_go_back():
    counts = ProgressCounts()
    assert counts.update(4, 0, 100.0) == (4, 0, 100.0)
    assert counts.update(8, 1, 0.0) == (8, 1, 100.0)  # the final count event carries no throughput
    assert counts.update(0, 0, 0.0) == (8, 1, 100.0)  # the SUCCEEDED state event carries no counts


def test_plan_outline_requests_points_and_range():
    perf = PerfCase(id="p", parallel=8, number=64, input_tokens=256, output_tokens=64)
    o = outline_case(perf)
    assert o.requests_per_node == 64 and o.seconds is not None
    lo, hi = o.seconds
    assert lo == pytest.approx(8 * (0.1 + 256 / 50_000 + 64 * 0.010) + 3.0)
    assert hi == pytest.approx(8 * (2.0 + 256 / 5_000 + 64 * 0.050) + 15.0)
    sweep = SweepCase(id="s", parallel=(1, 4), number=(4, 16), input_tokens=(128, 256), output_tokens=(32,), loops=2)
    o = outline_case(sweep)
    assert o.requests_per_node == 2 * 2 * (4 + 16) and "8 point(s)" in o.detail
    rated = PerfCase(id="r", parallel=100, number=600, input_tokens=1, output_tokens=1, rate=2.0)
    assert outline_case(rated).seconds[0] >= 300
    capacity = CapacityCase(id="c", input_tokens=128, output_tokens=32, parallel_min=1, parallel_max=64, slo=())
    o = outline_case(capacity)  # the probes depend on where the knee is: no invented figure
    assert o.seconds is None and "search parallel 1–64" in o.detail and "requests set by the search" in o.line()
    by_rate = CapacityCase(id="c", input_tokens=128, output_tokens=32, parallel_min=0, parallel_max=0, slo=(),
                           axis="rate", rate_min=0.5, rate_max=32.0, probe_duration_s=20.0, load="split")
    o = outline_case(by_rate)
    assert o.seconds is None and "search rate 0.5–32 req/s in total on one endpoint (load: split), 20 s of " \
        "arrivals per probe (open-loop)" in o.detail


def test_demo_workdir_is_not_the_current_folder():
    from fleetbench.controller.demo import default_workdir

    assert default_workdir().is_absolute() and Path.cwd() not in (default_workdir(), default_workdir().parent)


def test_ctl_imports_with_a_typer_without_display_type_rich():
    """Typer 0.27 (a GPU server image's; our floor is 0.12) has no display_type_rich, which our `<bool>` help fix
    patches: `ctl` failed to import there with an AttributeError."""
    import subprocess
    import sys

    code = ("import typer.core as c\n"
            "for k in c.TyperOption.__mro__:\n"
            "    if 'display_type_rich' in vars(k): delattr(k, 'display_type_rich')\n"
            "import fleetbench.controller.cli\n"
            "assert not hasattr(c.TyperOption, 'display_type_rich')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
