"""Shared pieces of the inventory collectors.

Every collector is split in two: a PURE parser (captured text in, a frozen pydantic
model of fleetbench/inventory.py out, never raises on bad input) and a thin runner that executes
the tool with an argument list (never a shell string) and a timeout. Anything that
cannot be read becomes a `NotAvailable` carrying the reason, which serialises
to the string ``"not available: <reason>"``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

# The data types are shared with the controller (fleetbench/inventory.py); re-exported for the collectors.
from fleetbench.inventory import NA_PREFIX as NA_PREFIX
from fleetbench.inventory import NOT_COLLECTED as NOT_COLLECTED
from fleetbench.inventory import NotAvailable as NotAvailable
from fleetbench.inventory import is_na as is_na


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a tool printed, or why it could not be run."""

    stdout: str = ""
    error: NotAvailable | None = None


def remaining(deadline: float | None, cap: float) -> float:
    """Seconds a step may take: at most `cap`, and never past `deadline` (monotonic)."""
    if deadline is None:
        return cap
    return max(0.05, min(cap, deadline - time.monotonic()))


def run_tool(argv: list[str], *, timeout: float, env_c: bool = True) -> ToolOutput:
    """Run one tool without a shell; turn every failure into a NotAvailable reason."""
    exe = shutil.which(argv[0])
    if exe is None:
        return ToolOutput(error=NotAvailable(f"{argv[0]} not found"))
    env = dict(os.environ)
    if env_c:
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
    try:
        proc = subprocess.run(
            [exe, *argv[1:]], capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        return ToolOutput(error=NotAvailable(f"{argv[0]} timed out after {timeout:.1f} s"))
    except PermissionError:
        return ToolOutput(error=NotAvailable(f"{argv[0]}: permission denied"))
    except OSError as exc:
        return ToolOutput(error=NotAvailable(f"{argv[0]}: {exc.strerror or exc}"))
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        text = (err.strip() or out.strip()).splitlines()
        first = text[0][:200] if text else f"exit status {proc.returncode}"
        if "permission denied" in (err + out).lower():
            return ToolOutput(stdout=out, error=NotAvailable(f"{argv[0]}: permission denied ({first})"))
        return ToolOutput(stdout=out, error=NotAvailable(f"{argv[0]} failed: {first}"))
    return ToolOutput(stdout=out)


def read_text(path: str, limit: int = 1 << 20) -> str | NotAvailable:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except FileNotFoundError:
        return NotAvailable(f"{path} does not exist")
    except PermissionError:
        return NotAvailable(f"{path}: permission denied")
    except OSError as exc:
        return NotAvailable(f"{path}: {exc.strerror or exc}")


_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")


def to_int(text: object) -> int | None:
    """First integer in `text` ("143771 MiB" → 143771); None when there is none."""
    if isinstance(text, bool):
        return int(text)
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        return int(text) if text == text and abs(text) < 1e18 else None
    if not isinstance(text, str):
        return None
    m = _NUM.search(text)
    if m is None:
        return None
    try:
        return int(float(m.group(0)))
    except (ValueError, OverflowError):
        return None


def to_float(text: object) -> float | None:
    if isinstance(text, bool):
        return float(text)
    if isinstance(text, int | float):
        return float(text) if text == text else None
    if not isinstance(text, str):
        return None
    m = _NUM.search(text)
    if m is None:
        return None
    try:
        return float(m.group(0))
    except (ValueError, OverflowError):
        return None


def clean(text: object) -> str:
    """A trimmed string; "" for None, "N/A" and the like."""
    if text is None:
        return ""
    s = str(text).strip()
    return "" if s in {"N/A", "[N/A]", "[Not Supported]", "Not Supported", "None", "null", "-"} else s
