"""Records on the wire: `RecordColumns` <-> the agent API's batches, for both sides of `GetJobResult`.

The agent answers a `columns` request with `RecordColumnsBatch` chunks (one little-endian array per
field, layout in proto/fleetbench/v1/agent.proto); older agents send `RecordBatch` (a message per
request), which `columns_from_pb` still decodes. Here, in the shared package, because the agent encodes
and the controller decodes (neither imports the other). A malformed batch raises NodeError naming the
node: a batch read in part would be numbers we cannot stand behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from fleetbench.columns import RecordColumns
from fleetbench.errors import NodeError
from fleetbench.records import RequestRecord
from fleetbench.v1 import agent_pb2 as pb

# wire name -> (RecordColumns attribute, little-endian dtype on the wire, dtype in RecordColumns)
_PER_RECORD: dict[str, tuple[str, str, Any]] = {
    "index": ("idx", "<i8", np.int64),
    "start_time": ("start_time", "<f8", np.float64),
    "end_time": ("end_time", "<f8", np.float64),
    "success": ("success", "u1", np.bool_),
    "ttft_s": ("ttft_s", "<f8", np.float64),
    "latency_s": ("latency_s", "<f8", np.float64),
    "input_tokens": ("input_tokens", "<i8", np.int64),
    "output_tokens": ("output_tokens", "<i8", np.int64),
    "tpot_s": ("tpot_s", "<f8", np.float64),
}


def batch_from_columns(cols: RecordColumns) -> pb.RecordColumnsBatch:
    """`cols` as one RecordColumnsBatch (no copy beyond the bytes, on a little-endian machine)."""
    fields = {wire: getattr(cols, attr).astype(dtype, copy=False).tobytes()
              for wire, (attr, dtype, _) in _PER_RECORD.items()}
    return pb.RecordColumnsBatch(
        count=len(cols), **fields, itl_counts=cols.itl_counts.astype("<i8", copy=False).tobytes(),
        itl_s=cols.itl_values.astype("<f8", copy=False).tobytes(), error=cols.error, point=cols.point,
    )


def batch_from_records(records: Sequence[RequestRecord]) -> pb.RecordColumnsBatch:
    """The agent's side: a chunk of records as one RecordColumnsBatch."""
    return batch_from_columns(RecordColumns.from_records(records))


def columns_from_batch(batch: pb.RecordColumnsBatch, node: str = "agent") -> RecordColumns:
    """A RecordColumnsBatch as columns, each a view of the message's bytes (read-only arrays, as
    RecordColumns' arrays are to be treated anyway). Every length is checked against `count` first."""
    n = batch.count

    def bad(why: str) -> NodeError:
        return NodeError(f"{node}: the agent sent a malformed record batch ({why}); its records are not used")

    if n < 0:
        raise bad(f"count {n}")
    arrays: dict[str, Any] = {}
    for wire, (attr, dtype, held) in [*_PER_RECORD.items(), ("itl_counts", ("itl_counts", "<i8", np.int64))]:
        data: bytes = getattr(batch, wire)
        size = np.dtype(dtype).itemsize
        if len(data) != n * size:
            raise bad(f"{wire} holds {len(data)} bytes, {n} records need {n * size}")
        raw = np.frombuffer(data, dtype=dtype)
        if held is np.bool_:
            if n and int(raw.max()) > 1:
                raise bad(f"success holds the byte {int(raw.max())}, not 0 or 1")
            raw = raw.view(np.bool_)
        arrays[attr] = raw
    gaps: bytes = batch.itl_s
    if len(gaps) % 8:
        raise bad(f"itl_s holds {len(gaps)} bytes, not a whole number of float64")
    total = len(gaps) // 8
    counts = arrays.pop("itl_counts")
    if n and not 0 <= int(counts.min()) <= int(counts.max()) <= total:  # bounded: their sum cannot overflow
        raise bad(f"itl_counts from {int(counts.min())} to {int(counts.max())}, itl_s holds {total} gaps in all")
    if int(counts.sum()) != total:
        raise bad(f"itl_counts sum to {int(counts.sum())} gaps, itl_s holds {total}")
    if len(batch.error) != n or len(batch.point) != n:
        raise bad(f"{len(batch.error)} error and {len(batch.point)} point entries for {n} records")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return RecordColumns(**arrays, itl_offsets=offsets, itl_values=np.frombuffer(gaps, dtype="<f8"),
                         error=batch.error, point=batch.point)


def columns_from_pb(records: Sequence[pb.RequestRecord]) -> RecordColumns:
    """A RecordBatch's records (an older agent's answer) as columns, field by field."""
    n = len(records)
    gaps = [r.itl_s for r in records]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, gaps), dtype=np.int64, count=n), out=offsets[1:])

    def column(name: str, dtype: Any) -> Any:
        return np.fromiter(map(attrgetter(name), records), dtype=dtype, count=n)

    return RecordColumns(
        idx=column("index", np.int64), start_time=column("start_time", np.float64),
        end_time=column("end_time", np.float64), success=column("success", np.bool_),
        ttft_s=column("ttft_s", np.float64), latency_s=column("latency_s", np.float64),
        input_tokens=column("input_tokens", np.int64), output_tokens=column("output_tokens", np.int64),
        tpot_s=column("tpot_s", np.float64), itl_offsets=offsets,
        itl_values=np.fromiter(chain.from_iterable(gaps), dtype=np.float64, count=int(offsets[-1])),
        error=list(map(attrgetter("error"), records)), point=list(map(attrgetter("point"), records)),
    )

