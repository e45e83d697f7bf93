"""Records as columns on the wire (RecordColumnsBatch): every value crosses to the bit, the old RecordBatch
path gives the same columns, and a batch whose sizes disagree is refused naming the node, never read in part.
The controller's client is checked against peers on real gRPC (loopback): a new agent, an older one that
ignores `columns`, and broken ones."""

from __future__ import annotations

import asyncio
import math
import random
import struct
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbench.agent.service import record_pb
from fleetbench.columns import RecordColumns
from fleetbench.controller.client import AgentClient
from fleetbench.controller.fleet import Node
from fleetbench.errors import NodeError
from fleetbench.figures import compute_figures
from fleetbench.records import RequestRecord
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.v1 import agent_pb2_grpc as pb_grpc
from fleetbench.wire_columns import batch_from_columns, batch_from_records, columns_from_batch, columns_from_pb

ODD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF4_0000_DEAD_BEEF))[0]  # a NaN with a payload (signalling)
ARRAYS = ("idx", "start_time", "end_time", "success", "ttft_s", "latency_s", "input_tokens", "output_tokens",
          "tpot_s", "itl_offsets", "itl_values")


def odd_records() -> list[RequestRecord]:
    """Every value the wire must keep: NaN (with a payload too), -0.0, infinities, no gaps, unicode text."""
    return [
        RequestRecord(0, 1_700_000_000.123456789, 1_700_000_001.5, True, 0.25, 1.25, 6000, 1000, 0.001,
                      (0.02, -0.0, math.inf, 1e-300), "", "in128-out64-p4-n100-loop0"),
        RequestRecord(1, -0.0, math.inf, False, 0.0, 0.0, 0, 0, math.nan, (), "超时: upstream 503 — ✗ \x00 end",
                      "in128-out64-p4-n100-loop0"),
        RequestRecord(2, 5e-324, -math.inf, True, ODD_NAN, math.nan, 2**62, -(2**63), -math.inf, (ODD_NAN,),
                      "", "in2048-out1-p1-n1-loop3"),
        RequestRecord(-7, 0.0, 0.0, True, 1.0, 2.0, 1, 1, 0.0, (), "", ""),
    ]


def assert_bitwise_equal(a: RecordColumns, b: RecordColumns) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert x.tobytes() == y.tobytes(), name
    assert a.error == b.error and a.point == b.point


def over_the_wire(batch: pb.RecordColumnsBatch) -> pb.RecordColumnsBatch:
    return pb.RecordColumnsBatch.FromString(batch.SerializeToString())


def test_columns_cross_the_wire_bit_for_bit():
    cols = RecordColumns.from_records(odd_records())
    back = columns_from_batch(over_the_wire(batch_from_columns(cols)), "n1")
    assert_bitwise_equal(back, cols)
    assert back.itl_counts.tolist() == [4, 0, 1, 0]
    assert struct.pack("<d", back.ttft_s[2]) == struct.pack("<d", ODD_NAN)  # the NaN's payload kept
    assert math.copysign(1, back.itl_values[1]) == -1 and math.copysign(1, back.start_time[1]) == -1
    assert back.error[1] == "超时: upstream 503 — ✗ \x00 end"
    assert repr(list(back)) == repr(odd_records())  # as a sequence of RequestRecord too (NaN != NaN: repr)
    assert back[3] == odd_records()[3]


ANY_FLOAT = st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack("<d", struct.pack("<Q", bits))[0])  # any bits
INT64 = st.integers(-(2**63), 2**63 - 1)
RECORD = st.builds(RequestRecord, index=INT64, start_time=ANY_FLOAT, end_time=ANY_FLOAT, success=st.booleans(),
                   ttft_s=ANY_FLOAT, latency_s=ANY_FLOAT, input_tokens=INT64, output_tokens=INT64, tpot_s=ANY_FLOAT,
                   itl_s=st.lists(ANY_FLOAT, max_size=6).map(tuple), error=st.text(max_size=12),
                   point=st.text(max_size=12))


@settings(max_examples=60, deadline=None)
@given(st.lists(RECORD, max_size=12))
def test_any_records_cross_both_kinds_of_batch_to_the_bit(recs):
    via_columns = columns_from_batch(over_the_wire(batch_from_records(recs)), "n1")
    via_records = columns_from_pb(pb.RecordBatch.FromString(
        pb.RecordBatch(records=[record_pb(r) for r in recs]).SerializeToString()).records)
    assert_bitwise_equal(via_columns, RecordColumns.from_records(recs))
    assert_bitwise_equal(via_records, via_columns)


