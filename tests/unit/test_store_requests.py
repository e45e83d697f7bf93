"""Storing request rows: one transaction from columns, every value back to the bit, the gaps as float64 blobs,
the figures recomputed from the stored rows equal to those of the columns; a schema 2 store (gaps as JSON)
moves to the new rows when opened (docs/store.md)."""

from __future__ import annotations

import json
import math
import random
import sqlite3

import numpy as np
import pytest

from fleetbench.columns import RecordColumns
from fleetbench.controller.aggregate import aggregate_case
from fleetbench.controller.store import SCHEMA_VERSION, Store, gap_blobs, gaps_of
from fleetbench.errors import StoreError
from fleetbench.records import RequestRecord


def records(n: int, seed: int = 1) -> list[RequestRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ok = rng.random() > 0.2
        gaps = tuple(rng.choice([1e-7, 0.5, rng.uniform(0.001, 0.05), 123456.789]) for _ in range(rng.randint(0, 6)))
        start = 1_700_000_000 + rng.random() * 100
        out.append(RequestRecord(i, start, start + rng.random(), ok, rng.random(), rng.random(), rng.randint(0, 9000),
                                 rng.randint(0, 4000), rng.random(), gaps if ok else (),
                                 "" if ok else "HTTP 503: it's \"busy\"", rng.choice(["", "in1-out2-p3-n4-loop1"])))
    return out


def new_store(tmp_path) -> Store:
    store = Store(tmp_path / "s.sqlite")
    store.create_run("r1", "p", "m", "", ["n1"], "test")
    return store


def test_rows_round_trip_to_the_bit_from_columns_or_a_list(tmp_path):
    store = new_store(tmp_path)
    recs = records(500)
    store.add_requests("r1", "c", "n1", 0.25, RecordColumns.from_records(recs))
    store.add_requests("r1", "c", "n2", -1.5, recs)
    for node in ("n1", "n2"):
        back = store.records("r1", "c", node)
        want = sorted(recs, key=lambda r: (r.point, r.index))
        assert repr(back) == repr(want)  # repr: floats to the bit
    offsets = dict(store.db.execute("SELECT node, max(clock_offset_s) FROM requests GROUP BY node").fetchall())
    assert offsets == {"n1": 0.25, "n2": -1.5}


def test_adding_again_replaces_rows(tmp_path):
    store = new_store(tmp_path)
    recs = records(100)
    store.add_requests("r1", "c", "n1", 0.0, recs)
    store.add_requests("r1", "c", "n1", 0.0, RecordColumns.from_records(recs))
    assert store.db.execute("SELECT count(*) FROM requests").fetchone()[0] == 100
    assert store.db.execute("SELECT count(*) FROM request_sets").fetchone()[0] == 1  # the replaced set went
    store.add_requests("r1", "c", "n1", 0.0, recs[:10])  # a part again: those rows replaced, the rest kept
    assert repr(store.records("r1", "c", "n1")) == repr(sorted(recs, key=lambda r: (r.point, r.index)))
    store.add_requests("r1", "c", "n1", 0.0, recs[5:10])  # the newest rows replaced: the new range is past them
    store.add_requests("r1", "c", "n2", 0.0, recs[:3])
    assert repr(store.records("r1", "c", "n1")) == repr(sorted(recs, key=lambda r: (r.point, r.index)))
    assert len(store.records("r1", "c", "n2")) == 3
    store.delete_records("r1", "c", "n2")
    store.add_requests("r1", "c", "n1", 0.0, [])  # nothing to add: nothing happens
    assert store.db.execute("SELECT count(*) FROM requests").fetchone()[0] == 100
    store.delete_records("r1", "c", "n1")
    assert store.db.execute("SELECT count(*) FROM request_rows").fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM request_sets").fetchone()[0] == 0


def test_gaps_are_float64_blobs_that_sql_counts(tmp_path):
    store = new_store(tmp_path)
    recs = records(300)
    store.add_requests("r1", "c", "n1", 0.0, recs)
    rows = store.db.execute("SELECT idx, point, itl, length(itl) / 8 FROM requests").fetchall()
    by_key = {(r.index, r.point): r for r in recs}
    for idx, point, blob, n in rows:
        want = by_key[(idx, point)].itl_s
        assert repr(tuple(gaps_of(blob).tolist())) == repr(want) and n == len(want)
    (n,), = store.db.execute("SELECT sum(length(itl) / 8) FROM requests WHERE run_id = 'r1' AND success = 1").fetchall()
    assert n == sum(len(r.itl_s) for r in recs if r.success)


def test_gap_blobs_cut_one_blob_per_record_to_the_bit():
    cols = RecordColumns.from_records([
        RequestRecord(0, 1.0, 2.0, True, itl_s=()), RequestRecord(1, 1.0, 2.0, True, itl_s=(0.1, 1e-7, 2.5)),
        RequestRecord(2, 1.0, 2.0, True, itl_s=()), RequestRecord(3, 1.0, 2.0, True, itl_s=(math.nan, -0.0)),
        RequestRecord(4, 1.0, 2.0, True, itl_s=(0.019876543210987654, 5e-324))])
    blobs = gap_blobs(cols)
    assert [len(b) for b in blobs] == [0, 24, 0, 16, 16]
    assert repr([tuple(gaps_of(b).tolist()) for b in blobs]) == repr([r.itl_s for r in cols])
    assert np.signbit(gaps_of(blobs[3])[1]) and gaps_of(None).tolist() == []


@pytest.mark.parametrize("seed", range(4))
def test_figures_recomputed_from_the_stored_rows_equal_the_columns(tmp_path, seed):
    """Bit for bit: every figure of every node and of the cluster, from the rows read back."""
    rng = random.Random(seed)
    store = new_store(tmp_path)
    by_node = {}
    for i in range(rng.randint(1, 4)):
        cols = RecordColumns.from_records(records(rng.choice([1, 40, 700]), seed * 10 + i))
        by_node[f"n{i}"] = cols
        store.add_requests("r1", "c", f"n{i}", rng.uniform(-1, 1), cols)
    back = {n: store.columns("r1", "c", n) for n in by_node}
    assert all(repr(list(back[n])) == repr(list(c)) for n, c in by_node.items())
    want, got = aggregate_case(by_node), aggregate_case(back)
    assert repr(got) == repr(want)  # every float to the bit (NaN as nan)


def test_the_requests_view_reads_through_the_index(tmp_path):
    store = new_store(tmp_path)
    store.add_requests("r1", "c", "n1", 0.0, records(50))
    plan = " | ".join(r[-1] for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT count(*) FROM requests WHERE run_id = 'r1' AND case_id = 'c'").fetchall())
    assert "request_sets_step" in plan and "INTEGER PRIMARY KEY" in plan, plan


def schema_2_store(path, recs_by_node) -> None:
    """A store as schema 2 wrote it: a `requests` table keyed by its 5 text columns, the gaps as JSON."""
    Store(path).db.conn.close()
    con = sqlite3.connect(path)
    con.executescript("DROP VIEW requests; DROP TABLE request_rows; DROP TABLE request_sets; "
                      "UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    con.execute("CREATE TABLE requests (run_id TEXT, case_id TEXT, node TEXT, idx INTEGER, point TEXT, "
                "start_time FLOAT, end_time FLOAT, clock_offset_s FLOAT, success INTEGER, ttft_s FLOAT, "
                "latency_s FLOAT, tpot_s FLOAT, input_tokens INTEGER, output_tokens INTEGER, itl_json TEXT, "
                "error TEXT, "
                "PRIMARY KEY (run_id, case_id, node, point, idx))")
    for node, recs in recs_by_node.items():
        con.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            ("r1", "c", node, r.index, r.point, r.start_time, r.end_time, 0.5, int(r.success), r.ttft_s, r.latency_s,
             r.tpot_s, r.input_tokens, r.output_tokens,
             json.dumps([None if math.isnan(g) else g for g in r.itl_s]), r.error) for r in recs])
    con.commit()
    con.close()


def test_a_schema_2_store_moves_its_rows_to_the_bit(tmp_path):
    path = tmp_path / "old.sqlite"
    recs = {"n1": records(120, 3), "n2": records(80, 4)}
    recs["n2"][5] = RequestRecord(5, 1.0, 2.0, True, itl_s=(0.1, math.nan, 1e-7), point=recs["n2"][5].point)
    schema_2_store(path, recs)
    store = Store(path)
    assert store.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert store.db.execute("SELECT type FROM sqlite_master WHERE name = 'requests'").fetchone()[0] == "view"
    for node, want in recs.items():
        assert repr(store.records("r1", "c", node)) == repr(sorted(want, key=lambda r: (r.point, r.index)))
    assert store.db.execute("SELECT DISTINCT clock_offset_s FROM requests").fetchall() == [(0.5,)]
    everything = repr(store.records("r1", "c"))
    store.db.conn.close()
    assert repr(Store(path).records("r1", "c")) == everything  # opened again: nothing moves


def test_a_store_of_a_newer_schema_is_refused_and_keeps_its_mark(tmp_path):
    """An older controller opening a newer store rewrote its schema mark and then wrote rows the newer schema
    does not hold; it must refuse before writing anything."""
    path = tmp_path / "newer.sqlite"
    Store(path).db.conn.close()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    with pytest.raises(StoreError, match=rf"newer fleetbench \(store schema {SCHEMA_VERSION + 1}; this one reads up "
                                         rf"to {SCHEMA_VERSION}\): upgrade fleetbench"):
        Store(path)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION + 1),)
