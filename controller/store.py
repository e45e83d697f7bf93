"""The controller's results store: every run, node, case, figure, verdict and request.

SQLite through sqlite-utils; the schema is documented in docs/store.md. The
`requests` table keeps one row per request with times on the controller's
clock (node clock minus the node's measured offset, kept in
`clock_offset_s`), so every figure in a report can be recomputed with SQL.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import sqlite_utils

from fleetbench.columns import FloatArray, RecordColumns, as_columns
from fleetbench.errors import RunBusyError, StoreError
from fleetbench.figures import Figures
from fleetbench.hardware import HwRow
from fleetbench.records import RequestRecord

from .aggregate import DatasetScore, Verdict
from .plan import Expectation
from .verdict import Check, Reason, State

SCHEMA_VERSION = 3  # 2: the `steps` table; 3: request rows in `request_rows` + `request_sets`, gaps as blobs
STEP_TABLES = ("case_nodes", "figures", "verdicts", "scores", "case_verdicts", "validity", "requests")
ROW_COLUMNS = ("idx", "point", "start_time", "end_time", "success", "ttft_s", "latency_s", "tpot_s", "input_tokens",
               "output_tokens", "itl", "error")  # request_rows' columns after `row`, in order
# Schema 2's `requests` table, kept as a view with the same columns (but `itl`, the gaps as float64 blobs, for
# `itl_json`): every SQL query of the docs, tests and reports reads it as before.
REQUESTS_VIEW = (
    "CREATE VIEW requests AS SELECT s.run_id, s.case_id, s.node, r.idx, r.point, r.start_time, r.end_time, "
    "s.clock_offset_s, r.success, r.ttft_s, r.latency_s, r.tpot_s, r.input_tokens, r.output_tokens, r.itl, r.error "
    "FROM request_sets s JOIN request_rows r ON r.row BETWEEN s.first_row AND s.last_row")


def default_db_path() -> Path:
    env = os.environ.get("FLEETBENCH_DB")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir("fleetbench")) / "fleetbench.sqlite"


def _clean(value: Any) -> Any:
    """NaN is not JSON; store it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def gap_blobs(cols: RecordColumns) -> list[bytes]:
    """Each record's gaps as little-endian float64 bytes (exact, NaN kept): one copy of all the gaps, cut."""
    raw = cols.itl_values.astype("<f8", copy=False).tobytes()
    cuts = (cols.itl_offsets * 8).tolist()
    return [raw[a:b] for a, b in pairwise(cuts)]


def gaps_of(blob: bytes | None) -> FloatArray:
    """The gaps of one stored row (`gap_blobs`' inverse)."""
    return np.frombuffer(blob or b"", dtype="<f8").astype(np.float64)


def figures_json(f: Figures) -> str:
    return json.dumps(_clean(asdict(f)))


class _StepConnection(sqlite3.Connection):
    """sqlite-utils commits after each write (`with conn:`); inside `Store.transaction()` those commits (and
    rollbacks) wait for the outer block, so one step's writes land together or not at all."""

    depth = 0

    def commit(self) -> None:
        if not self.depth:
            super().commit()

    def rollback(self) -> None:
        if not self.depth:
            super().rollback()

    def __exit__(self, *exc: Any) -> Any:  # `with conn:` commits in C, not through commit() above
        if self.depth:
            return False
        return super().__exit__(*exc)


HEARTBEAT_S = 5.0  # how often a driving controller says it is alive
HEARTBEAT_STALE_S = 30.0  # a heartbeat older than this: the driver is gone (killed, host down)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has that pid (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


