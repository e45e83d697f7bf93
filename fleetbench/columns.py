"""Request records as columns: how the controller holds a node's records at fleet scale.

A node sends 100k records; 32 nodes send millions, with tens of millions of inter-token gaps.
`RecordColumns` keeps every field of `RequestRecord` as one numpy array (the gaps of all
requests in one flat array with offsets), so the clock shift, the store's batch insert and
every figure are vectorized from the agent's stream to the report. It is also a read-only
sequence of `RequestRecord` (each built on access) for callers that want the per-record type.

The agent imports it only when a controller asks for columns (`fleetbench.wire_columns`, which
builds them from the records it streams); `fleetbench.records` stays dependency-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from fleetbench.records import RequestRecord

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class RecordColumns(Sequence[RequestRecord]):
    """Records as columns. Treat the arrays as read-only: derived columns share them.

    `itl_values[itl_offsets[i]:itl_offsets[i + 1]]` are the gaps of record i; `itl_offsets` has
    one more entry than there are records, starting at 0.
    """

    __slots__ = ("end_time", "error", "idx", "input_tokens", "itl_offsets", "itl_values", "latency_s",
                 "output_tokens", "point", "start_time", "success", "tpot_s", "ttft_s")

    idx: IntArray  # RequestRecord.index (`index` is Sequence's method)
    start_time: FloatArray
    end_time: FloatArray
    success: BoolArray
    ttft_s: FloatArray
    latency_s: FloatArray
    input_tokens: IntArray
    output_tokens: IntArray
    tpot_s: FloatArray
    itl_offsets: IntArray
    itl_values: FloatArray
    error: tuple[str, ...]
    point: tuple[str, ...]

    def __init__(self, *, idx: Any, start_time: Any, end_time: Any, success: Any, ttft_s: Any, latency_s: Any,
                 input_tokens: Any, output_tokens: Any, tpot_s: Any, itl_offsets: Any, itl_values: Any,
                 error: Iterable[str], point: Iterable[str]) -> None:
        self.idx = np.ascontiguousarray(idx, dtype=np.int64)
        n = len(self.idx)
        self.start_time = _column(start_time, np.float64, n, "start_time")
        self.end_time = _column(end_time, np.float64, n, "end_time")
        self.success = _column(success, np.bool_, n, "success")
        self.ttft_s = _column(ttft_s, np.float64, n, "ttft_s")
        self.latency_s = _column(latency_s, np.float64, n, "latency_s")
        self.input_tokens = _column(input_tokens, np.int64, n, "input_tokens")
        self.output_tokens = _column(output_tokens, np.int64, n, "output_tokens")
        self.tpot_s = _column(tpot_s, np.float64, n, "tpot_s")
        self.itl_offsets = _column(itl_offsets, np.int64, n + 1, "itl_offsets")
        self.itl_values = np.ascontiguousarray(itl_values, dtype=np.float64)
        if self.itl_offsets[0] != 0 or self.itl_offsets[-1] != len(self.itl_values) or (
                n and bool((np.diff(self.itl_offsets) < 0).any())):
            raise ValueError("itl_offsets must rise from 0 to len(itl_values)")
        self.error = tuple(error)
        self.point = tuple(point)
        if len(self.error) != n or len(self.point) != n:
            raise ValueError(f"error and point need {n} entries")

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> RecordColumns:
        return cls.from_records(())

    @classmethod
    def from_records(cls, records: Iterable[RequestRecord]) -> RecordColumns:
        if isinstance(records, RecordColumns):
            return records
        rs = list(records)
        gaps = [r.itl_s for r in rs]
        offsets = np.zeros(len(rs) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, gaps), dtype=np.int64, count=len(rs)), out=offsets[1:])
        return cls(
            idx=[r.index for r in rs], start_time=[r.start_time for r in rs], end_time=[r.end_time for r in rs],
            success=[r.success for r in rs], ttft_s=[r.ttft_s for r in rs], latency_s=[r.latency_s for r in rs],
            input_tokens=[r.input_tokens for r in rs], output_tokens=[r.output_tokens for r in rs],
            tpot_s=[r.tpot_s for r in rs], itl_offsets=offsets,
            itl_values=np.fromiter((x for g in gaps for x in g), dtype=np.float64, count=int(offsets[-1])),
            error=[r.error for r in rs], point=[r.point for r in rs],
        )

    @classmethod
    def concat(cls, parts: Sequence[RecordColumns]) -> RecordColumns:
        """The records of `parts`, one after the other."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.itl_offsets[1:] + base)
            base += len(p.itl_values)
        return cls(
            idx=np.concatenate([p.idx for p in parts]),
            start_time=np.concatenate([p.start_time for p in parts]),
            end_time=np.concatenate([p.end_time for p in parts]),
            success=np.concatenate([p.success for p in parts]),
            ttft_s=np.concatenate([p.ttft_s for p in parts]),
            latency_s=np.concatenate([p.latency_s for p in parts]),
            input_tokens=np.concatenate([p.input_tokens for p in parts]),
            output_tokens=np.concatenate([p.output_tokens for p in parts]),
            tpot_s=np.concatenate([p.tpot_s for p in parts]),
            itl_offsets=np.concatenate(offsets),
            itl_values=np.concatenate([p.itl_values for p in parts]),
            error=[e for p in parts for e in p.error],
            point=[x for p in parts for x in p.point],
        )

    def _replace(self, **changes: Any) -> RecordColumns:
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return RecordColumns(**fields)

    def shifted(self, offset_s: float) -> RecordColumns:
        """The same records on a clock `offset_s` seconds behind theirs (RequestRecord.shifted, vectorized)."""
        return self._replace(start_time=self.start_time - offset_s, end_time=self.end_time - offset_s)

    def with_point(self, point: str) -> RecordColumns:
        """The same records, every one labelled `point` (a sweep point)."""
        return self._replace(point=(point,) * len(self))

    # --- access ------------------------------------------------------------------------------

    @property
    def itl_counts(self) -> IntArray:
        """The number of gaps of each record."""
        return np.diff(self.itl_offsets)

    def __len__(self) -> int:
        return len(self.idx)

    @overload
    def __getitem__(self, i: int) -> RequestRecord: ...

    @overload
    def __getitem__(self, i: slice) -> RecordColumns: ...

    def __getitem__(self, i: int | slice) -> RequestRecord | RecordColumns:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        n = len(self)
        if i < -n or i >= n:
            raise IndexError(i)
        i %= n
        a, b = int(self.itl_offsets[i]), int(self.itl_offsets[i + 1])
        return RequestRecord(
            index=int(self.idx[i]), start_time=float(self.start_time[i]), end_time=float(self.end_time[i]),
            success=bool(self.success[i]), ttft_s=float(self.ttft_s[i]), latency_s=float(self.latency_s[i]),
            input_tokens=int(self.input_tokens[i]), output_tokens=int(self.output_tokens[i]),
            tpot_s=float(self.tpot_s[i]), itl_s=tuple(self.itl_values[a:b].tolist()), error=self.error[i],
            point=self.point[i],
        )

    def take(self, rows: Any) -> RecordColumns:
        """The records at positions `rows` (an index array), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.itl_offsets[rows], self.itl_offsets[rows + 1]
        counts = ends - starts
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        # the flat positions of every kept gap: each row's start, then one step at a time
        gap_rows = np.repeat(np.arange(len(rows)), counts)
        positions = starts[gap_rows] + (np.arange(int(offsets[-1])) - offsets[:-1][gap_rows])
        rows_list = rows.tolist()
        return RecordColumns(
            idx=self.idx[rows], start_time=self.start_time[rows], end_time=self.end_time[rows],
            success=self.success[rows], ttft_s=self.ttft_s[rows], latency_s=self.latency_s[rows],
            input_tokens=self.input_tokens[rows], output_tokens=self.output_tokens[rows], tpot_s=self.tpot_s[rows],
            itl_offsets=offsets, itl_values=self.itl_values[positions],
            error=[self.error[r] for r in rows_list], point=[self.point[r] for r in rows_list],
        )

    def __iter__(self) -> Iterator[RequestRecord]:
        gaps = self.itl_values.tolist()
        offsets = self.itl_offsets.tolist()
        columns = zip(self.idx.tolist(), self.start_time.tolist(), self.end_time.tolist(), self.success.tolist(),
                      self.ttft_s.tolist(), self.latency_s.tolist(), self.input_tokens.tolist(),
                      self.output_tokens.tolist(), self.tpot_s.tolist(), offsets, offsets[1:], self.error,
                      self.point, strict=False)
        for i, start, end, ok, ttft, latency, inp, out, tpot, a, b, error, point in columns:
            yield RequestRecord(i, start, end, ok, ttft, latency, inp, out, tpot, tuple(gaps[a:b]), error, point)

    def records(self) -> list[RequestRecord]:
        return list(self)

    def __repr__(self) -> str:
        return f"RecordColumns({len(self)} records, {len(self.itl_values)} gaps)"


def _column(values: Any, dtype: Any, n: int, name: str) -> Any:
    arr = np.ascontiguousarray(values, dtype=dtype)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name}: {n} values expected, got shape {arr.shape}")
    return arr


def as_columns(records: Iterable[RequestRecord]) -> RecordColumns:
    """Columns of `records` (the same object when it already is columns)."""
    return records if isinstance(records, RecordColumns) else RecordColumns.from_records(records)
