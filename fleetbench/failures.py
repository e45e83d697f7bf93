"""Failed requests' errors as one classified line, and failures counted by class.

evalscope keeps whatever a failure produced: an HTTP error body (JSON, text
or an HTML page from a proxy), a JSON error event sent inside an HTTP 200
stream, or a full Python traceback of 1-3 KB from aiohttp (connection
refused, server disconnected, payload not completed, socket read timeout).
`one_line_error` turns each into ONE line "<class>: <detail>" such as

    HTTP 422: Unexpected fields in the request: {'ignore_eos', 'min_tokens'}
    connection refused: Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ('127.0.0.1', 9)]
    payload incomplete: Response payload is not completed: <TransferEncodingError: 400, ...>
    timeout: Timeout on reading data from socket
    empty reply: no content chunk

so a report can count failures by class (`summarize`) and show one example of
each. The function is idempotent: a line it made comes back unchanged.
Pure code: no evalscope or aiohttp import.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLASSES",
    "EMPTY_NO_CHUNK",
    "EMPTY_NO_TOKENS",
    "FailureClass",
    "error_class",
    "one_line_error",
    "summarize",
]

LIMIT = 240

# The classes `one_line_error` gives besides "HTTP <status>" and an unknown exception's own name.
CLASSES = (
    "connection refused",  # nothing listens at the address (ECONNREFUSED)
    "connection reset",  # the server closed or reset the connection before a reply (ServerDisconnectedError, RST)
    "connection failed",  # any other failure to connect (unreachable network, TLS)
    "name not resolved",  # DNS
    "payload incomplete",  # the reply started, then the connection ended before it was complete
    "timeout",  # no data within the client's read / total timeout
    "empty reply",  # HTTP 200 with nothing generated (set by the adapter, not by evalscope)
    "stream error",  # an error event inside an HTTP 200 stream (vLLM, SGLang)
    "server error",  # a JSON error body whose HTTP status is unknown
    "request failed",  # no error text at all
    "error",  # any other text
)
EMPTY_NO_CHUNK = "empty reply: no content chunk"
EMPTY_NO_TOKENS = "empty reply: 0 output tokens"

_KNOWN_LINE = re.compile(r"^(?:HTTP \d{3}|" + "|".join(re.escape(c) for c in CLASSES) + r"): \S")
_EXCEPTION_NAME = re.compile(
    r"(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*|[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning|error)"
)
_CHAIN_MARKERS = ("The above exception was the direct cause", "During handling of the above exception")
_TIMEOUTS = {"TimeoutError", "SocketTimeoutError", "ServerTimeoutError", "ConnectionTimeoutError", "ReadTimeout",
             "ConnectTimeout", "CancelledError"}


@dataclass(frozen=True)
class FailureClass:
    """Failed requests of one class: how many, and one of their lines (the most frequent)."""

    error_class: str
    count: int
    example: str


def _flat(text: str) -> str:
    return " ".join(text.split())


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: max(0, limit - 1)] + "…"


def _message_of(payload: Any) -> str | None:
    """The human message of a JSON error body: FastAPI's `detail` (a string or pydantic's list of errors),
    OpenAI's `error.message`, vLLM's top-level `message`, or a bare `error` string."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, list):
        parts = [_message_of(p) for p in payload]
        return "; ".join(p for p in parts if p) or None
    if not isinstance(payload, dict):
        return None
    detail = payload.get("detail")
    if isinstance(detail, list):  # pydantic: [{"loc": [...], "msg": "...", "type": "..."}]
        msgs = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(x) for x in item.get("loc") or [] if x != "body")
                msgs.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            elif item is not None:
                msgs.append(str(item))
        if msgs:
            return "; ".join(msgs)
    if detail not in (None, "", [], {}):
        return _message_of(detail) or json.dumps(detail)
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message
        return _message_of(error)
    if isinstance(error, str) and error:
        return error
    for key in ("message", "msg", "reason"):
        if isinstance(payload.get(key), str) and payload[key]:
            return str(payload[key])
    return None


