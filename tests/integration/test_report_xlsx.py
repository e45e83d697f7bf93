"""`ctl run` on two real agents (a perf case and a two-loop sweep) writes the report in all four formats;
the XLSX read back with openpyxl and the JSON parsed back hold the SQLite store's numbers to the last digit:
every figure of every scope and sweep point, every verdict, every raw request. An eval case's scores are
checked on a store filled through the Store API. `ctl report` picks a format and language, or refuses a bad
one in one line with exit 2."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from openpyxl import load_workbook
from support.fleets import Fleet, ctl
from support.plans import SWEEP_CASE, plan_text

from fleetbench.controller.aggregate import DatasetScore, Verdict
from fleetbench.controller.plan import Expectation
from fleetbench.controller.report.i18n import t
from fleetbench.controller.report.model import load_report
from fleetbench.controller.report.xlsx import REQUEST_COLUMNS, raw_requests, write_xlsx
from fleetbench.controller.store import Store

pytestmark = pytest.mark.integration

PERF_CASE = """\
  - id: perf
    parallel: 2
    number: 6
    input_tokens: 32
    output_tokens: 8
    extra_args: {ignore_eos: true}
    expect:
      success_rate: {min: 1.0}
      ttft_avg_s: {max: 30}
"""


@pytest.fixture(scope="module")
def formats_run(local_fleet, demo_tokenizer):
    fleet: Fleet = local_fleet(2)
    tmp = fleet.work
    plan = tmp / "plan.yaml"
    plan.write_text(plan_text("report formats", demo_tokenizer, PERF_CASE + SWEEP_CASE))
    db = tmp / "fb.sqlite"
    proc = fleet.run(plan, db, tmp / "out", timeout=500, start_lead_s=5)
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
    return tmp, db, con, run_id


def _sheet(wb, title):
    rows = list(wb[title].iter_rows(values_only=True))
    return rows[0], rows[1:]


def _stored(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def test_run_writes_all_four_formats(formats_run):
    tmp, _, _, run_id = formats_run
    names = sorted(p.name for p in (tmp / "out").iterdir())
    assert names == sorted(f"{run_id}{ext}" for ext in (".html", ".md", ".xlsx", ".json"))
    html = (tmp / "out" / f"{run_id}.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "http" not in html.split("<body>")[0]


def test_xlsx_figures_equal_the_store_to_the_last_digit(formats_run):
    tmp, _, con, run_id = formats_run
    wb = load_workbook(tmp / "out" / f"{run_id}.xlsx", read_only=True)
    assert wb.sheetnames == ["Summary", "States", "Per-node results", "Percentiles", "Sweep", "Verdicts", "Validity",
                             "Failures", "Long context", "Eval scores", "Environment", "Raw requests"]
    stored = {(r["case_id"], r["scope"]): json.loads(r["figures_json"]) for r in
              con.execute("SELECT case_id, scope, figures_json FROM figures WHERE run_id = ?", [run_id])}

    header, rows = _sheet(wb, "Per-node results")
    from fleetbench.controller.report.xlsx import NODE_COLUMNS
    from fleetbench.figure_catalog import FIGURES
    assert header[:5] == ("Case", "Scope", "Time taken for tests (s)", "Total requests", "Successful requests")
    assert "Average time per output token (s)" in header  # the store's unit: the cells hold its numbers
    assert header[2:] == tuple(FIGURES[f].label("en", stored=True) for f in NODE_COLUMNS)
    assert {(r[0], r[1]) for r in rows} == {("perf", "n1"), ("perf", "n2"), ("perf", "cluster")}
    for r in rows:
        figs = stored[(r[0], r[1])]
        for name, cell in zip(NODE_COLUMNS, r[2:], strict=True):
            assert cell == figs[name] and type(cell) in (int, float), (r[0], r[1], name, cell, figs[name])

    header, rows = _sheet(wb, "Percentiles")
    for r in rows:
        figs = stored[(r[0], r[1])]
        for metric, cell in zip(("ttft_s", "itl_s", "tpot_s", "latency_s", "input_tokens", "output_tokens",
                                 "output_tps", "total_tps"), r[3:], strict=True):
            assert cell == _stored(figs["percentiles"][metric][str(r[2])]), (r[:3], metric)
    assert len(rows) == 3 * 10

    header, rows = _sheet(wb, "Sweep")
    loops = [r for r in rows if r[2] == "loop"]
    averages = [r for r in rows if r[2] == "average"]
    assert len(loops) == 4 * 3 and len(averages) == 2 * 3  # 4 steps × (n1, n2, cluster); 2 points × 3 scopes
    for r in loops:
        case, scope, _, point, inp, outp, par, num, loop, streams_cell, lat, otps, ttft, tpot, avg_tps, per_req, tpm = r
        figs = stored[(f"{case}@{point}", scope)]
        assert (lat, otps, ttft, tpot, tpm) == (figs["latency_avg_s"], figs["output_throughput_tps"],
                                               figs["ttft_avg_s"], figs["tpot_avg_s"], figs["tpm_total"])
        streams = par * (2 if scope == "cluster" else 1)  # the cluster's streams: both nodes'
        assert avg_tps == 1 / figs["tpot_avg_s"] and per_req == figs["output_throughput_tps"] / streams
        assert streams_cell == streams
        assert point == f"in{inp}-out{outp}-p{par}-n{num}-loop{loop}"
    for r in averages:
        case, scope, _, _, inp, outp, par, _, n_loops, _, lat, otps, *_, tpm = r
        mine = [stored[(f"{case}@in{inp}-out{outp}-p{par}-n{par * 2}-loop{k}", scope)] for k in (1, 2)]
        assert n_loops == 2
        assert lat == sum(f["latency_avg_s"] for f in mine) / 2
        assert otps == sum(f["output_throughput_tps"] for f in mine) / 2
        assert tpm == sum(f["tpm_total"] for f in mine) / 2  # the loop average the conclusion's best TPM uses

    header, rows = _sheet(wb, "Verdicts")
    verdicts = {(r["case_id"], r["scope"], r["figure"], r["op"]): r for r in
                con.execute("SELECT * FROM verdicts WHERE run_id = ?", [run_id])}
    assert len(rows) == len(verdicts)
    for r in rows:
        case, scope = r[0], r[1]
        if " @ " in scope:  # a sweep point's verdict: scope "n1 @ point", stored under case "sweep@point"
            scope, point = scope.split(" @ ")
            case = f"{case}@{point}"
        v = verdicts[(case, scope, r[2], r[3])]
        assert (r[4], r[6]) == (v["threshold"], v["measured"]) and r[7] == ("PASS" if v["passed"] else "FAIL")


def test_xlsx_raw_requests_equal_the_requests_table(formats_run):
    tmp, _, con, run_id = formats_run
    wb = load_workbook(tmp / "out" / f"{run_id}.xlsx", read_only=True)
    header, rows = _sheet(wb, "Raw requests")
    assert header == tuple(t(k, "en") for k, _ in REQUEST_COLUMNS)
    cols = [c for _, c in REQUEST_COLUMNS]
    stored = [tuple(_stored(r[c]) for c in cols) for r in con.execute(
        f"SELECT {', '.join(cols)} FROM requests WHERE run_id = ? ORDER BY case_id, node, point, idx", [run_id])]
    assert len(stored) == 2 * 6 + 2 * 2 * (2 + 4)
    # openpyxl reads an empty string back as None
    assert [tuple(None if v == "" else v for v in r) for r in stored] == [tuple(r) for r in rows]


def test_xlsx_raw_requests_stop_at_the_row_cap_with_a_note(formats_run, tmp_path):
    _, db, con, run_id = formats_run
    store = Store(db)
    path = write_xlsx(load_report(store, run_id), tmp_path / "capped.xlsx", "zh", raw_requests(store, run_id, cap=5))
    wb = load_workbook(path, read_only=True)
    _, rows = _sheet(wb, "原始请求")
    (total,) = con.execute("SELECT count(*) FROM requests WHERE run_id = ?", [run_id]).fetchone()
    assert len(rows) == 6
    assert rows[-1][0] == t("xl.truncated", "zh", shown=5, total=total, cap=5)


def test_json_sweep_rows_equal_the_store_to_the_last_digit(formats_run):
    tmp, _, con, run_id = formats_run
    doc = json.loads((tmp / "out" / f"{run_id}.json").read_text())
    perf, sweep = doc["cases"]
    assert (perf["case_type"], sweep["case_type"]) == ("perf", "sweep")
    assert perf["sweep"] == [] and perf["scores"] == []
    stored = {(r["case_id"], r["scope"]): json.loads(r["figures_json"]) for r in
              con.execute("SELECT case_id, scope, figures_json FROM figures WHERE run_id = ?", [run_id])}
    assert len(sweep["sweep"]) == 12
    for row in sweep["sweep"]:
        assert row["figures"] == stored[(f"sweep@{row['point']}", row["scope"])]
        assert row["avg_tps"] == 1 / row["figures"]["tpot_avg_s"]
    for a in sweep["sweep_averages"]:
        mine = [r["figures"] for r in sweep["sweep"] if (r["scope"], r["parallel"]) == (a["scope"], a["parallel"])]
        assert a["loops"] == len(mine) == 2
        assert a["ttft_avg_s"] == sum(f["ttft_avg_s"] for f in mine) / 2


def test_eval_scores_in_xlsx_and_json_equal_the_store(tmp_path):
    """A store filled through its API: an eval case with per-node and pooled scores, judged against 60 ± 0.5."""
    from fleetbench.controller.report.json_report import report_document

    plan = ("name: ev\nmodel: demo\nendpoint: {url: http://127.0.0.1:9/v1/chat/completions}\ncases:\n"
            "  - id: gsm8k\n    type: eval\n    datasets: [gsm8k]\n"
            "    dataset_args: {gsm8k: {local_path: /data/gsm8k}}\n"
            "    expect:\n      score: {official: 60.0, tolerance: 0.5}\n")
    store = Store(tmp_path / "fb.sqlite")
    store.create_run("r-eval", "ev", "demo", plan, ["n1", "n2"], "test")
    for node in ("n1", "n2"):
        store.add_node("r-eval", node, address=f"{node}:1", endpoint="http://127.0.0.1:9/v1/chat/completions")
        store.set_case_node("r-eval", "gsm8k", node, state="succeeded", error="")
    scores = {"n1": 60.0, "n2": 1 / 3 * 100, "cluster": (60.0 * 5 + 100 / 3 * 6) / 11}
    samples = {"n1": 5, "n2": 6, "cluster": 11}
    exp = Expectation("score:gsm8k", "official", 60.0, 0.5)
    for scope, score in scores.items():
        store.set_scores("r-eval", "gsm8k", scope, [DatasetScore("gsm8k", "mean_acc", score, samples[scope])])
        store.add_verdicts("r-eval", "gsm8k", [Verdict(scope, exp, score, score >= 59.5)])
    store.finish_run("r-eval", "fail")

    report = load_report(store, "r-eval")
    path = write_xlsx(report, tmp_path / "ev.xlsx", "en", raw_requests(store, "r-eval"))
    _, rows = _sheet(load_workbook(path, read_only=True), "Eval scores")
    got = {r[1]: r for r in rows}
    assert set(got) == {"n1", "n2", "cluster"}
    for scope, score in scores.items():
        row = got[scope] + (None,) * (12 - len(got[scope]))  # openpyxl drops trailing empty cells
        _, _, dataset, metric, n, s, official, tol, delta, verdict, pooled, questions = row
        assert (dataset, metric, n, s, official, tol) == ("gsm8k", "mean_acc", samples[scope], score, 60.0, 0.5)
        assert delta == score - 60.0 and verdict == ("PASS" if score >= 59.5 else "FAIL")
        # the cluster pools n1 and n2, who answered different numbers of questions (5 and 6)
        assert (pooled or None, questions) == (("n1, n2", None) if scope == "cluster" else (None, None))
    doc = report_document(report)
    assert {s["scope"]: s["score"] for s in doc["cases"][0]["scores"]} == scores
    assert {s["scope"]: s["passed"] for s in doc["cases"][0]["scores"]} == {"n1": True, "n2": False,
                                                                             "cluster": False}


def test_report_command_formats_languages_and_errors(formats_run, tmp_path):
    _, db, _, run_id = formats_run
    base = ("report", run_id, "--db", str(db))
    proc = ctl(*base, "--format", "html", "--lang", "zh", "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert '<html lang="zh-CN">' in text and "测试环境" in text and "结论" in text
    proc = ctl(*base, "--format", "md", "--lang", "zh", "--out", str(tmp_path / "d"))
    assert proc.returncode == 0 and (tmp_path / "d" / f"{run_id}.zh.md").read_text().startswith("# 验收测试报告")
    for flag, value, word in (("--format", "pdf", "format"), ("--lang", "fr", "language")):
        proc = ctl(*base, flag, value, "--out", str(tmp_path / "bad"))
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and f"unknown report {word} '{value}'" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()
