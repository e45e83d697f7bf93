"""A sweep's verdict rows carry the scope and the point as two fields (no "cluster @ point" string to take
apart); every format still shows them as "<scope> @ <point>", rendered by model.at_point."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from openpyxl import load_workbook

from fleetbench.controller.report import content
from fleetbench.controller.report.json_report import report_document
from fleetbench.controller.report.model import RunReport, VerdictRow, at_point
from fleetbench.controller.report.xlsx import write_xlsx

POINT = "in128-out512-p1-n2-loop1"


def test_sweep_verdicts_are_scope_and_point(sample_report: RunReport) -> None:
    sweep = next(c for c in sample_report.cases if c.case_id == "sweep-128")
    assert {v.scope for v in sweep.verdicts} == {"n1", "n2", "cluster"}
    assert [(v.scope, v.point) for v in sweep.verdicts[:3]] == [("n1", POINT), ("n2", POINT), ("cluster", POINT)]
    assert sweep.verdicts[2].where == f"cluster @ {POINT}"
    perf = next(c for c in sample_report.cases if c.verdicts and c.case_type == "perf")
    assert all(v.point == "" and v.where == v.scope for v in perf.verdicts)
    assert (at_point(POINT), at_point("")) == (f" @ {POINT}", "")


def test_every_format_shows_scope_at_point(sample_report: RunReport, tmp_path: Path) -> None:
    sweep = next(c for c in sample_report.cases if c.case_id == "sweep-128")
    assert [row[0] for row in content.verdict_table(sweep, "zh").rows[:3]] == [
        f"n1 @ {POINT}", f"n2 @ {POINT}", f"集群 @ {POINT}"]
    doc = report_document(sample_report)
    rows = next(c for c in doc["cases"] if c["id"] == "sweep-128")["verdicts"]
    assert rows[2]["scope"] == f"cluster @ {POINT}" and "point" not in rows[2]
    wb = load_workbook(write_xlsx(sample_report, tmp_path / "r.xlsx"), read_only=True)
    scopes = [r[1] for r in list(wb["Verdicts"].iter_rows(values_only=True))[1:] if r[0] == "sweep-128"]
    assert scopes[:3] == [f"n1 @ {POINT}", f"n2 @ {POINT}", f"cluster @ {POINT}"]


def test_scope_name_of_a_partial_cluster_at_a_point(sample_report: RunReport) -> None:
    sweep = replace(next(c for c in sample_report.cases if c.case_id == "sweep-128"), partial_cluster={POINT: (1, 2)})
    row = VerdictRow("cluster", "success_rate", "min", 1.0, 1.0, True, "", point=POINT)
    assert content.scope_name(row.scope, "en", sweep, row.point) == f"cluster (1 of 2 nodes) @ {POINT}"
    assert content.verdict_table(replace(sweep, verdicts=[row]), "en").rows[0][0] == f"cluster (1 of 2 nodes) @ {POINT}"
