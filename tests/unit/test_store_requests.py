"""Storing request rows: one transaction from columns, every value back to the bit, the gaps as JSON that
plain SQL reads (docs/store.md)."""

from __future__ import annotations

import json
import math
import random

from fleetbench.columns import RecordColumns
from fleetbench.controller.store import Store, gap_texts
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
    store.add_requests("r1", "c", "n1", 0.0, [])  # nothing to add: nothing happens
    assert store.db.execute("SELECT count(*) FROM requests").fetchone()[0] == 100


def test_gaps_are_json_that_plain_sql_reads(tmp_path):
    store = new_store(tmp_path)
    recs = records(300)
    store.add_requests("r1", "c", "n1", 0.0, recs)
    rows = store.db.execute("SELECT idx, point, itl_json FROM requests").fetchall()
    by_key = {(r.index, r.point): r for r in recs}
    for idx, point, text in rows:
        assert json.loads(text) == list(by_key[(idx, point)].itl_s)
    # the ITL average in SQL, as docs/store.md shows it
    (n, avg), = store.db.execute(
        "SELECT count(*), avg(j.value) FROM requests, json_each(requests.itl_json) AS j "
        "WHERE run_id = 'r1' AND case_id = 'c' AND success = 1").fetchall()
    gaps = [g for r in recs if r.success for g in r.itl_s]
    assert n == len(gaps) and math.isclose(avg, math.fsum(gaps) / len(gaps), rel_tol=1e-12)


def test_gap_texts_cut_one_json_document_per_record():
    cols = RecordColumns.from_records([
        RequestRecord(0, 1.0, 2.0, True, itl_s=()), RequestRecord(1, 1.0, 2.0, True, itl_s=(0.1, 1e-7, 2.5)),
        RequestRecord(2, 1.0, 2.0, True, itl_s=()), RequestRecord(3, 1.0, 2.0, True, itl_s=(math.nan,)),
        RequestRecord(4, 1.0, 2.0, True, itl_s=(0.019876543210987654,))])
    assert gap_texts(cols) == ["[]", "[0.1,1e-7,2.5]", "[]", "[null]", "[0.019876543210987654]"]
    assert gap_texts(RecordColumns.from_records([RequestRecord(0, 1.0, 2.0, True)])) == ["[]"]
