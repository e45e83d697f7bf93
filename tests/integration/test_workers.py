"""Load from several worker processes on one node: split, started together, merged like the cluster merge."""

from __future__ import annotations

import sqlite3

import pytest
from support.fleets import ctl
from support.plans import plan_text

pytestmark = pytest.mark.integration

PLAN = plan_text("workers", "{tokenizer}", """\
  - {id: sharded, parallel: 6, number: 30, input_tokens: 32, output_tokens: 20, workers: 3,
     extra_args: {ignore_eos: true}}
""")


def test_three_workers_split_the_load_and_merge_exactly(tmp_path, plan_file, fresh_fleet):
    plan = plan_file(PLAN)
    db = tmp_path / "s.sqlite"
    fleet = fresh_fleet(1, ttft_ms=100, tpot_ms=10, log_requests=True)
    log = fleet.logs["n1"]
    proc = fleet.run(plan, db, tmp_path / "out", timeout=300)
    fleet.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = sqlite3.connect(db)
    n, distinct, out_tokens = con.execute(
        "SELECT count(*), count(DISTINCT idx), sum(output_tokens) FROM requests").fetchone()
    assert n == distinct == 30 and out_tokens == 30 * 20
    # three workers' databases on the node, all started at the common instant
    dbs = list((fleet.local.workdir / "agents").rglob("benchmark_data.db"))
    assert len(dbs) == 3
    counts, starts = [], []
    for path in dbs:
        c = sqlite3.connect(path)
        count, first_sent = c.execute("SELECT count(*), min(start_time) FROM result").fetchone()
        counts.append(count)
        starts.append(first_sent)
    assert sorted(counts) == [10, 10, 10]
    assert max(starts) - min(starts) < 0.05  # perf_counter readings: one clock for every process on the node
    # the server saw exactly the requests the records hold (evalscope's connection test is off), plus the
    # preflight's one request of the case's shape, sent before any load
    assert len(log.read_text().splitlines()) == 30 + 1


def test_unreachable_endpoint_fails_the_job_in_seconds_not_hours(tmp_path, plan_file, fresh_fleet):
    plan = plan_file(PLAN)  # endpoint 127.0.0.1:9: nothing there
    fleet = fresh_fleet(1, ttft_ms=200, tpot_ms=20)
    proc = ctl("run", "--plan", str(plan), "--nodes", fleet.nodes[0].address, "--db", str(tmp_path / "s.db"),
               "--out", str(tmp_path / "o"), "-q", timeout=180)
    fleet.stop()
    # found by the preflight, before any load: the run could not be done (ERROR, exit 2), not a failed acceptance
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "127.0.0.1:9" in proc.stderr and "ERROR" in proc.stderr
