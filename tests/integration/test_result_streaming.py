"""A job of 100k requests streams its records in bounded chunks: every record arrives once, in order,
and the agent's memory does not grow with the job (it never loads all records at once). Asked for
columns, the agent sends RecordColumnsBatch chunks; asked for none (an older controller), RequestRecord
batches; both decode to the same columns, to the bit."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from pathlib import Path

import pytest
from support.processes import Agent, wait_state

from fleetbench.columns import RecordColumns
from fleetbench.controller.client import AgentClient
from fleetbench.controller.fleet import Node
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.wire_columns import columns_from_batch, columns_from_pb

pytestmark = pytest.mark.integration
TARGET = 100_000


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def inflate(db: Path, target: int) -> None:
    """Copy evalscope's own rows (its real schema) until the result table holds `target` rows."""
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(result)") if not r[5]]  # not the primary key
    col_list = ", ".join(cols)
    while (n := con.execute("SELECT count(*) FROM result").fetchone()[0]) < target:
        con.execute(f"INSERT INTO result ({col_list}) SELECT {col_list} FROM result LIMIT ?", (target - n,))
    con.commit()
    con.close()


ARRAYS = ("idx", "start_time", "end_time", "success", "ttft_s", "latency_s", "input_tokens", "output_tokens",
          "tpot_s", "itl_offsets", "itl_values")


def assert_bitwise_equal(a: RecordColumns, b: RecordColumns) -> None:
    for name in ARRAYS:
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.error == b.error and a.point == b.point


def stream(agent: Agent, job_id: str, columns: bool, chunk_size: int) -> tuple[list[str], RecordColumns]:
    """The kinds of the chunks after the summary, and every record decoded as the controller does."""
    kinds, parts = [], []
    for chunk in agent.stub.GetJobResult(pb.GetJobResultRequest(job_id=job_id, chunk_size=chunk_size,
                                                                columns=columns)):
        kind = chunk.WhichOneof("part")
        kinds.append(kind)
        if kind == "columns":
            parts.append(columns_from_batch(chunk.columns, "agent"))
        elif kind == "records":
            parts.append(columns_from_pb(chunk.records.records))
    assert kinds[0] == "summary"
    return kinds[1:], RecordColumns.concat(parts)


def test_columns_and_records_answers_carry_the_same_records(tmp_path, start_endpoint, demo_tokenizer):
    """A real job's records (a quarter of the requests failed with HTTP 500) through both answers and the
    controller's client."""
    ep = start_endpoint("--fault-500", "0.25", ttft_ms=5, tpot_ms=1)
    agent = Agent(tmp_path / "agent").start()
    try:
        spec = {"url": ep.completions, "model": "demo", "number": 24, "parallel": 4,
                "tokenizer_path": str(demo_tokenizer), "input_tokens": 16,
                "output_tokens": 8, "extra_args": {"ignore_eos": True}}
        agent.stub.StartJob(pb.StartJobRequest(job_id="both", kind=pb.JOB_KIND_PERF, spec_json=json.dumps(spec)))
        assert wait_state(agent.stub, "both", {pb.JOB_STATE_SUCCEEDED}, 120)
        new_kinds, new = stream(agent, "both", True, 5)
        old_kinds, old = stream(agent, "both", False, 5)

        async def by_client() -> RecordColumns:
            client = AgentClient(Node("n1", f"127.0.0.1:{agent.port}"))
            try:
                return (await client.result("both"))[1]
            finally:
                await client.close()

        via_client = asyncio.run(by_client())
    finally:
        agent.stop()
        ep.stop()
    assert new_kinds == ["columns"] * 5 and old_kinds == ["records"] * 5
    assert len(new) == 24 and new.idx.tolist() == list(range(24))
    failed = int((~new.success).sum())
    assert 0 < failed < 24 and all(e for e, ok in zip(new.error, new.success.tolist(), strict=True) if not ok)
    ok_counts = new.itl_counts[new.success]
    assert (ok_counts == 7).all()  # 8 tokens streamed: 7 gaps each
    assert math.isfinite(float(new.ttft_s[new.success].sum())) and (new.ttft_s[new.success] > 0).all()
    assert_bitwise_equal(new, old)
    assert_bitwise_equal(via_client, old)


def test_hundred_thousand_records_stream_in_bounded_memory(tmp_path, start_endpoint, demo_tokenizer):
    ep = start_endpoint(ttft_ms=5, tpot_ms=1)
    agent = Agent(tmp_path / "agent").start()
    try:
        spec = {"url": ep.completions, "model": "demo", "number": 8, "parallel": 4,
                "tokenizer_path": str(demo_tokenizer), "input_tokens": 16,
                "output_tokens": 8, "extra_args": {"ignore_eos": True}}
        agent.stub.StartJob(pb.StartJobRequest(job_id="big", kind=pb.JOB_KIND_PERF, spec_json=json.dumps(spec)))
        assert wait_state(agent.stub, "big", {pb.JOB_STATE_SUCCEEDED}, 120)
    finally:
        agent.stop()
        ep.stop()
    (db,) = (tmp_path / "agent" / "jobs" / "big").rglob("benchmark_data.db")
    inflate(db, TARGET)
    with sqlite3.connect(tmp_path / "agent" / "agent.sqlite") as con:
        con.execute("UPDATE jobs SET record_count = ? WHERE job_id = 'big'", (TARGET,))

    agent = Agent(tmp_path / "agent").start()
    try:
        assert agent.proc is not None
        agent.stub.Ping(pb.PingRequest())
        before = rss_kib(agent.proc.pid, "VmRSS")
        count, last_index, chunks, biggest = 0, -1, 0, 0
        for chunk in agent.stub.GetJobResult(pb.GetJobResultRequest(job_id="big", chunk_size=1000)):
            if chunk.HasField("summary"):
                assert chunk.summary.record_count == TARGET
                continue
            chunks += 1
            biggest = max(biggest, len(chunk.records.records))
            for r in chunk.records.records:
                assert r.index == last_index + 1 and r.success
                last_index = r.index
                count += 1
        peak = rss_kib(agent.proc.pid, "VmHWM")
        # as columns (numpy loads in the agent now: ~11 MiB of the growth)
        kinds, cols = stream(agent, "big", True, 1000)
        peak_columns = rss_kib(agent.proc.pid, "VmHWM")
    finally:
        agent.stop()
    assert count == TARGET and chunks == TARGET // 1000 and biggest == 1000
    assert kinds == ["columns"] * (TARGET // 1000) and cols.idx.tolist() == list(range(TARGET))
    assert bool(cols.success.all()) and len(cols.itl_values) == int(cols.itl_counts.sum()) > 0
    growth_mib, growth_columns_mib = (peak - before) / 1024, (peak_columns - before) / 1024
    print(f"agent RSS before {before / 1024:.1f} MiB, peak while streaming {peak / 1024:.1f} MiB "
          f"(+{growth_mib:.1f} MiB for {TARGET} records), +{growth_columns_mib:.1f} MiB after streaming them "
          "as columns too")
    # holding all 100k as messages at once costs ~100 MiB (measured: +102 MiB); a bounded stream stays small
    assert growth_mib < 40 and growth_columns_mib < 40
