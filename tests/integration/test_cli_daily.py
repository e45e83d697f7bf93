"""`ctl` as a daily tool (issue 16, items 1-9), run as a user does against a real store made by real runs:
run ids you can type, `ctl runs`/`show`/`compare` on one screen with the right numbers, progress that ends
at N/N with a `run_finished` event, JUnit and CSV.

Two runs of one plan on a 2-node loopback fleet: A on endpoints with a 10 ms TPOT (PASS), B with 20 ms
(FAIL: the plan wants TPOT avg ≤ 15 ms), so B is a regression in TPOT, TPM and the verdict. On a loaded
machine the load generator's check may find a node saturated and make a run INVALID: the tests read the
verdicts from the store and check what is shown against them."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support import fleets
from support.plans import load_case, plan_text

pytestmark = pytest.mark.integration
NUMBER, PARALLEL, OUTPUT = 8, 2, 16


def ctl(*args: str, cwd: Path, columns: int = 80, **env: str) -> subprocess.CompletedProcess[str]:
    return fleets.ctl(*args, timeout=300, cwd=cwd, env=dict(os.environ, COLUMNS=str(columns), **env))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, local_fleet, demo_tokenizer):
    """(work dir, store, [run A, run B], [json stdout of A, of B]): A at 10 ms TPOT, B at 20 ms."""
    work = tmp_path_factory.mktemp("daily")
    (work / "plan.yaml").write_text(plan_text("daily tool test", demo_tokenizer, load_case(
        PARALLEL, NUMBER, OUTPUT, expect="tpot_avg_s: {max: 0.015}")))
    db = work / "store.sqlite"
    outs = []
    for tpot in (10, 20):
        fleet = local_fleet(2, ttft_ms=50, tpot_ms=tpot)
        proc = ctl("run", "--plan", "plan.yaml", "--nodes", "n1,n2", "--fleet", str(fleet.fleet_file), "--db",
                   str(db), "--json", "--junit", str(work / f"junit{tpot}.xml"), cwd=work,
                   FLEETBENCH_OUT=str(work / "out"))
        fleet.stop()  # one fleet at a time
        assert proc.returncode in ((0, 3) if tpot == 10 else (1, 3)), proc.stderr[-3000:] + proc.stdout[-3000:]
        outs.append(proc)
    con = sqlite3.connect(db)
    ids = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY started_at")]
    con.close()
    return work, db, ids, outs


EXIT = {"pass": 0, "fail": 1, "invalid": 3}
SHOWN_CHANGE = {("pass", "fail"): "✗ worse", ("pass", "invalid"): "✗ worse", ("invalid", "fail"): "≠",
                ("invalid", "invalid"): None}


def verdict(db: Path, run_id: str) -> str:
    con = sqlite3.connect(db)
    (v,) = con.execute("SELECT verdict FROM runs WHERE run_id = ?", [run_id]).fetchone()
    con.close()
    return v


def figures(db: Path, run_id: str, scope: str = "cluster") -> dict:
    con = sqlite3.connect(db)
    (raw,) = con.execute("SELECT figures_json FROM figures WHERE run_id = ? AND case_id = 'load' AND scope = ?",
                         [run_id, scope]).fetchone()
    con.close()
    return json.loads(raw)


def test_json_stream_on_stdout_ends_with_run_finished_and_counts_end_at_n_of_n(runs):
    _, db, ids, outs = runs
    for run_id, proc in zip(ids, outs, strict=True):
        events = [json.loads(line) for line in proc.stdout.splitlines()]  # every stdout line is JSON
        last = events[-1]
        assert last["event"] == "run_finished" and last["run_id"] == run_id
        assert last["store"] == str(db) and all(Path(p).exists() for p in last["reports"]) and last["reports"]
        progress = [e for e in events if e["event"] == "progress" and e["case"] == "load"]
        for node in ("n1", "n2"):
            mine = [e for e in progress if e["node"] == node]
            assert mine[-1]["done"] == mine[-1]["total"] == NUMBER  # never 8 -> 0 at the end
            assert mine[-1]["output_tps"] > 0
            assert [e["done"] for e in mine] == sorted(e["done"] for e in mine)
    a, b = (json.loads(p.stdout.splitlines()[-1]) for p in outs)
    assert a["verdict"] == verdict(db, ids[0]) in ("pass", "invalid") and a["exit_code"] == EXIT[a["verdict"]]
    assert (a["reasons"] == []) == (a["verdict"] == "pass")
    assert b["verdict"] == verdict(db, ids[1]) in ("fail", "invalid") and b["exit_code"] == EXIT[b["verdict"]]
    assert any("tpot_avg_s" in r for r in b["reasons"])


def test_runs_keeps_the_id_whole_at_80_columns(runs):
    work, db, ids, _ = runs
    proc = ctl("runs", "--db", str(db), cwd=work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert [line.split()[0] for line in lines[2:]] == ids[::-1]  # newest first, whole ids
    assert verdict(db, ids[1]).upper() in lines[2] and verdict(db, ids[0]).upper() in lines[3]
    tpm_a = figures(db, ids[0])["tpm_total"]
    assert lines[3].rstrip().endswith(f"{tpm_a:,.0f}")


def test_empty_store_says_so(tmp_path):
    proc = ctl("runs", "--db", str(tmp_path / "empty.sqlite"), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.strip() == f"no runs in {tmp_path / 'empty.sqlite'}"


def test_run_ids_by_prefix_latest_and_latest_n(runs):
    work, db, ids, _ = runs
    a, b = ids
    prefix = next(a[:n] for n in range(1, len(a)) if not b.startswith(a[:n]))
    for ref, want in ((a, a), (prefix, a), ("latest", b), ("latest~0", b), ("latest~1", a)):
        proc = ctl("show", ref, "--db", str(db), cwd=work)
        assert proc.returncode == 0, (ref, proc.stderr)
        assert proc.stdout.splitlines()[0].startswith(f"run {want}:"), ref
    common = next(a[:n] for n in range(len(a), 0, -1) if b.startswith(a[:n]))  # matches both
    for ref, needle in ((common, "ambiguous"), ("latest~2", "holds only 2 run(s)"), ("latest~x", "a number"),
                        ("r1999", "no run 'r1999'")):
        proc = ctl("show", ref, "--db", str(db), cwd=work)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and needle in proc.stderr, (ref, proc.stderr)
    # every command that takes a run id
    proc = ctl("report", "latest~1", "--db", str(db), "--format", "json", "--out", str(work / "r.json"), cwd=work)
    assert proc.returncode == 0 and json.loads((work / "r.json").read_text())["run_id"] == a


def test_show_is_one_screen_with_the_stored_figures(runs):
    work, db, ids, _ = runs
    proc = ctl("show", ids[1], "--db", str(db), cwd=work)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) <= 40
    f = figures(db, ids[1])
    text = proc.stdout
    vb = verdict(db, ids[1]).upper()
    assert f"run {ids[1]}: {vb}" in text and f"{vb} because:" in text and "tpot_avg_s" in text
    assert f"cluster TPM {f['tpm_total']:,.0f} tok/min" in text
    ttft = f"{f['ttft_avg_s'] * 1000:,.2f} / {f['percentiles']['ttft_s']['99'] * 1000:,.2f} ms"
    tpot = f"{f['tpot_avg_s'] * 1000:,.2f} / {f['percentiles']['tpot_s']['99'] * 1000:,.2f} ms"
    assert f"TTFT {ttft}" in text and f"TPOT {tpot}" in text
    assert f"requests {2 * NUMBER} ok, 0 failed (100%)" in text
    full = ctl("show", ids[1], "--db", str(db), "--full", cwd=work)
    assert full.returncode == 0 and full.stdout.startswith("# ") and len(full.stdout.splitlines()) > len(lines)


def _row(text: str, label: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(label))
    return re.split(r"\s{2,}", line.strip())


def test_compare_cluster_rows_first_with_deltas_and_marked_regressions(runs):
    work, db, ids, _ = runs
    a, b = ids
    proc = ctl("compare", "latest~1", "latest", "--db", str(db), cwd=work)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    lines = text.splitlines()
    assert len(lines) <= 40 and all(len(line) <= 80 for line in lines)
    assert lines[0].startswith(f"A {a}") and f"B {b}" in lines[0]
    fa, fb = figures(db, a), figures(db, b)
    tpot = _row(text, "TPOT avg (ms)")
    assert tpot[1:3] == [f"{fa['tpot_avg_s'] * 1000:,.2f}", f"{fb['tpot_avg_s'] * 1000:,.2f}"]
    delta = fb["tpot_avg_s"] - fa["tpot_avg_s"]
    assert tpot[3] == f"+{delta * 1000:,.2f}"
    assert tpot[4] == f"{delta / fa['tpot_avg_s'] * 100:+.1f}%"
    assert tpot[5] == "✗ worse"  # the symbol survives the pipe
    tpm = _row(text, "TPM (tok/min)")
    assert tpm[1:3] == [f"{fa['tpm_total']:,.0f}", f"{fb['tpm_total']:,.0f}"] and tpm[-1] == "✗ worse"
    va, vb = verdict(db, a), verdict(db, b)
    mark = [m] if (m := SHOWN_CHANGE[(va, vb)]) else []
    assert _row(text, "run verdict")[1:] == [va.upper(), vb.upper(), *mark]
    assert _row(text, "load")[1:] == [va.upper(), vb.upper(), *mark]
    assert _row(text, "success rate")[1:] == ["100%", "100%", "±0%", "+0.0%"]
    assert " on n1" not in text  # per-node rows only with --per-node
    per_node = ctl("compare", a, b, "--db", str(db), "--per-node", cwd=work).stdout
    assert "load on n1" in per_node and "load on n2" in per_node
    assert per_node.index("load on n1") > per_node.index("run verdict")


def test_compare_json_carries_every_value(runs):
    work, db, ids, _ = runs
    a, b = ids
    doc = json.loads(ctl("compare", a, b, "--db", str(db), "--json", "--per-node", cwd=work).stdout)
    assert (doc["run_a"], doc["run_b"]) == (a, b)
    va, vb = verdict(db, a), verdict(db, b)
    change = {"✗ worse": "regression", "≠": "changed", None: ""}[SHOWN_CHANGE[(va, vb)]]
    assert doc["verdicts"][0] == {"case": None, "a": va, "b": vb, "changed": va != vb, "change": change}
    rows = {(r["scope"], r["figure"]): r for r in doc["rows"]}
    for scope in ("cluster", "n1", "n2"):
        fa, fb = figures(db, a, scope), figures(db, b, scope)
        for name in ("tpm_total", "ttft_avg_s", "tpot_avg_s", "output_throughput_tps", "request_throughput_rps",
                     "success_rate"):
            r = rows[(scope, name)]
            assert (r["a"], r["b"]) == (fa[name], fb[name])
            assert r["delta"] == fb[name] - fa[name]
        assert rows[(scope, "tpot_p99_s")]["b"] == fb["percentiles"]["tpot_s"]["99"]
        assert rows[(scope, "tpot_avg_s")]["change"] == "regression"
    assert doc["regressions"] == sum(1 for r in doc["rows"] if r["change"] == "regression") > 0


def test_junit_from_run_and_report_agree_with_the_verdicts(runs):
    import xml.etree.ElementTree as ET

    work, db, ids, _ = runs
    for tpot, run_id in zip((10, 20), ids, strict=True):
        root = ET.parse(work / f"junit{tpot}.xml").getroot()
        cases = {c.get("name"): c for c in root.iter("testcase")}
        assert set(cases) == {"load [n1]", "load [n2]", "load [cluster]"}
        con = sqlite3.connect(db)
        states = dict(con.execute("SELECT scope, state FROM case_verdicts WHERE run_id = ? AND case_id = 'load' "
                                  "AND scope != 'case'", [run_id]).fetchall())
        con.close()
        for scope, state in states.items():
            child = cases[f"load [{scope}]"].find("*")
            if state == "pass":
                assert child is None
            else:
                assert child.tag == ("failure" if state == "fail" else "error") and child.get("type") == state.upper()
        if tpot == 20:
            assert "tpot_avg_s" in cases["load [cluster]"].find("*").text
    again = ctl("report", ids[1], "--db", str(db), "--format", "junit", "--out", str(work / "again.xml"), cwd=work)
    assert again.returncode == 0 and (work / "again.xml").read_text() == (work / "junit20.xml").read_text()


def test_csv_files_hold_the_stored_figures_and_every_request(runs):
    import csv

    work, db, ids, _ = runs
    proc = ctl("report", "latest", "--db", str(db), "--format", "csv", "--out", str(work / "csv"), cwd=work)
    assert proc.returncode == 0, proc.stderr
    names = [Path(p).name for p in proc.stdout.split()]
    assert names == [f"{ids[1]}.{n}.csv" for n in ("summary", "percentiles", "sweep", "requests")]
    summary = {r["scope"]: r for r in csv.DictReader((work / "csv" / names[0]).open())}
    f = figures(db, ids[1])
    cl = summary["cluster"]
    assert float(cl["mean_ttft_ms"]) == f["ttft_avg_s"] * 1000 and float(cl["duration"]) == f["wall_time_s"]
    assert float(cl["p99_tpot_ms"]) == f["percentiles"]["tpot_s"]["99"] * 1000
    assert (int(cl["prompt_num"]), int(cl["concurrency"])) == (2 * NUMBER, 2 * PARALLEL)
    assert (int(summary["n1"]["prompt_num"]), int(summary["n1"]["concurrency"])) == (NUMBER, PARALLEL)
    con = sqlite3.connect(db)
    lat = [r[0] for r in con.execute("SELECT latency_s FROM requests WHERE run_id = ? AND success = 1", [ids[1]])]
    con.close()
    import statistics

    assert float(cl["std_e2e_latency_ms"]) == pytest.approx(statistics.pstdev(lat) * 1000, rel=1e-12)
    requests = list(csv.DictReader((work / "csv" / names[3]).open()))
    assert len(requests) == 2 * NUMBER and {r["node"] for r in requests} == {"n1", "n2"}
    bad = ctl("report", "latest", "--db", str(db), "--format", "csv", "--out", str(work / "x.csv"), cwd=work)
    assert bad.returncode == 2 and "give --out a folder" in bad.stderr


def test_ping_names_unreachable_and_unresolvable_nodes(tmp_path):
    from fleetbench.controller.localfleet import free_port

    port = free_port()
    (tmp_path / "fleet.yaml").write_text(f"nodes:\n  n1: 127.0.0.1:{port}\n  n2: nosuchhost.invalid:50051\n")
    proc = ctl("ping", "--nodes", "n1,n2", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    table = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in table)
    row = {line.split()[0]: line.split()[-1] for line in table[2:]}
    assert row == {"n1": "unreachable", "n2": "unresolvable"}
    errors = proc.stderr.splitlines()
    assert errors[0] == (f"error: n1 (127.0.0.1:{port}): connection refused: is fleetbench-agent running there and "
                         f"listening on port {port}? (on the node: `systemctl status fleetbench-agent`; `ctl deploy` "
                         "installs and starts it)")
    assert errors[1].startswith("error: n2 (nosuchhost.invalid:50051): cannot resolve the host name "
                                "'nosuchhost.invalid'")


def test_flags_show_no_bool_metavar_and_spaced_nodes_are_named(tmp_path):
    for cmd in (["run"], ["compare"], ["demo"], ["show"], ["ping"]):
        helptext = ctl(*cmd, "--help", cwd=tmp_path, columns=120).stdout
        assert "<bool>" not in helptext and "--help" in helptext, cmd
    proc = ctl("run", "--nodes", "n1", "n2", "--plan", "p.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == ("error: --nodes takes one comma-separated list: --nodes n1,n2 "
                                                    "(the shell passed n2 as separate argument(s))\n")


def test_plan_check_says_what_will_run(tmp_path):
    seed = Path(__file__).parents[2] / "examples" / "plans" / "seed-001.yaml"
    proc = ctl("plan", "check", str(seed), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    sweep = next(line for line in lines if line.strip().startswith("sweep-ratio-70 (sweep)"))
    assert "22 point(s) = 11 concurrency level(s)" in sweep and "× 2 length(s)" in sweep
    assert re.search(r"2,902 request\(s\) per node; .* ~\d+ min – \d+ min$", sweep), sweep
    assert any(line.strip().startswith("gpqa-diamond (eval): requests set by the datasets") for line in lines)
    assert lines[-1].startswith("load on every node at once: ~")