def _body_detail(body: str) -> str:
    """The message of an HTTP error body: JSON's message, an HTML page's title or text, or the text itself."""
    text = body.strip()
    if not text:
        return "empty body"
    if text[:1] in "{[\"":
        try:
            message = _message_of(json.loads(text))
        except ValueError:
            message = None
        if message:
            return _flat(message)
    if text[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        inner = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        inner = _flat(html.unescape(inner))
        if inner:
            return inner
    return _flat(text)


def _final_exception(text: str) -> tuple[str, str, list[str]] | None:
    """(short exception name, message, names of the exceptions it was chained from) of a traceback's last
    exception (or of a single line "ExceptionName: message"), or None when `text` is neither."""
    lines = text.strip().splitlines()
    if "Traceback (most recent call last):" not in text and len(lines) != 1:
        return None
    # the exception line follows the last frame: the last unindented line that names an exception
    starts = [i for i, ln in enumerate(lines) if ln and not ln[0].isspace() and not ln.startswith(_CHAIN_MARKERS)
              and _EXCEPTION_NAME.fullmatch(ln.partition(":")[0])]
    if not starts:
        return None
    names = [lines[i].partition(":")[0].rsplit(".", 1)[-1] for i in starts]
    last = starts[-1]
    rest = lines[last].partition(":")[2]
    message = " ".join([rest.strip(), *(ln.strip() for ln in lines[last + 1:])]).strip()
    return names[-1], _flat(message), names[:-1]


def _classify_exception(name: str, message: str, causes: list[str]) -> str:
    low = message.lower()
    every = {name, *causes}
    if name == "ClientPayloadError" or "payload is not completed" in low:
        return "payload incomplete"
    if every & _TIMEOUTS or "timeout" in name.lower() or "timed out" in low or low.startswith("timeout"):
        return "timeout"
    if name in ("ClientConnectorDNSError", "gaierror") or "name or service not known" in low \
            or "temporary failure in name resolution" in low or "nodename nor servname" in low:
        return "name not resolved"
    if "ConnectionRefusedError" in every or "connect call failed" in low or "connection refused" in low \
            or "errno 111" in low:
        return "connection refused"
    if name in ("ServerDisconnectedError", "ConnectionResetError", "BrokenPipeError", "RemoteProtocolError") \
            or "ConnectionResetError" in every or "connection reset" in low or "server disconnected" in low \
            or "broken pipe" in low:
        return "connection reset"
    if name.startswith("ClientConnector") or name in ("ClientConnectionError", "ClientOSError", "OSError",
                                                        "ConnectionError", "SSLError", "ClientSSLError"):
        return "connection failed"
    return name


def _classify_text(text: str) -> str | None:
    """The class of a bare exception message (evalscope's http_client keeps `str(exc)`, no traceback)."""
    low = text.lower()
    if "payload is not completed" in low:
        return "payload incomplete"
    if "timeout on reading data" in low or low.startswith("connection timeout to host") or "timed out" in low:
        return "timeout"
    if low.startswith("cannot connect to host"):
        if "name or service not known" in low or "temporary failure in name resolution" in low:
            return "name not resolved"
        if "connect call failed" in low or "connection refused" in low:
            return "connection refused"
        return "connection failed"
    if low in ("server disconnected", "connection reset by peer") or "[errno 104]" in low:
        return "connection reset"
    return None


def one_line_error(text: str | None, status: int | None = None, limit: int = LIMIT) -> str:
    """Any failure text evalscope keeps, with the HTTP status when there was one, as ONE line
    "<class>: <detail>" of at most `limit` characters (see the module's docstring for the classes)."""
    raw = text or ""
    flat = _flat(raw)
    if status == 200:
        status = None
    if _KNOWN_LINE.match(flat) and "\n" not in raw.strip() and (status is None or flat.startswith(f"HTTP {status}: ")):
        return _cut(flat, limit)  # already one of ours: unchanged
    if status is not None:
        return _cut(f"HTTP {status}: {_body_detail(raw)}", limit)
    if not flat:
        return "request failed: no error text"
    if (m := re.fullmatch(r"HTTP (\d{3})", flat)) is not None:  # the old fallback when evalscope kept no body
        return f"HTTP {m.group(1)}: empty body"
    if (m := re.fullmatch(r"request failed(?: \((.+)\))?", flat)) is not None:  # the old fallbacks
        return _cut(f"request failed: {m.group(1) or 'no error text'}", limit)
    exc = _final_exception(raw)
    if exc is not None:
        name, message, causes = exc
        cls = _classify_exception(name, message, causes)
        detail = message or name
        if cls == "timeout" and not message:
            detail = f"{name} (no data within the client's read or total timeout)"
        return _cut(f"{cls}: {detail}", limit)
    if flat[:1] in "{[":
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if payload is not None:
            body_message = _message_of(payload)
            # vLLM/SGLang send errors inside an HTTP 200 stream as {"object": "error", ...} or {"error": ...}
            in_band = isinstance(payload, dict) and (payload.get("object") == "error" or "error" in payload)
            cls = "stream error" if in_band else "server error"
            return _cut(f"{cls}: {_flat(body_message) if body_message else flat}", limit)
    cls = _classify_text(flat) or "error"
    return _cut(f"{cls}: {flat}", limit)


def error_class(line: str) -> str:
    """The class of a line made by `one_line_error`: the part before the first ": " ("HTTP 422", "timeout")."""
    head, sep, _ = line.partition(": ")
    return head.strip() if sep else line.strip()


def summarize(counts: Iterable[tuple[str | None, int]]) -> list[FailureClass]:
    """Failures by class, most frequent first (then by class name), from (error line, count) pairs such as
    `SELECT error, count(*) FROM ... GROUP BY error` gives. Lines that are not one-lined yet (old stores
    keep tracebacks) are one-lined first; each class's example is its most frequent line."""
    totals: dict[str, int] = {}
    lines: dict[str, dict[str, int]] = {}
    for error, n in counts:
        if n <= 0:
            continue
        line = one_line_error(error)
        cls = error_class(line)
        totals[cls] = totals.get(cls, 0) + n
        per = lines.setdefault(cls, {})
        per[line] = per.get(line, 0) + n
    out = []
    for cls, total in totals.items():
        example = min(lines[cls].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        out.append(FailureClass(cls, total, example))
    return sorted(out, key=lambda f: (-f.count, f.error_class))
