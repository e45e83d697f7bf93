"""Aggregation at fleet scale: N nodes x 100k records merged, every figure and percentile, stored, reported.

Targets (issue 14, item 9, "Records at fleet scale"), per configuration:

    3 nodes x 100k:   merge + figures <= 0.25 s, storing the request rows <= 1.5 s
    32 nodes x 100k:  merge + figures <= 1 s,    storing the request rows <= 5 s

"merge + figures" is `aggregate_case` on the nodes' columns (every node's figures and the cluster's,
union percentiles included) plus judging one expectation; "storing" is `Store.add_requests` of every
node's records (one transaction per node). The figures/verdicts write and the Markdown report are
timed beside them (issue 8's report target, <= 2 s with the merge, still printed).
Records are synthesized as columns (numpy) before any timing. Wall and CPU times are printed with the
load average, and where each stage's CPU goes (docs/performance.md, item 9).

"decode" is the controller's side of `GetJobResult`: every node's records, as the serialized chunks an agent
sends (500 records each, its default; built first, timed apart), parsed (`ResultChunk.FromString`) and decoded to
columns, once as `RecordBatch` (a message per request, what older agents send) and once as
`RecordColumnsBatch` (an array per field); both are checked equal to the records, to the bit. The agents'
side (building and serializing those chunks from RequestRecords, as `GetJobResult` does) is printed beside.

Run: .venv/bin/python bench/aggregation.py [--nodes 3|32] [--per-node 100000] [--itl 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fleetbench.agent.service import DEFAULT_CHUNK, record_chunks, record_pb
from fleetbench.columns import RecordColumns
from fleetbench.controller.aggregate import CLUSTER, aggregate_case, judge
from fleetbench.controller.plan import Expectation
from fleetbench.controller.report.markdown import render_markdown
from fleetbench.controller.report.model import load_report
from fleetbench.controller.store import Store, gap_blobs
from fleetbench.figures import PERCENTILES, exact_sum, percentile_samples, select_sorted, sorted_sample
from fleetbench.records import RequestRecord
from fleetbench.v1 import agent_pb2 as pb
from fleetbench.wire_columns import batch_from_records, columns_from_batch, columns_from_pb

PLAN = """name: aggregation bench
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - {id: load, parallel: 84, number: 100000, input_tokens: 6000, output_tokens: 1000}
"""

TARGETS = {3: (0.25, 1.5), 32: (1.0, 5.0)}  # nodes -> (merge + figures s, storing s)


def synth(node: int, n: int, itl_per_request: int) -> RecordColumns:
    """One node's records: lognormal TTFT, uniform 15-25 ms gaps, 0.1 % failures, 6000 in / 1000 out."""
    rng = np.random.default_rng(node)
    ttft = rng.lognormal(0.5, 0.4, n)
    gaps = rng.uniform(0.015, 0.025, n * itl_per_request)
    latency = ttft + gaps.reshape(n, itl_per_request).sum(axis=1)
    start = 1_700_000_000.0 + node * 0.01 + 0.05 * np.arange(n)
    ok = rng.random(n) > 0.001
    return RecordColumns(
        idx=np.arange(n), start_time=start, end_time=start + latency, success=ok, ttft_s=ttft,
        latency_s=latency, input_tokens=np.full(n, 6000), output_tokens=np.full(n, 1000),
        tpot_s=(latency - ttft) / 999, itl_offsets=np.arange(n + 1) * itl_per_request, itl_values=gaps,
        error=["" if o else "HTTP 500" for o in ok.tolist()], point=[""] * n,
    )


def merge_split(by_node: dict[str, RecordColumns]) -> str:
    """Where the merge's CPU goes, stage by stage, on one thread (the merge itself runs them on a thread
    per CPU): the samples (copies of the successful requests' values), the exact sums, the sorts, the
    cluster's picks from the sorted samples."""
    c0 = time.process_time()
    samples = [percentile_samples(c) for c in by_node.values()]
    c1 = time.process_time()
    for s in samples:
        for m in ("ttft_s", "tpot_s", "latency_s", "itl_s"):
            exact_sum(s[m])
    c2 = time.process_time()
    parts = [{m: sorted_sample(v) for m, v in s.items()} for s in samples]
    c3 = time.process_time()
    for m in parts[0]:
        select_sorted([p[m] for p in parts], PERCENTILES)
    c4 = time.process_time()
    return (f"samples {c1 - c0:.3f} s, exact sums {c2 - c1:.3f} s, sorts {c3 - c2:.3f} s, "
            f"cluster picks {c4 - c3:.3f} s (CPU, one thread)")