def test_the_wire_bytes_are_little_endian_arrays_of_the_documented_dtypes():
    batch = batch_from_records(odd_records())
    assert batch.count == 4
    assert batch.index == struct.pack("<4q", 0, 1, 2, -7)
    assert batch.output_tokens == struct.pack("<4q", 1000, 0, -(2**63), 1)
    assert batch.success == bytes([1, 0, 1, 1])
    assert batch.itl_counts == struct.pack("<4q", 4, 0, 1, 0)
    assert batch.itl_s == struct.pack("<5d", 0.02, -0.0, math.inf, 1e-300, ODD_NAN)
    assert batch.end_time == struct.pack("<4d", 1_700_000_001.5, math.inf, -math.inf, 0.0)
    assert list(batch.point) == [r.point for r in odd_records()]


def test_an_empty_batch_is_no_records():
    back = columns_from_batch(over_the_wire(batch_from_records([])))
    assert len(back) == 0 and len(back.itl_values) == 0 and back.itl_offsets.tolist() == [0]
    assert_bitwise_equal(back, RecordColumns.empty())
    assert columns_from_batch(pb.RecordColumnsBatch()).itl_offsets.tolist() == [0]  # every field left out


def random_records(rng: random.Random, n: int) -> list[RequestRecord]:
    out = []
    for i in range(n):
        ok = rng.random() > 0.1
        gaps = tuple(rng.uniform(0.001, 0.09) for _ in range(rng.choice([0, 1, 5, rng.randint(0, 60)])))
        start = 1_700_000_000.0 + rng.random() * 100
        out.append(RequestRecord(i, start, start + rng.random() * 9, ok, rng.random() if ok else 0.0,
                                 rng.random() * 9, rng.randint(0, 9000), rng.randint(0, 4000),
                                 rng.choice([math.nan, rng.random()]), gaps if ok else (),
                                 "" if ok else rng.choice(["HTTP 503", "timeout", "连接被重置"]),
                                 rng.choice(["", "in1-out2-p3-n4-loop0"])))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_columns_and_the_old_records_batches_decode_to_identical_columns(seed):
    rng = random.Random(seed)
    recs = [*odd_records(), *random_records(rng, rng.choice([1, 37, 500]))]
    size = rng.choice([1, 7, 500])
    chunks = [recs[i:i + size] for i in range(0, len(recs), size)]
    new = RecordColumns.concat([columns_from_batch(over_the_wire(batch_from_records(c)), "n1") for c in chunks])
    old = RecordColumns.concat([columns_from_pb(pb.RecordBatch.FromString(
        pb.RecordBatch(records=[record_pb(r) for r in c]).SerializeToString()).records) for c in chunks])
    assert_bitwise_equal(new, old)
    assert_bitwise_equal(new, RecordColumns.from_records(recs))


def test_decoded_columns_are_read_only_views_and_the_figures_do_not_write_into_them():
    recs = random_records(random.Random(3), 300)
    back = columns_from_batch(over_the_wire(batch_from_records(recs)), "n1")
    assert not back.latency_s.flags.writeable and not back.itl_values.flags.writeable
    assert repr(compute_figures(back)) == repr(compute_figures(recs))
    assert_bitwise_equal(back, RecordColumns.from_records(recs))  # untouched by the figures


def broken(change: str) -> pb.RecordColumnsBatch:
    batch = over_the_wire(batch_from_records(odd_records()))
    eight = struct.pack("<q", 0)
    if change == "count":
        batch.count = 5
    elif change == "negative count":
        batch.count = -1
    elif change == "short column":
        batch.latency_s = batch.latency_s[:-8]
    elif change == "long column":
        batch.index += eight
    elif change == "missing column":
        batch.ClearField("tpot_s")
    elif change == "success byte":
        batch.success = bytes([1, 0, 2, 1])
    elif change == "gap counts":
        batch.itl_counts = struct.pack("<4q", 4, 0, 2, 0)
    elif change == "negative gap count":
        batch.itl_counts = struct.pack("<4q", 6, -1, 0, 0)
    elif change == "overflowing gap counts":  # sum to 5 modulo 2**64
        batch.itl_counts = struct.pack("<4q", 2**62, 2**62, 2**62, 2**62 + 5)
    elif change == "gap bytes":
        batch.itl_s = batch.itl_s[:-3]
    elif change == "errors":
        del batch.error[-1]
    elif change == "points":
        batch.point.append("x")
    elif change == "gaps without records":
        batch = pb.RecordColumnsBatch(itl_s=struct.pack("<d", 0.02))
    return batch


@pytest.mark.parametrize("change", ["count", "negative count", "short column", "long column", "missing column",
                                    "success byte", "gap counts", "negative gap count", "overflowing gap counts",
                                    "gap bytes", "errors", "points", "gaps without records"])
def test_a_malformed_batch_is_refused_naming_the_node(change):
    with pytest.raises(NodeError) as exc:
        columns_from_batch(broken(change), "gpu-07")
    msg = str(exc.value)
    assert msg.startswith("gpu-07: the agent sent a malformed record batch (") and "\n" not in msg


# --- the controller's client against peers of other versions, on real gRPC --------------------------------

