"""A job of 100k requests streams its records in bounded chunks: every record arrives once, in order,
and the agent's memory does not grow with the job (it never loads all records at once)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.processes import Agent, wait_state

from fleetbench.v1 import agent_pb2 as pb

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
    finally:
        agent.stop()
    assert count == TARGET and chunks == TARGET // 1000 and biggest == 1000
    growth_mib = (peak - before) / 1024
    print(f"agent RSS before {before / 1024:.1f} MiB, peak while streaming {peak / 1024:.1f} MiB "
          f"(+{growth_mib:.1f} MiB for {TARGET} records)")
    # holding all 100k as messages at once costs ~100 MiB (measured: +102 MiB); a bounded stream stays small
    assert growth_mib < 40
