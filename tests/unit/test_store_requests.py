"""Request rows at fleet scale: stored from columns in one transaction, read back to the bit, idempotent,
and rows written before (gaps as JSON text) still read; the agent's stream decodes straight to columns."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbench.columns import RecordColumns
from fleetbench.controller.client import columns_from_pb, record_from_pb
from fleetbench.controller.store import Store
from fleetbench.records import RequestRecord
from fleetbench.v1 import agent_pb2 as pb


def sample(n: int, seed: int = 0) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ok = bool(rng.random() > 0.2)
        gaps = tuple(rng.exponential(0.02, int(rng.integers(0, 5))).tolist()) if ok else ()
        start = 1_700_000_000.0 + float(rng.random())
        tokens_in, tokens_out = int(rng.integers(1, 9000)), int(rng.integers(0, 2000))
        out.append(RequestRecord(i, start, start + 1.0 / 3, ok, float(rng.random()), 1.0 / 3, tokens_in, tokens_out,
                                 float(rng.random()) / 7, gaps, "" if ok else "HTTP 500: x'y", "p1" if i % 2 else ""))
    return out


def test_columns_and_lists_store_the_same_rows_and_read_back_to_the_bit(tmp_path):
    recs = sample(150)  # more than one 64-row statement, with a remainder
    store = Store(tmp_path / "s.sqlite")
    store.add_requests("r1", "c1", "n1", 0.25, RecordColumns.from_records(recs))
    store.add_requests("r1", "c1", "n2", -0.5, recs)
    key = lambda r: (r.point, r.index)  # noqa: E731 - records() orders by node, point, index
    assert store.records("r1", "c1", "n1") == sorted(recs, key=key)
    assert store.records("r1", "c1", "n2") == sorted(recs, key=key)
    assert len(store.records("r1", "c1")) == 300
    offsets = store.db.execute("SELECT node, min(clock_offset_s), max(clock_offset_s), count(*) FROM requests "
                               "GROUP BY node ORDER BY node").fetchall()
    assert offsets == [("n1", 0.25, 0.25, 150), ("n2", -0.5, -0.5, 150)]


def test_adding_again_replaces_and_nothing_is_counted_twice(tmp_path):
    recs = sample(70)
    store = Store(tmp_path / "s.sqlite")
    store.add_requests("r1", "c1", "n1", 0.0, recs)
    changed = [RequestRecord(r.index, r.start_time, r.end_time, True, 9.0, r.latency_s, 1, 2, 0.5, (0.125,), "",
                             r.point) for r in recs]
    store.add_requests("r1", "c1", "n1", 0.0, RecordColumns.from_records(changed))
    assert store.records("r1", "c1", "n1") == sorted(changed, key=lambda r: (r.point, r.index))
    store.add_requests("r1", "c1", "n1", 0.0, [])  # nothing to add is not an error


def test_rows_stored_with_json_gaps_still_read(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.db.table("requests").insert({
        "run_id": "r0", "case_id": "c", "node": "n", "idx": 0, "point": "", "start_time": 1.0, "end_time": 2.0,
        "clock_offset_s": 0.0, "success": 1, "ttft_s": 0.1, "latency_s": 1.0, "tpot_s": 0.01, "input_tokens": 5,
        "output_tokens": 3, "itl_json": json.dumps([0.1, 0.2]), "error": ""})
    (r,) = store.records("r0", "c")
    assert r.itl_s == (0.1, 0.2) and r.success and r.output_tokens == 3


def test_the_stream_decodes_to_columns_equal_to_records():
    recs = sample(40, seed=3)
    batch = [pb.RequestRecord(index=r.index, start_time=r.start_time, end_time=r.end_time, success=r.success,
                              ttft_s=r.ttft_s, latency_s=r.latency_s, input_tokens=r.input_tokens,
                              output_tokens=r.output_tokens, tpot_s=r.tpot_s, itl_s=list(r.itl_s), error=r.error,
                              point=r.point) for r in recs]
    cols = columns_from_pb(batch)
    assert list(cols) == [record_from_pb(b) for b in batch] == recs
    assert list(RecordColumns.concat([columns_from_pb(batch[:7]), columns_from_pb(batch[7:])])) == recs
    assert len(columns_from_pb([])) == 0


# SQLite writes an integral REAL as an integer, so -0.0 comes back 0.0 (as it did before columns);
# the gaps, stored as bytes, keep every bit (NaN and -0.0 included)
finite = st.floats(allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0)


@st.composite
def batches(draw: st.DrawFn) -> list[RequestRecord]:
    """Up to 140 rows (two whole statements and single-row ones); either every field drawn per row or
    every row alike but its index (then the values are bound once per statement)."""
    n = draw(st.integers(1, 140))
    fields = st.tuples(finite, finite, st.booleans(), finite, finite, st.integers(0, 2**40), st.integers(0, 2**40),
                       finite, st.lists(st.floats(), max_size=4).map(tuple), st.sampled_from(["", "e'1", "é"]),
                       st.sampled_from(["", "p"]))
    if draw(st.booleans()):
        one = draw(fields)
        rows = [one] * n
    else:
        rows = [draw(fields) for _ in range(n)]
    return [RequestRecord(i, *row) for i, row in enumerate(rows)]


def bits(r: RequestRecord) -> tuple[object, ...]:
    def pack(v: object) -> object:
        if isinstance(v, float):
            return struct.pack("<d", v)
        return tuple(struct.pack("<d", g) for g in v) if isinstance(v, tuple) else v

    return tuple(pack(v) for v in (r.index, r.start_time, r.end_time, r.success, r.ttft_s, r.latency_s,
                                   r.input_tokens, r.output_tokens, r.tpot_s, r.itl_s, r.error, r.point))


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("bits") / "h.sqlite")


@settings(max_examples=40, deadline=None)
@given(recs=batches())
def test_any_finite_records_read_back_bit_for_bit(shared_store, recs):
    shared_store.add_requests("r", "c", "n", 0.0, RecordColumns.from_records(recs))
    got = shared_store.records("r", "c", "n")
    shared_store.db.execute("DELETE FROM requests")
    shared_store.db.conn.commit()
    assert [bits(r) for r in got] == [bits(r) for r in sorted(recs, key=lambda r: (r.point, r.index))]
