"""One classified line per failed request, from the texts evalscope 1.14 really keeps.

tests/data/evalscope-1.14-errors.json holds BenchmarkData.error and .status_code as evalscope 1.14's
AioHttpClient.post produced them (aiohttp 3.x, Python 3.11) against small servers that answered 422 like
`transformers serve`, 429 with a text body, 500/400 with vLLM's bodies, 503 with nginx's HTML page, closed
the connection before the reply (disc), reset it mid-stream (reset) or before the headers (nsreset), stalled
past the read timeout (stall, nsstall) or the total timeout (total), closed it mid-stream (fin), sent an error
event inside an HTTP 200 stream (inband), and against a closed port (refused) and an unknown host (dns).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.failures import FailureClass, error_class, one_line_error, summarize

CAPTURED = json.loads((Path(__file__).parents[1] / "data" / "evalscope-1.14-errors.json").read_text())

EXPECTED = {
    "422": "HTTP 422: Unexpected fields in the request: {'min_tokens', 'ignore_eos'}",
    "429": "HTTP 429: Too Many Requests: rate limit exceeded, retry later",
    "500": "HTTP 500: Internal server error (injected fault)",
    "400": "HTTP 400: This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
    "503": "HTTP 503: 503 Service Temporarily Unavailable",
    "disc": "connection reset: Server disconnected",
    "reset": "payload incomplete: Response payload is not completed: <TransferEncodingError: 400, "
             "message='Not enough data to satisfy transfer length header.'>. "
             "ConnectionResetError(104, 'Connection reset by peer')",
    "fin": "payload incomplete: Response payload is not completed: <TransferEncodingError: 400, "
           "message='Not enough data to satisfy transfer length header.'>",
    "nsreset": "connection reset: [Errno 104] Connection reset by peer",
    "stall": "timeout: Timeout on reading data from socket",
    "nsstall": "timeout: Timeout on reading data from socket",
    "total": "timeout: TimeoutError (no data within the client's read or total timeout)",
    "inband": "stream error: CUDA out of memory",
    "refused": "connection refused: Cannot connect to host 127.0.0.1:9 ssl:default "
               "[Connect call failed ('127.0.0.1', 9)]",
    "dns": "name not resolved: Cannot connect to host no-such-host.invalid:8000 ssl:default "
           "[Name or service not known]",
}


def test_the_capture_is_what_evalscope_keeps() -> None:
    assert set(CAPTURED) == set(EXPECTED)
    assert "Traceback (most recent call last):" in CAPTURED["refused"]["error"]
    assert len(CAPTURED["refused"]["error"]) > 1500 and CAPTURED["refused"]["error"].count("\n") > 20
    assert CAPTURED["422"]["status"] == 422 and CAPTURED["refused"]["status"] is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_captured_failure_is_one_classified_line(name: str) -> None:
    captured = CAPTURED[name]
    line = one_line_error(captured["error"], captured["status"])
    assert line == EXPECTED[name]
    assert "\n" not in line and len(line) <= 240
    # idempotent: the adapter passes stored lines through again
    assert one_line_error(line, captured["status"]) == line
    assert one_line_error(line) == line


def test_http_status_is_kept_whatever_the_body() -> None:
    assert one_line_error('{"detail": "Unexpected fields in the request: {\'ignore_eos\'}"}', 422) == \
        "HTTP 422: Unexpected fields in the request: {'ignore_eos'}"
    assert one_line_error("", 502) == "HTTP 502: empty body"
    assert one_line_error(None, 504) == "HTTP 504: empty body"
    assert one_line_error('{"error": "model is loading"}', 503) == "HTTP 503: model is loading"
    # pydantic's list of errors, as FastAPI answers a body of the wrong shape
    body = {"detail": [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required", "input": {}}]}
    assert one_line_error(json.dumps(body), 422) == "HTTP 422: messages: Field required"
    # a body that reads like one of the classes is still the body of that HTTP status
    assert one_line_error("timeout: upstream", 504) == "HTTP 504: timeout: upstream"
    assert one_line_error("HTTP 429: slow down", 429) == "HTTP 429: slow down"
    assert one_line_error('{"x": 1}', 400) == 'HTTP 400: {"x": 1}'
    assert one_line_error("ok", 200) == "error: ok"  # 200 is no HTTP failure


def test_bare_exception_texts_and_old_fallbacks() -> None:
    # evalscope's http_client keeps str(exc) without a traceback when the plugin itself raises
    assert one_line_error("Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]") \
        == "connection refused: Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]"
    assert one_line_error("Server disconnected") == "connection reset: Server disconnected"
    assert one_line_error("Timeout on reading data from socket") == "timeout: Timeout on reading data from socket"
    assert one_line_error("aiohttp.client_exceptions.ServerDisconnectedError: Server disconnected") == \
        "connection reset: Server disconnected"
    assert one_line_error("TimeoutError") == "timeout: TimeoutError (no data within the client's read or total timeout)"
    assert one_line_error("") == "request failed: no error text"
    assert one_line_error("   \n ") == "request failed: no error text"
    # what the job process stored before it kept one line
    assert one_line_error("HTTP 500") == "HTTP 500: empty body"
    assert one_line_error("request failed") == "request failed: no error text"
    assert one_line_error("request failed (evalscope recorded no error text)") == \
        "request failed: evalscope recorded no error text"
    assert one_line_error('{"detail": "Unexpected fields in the request: {\'min_tokens\'}"}') == \
        "server error: Unexpected fields in the request: {'min_tokens'}"
    assert one_line_error("something\nodd  happened") == "error: something odd happened"


def test_an_unknown_exception_is_its_own_class() -> None:
    tb = ('Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\n'
          "ValueError: Error: Unable to retrieve usage information\n\nThis error occurs when:\n"
          "1. The API response does not contain usage data, AND\n2. No tokenizer has been specified or found.\n")
    line = one_line_error(tb)
    assert line.startswith("ValueError: Error: Unable to retrieve usage information This error occurs when: 1. The")
    assert error_class(line) == "ValueError" and one_line_error(line) == line


def test_cut_to_the_limit() -> None:
    line = one_line_error("x" * 1000)
    assert len(line) == 240 and line.endswith("…") and line.startswith("error: xxx")
    assert len(one_line_error(CAPTURED["reset"]["error"], limit=60)) == 60
    assert one_line_error("HTTP 422: " + "y" * 500) == one_line_error(one_line_error("HTTP 422: " + "y" * 500))


def test_error_class() -> None:
    assert error_class("HTTP 422: Unexpected fields in the request: {'min_tokens'}") == "HTTP 422"
    assert error_class("empty reply: no content chunk") == "empty reply"
    assert error_class("connection refused: Cannot connect to host 127.0.0.1:9: x") == "connection refused"
    assert error_class("no separator") == "no separator"
    assert error_class("") == ""


def test_summarize_counts_by_class_most_frequent_first() -> None:
    rows = [
        ("HTTP 422: Unexpected fields in the request: {'ignore_eos', 'min_tokens'}", 30),
        ("empty reply: no content chunk", 7),
        ("empty reply: 0 output tokens", 9),
        (CAPTURED["refused"]["error"], 4),  # an old store's traceback
        ("connection refused: Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]",
         5),
        ("timeout: Timeout on reading data from socket", 9),
        (None, 1),
        ("HTTP 500", 0),  # no failure
    ]
    assert summarize(rows) == [
        FailureClass("HTTP 422", 30, "HTTP 422: Unexpected fields in the request: {'ignore_eos', 'min_tokens'}"),
        FailureClass("empty reply", 16, "empty reply: 0 output tokens"),
        FailureClass("connection refused", 9, EXPECTED["refused"]),
        FailureClass("timeout", 9, "timeout: Timeout on reading data from socket"),
        FailureClass("request failed", 1, "request failed: no error text"),
    ]
    assert summarize([]) == []