def store_split(by_node: dict[str, RecordColumns]) -> str:
    """The Python side of storing: the row values (lists of every column, the gaps cut into blobs)."""
    c0 = time.process_time()
    for c in by_node.values():
        gap_blobs(c)
        for col in (c.idx, c.start_time, c.end_time, c.success, c.ttft_s, c.latency_s, c.tpot_s, c.input_tokens,
                    c.output_tokens):
            col.tolist()
    return f"{time.process_time() - c0:.2f} s of it building the row values in Python, the rest in executemany"


def wire_chunks(records: list[RequestRecord], columns: bool) -> list[bytes]:
    """A node's records as the serialized ResultChunks its agent streams, cut and built as the agent does
    (`record_chunks` at its default chunk size, from RequestRecords)."""
    out = []
    for part in record_chunks(records, DEFAULT_CHUNK):
        chunk = (pb.ResultChunk(columns=batch_from_records(part)) if columns
                 else pb.ResultChunk(records=pb.RecordBatch(records=[record_pb(r) for r in part])))
        out.append(chunk.SerializeToString())
    return out


def decode(node: str, chunks: list[bytes]) -> RecordColumns:
    """What `AgentClient.result()` does with a node's chunks: parse each, decode it, join them."""
    parts = []
    for data in chunks:
        chunk = pb.ResultChunk.FromString(data)
        if chunk.WhichOneof("part") == "columns":
            parts.append(columns_from_batch(chunk.columns, node))
        else:
            parts.append(columns_from_pb(chunk.records.records))
    return RecordColumns.concat(parts)


def same_bits(a: RecordColumns, b: RecordColumns) -> bool:
    arrays = ("idx", "start_time", "end_time", "success", "ttft_s", "latency_s", "input_tokens", "output_tokens",
              "tpot_s", "itl_offsets", "itl_values")
    return all(getattr(a, f).tobytes() == getattr(b, f).tobytes() for f in arrays) and (
        a.error == b.error and a.point == b.point)


def decode_stage(by_node: dict[str, RecordColumns], repeat: int) -> None:
    """Decoding every node's stream, old kind (RecordBatch) against new (RecordColumnsBatch). A node at a
    time (its records as objects, then its chunks, are dropped before the next): 32 nodes' at once would
    take gigabytes."""
    n = sum(map(len, by_node.values()))
    per = n / 100_000
    wall = {False: 0.0, True: 0.0}
    cpu, build, size, chunks = dict(wall), dict(wall), {False: 0, True: 0}, {False: 0, True: 0}
    for node, cols in by_node.items():
        records = cols.records()
        for columns in (False, True):
            c0 = time.process_time()
            wire = wire_chunks(records, columns)
            build[columns] += time.process_time() - c0
            walls, cpus = [], []
            for _ in range(max(1, repeat)):
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                decoded = decode(node, wire)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                assert same_bits(decoded, cols), f"{node}: decoded records differ"
                del decoded
            wall[columns] += statistics.median(walls)
            cpu[columns] += statistics.median(cpus)
            size[columns] += sum(map(len, wire))
            chunks[columns] += len(wire)
            del wire
        del records
    for columns in (False, True):
        print(f"decode {'RecordColumnsBatch' if columns else 'RecordBatch       '}: {n:,} records in "
              f"{chunks[columns]:,} chunks, {size[columns] / 2**20:,.1f} MiB on the wire: {wall[columns]:.3f} s, "
              f"CPU {cpu[columns]:.3f} s (medians, summed over the nodes) = {cpu[columns] / per:.3f} s of CPU per "
              f"100k records; the agents' side (records to serialized chunks): {build[columns] / per:.3f} s of CPU "
              "per 100k")
    print(f"  columns decode {cpu[False] / cpu[True]:.0f}x faster than records (CPU)")


