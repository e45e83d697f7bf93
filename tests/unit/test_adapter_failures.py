"""The adapter on a database shaped like evalscope 1.14's: empty replies are failures, errors are one line.

The rows are what evalscope 1.14 writes for each case (default_api.py / benchmark_util.py): a stream of
`data: [DONE]` alone or an empty body is success=1, first_chunk_latency 0.0, 0 tokens; chunks of "" text
with usage 0 are the same; a failure keeps no latency or token columns, its error text goes to the job
process's side table.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fleetbench.agent.evalscope_adapter import ERRORS_TABLE, iter_records, read_progress

CAPTURED = json.loads((Path(__file__).parents[1] / "data" / "evalscope-1.14-errors.json").read_text())

# evalscope 1.14's evalscope/perf/utils/db_util.py create_result_table
RESULT_TABLE = """CREATE TABLE IF NOT EXISTS result(
    request TEXT, start_time REAL, inter_token_latencies TEXT, success INTEGER, response_messages TEXT,
    completed_time REAL, latency REAL, first_chunk_latency REAL, prompt_tokens INTEGER, completion_tokens INTEGER,
    max_gpu_memory_cost REAL, time_per_output_token REAL, request_id TEXT, is_stream INTEGER)"""


def _db(path: Path, rows: list[dict[str, object]], errors: dict[int, str] | None = None) -> Path:
    con = sqlite3.connect(path)
    con.execute(RESULT_TABLE)
    for row in rows:
        ok = row.get("success", 1)
        base = {"request": "{}", "start_time": 100.0, "inter_token_latencies": "[]", "success": ok,
                "response_messages": "", "completed_time": 101.0, "request_id": None, "is_stream": 1}
        if ok:
            base |= {"latency": 1.0, "first_chunk_latency": 0.2, "prompt_tokens": 32, "completion_tokens": 16,
                     "max_gpu_memory_cost": 0.0, "time_per_output_token": 0.05}
        base |= row
        con.execute(f"INSERT INTO result({', '.join(base)}) VALUES ({', '.join('?' * len(base))})",
                    tuple(base.values()))
    if errors is not None:
        con.execute(f"CREATE TABLE {ERRORS_TABLE}(result_rowid INTEGER PRIMARY KEY, error TEXT)")
        con.executemany(f"INSERT INTO {ERRORS_TABLE} VALUES (?, ?)", errors.items())
    con.commit()
    con.close()
    return path


def test_a_success_that_generated_nothing_is_a_failed_record(tmp_path: Path) -> None:
    db = _db(tmp_path / "benchmark_data.db", [
        {},  # a real success
        # data: [DONE] alone / an empty SSE body: no chunk, no usage (evalscope's parse of [] gives 0, 0)
        {"latency": 0.0, "first_chunk_latency": 0.0, "prompt_tokens": 0, "completion_tokens": 0,
         "time_per_output_token": 0.0},
        # chunks of "" text then usage with 0 completion tokens: evalscope never sets first_chunk_latency
        {"latency": 0.3, "first_chunk_latency": 0.0, "prompt_tokens": 32, "completion_tokens": 0,
         "time_per_output_token": 0.0},
        # an older evalscope: NULL where 1.14 writes 0
        {"first_chunk_latency": None},
        # non-stream JSON with "" content and usage 0: first_chunk_latency is the whole latency
        {"is_stream": 0, "latency": 0.4, "first_chunk_latency": 0.4, "completion_tokens": 0},
        {"is_stream": 0, "latency": 0.4, "first_chunk_latency": 0.4, "completion_tokens": None},
    ])
    records = list(iter_records(db, clock_offset_s=1000.0))
    assert [(r.success, r.error) for r in records] == [
        (True, ""),
        (False, "empty reply: no content chunk"),
        (False, "empty reply: no content chunk"),
        (False, "empty reply: no content chunk"),
        (False, "empty reply: 0 output tokens"),
        (False, "empty reply: 0 output tokens"),
    ]
    ok = records[0]
    assert (ok.ttft_s, ok.output_tokens, ok.input_tokens, ok.start_time) == (0.2, 16, 32, 1100.0)
    for r in records[1:]:  # a failure carries no figures: never a TTFT of 0.000 s or 0 tokens as a success
        assert (r.ttft_s, r.latency_s, r.output_tokens, r.input_tokens, r.tpot_s, r.itl_s) == (0.0, 0.0, 0, 0, 0.0, ())
        assert r.start_time == 1100.0 and r.end_time == 1101.0
    # the live progress agrees: 5 of 6 failed, only the real success's tokens count
    assert read_progress(db)[:3] == (6, 5, 16)


def test_failed_records_carry_one_classified_line(tmp_path: Path) -> None:
    failed = {"success": 0}
    db = _db(tmp_path / "benchmark_data.db", [{}, failed, failed, failed, failed, failed], errors={
        # what the job process stored before it kept one line: evalscope's text, the HTTP status lost
        2: CAPTURED["refused"]["error"],
        3: CAPTURED["reset"]["error"],
        4: CAPTURED["422"]["error"],
        # what it stores now
        5: "HTTP 422: Unexpected fields in the request: {'ignore_eos', 'min_tokens'}",
    })  # row 6 has no error text at all
    records = list(iter_records(db, clock_offset_s=0.0))
    assert [r.error for r in records] == [
        "",
        "connection refused: Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]",
        "payload incomplete: Response payload is not completed: <TransferEncodingError: 400, message='Not enough "
        "data to satisfy transfer length header.'>. ConnectionResetError(104, 'Connection reset by peer')",
        "server error: Unexpected fields in the request: {'min_tokens', 'ignore_eos'}",
        "HTTP 422: Unexpected fields in the request: {'ignore_eos', 'min_tokens'}",
        "request failed: evalscope recorded no error text",
    ]
    assert all("\n" not in r.error and len(r.error) <= 240 for r in records)
    assert read_progress(db)[:3] == (6, 5, 16)


def test_an_empty_database_and_no_table(tmp_path: Path) -> None:
    db = _db(tmp_path / "benchmark_data.db", [])
    assert list(iter_records(db, 0.0)) == [] and read_progress(db) == (0, 0, 0, 0.0)
    assert read_progress(tmp_path / "missing.db") == (0, 0, 0, 0.0)


def test_live_rates_count_from_the_first_request_not_from_the_preparation(tmp_path: Path) -> None:
    """The watcher started with the job, so its tok/s and ETA counted the tokenizer loading and the wait for the
    common start as load time: a node that prepared for 30 s and then ran 10 s at 100 tok/s showed 25 tok/s."""
    import threading
    import time

    from fleetbench.agent import job_process

    out = tmp_path / "evalscope"
    out.mkdir()
    started = time.perf_counter() - 10.0  # the first request went 10 s ago, whenever the watcher began
    _db(out / "benchmark_data.db", [{"start_time": started + i * 0.1, "completion_tokens": 10} for i in range(100)])
    assert read_progress(out / "benchmark_data.db").first_start == started
    sent: list[dict[str, float]] = []
    stop = threading.Event()

    class Channel:
        def send(self, **msg: float) -> None:
            sent.append(msg)
            stop.set()

    job_process._watch_progress(out, 400, Channel(), stop)  # type: ignore[arg-type]
    (msg,) = sent
    assert (msg["done"], msg["total"], msg["failed"]) == (100, 400, 0)
    assert 10.0 <= msg["elapsed_s"] < 10.0 + 5 and 1000 / 15 < msg["output_tps"] <= 100.0
    assert 30.0 <= msg["eta_s"] < 30.0 * 1.5  # 300 left at 10 a second