class Store:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(sqlite3.connect(str(path), factory=_StepConnection))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit waits for no fsync, and stays atomic
            self.path = path
            self._create()
        except Exception as exc:  # sqlite3 and OS errors alike: one line for the user, and the way out
            hint = ""
            if isinstance(exc, sqlite3.DatabaseError) and path.exists():
                hint = (f"; if the file is damaged, recover what it holds with `sqlite3 {path} .recover | sqlite3 "
                        f"{path.with_suffix('.recovered.sqlite')}` and pass --db to the recovered file")
            raise StoreError(f"cannot open the results store {path}: {exc}{hint}") from None

    def _create(self) -> None:
        t = self.db.table
        t("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        before = [r["value"] for r in t("meta").rows_where("key = 'schema_version'")]
        if before and int(before[0]) > SCHEMA_VERSION:  # never rewrite (and mark older) what a newer one wrote
            raise StoreError(f"written by a newer fleetbench (store schema {before[0]}; this one reads up to "
                             f"{SCHEMA_VERSION}): upgrade fleetbench (`pip install -U fleetbench`) or pass another "
                             "--db")
        t("steps").create(
            {"run_id": str, "step_id": str, "seq": int, "case_id": str, "point": str, "kind": str,
             "input_tokens": int, "output_tokens": int, "parallel": int, "number": int, "loop": int},
            pk=("run_id", "step_id"), if_not_exists=True,
        )
        if before and int(before[0]) < 2:
            self._steps_from_version_1()
        t("runs").create(
            {"run_id": str, "plan_name": str, "model": str, "plan_yaml": str, "nodes": str, "started_at": float,
             "finished_at": float, "state": str, "verdict": str, "fleetbench_version": str, "error": str,
             "reasons_json": str},
            pk="run_id", if_not_exists=True,
        )
        t("run_nodes").create(
            {"run_id": str, "node": str, "address": str, "endpoint": str, "hostname": str, "agent_version": str,
             "evalscope_version": str, "clock_offset_s": float, "rtt_s": float, "inventory_json": str},
            pk=("run_id", "node"), if_not_exists=True,
        )
        t("case_nodes").create(
            {"run_id": str, "case_id": str, "node": str, "job_id": str, "state": str, "error": str,
             "start_at": float, "last_seq": int, "clock_offset_s": float, "evalscope_summary_json": str,
             "evalscope_percentiles_json": str, "result_json": str},
            pk=("run_id", "case_id", "node"), if_not_exists=True,
        )
        t("figures").create(
            {"run_id": str, "case_id": str, "scope": str, "figures_json": str, "extra_json": str},
            pk=("run_id", "case_id", "scope"), if_not_exists=True,
        )
        t("verdicts").create(
            {"run_id": str, "case_id": str, "scope": str, "figure": str, "op": str, "threshold": float,
             "measured": float, "passed": int, "note": str},
            pk=("run_id", "case_id", "scope", "figure", "op"), if_not_exists=True,
        )
        self._create_requests()
        t("scores").create(
            {"run_id": str, "case_id": str, "scope": str, "dataset": str, "metric": str, "score": float,
             "samples": int},
            pk=("run_id", "case_id", "scope", "dataset", "metric"), if_not_exists=True,
        )
        t("case_verdicts").create(
            {"run_id": str, "case_id": str, "scope": str, "state": str, "reasons_json": str},
            pk=("run_id", "case_id", "scope"), if_not_exists=True,
        )
        t("validity").create(
            {"run_id": str, "case_id": str, "scope": str, "check": str, "measured": str, "bound": str,
             "passed": int, "detail": str},
            pk=("run_id", "case_id", "scope", "check"), if_not_exists=True,
        )
        t("hardware").create(
            {"run_id": str, "case_id": str, "node": str, "idx": int, "check": str, "device": str, "sku": str,
             "status": str, "measured": float, "unit": str, "reference": float, "fraction_of_spec": float,
             "fleet_median": float, "fleet_fraction": float, "detail": str},
            pk=("run_id", "case_id", "node", "idx", "check"), if_not_exists=True,
        )
        t("inventory_snapshots").create(
            {"snapshot_id": str, "node": str, "address": str, "taken_at": float, "inventory_json": str,
             "error": str},
            pk=("snapshot_id", "node"), if_not_exists=True,
        )
        self.db.table("meta").upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")

    def _create_requests(self) -> None:
        """Request rows carry no key columns (schema 2's rows, 16 values under an indexed 5-column text key
        with the gaps as JSON, took 3.7 s of CPU a 300k; these 1.3 s): a node's rows of a step are one
        range of `request_rows.row`, named with run, step, node and clock offset in `request_sets`; the
        `requests` view joins them with schema 2's columns."""
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS request_sets (set_id INTEGER PRIMARY KEY, run_id TEXT, case_id TEXT, "
            "node TEXT, clock_offset_s FLOAT, first_row INTEGER, last_row INTEGER)")
        self.db.execute("CREATE INDEX IF NOT EXISTS request_sets_step ON request_sets (run_id, case_id, node)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS request_rows (row INTEGER PRIMARY KEY, idx INTEGER, point TEXT, "
            "start_time FLOAT, end_time FLOAT, success INTEGER, ttft_s FLOAT, latency_s FLOAT, tpot_s FLOAT, "
            "input_tokens INTEGER, output_tokens INTEGER, itl BLOB, error TEXT)")
        kind = self.db.execute("SELECT type FROM sqlite_master WHERE name = 'requests'").fetchone()
        if kind and kind[0] == "table":
            self._requests_from_version_2()
        elif not kind:
            self.db.execute(REQUESTS_VIEW)
        self.db.conn.commit()

    def _requests_from_version_2(self) -> None:
        """A store of schema 1 or 2 kept a `requests` table with the gaps as JSON: its rows move to
        `request_rows` (gaps as blobs, every value to the bit), node and step at a time, in one transaction."""
        with self.transaction():
            groups = self.db.execute(
                "SELECT run_id, case_id, node, clock_offset_s FROM requests GROUP BY 1, 2, 3, 4 "
                "ORDER BY min(rowid)").fetchall()
            for run_id, case_id, node, offset in groups:
                rows = self.db.execute(
                    "SELECT idx, point, start_time, end_time, success, ttft_s, latency_s, tpot_s, input_tokens, "
                    "output_tokens, itl_json, error FROM requests WHERE run_id IS ? AND case_id IS ? AND node IS ? "
                    "AND clock_offset_s IS ? ORDER BY point, idx", [run_id, case_id, node, offset]).fetchall()
                self._insert_rows(run_id, case_id, node, offset, len(rows), [
                    (*r[:10], np.array([math.nan if g is None else g for g in json.loads(r[10] or "[]")],
                                       dtype="<f8").tobytes(), r[11]) for r in rows])
            self.db.execute("DROP TABLE requests")
            self.db.execute(REQUESTS_VIEW)

    def _insert_rows(self, run_id: str, case_id: str, node: str, offset_s: float, n: int,
                     rows: Iterable[Sequence[Any]]) -> None:
        """`n` rows of ROW_COLUMNS as one new range of `request_rows` and its `request_sets` entry; inside a
        transaction, so nobody else writes between the range's first row and its last. New rows are numbered
        from the highest row + 1 and every set ends on a row that exists (`_drop_rows_of` trims it), so a new
        range never reaches into another set's (AUTOINCREMENT would guarantee it too, for 15 % more time)."""
        if not n:
            return
        self.db.conn.executemany(
            f"INSERT INTO request_rows ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})",
            rows)
        (last,) = self.db.execute("SELECT max(row) FROM request_rows").fetchone()
        first = last - n + 1
        if self.db.execute("SELECT count(*) FROM request_rows WHERE row >= ?", [first]).fetchone()[0] != n:
            raise StoreError(f"the request rows of {run_id} {case_id} {node} are not one range")
        self.db.execute("INSERT INTO request_sets (run_id, case_id, node, clock_offset_s, first_row, last_row) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [run_id, case_id, node, offset_s, first, last])

    def _steps_from_version_1(self) -> None:
        """Stores of schema 1 kept a step only as its key, "<case>@<point>": its `steps` rows, once, from the
        keys in its tables (a point label "in128-out512-p4-n16-loop1" gives the parameters)."""
        from fleetbench.jobs_schema import parse_point_label

        kinds = dict(self.db.execute("SELECT name, type FROM sqlite_master").fetchall())
        existing = {t: "rowid" for t in STEP_TABLES if kinds.get(t) == "table"}
        if kinds.get("requests") == "view":  # schema 3's requests: their steps are in request_sets
            existing["request_sets"] = "set_id"
        if not existing:
            return
        union = " UNION ".join(f"SELECT run_id, case_id, min({col}) AS first FROM {t} GROUP BY run_id, case_id"
                               for t, col in sorted(existing.items()))
        keys = self.db.execute(
            f"SELECT run_id, case_id, min(first) FROM ({union}) GROUP BY run_id, case_id "
            "HAVING run_id NOT IN (SELECT run_id FROM steps) ORDER BY run_id, min(first), case_id").fetchall()
        rows: list[dict[str, Any]] = []
        seq: dict[str, int] = {}
        for run_id, step_id, _ in keys:
            case_id, _, point = step_id.partition("@")
            params = parse_point_label(point) if point else None
            rows.append({"run_id": run_id, "step_id": step_id, "seq": seq.setdefault(run_id, 0),
                         "case_id": case_id, "point": point, "kind": "perf" if point else "",
                         **dict(zip(("input_tokens", "output_tokens", "parallel", "number", "loop"),
                                    params or (None,) * 5, strict=True))})
            seq[run_id] += 1
        self.db.table("steps").upsert_all(rows, pk=("run_id", "step_id"))

    # --- writes ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write inside is committed at the end, or none (an exception, a killed controller): a step is
        never stored by half. Nested blocks join the outer one."""
        conn = self.db.conn
        assert isinstance(conn, _StepConnection)
        if conn.depth:
            conn.depth += 1
            try:
                yield
            finally:
                conn.depth -= 1
            return
        if conn.in_transaction:
            conn.commit()
        conn.execute("BEGIN IMMEDIATE")
        conn.depth = 1
        try:
            yield
        except BaseException:
            conn.depth = 0
            conn.rollback()
            raise
        conn.depth = 0
        conn.commit()

    def claim_run(self, run_id: str, force: bool = True) -> None:
        """This process drives the run: host, pid and a first heartbeat. Unless `force`, atomically: in one write
        transaction (BEGIN IMMEDIATE: one claimer at a time) a live driver is looked for and, when there is none,
        this process written as the driver; of two `ctl resume` started together one wins, the other gets the
        RunBusyError naming the winner."""
        with self.transaction():
            driver = "" if force else self.live_driver(run_id)
            if driver:
                raise RunBusyError(f"run {run_id} is being driven by {driver}; stop that controller, or pass --force "
                                   "if it is gone")
            self.db.table("runs").update(run_id, {"driver_host": socket.gethostname(), "driver_pid": os.getpid(),
                                                  "heartbeat_at": time.time()}, alter=True)

    def heartbeat(self, run_id: str) -> None:
        self.db.table("runs").update(run_id, {"heartbeat_at": time.time()}, alter=True)

    def release_run(self, run_id: str) -> None:
        """The driver has stopped driving (the run ended, was interrupted or could not run)."""
        self.db.table("runs").update(run_id, {"driver_pid": 0}, alter=True)

    def live_driver(self, run_id: str) -> str:
        """Who drives the run now, in words, or "" when nobody does: no heartbeat for HEARTBEAT_STALE_S, or
        a driver on this host whose process is gone (kill -9, a crash), or this very process."""
        row = self.run(run_id)
        pid, host, beat = int(row.get("driver_pid") or 0), str(row.get("driver_host") or ""), row.get("heartbeat_at")
        if not pid or beat is None:
            return ""
        age = time.time() - float(beat)
        if age > HEARTBEAT_STALE_S:
            return ""
        if host == socket.gethostname() and (pid == os.getpid() or not pid_alive(pid)):
            return ""
        return f"pid {pid} on {host} (heartbeat {age:.0f} s ago)"

    def set_steps(self, run_id: str, steps: Iterable[dict[str, Any]]) -> None:
        """The run's steps in run order: `step_id` (the key of its rows in the other tables), `seq`,
        `case_id` (the plan's case), `point` (a sweep point's label, "" otherwise), `kind`, and a sweep
        point's `input_tokens`, `output_tokens`, `parallel`, `number`, `loop`."""
        self.db.table("steps").upsert_all(({"run_id": run_id, **s} for s in steps), pk=("run_id", "step_id"))


    def create_run(self, run_id: str, plan_name: str, model: str, plan_yaml: str, nodes: Sequence[str],
                   version: str) -> None:
        self.db.table("runs").insert({
            "run_id": run_id, "plan_name": plan_name, "model": model, "plan_yaml": plan_yaml,
            "nodes": json.dumps(list(nodes)), "started_at": time.time(), "finished_at": None, "state": "running",
            "verdict": "", "fleetbench_version": version, "error": "",
        })

    def finish_run(self, run_id: str, verdict: str, error: str = "", state: str = "finished",
                   reasons: Sequence[Reason] = ()) -> None:
        """`state`: finished, interrupted (INCOMPLETE until `ctl resume`) or error (could not run)."""
        self.db.table("runs").update(run_id, {
            "finished_at": time.time(), "state": state, "verdict": verdict, "error": error,
            "reasons_json": json.dumps([r.to_dict() for r in reasons])}, alter=True)

    def set_case_verdict(self, run_id: str, case_id: str, scope: str, state: State,
                         reasons: Sequence[Reason] = ()) -> None:
        """The state of one step on one scope (a node, "cluster", or "case" for the step as a whole)."""
        self.db.table("case_verdicts").upsert(
            {"run_id": run_id, "case_id": case_id, "scope": scope, "state": state.value,
             "reasons_json": json.dumps([r.to_dict() for r in reasons])}, pk=("run_id", "case_id", "scope"))

    def add_checks(self, run_id: str, case_id: str, checks: Iterable[Check]) -> None:
        self.db.table("validity").upsert_all(
            ({"run_id": run_id, "case_id": case_id, "scope": c.scope, "check": c.name, "measured": c.measured,
              "bound": c.bound, "passed": int(c.passed), "detail": c.detail} for c in checks),
            pk=("run_id", "case_id", "scope", "check"))

    def reopen_run(self, run_id: str) -> None:
        self.run(run_id)
        self.db.table("runs").update(run_id, {"state": "running", "finished_at": None})

    def add_node(self, run_id: str, node: str, **fields: Any) -> None:
        self.db.table("run_nodes").upsert({"run_id": run_id, "node": node, **fields}, pk=("run_id", "node"))

    def set_case_node(self, run_id: str, case_id: str, node: str, **fields: Any) -> None:
        self.db.table("case_nodes").upsert({"run_id": run_id, "case_id": case_id, "node": node, **fields},
                                           pk=("run_id", "case_id", "node"), alter=True)

    def add_requests(self, run_id: str, case_id: str, node: str, offset_s: float,
                     records: Sequence[RequestRecord] | RecordColumns) -> None:
        """Records on the controller clock (a list, or columns as they come from the agent); idempotent
        (re-adding a request, the same point and index, replaces it). One transaction, one `executemany` of
        rows built column by column, the gaps as float64 blobs (`gap_blobs`)."""
        cols = as_columns(records)
        if not len(cols):
            return
        with self.transaction():
            self._drop_rows_of(run_id, case_id, node, cols)
            rows = zip(cols.idx.tolist(), cols.point, cols.start_time.tolist(), cols.end_time.tolist(),
                       cols.success.astype(np.int64).tolist(), cols.ttft_s.tolist(), cols.latency_s.tolist(),
                       cols.tpot_s.tolist(), cols.input_tokens.tolist(), cols.output_tokens.tolist(), gap_blobs(cols),
                       cols.error, strict=True)
            self._insert_rows(run_id, case_id, node, offset_s, len(cols), rows)

    def _sets(self, run_id: str, case_id: str, node: str) -> list[tuple[int, int, int]]:
        return self.db.execute("SELECT set_id, first_row, last_row FROM request_sets WHERE run_id = ? AND "
                               "case_id = ? AND node = ?", [run_id, case_id, node]).fetchall()

    def _drop_rows_of(self, run_id: str, case_id: str, node: str, cols: RecordColumns) -> None:
        """Stored rows of that node and step with a point and index among `cols`' (only when some exist)."""
        sets = self._sets(run_id, case_id, node)
        if not sets:
            return
        new = set(zip(cols.point, cols.idx.tolist(), strict=True))
        stale = [(row,) for _, a, b in sets for row, point, idx in self.db.execute(
            "SELECT row, point, idx FROM request_rows WHERE row BETWEEN ? AND ?", [a, b]) if (point, idx) in new]
        self.db.conn.executemany("DELETE FROM request_rows WHERE row = ?", stale)
        for set_id, a, b in sets:  # each set trimmed to its rows left (and gone when none is)
            low, high = self.db.execute("SELECT min(row), max(row) FROM request_rows WHERE row BETWEEN ? AND ?",
                                        [a, b]).fetchone()
            if low is None:
                self.db.execute("DELETE FROM request_sets WHERE set_id = ?", [set_id])
            else:
                self.db.execute("UPDATE request_sets SET first_row = ?, last_row = ? WHERE set_id = ?",
                                [low, high, set_id])

    def delete_records(self, run_id: str, case_id: str, node: str) -> None:
        """A node's records of one step, before `ctl resume` runs that step again on it."""
        with self.transaction():
            for set_id, a, b in self._sets(run_id, case_id, node):
                self.db.execute("DELETE FROM request_rows WHERE row BETWEEN ? AND ?", [a, b])
                self.db.execute("DELETE FROM request_sets WHERE set_id = ?", [set_id])

    def set_figures(self, run_id: str, case_id: str, scope: str, figures: Figures,
                    extra: dict[str, Any] | None = None) -> None:
        row = {"run_id": run_id, "case_id": case_id, "scope": scope, "figures_json": figures_json(figures),
               "extra_json": json.dumps(_clean(extra or {}))}
        self.db.table("figures").upsert(row, pk=("run_id", "case_id", "scope"))

    def set_scores(self, run_id: str, case_id: str, scope: str, scores: Iterable[DatasetScore]) -> None:
        """An eval step's scores (percent) on one scope; the cluster row marks the step done."""
        rows = [{"run_id": run_id, "case_id": case_id, "scope": scope, "dataset": s.dataset, "metric": s.metric,
                 "score": None if math.isnan(s.score) else s.score, "samples": s.samples} for s in scores]
        if not rows:  # nothing measured (every node failed): still record that the step was judged
            rows = [{"run_id": run_id, "case_id": case_id, "scope": scope, "dataset": "", "metric": "",
                     "score": None, "samples": 0}]
        self.db.table("scores").upsert_all(rows, pk=("run_id", "case_id", "scope", "dataset", "metric"))

    def set_hardware(self, run_id: str, case_id: str, rows: Iterable[HwRow]) -> None:
        """A hardware step's judged rows (fleetbench.hardware.HwRow); a row with an empty check marks a step
        that was judged with nothing to show (every node failed), so resume does not run it again."""
        out = [{"run_id": run_id, "case_id": case_id, "node": r.node, "idx": r.index, "check": r.check,
                "device": r.device, "sku": r.sku, "status": r.status, "measured": _finite(r.measured), "unit": r.unit,
                "reference": _finite(r.reference), "fraction_of_spec": _finite(r.fraction_of_spec),
                "fleet_median": _finite(r.fleet_median), "fleet_fraction": _finite(r.fleet_fraction),
                "detail": r.detail} for r in rows]
        if not out:
            out = [{"run_id": run_id, "case_id": case_id, "node": "", "idx": -1, "check": "", "status": ""}]
        self.db.table("hardware").upsert_all(out, pk=("run_id", "case_id", "node", "idx", "check"), alter=True)

    def hardware(self, run_id: str) -> list[dict[str, Any]]:
        """Judged hardware rows, by case, node, accelerator (node-wide rows first) and check order of writing."""
        return list(self.db.table("hardware").rows_where("run_id = ? AND \"check\" != ''", [run_id],
                                                         order_by="case_id, node, idx, rowid"))

    def scores(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("scores").rows_where("run_id = ? AND dataset != ''", [run_id],
                                                       order_by="case_id, scope, dataset, metric"))

    def add_verdicts(self, run_id: str, case_id: str, verdicts: Iterable[Verdict]) -> None:
        self.db.table("verdicts").upsert_all(
            ({"run_id": run_id, "case_id": case_id, "scope": v.scope, "figure": v.expectation.figure,
              "op": v.expectation.op, "threshold": v.expectation.threshold, "tolerance": v.expectation.tolerance,
              "measured": None if math.isnan(v.measured) else v.measured, "passed": int(v.passed), "note": v.note}
             for v in verdicts),
            pk=("run_id", "case_id", "scope", "figure", "op"), alter=True,
        )

    def add_inventory_snapshot(self, snapshot_id: str, taken_at: float, nodes: Iterable[dict[str, Any]]) -> None:
        """One `ctl inventory`: a row per node with `node`, `address`, `inventory_json` (the agent's JSON
        document, "" when it did not answer) and `error`."""
        self.db.table("inventory_snapshots").insert_all(
            ({"snapshot_id": snapshot_id, "node": n["node"], "address": n.get("address", ""), "taken_at": taken_at,
              "inventory_json": n.get("inventory_json", ""), "error": n.get("error", "")} for n in nodes),
            pk=("snapshot_id", "node"),
        )

    # --- reads -----------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        rows = list(self.db.table("runs").rows_where("run_id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id} in {self.path}; `ctl runs` lists the runs it holds")
        return rows[0]

    def run_ids(self) -> list[str]:
        """Every run id, newest first (the order `latest~N` counts in)."""
        return [r[0] for r in self.db.execute("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC")]

    def steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's steps by step id, in run order (rows of `steps`)."""
        return {r["step_id"]: r for r in self.db.table("steps").rows_where("run_id = ?", [run_id], order_by="seq")}

    def runs(self) -> list[dict[str, Any]]:
        return list(self.db.table("runs").rows_where(order_by="started_at desc, run_id desc"))

    def run_nodes(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("run_nodes").rows_where("run_id = ?", [run_id], order_by="node"))

    def case_nodes(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("case_nodes").rows_where("run_id = ?", [run_id], order_by="case_id, node"))

    def case_verdicts(self, run_id: str) -> list[dict[str, Any]]:
        """Rows of case_verdicts; `reasons` is the decoded list of Reason dicts."""
        return [{**r, "reasons": json.loads(r["reasons_json"] or "[]")}
                for r in self.db.table("case_verdicts").rows_where("run_id = ?", [run_id], order_by="case_id, scope")]

    def checks(self, run_id: str) -> list[Check]:
        return [Check(r["check"], r["scope"], r["measured"], r["bound"], bool(r["passed"]), r["detail"] or "")
                for r in self.db.table("validity").rows_where("run_id = ?", [run_id], order_by="case_id, scope")]

    def check_rows(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("validity").rows_where("run_id = ?", [run_id], order_by='case_id, scope, "check"'))

    def failure_counts(self, run_id: str) -> list[dict[str, Any]]:
        """Failed requests per (step, node, error line), most frequent first: the Failures table's input."""
        rows = self.db.execute(
            "SELECT case_id, node, error, count(*) FROM requests WHERE run_id = ? AND success = 0 "
            "GROUP BY case_id, node, error ORDER BY case_id, node, count(*) DESC", [run_id]).fetchall()
        return [{"case_id": c, "node": n, "error": e or "", "count": k} for c, n, e, k in rows]

    def verdicts(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("verdicts").rows_where("run_id = ?", [run_id]))

    def figures(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.table("figures").rows_where("run_id = ?", [run_id]))

    def case_node(self, run_id: str, case_id: str, node: str) -> dict[str, Any] | None:
        rows = list(self.db.table("case_nodes").rows_where("run_id = ? AND case_id = ? AND node = ?",
                                                            [run_id, case_id, node]))
        return rows[0] if rows else None

    def completed_cases(self, run_id: str) -> set[str]:
        """Steps (cases, sweep points) whose cluster figures or scores are stored: aggregated and judged
        before a restart."""
        done = {r["case_id"] for r in self.db.table("figures").rows_where("run_id = ? AND scope = ?",
                                                                          [run_id, "cluster"])}
        done |= {r["case_id"] for r in self.db.table("scores").rows_where("run_id = ? AND scope = ?",
                                                                          [run_id, "cluster"])}
        done |= {r[0] for r in self.db.execute("SELECT DISTINCT case_id FROM hardware WHERE run_id = ?", [run_id])}
        return done

    def steps_with_failed_nodes(self, run_id: str) -> set[str]:
        """Steps where a node's job failed, was cancelled or lost (its agent restarted): `ctl resume` runs
        them again on those nodes."""
        return {r["case_id"] for r in self.db.table("case_nodes").rows_where(
            "run_id = ? AND state IN ('error', 'failed', 'cancelled', 'interrupted')", [run_id])}

    def case_errors(self, run_id: str, case_id: str) -> dict[str, str]:
        return {r["node"]: r["error"] or "error" for r in self.db.table("case_nodes").rows_where(
            "run_id = ? AND case_id = ? AND state = ?", [run_id, case_id, "error"])}

    def verdict_objects(self, run_id: str, case_id: str) -> list[Verdict]:
        return [
            Verdict(r["scope"], Expectation(r["figure"], r["op"], r["threshold"], r.get("tolerance") or 0.0),
                    math.nan if r["measured"] is None else r["measured"], bool(r["passed"]), r["note"] or "")
            for r in self.db.table("verdicts").rows_where("run_id = ? AND case_id = ?", [run_id, case_id])
        ]

    def records(self, run_id: str, case_id: str, node: str | None = None) -> list[RequestRecord]:
        """Stored records of a step (one node's, or every node's), by node, point and index."""
        where, args = "run_id = ? AND case_id = ?", [run_id, case_id]
        if node is not None:
            where += " AND node = ?"
            args.append(node)
        rows = self.db.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM requests WHERE {where} "
                               "ORDER BY node, point, idx", args)
        return [RequestRecord(index=i, start_time=start, end_time=end, success=bool(ok), ttft_s=ttft, latency_s=lat,
                              input_tokens=inp, output_tokens=out, tpot_s=tpot, itl_s=tuple(gaps_of(itl).tolist()),
                              error=error or "", point=point)
                for i, point, start, end, ok, ttft, lat, tpot, inp, out, itl, error in rows]

    def columns(self, run_id: str, case_id: str, node: str) -> RecordColumns:
        """One node's stored records of a step as columns, in the order they were stored: what the
        figures are recomputed from (the same values, to the bit, as the columns that were stored)."""
        rows = [r for _, a, b in self._sets(run_id, case_id, node) for r in self.db.execute(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM request_rows WHERE row BETWEEN ? AND ? ORDER BY row", [a, b])]
        if not rows:
            return RecordColumns.empty()
        idx, point, start, end, ok, ttft, lat, tpot, inp, out, itl, error = zip(*rows, strict=True)
        counts = np.fromiter((len(b or b"") // 8 for b in itl), dtype=np.int64, count=len(itl))
        offsets = np.zeros(len(itl) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return RecordColumns(idx=idx, start_time=start, end_time=end, success=ok, ttft_s=ttft, latency_s=lat,
                             input_tokens=inp, output_tokens=out, tpot_s=tpot, itl_offsets=offsets,
                             itl_values=gaps_of(b"".join(b or b"" for b in itl)), error=[e or "" for e in error],
                             point=point)

    def inventory_snapshots(self, node: str | None = None) -> list[dict[str, Any]]:
        """Stored inventory snapshots, newest first: snapshot_id, taken_at, nodes (list), failed (list)."""
        where, args = "", []
        if node is not None:
            where, args = "WHERE snapshot_id IN (SELECT snapshot_id FROM inventory_snapshots WHERE node = ?)", [node]
        rows = self.db.execute(
            "SELECT snapshot_id, max(taken_at) AS taken_at, json_group_array(node) AS nodes, "
            "json_group_array(CASE WHEN error != '' THEN node END) AS failed "
            f"FROM (SELECT * FROM inventory_snapshots {where} ORDER BY rowid) "
            "GROUP BY snapshot_id ORDER BY taken_at DESC, snapshot_id DESC", args,
        ).fetchall()
        return [{"snapshot_id": sid, "taken_at": at, "nodes": json.loads(nodes),
                 "failed": [n for n in json.loads(failed) if n is not None]} for sid, at, nodes, failed in rows]

    def inventory_snapshot(self, snapshot_id: str) -> list[dict[str, Any]]:
        """The rows of one snapshot, in the order the nodes were asked."""
        rows = list(self.db.table("inventory_snapshots").rows_where("snapshot_id = ?", [snapshot_id],
                                                                    order_by="rowid"))
        if not rows:
            raise StoreError(f"no inventory snapshot {snapshot_id} in {self.path}; "
                             "`ctl inventory snapshots` lists the ones it holds")
        return rows