class Peer(pb_grpc.AgentServicer):
    """An agent's GetJobResult as a newer, older or broken agent answers it; remembers what was asked."""

    def __init__(self, chunks: list[pb.ResultChunk]) -> None:
        self.chunks, self.asked = chunks, []

    async def GetJobResult(self, request: pb.GetJobResultRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ResultChunk]:
        self.asked.append(request)
        for chunk in self.chunks:
            yield chunk


def fetch(peer: Peer) -> RecordColumns:
    async def go() -> RecordColumns:
        server = grpc.aio.server()
        pb_grpc.add_AgentServicer_to_server(peer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = AgentClient(Node("gpu-07", f"127.0.0.1:{port}"))
        try:
            _, cols = await client.result("j1")
            return cols
        finally:
            await client.close()
            await server.stop(None)
    return asyncio.run(go())


def summary(records: int) -> pb.ResultChunk:
    return pb.ResultChunk(summary=pb.JobSummary(job_id="j1", state=pb.JOB_STATE_SUCCEEDED, record_count=records))


def test_the_client_asks_for_columns_and_decodes_them_and_an_older_agents_records_alike():
    recs = [*odd_records(), *random_records(random.Random(1), 40)]
    new = Peer([summary(44), *(pb.ResultChunk(columns=batch_from_records(recs[i:i + 10])) for i in range(0, 44, 10))])
    old = Peer([summary(44), *(pb.ResultChunk(records=pb.RecordBatch(records=[record_pb(r) for r in recs[i:i + 10]]))
                           for i in range(0, 44, 10))])
    got_new, got_old = fetch(new), fetch(old)
    assert [a.columns for a in new.asked] == [True] and [a.columns for a in old.asked] == [True]
    assert_bitwise_equal(got_new, RecordColumns.from_records(recs))
    assert_bitwise_equal(got_old, got_new)


@pytest.mark.parametrize("chunk", [pb.ResultChunk(columns=broken("gap counts")), pb.ResultChunk()],
                         ids=["malformed columns", "unknown chunk"])
def test_the_client_refuses_a_batch_it_cannot_read_naming_the_node(chunk):
    good = pb.ResultChunk(columns=batch_from_records(odd_records()))
    with pytest.raises(NodeError) as exc:
        fetch(Peer([summary(8), good, chunk]))
    assert str(exc.value).startswith("gpu-07: ") and "\n" not in str(exc.value)


def test_a_stream_cut_short_is_refused_not_judged_on_part_of_the_load():
    """The agent says how many records the job has; fewer received (a chunk lost) is an error, never figures."""
    recs = random_records(random.Random(2), 30)
    chunks = [pb.ResultChunk(columns=batch_from_records(recs[i:i + 10])) for i in range(0, 30, 10)]
    assert len(fetch(Peer([summary(30), *chunks]))) == 30
    for sent in (chunks[:2], [*chunks, chunks[0]]):
        with pytest.raises(NodeError, match=r"^gpu-07: the agent announced 30 records for job j1 and sent (20|40); "
                                            r"its figures are not used$"):
            fetch(Peer([summary(30), *sent]))
    failed = pb.ResultChunk(summary=pb.JobSummary(job_id="j1", state=pb.JOB_STATE_FAILED, record_count=0))
    assert len(fetch(Peer([failed, *chunks]))) == 30  # its state, not the count, is what the controller reports


def test_a_records_decoded_column_is_the_controllers_dtype():
    back = columns_from_batch(batch_from_records(odd_records()))
    assert back.success.dtype == np.bool_ and back.idx.dtype == np.int64 and back.itl_values.dtype == np.float64
    assert back.success.tolist() == [True, False, True, True]


def test_chunks_are_bounded_by_gaps_too_so_long_outputs_fit_a_message():
    """Records per chunk alone let 5000 long outputs make a message over the controller's 64 MiB limit."""
    from fleetbench.agent.service import MAX_CHUNK_GAPS, record_chunks

    def rec(i: int, gaps: int) -> RequestRecord:
        return RequestRecord(index=i, start_time=1.0, end_time=2.0, success=True, ttft_s=0.1, latency_s=1.0,
                             input_tokens=1, output_tokens=gaps + 1, tpot_s=0.01, itl_s=(0.01,) * gaps)

    sizes = [[len(r.itl_s) for r in c] for c in record_chunks([rec(i, g) for i, g in enumerate(
        [3, 3, 3, 3, 9, 1, 1, 12, 0, 0])], size=3, max_gaps=10)]
    assert sizes == [[3, 3, 3], [3], [9, 1], [1], [12], [0, 0]]  # the 12 alone; never more than 3 records
    assert list(record_chunks([], size=3)) == []
    long = [rec(i, 4000) for i in range(600)]
    chunks = list(record_chunks(long, size=5000))
    assert [len(c) for c in chunks] == [262, 262, 76] and sum(map(len, chunks)) == 600
    assert all(len(batch_from_records(c).SerializeToString()) < 9 * 2**20 for c in chunks)
    assert MAX_CHUNK_GAPS * 8 <= 8 * 2**20
