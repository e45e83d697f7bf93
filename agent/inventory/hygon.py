"""Hygon DCUs: `hy-smi` (DTK's rocm-smi on older stacks).

Two driver generations print the same table with different labels: the `hydcu`
driver (≤ 6.2) labels devices "DCU", the newer `hycu` driver (≥ 6.3) "HCU".
Per-device details come as "HCU[0]  : Key: value" lines (`hy-smi -a`,
`--showproductname`, `--showmeminfo vram`, `--showdriverversion`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from fleetbench.inventory import Dcu, HygonInfo

from ._common import NotAvailable, clean, remaining, run_tool, to_float, to_int


@dataclass(frozen=True, slots=True)
class HyTable:
    generation: str
    rows: tuple[Dcu, ...]


def parse_hy_smi_table(text: str) -> HyTable | NotAvailable:
    """Parse the default `hy-smi` table (either generation)."""
    lines = text.splitlines()
    hdr_i = next((i for i, ln in enumerate(lines) if re.match(r"^\s*(DCU|HCU)\s+Temp\b", ln)), None)
    if hdr_i is None:
        return NotAvailable("hy-smi printed no DCU/HCU table header")
    header = lines[hdr_i].split()
    gen = "hycu" if header[0] == "HCU" else "hydcu"
    col = {h.lower(): j for j, h in enumerate(header)}
    rows: list[Dcu] = []
    for ln in lines[hdr_i + 1:]:
        parts = ln.split()
        if not parts or not parts[0].isdigit():
            if ln.strip().startswith("="):
                break
            continue

        def cell(name: str, parts: list[str] = parts) -> str:
            j = col.get(name)
            return parts[j] if j is not None and j < len(parts) else ""

        util = cell("dcu%") or cell("hcu%")
        rows.append(
            Dcu(
                index=int(parts[0]),
                temperature_c=to_float(cell("temp")),
                power_w=to_float(cell("avgpwr")),
                power_cap_w=to_float(cell("pwrcap")),
                vram_percent=to_float(cell("vram%")),
                util_percent=to_float(util),
                perf=clean(cell("perf")),
                mode=clean(cell("mode")),
            )
        )
    if not rows:
        return NotAvailable("hy-smi table has no device rows")
    return HyTable(generation=gen, rows=tuple(rows))


_KV = re.compile(r"^\s*(DCU|HCU|GPU)\[(\d+)\]\s*:\s*(.+?)\s*:\s*(.*?)\s*$")


def parse_hy_smi_kv(text: str) -> dict[int, dict[str, str]]:
    """Parse "HCU[0]  : Card Series:  K100_AI" lines into {0: {"Card Series": "K100_AI"}}."""
    out: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        m = _KV.match(line)
        if m:
            out.setdefault(int(m.group(2)), {}).setdefault(m.group(3), m.group(4))
    return out


def _driver_from_kv(text: str) -> str:
    for line in text.splitlines():
        if "driver version" in line.lower():
            return clean(line.split(":")[-1])
    return ""


def merge(table: HyTable, kv: dict[int, dict[str, str]], driver: str = "") -> HygonInfo:
    dcus = []
    for row in table.rows:
        d = kv.get(row.index, {})
        name = clean(d.get("Card Series") or d.get("Card series") or d.get("Card Model") or "")
        total_b = to_int(d.get("vram Total Memory (B)") or d.get("VRAM Total Memory (B)"))
        avail = to_int(d.get("Available memory size (MiB)"))
        dcus.append(
            row.model_copy(update={"name": name, "vram_total_mib": total_b // (1 << 20) if total_b else None,
                                   "vram_available_mib": avail})
        )
    return HygonInfo(generation=table.generation, dcus=tuple(dcus), driver_version=driver)


def dtk_version_from_path(target: str) -> str | NotAvailable:
    """The DTK version from the /opt/dtk symlink target, e.g. "/opt/dtk-24.04.1" → "24.04.1"."""
    m = re.search(r"dtk-?(\d+(?:\.\d+)+)", target)
    return m.group(1) if m else NotAvailable(f"no DTK version in {target!r}")


def collect_dtk() -> str | NotAvailable:
    for path in ("/opt/dtk", os.environ.get("ROCM_PATH", "")):
        if path and os.path.exists(path):
            return dtk_version_from_path(os.path.realpath(path))
    return NotAvailable("no DTK found at /opt/dtk")


def collect(deadline: float | None = None) -> HygonInfo | NotAvailable:
    out = run_tool(["hy-smi"], timeout=remaining(deadline, 8.0))
    if out.error is not None:
        return out.error
    table = parse_hy_smi_table(out.stdout)
    if isinstance(table, NotAvailable):
        return table
    kv: dict[int, dict[str, str]] = {}
    for args in (["--showproductname"], ["--showmeminfo", "vram"], ["--showmemavailable"]):
        extra = run_tool(["hy-smi", *args], timeout=remaining(deadline, 5.0))
        if extra.error is None:
            for k, v in parse_hy_smi_kv(extra.stdout).items():
                kv.setdefault(k, {}).update(v)
    drv = run_tool(["hy-smi", "--showdriverversion"], timeout=remaining(deadline, 5.0))
    info = merge(table, kv, _driver_from_kv(drv.stdout) if drv.error is None else "")
    return HygonInfo(generation=info.generation, dcus=info.dcus, driver_version=info.driver_version,
                     dtk_version=collect_dtk())