def sqlite_floor(store: Store) -> float:
    """The time SQLite itself takes to write the stored rows again (no Python binding): what any writer of
    per-request rows through this SQLite pays at the least."""
    db = store.db.conn
    t0 = time.perf_counter()
    with db:
        db.execute("CREATE TABLE floor_copy AS SELECT * FROM request_rows")
    return time.perf_counter() - t0


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--per-node", type=int, default=100_000)
    ap.add_argument("--itl", type=int, default=20, help="inter-token gaps kept per request")
    ap.add_argument("--repeat", type=int, default=3, help="merge + figures runs (the median is reported)")
    ap.add_argument("--no-store", action="store_true", help="skip storing the rows and the report")
    ap.add_argument("--no-decode", action="store_true", help="skip decoding the agents' streams")
    args = ap.parse_args()
    t0 = time.perf_counter()
    by_node = {f"n{i}": synth(i, args.per_node, args.itl) for i in range(1, args.nodes + 1)}
    t_synth = time.perf_counter() - t0
    n = args.nodes * args.per_node
    print(f"{args.nodes} nodes x {args.per_node:,} records = {n:,} records, {n * args.itl:,} ITL gaps; "
          f"synthesis {t_synth:.2f} s (not counted)")
    print(f"machine: {load_note()} before the timed runs")

    runs, cpus = [], []
    agg = None
    verdicts = []
    for _ in range(max(1, args.repeat)):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        agg = aggregate_case(by_node)
        verdicts = judge(CLUSTER, agg.cluster, [Expectation("ttft_p99_s", "max", 5.0)])
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    assert agg is not None
    t_agg = statistics.median(runs)
    c = agg.cluster
    print(f"cluster: {c.requests:,} requests, {c.succeeded:,} succeeded, window {c.wall_time_s:.3f} s, "
          f"TPM {c.tpm_total:,.0f}, TTFT avg {c.ttft_avg_s:.6f} s p99 {c.percentiles['ttft_s'][99]:.6f} s, "
          f"ITL avg {c.itl_avg_s:.9f} s p50 {c.percentiles['itl_s'][50]:.9f} s p99 {c.percentiles['itl_s'][99]:.9f} s")
    agg_target, store_target = TARGETS.get(args.nodes, (math.nan, math.nan))
    ratio = f" -> {t_agg / agg_target:.2f}x of the {agg_target:g} s target" if agg_target == agg_target else ""
    print(f"merge + figures + percentiles ({args.nodes} nodes and the cluster): median {t_agg:.3f} s of "
          f"{', '.join(f'{r:.3f}' for r in runs)}{ratio}; CPU time median {statistics.median(cpus):.3f} s")
    print(f"  where the merge's CPU goes: {merge_split(by_node)}")
    if not args.no_decode:
        decode_stage(by_node, args.repeat)
    if args.no_store:
        return

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "s.sqlite")
        store.create_run("r1", "aggregation bench", "m", PLAN, list(by_node), "bench")
        for node in by_node:
            store.add_node("r1", node, address="x:1", endpoint="", hostname=node, agent_version="",
                           evalscope_version="", clock_offset_s=0.0, rtt_s=0.0, inventory_json="")
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        for node, cols in by_node.items():
            store.add_requests("r1", "load", node, 0.0, cols)
        t_store, c_store = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        for node, figs in agg.nodes.items():
            store.set_figures("r1", "load", node, figs)
        store.set_figures("r1", "load", CLUSTER, agg.cluster, extra={"sum_node_tpm_total": agg.sum_node_tpm_total})
        store.add_verdicts("r1", "load", verdicts)
        store.finish_run("r1", "pass")
        md = render_markdown(load_report(store, "r1"))
        t_report = time.perf_counter() - t0
        t_floor = sqlite_floor(store)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    ratio = ""
    if store_target == store_target:
        ratio = f" -> {t_store / store_target:.2f}x of the {store_target:g} s target"
    print(f"storing {n:,} request rows in SQLite: {t_store:.2f} s ({n / t_store:,.0f} rows/s, "
          f"database + WAL {size / 2**20:,.0f} MiB){ratio}; CPU time {c_store:.2f} s")
    print(f"  where the storing's CPU goes: {store_split(by_node)}")
    print(f"  SQLite's own time for these rows: {t_floor:.2f} s (a pure-SQL copy of request_rows into a new table, "
          f"no Python, one transaction): storing took {t_store / t_floor:.1f}x that")
    print(f"figures/verdicts stored + report rendered ({len(md):,} chars): {t_report:.3f} s "
          f"(with the merge: {t_agg + t_report:.3f} s; issue 8's target <= 2 s)")
    print(f"machine: {load_note()} after")


if __name__ == "__main__":
    main()
