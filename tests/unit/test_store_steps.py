"""Steps as structured columns (issue 14, item 4): the orchestrator stores each step's case, sweep point and
parameters in `steps`; the report reads them there; a store of schema 1 gets its steps once, from its keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.report_sample import PLAN, RUN_ID, sample_store

from fleetbench.controller.orchestrator import plan_steps
from fleetbench.controller.plan import parse_plan
from fleetbench.controller.report.markdown import render_markdown
from fleetbench.controller.report.model import load_report
from fleetbench.controller.store import SCHEMA_VERSION, Store
from fleetbench.controller.yamlfile import parse_yaml

GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.fixture
def shanghai_time(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_sweep_point_is_stored_as_columns(tmp_path):
    store = sample_store(tmp_path / "s.sqlite")
    steps = store.steps(RUN_ID)
    plan = parse_plan(parse_yaml(PLAN, Path("<sample plan>"), "plan"))
    assert list(steps) == [s.step_id for s in plan_steps(plan)]  # in run order
    point = steps["sweep-128@in128-out512-p2-n4-loop2"]
    assert {k: point[k] for k in ("case_id", "point", "kind", "input_tokens", "output_tokens", "parallel", "number",
                                  "loop")} == {
        "case_id": "sweep-128", "point": "in128-out512-p2-n4-loop2", "kind": "perf", "input_tokens": 128,
        "output_tokens": 512, "parallel": 2, "number": 4, "loop": 2}
    plain = steps["perf-6k-1k"]
    assert (plain["case_id"], plain["point"], plain["parallel"], plain["loop"]) == ("perf-6k-1k", "", None, None)
    # plain SQL: a sweep's cluster output throughput by concurrency, no string parsing
    rows = store.db.execute(
        "SELECT s.parallel, s.loop, json_extract(f.figures_json, '$.output_throughput_tps') FROM steps s "
        "JOIN figures f ON f.run_id = s.run_id AND f.case_id = s.step_id AND f.scope = 'cluster' "
        "WHERE s.run_id = ? AND s.case_id = 'sweep-128' ORDER BY s.seq", [RUN_ID]).fetchall()
    assert [(p, loop) for p, loop, _ in rows] == [(1, 1), (2, 1), (1, 2), (2, 2)] and all(t > 0 for *_, t in rows)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_schema_1_store_gets_its_steps_and_reports_the_same(tmp_path, lang, shanghai_time):
    path = tmp_path / "s.sqlite"
    store = sample_store(path)
    written = store.steps(RUN_ID)
    store.db.execute("DELETE FROM steps")  # as a store written before the steps table
    store.db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store.db.conn.commit()
    store.db.conn.close()

    again = Store(path)
    migrated = again.steps(RUN_ID)
    cols = ("case_id", "point", "input_tokens", "output_tokens", "parallel", "number", "loop")
    assert {k: {c: r[c] for c in cols} for k, r in migrated.items()} == \
        {k: {c: r[c] for c in cols} for k, r in written.items()}
    assert again.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
        str(SCHEMA_VERSION)
    text = render_markdown(load_report(again, RUN_ID), lang)
    assert text == (GOLDEN / f"report-sample.{lang}.md").read_text(encoding="utf-8")
