"""Load from several worker processes on one node: split, started together, merged like the cluster merge."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from fleetbench.controller.localfleet import LocalFleet
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

pytestmark = pytest.mark.integration

PLAN = """\
name: workers
model: demo
endpoint: {{url: http://127.0.0.1:9/v1/completions}}
tokenizer: {tok}
cases:
  - {{id: sharded, parallel: 6, number: 30, input_tokens: 32, output_tokens: 20, workers: 3,
     extra_args: {{ignore_eos: true}}}}
"""


def test_three_workers_split_the_load_and_merge_exactly(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(tok=ensure_demo_tokenizer(tmp_path / "tok")))
    db = tmp_path / "s.sqlite"
    log = tmp_path / "server.jsonl"
    with LocalFleet(tmp_path / "fleet", size=1, ttft_ms=100, tpot_ms=10,
                    extra_endpoint_args=["--log", str(log)]) as fleet:
        fleet_file = fleet.write_fleet_file(tmp_path / "fleet.yaml")
        proc = subprocess.run([sys.executable, "-m", "fleetbench.controller", "run", "--plan", str(plan), "--nodes",
                               "n1", "--fleet", str(fleet_file), "--db", str(db), "--out", str(tmp_path / "out"),
                               "-q"],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = sqlite3.connect(db)
    n, distinct, out_tokens = con.execute(
        "SELECT count(*), count(DISTINCT idx), sum(output_tokens) FROM requests").fetchone()
    assert n == distinct == 30 and out_tokens == 30 * 20
    # three workers' databases on the node, all started at the common instant
    dbs = list((tmp_path / "fleet" / "agents").rglob("benchmark_data.db"))
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


def test_unreachable_endpoint_fails_the_job_in_seconds_not_hours(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(tok=ensure_demo_tokenizer(tmp_path / "tok")))  # endpoint 127.0.0.1:9: nothing there
    with LocalFleet(tmp_path / "fleet", size=1) as fleet:
        proc = subprocess.run([sys.executable, "-m", "fleetbench.controller", "run", "--plan", str(plan), "--nodes",
                               fleet.nodes[0].address, "--db", str(tmp_path / "s.db"), "--out", str(tmp_path / "o"),
                               "-q"], capture_output=True, text=True, timeout=180)
    # found by the preflight, before any load: the run could not be done (ERROR, exit 2), not a failed acceptance
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "127.0.0.1:9" in proc.stderr and "ERROR" in proc.stderr
