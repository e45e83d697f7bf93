"""Memory: /proc/meminfo, `free -b`, and per-DIMM detail from `dmidecode -t 17` (root only)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from fleetbench.inventory import Dimm, MemoryInfo

from ._common import NotAvailable, clean, read_text, remaining, run_tool, to_int


@dataclass(frozen=True, slots=True)
class MemTotals:
    total_bytes: int | None
    available_bytes: int | None
    swap_total_bytes: int | None


def parse_meminfo(text: str) -> MemTotals | NotAvailable:
    """Parse /proc/meminfo (values in kB = KiB)."""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        n = to_int(rest)
        if n is None or n < 0:
            continue
        unit = rest.strip().split()[-1].lower() if rest.strip() else ""
        vals[key.strip()] = n * 1024 if unit == "kb" else n
    if "MemTotal" not in vals:
        return NotAvailable("/proc/meminfo has no MemTotal line")
    return MemTotals(vals["MemTotal"], vals.get("MemAvailable"), vals.get("SwapTotal"))


def parse_free(text: str) -> MemTotals | NotAvailable:
    """Parse `free -b`: the Mem: row's total and available columns, the Swap: row's total."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return NotAvailable("free printed nothing")
    header = lines[0].split()
    total = avail = swap = None
    for ln in lines[1:]:
        parts = ln.split()
        if not parts:
            continue
        nums = [to_int(p) if p.isdigit() else None for p in parts[1:]]
        if parts[0] == "Mem:" and nums and nums[0] is not None:
            total = nums[0]
            if "available" in header:
                i = header.index("available")
                avail = nums[i] if i < len(nums) else None
        elif parts[0] == "Swap:" and nums:
            swap = nums[0]
    if total is None:
        return NotAvailable("free output has no Mem: total")
    return MemTotals(total, avail, swap)


_UNITS = {"b": 1, "bytes": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20,
          "gb": 1 << 30, "gib": 1 << 30, "tb": 1 << 40, "tib": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def _dmi_size(text: str) -> int | None:
    """dmidecode sizes are binary whatever the label: "16 GB", "16384 MB", "32 GiB"."""
    m = _SIZE.match(text)
    if m is None:
        return None
    mult = _UNITS.get(m.group(2).lower())
    if mult is None:
        return None
    try:
        return int(float(m.group(1)) * mult)
    except (ValueError, OverflowError):
        return None


def parse_dmidecode_memory(text: str) -> tuple[tuple[Dimm, ...], int] | NotAvailable:
    """Parse `dmidecode -t 17` (or full `dmidecode`): populated DIMMs and the slot count.

    Only "Memory Device" records count; empty slots ("No Module Installed") and
    non-DRAM devices (Flash/ROM chips) are left out of the DIMM list.
    """
    low = text.lower()
    if "permission denied" in low or "no smbios nor dmi entry point found" in low:
        return NotAvailable("dmidecode cannot read SMBIOS tables: needs root")
    records: list[dict[str, str]] = []
    cur: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("Handle "):
            cur = None
            continue
        if line.strip() == "Memory Device" and not line.startswith("\t"):
            cur = {}
            records.append(cur)
            continue
        if cur is None:
            continue
        if not line.strip():
            cur = None
            continue
        if line.startswith("\t\t") or line.startswith("        \t"):
            continue
        key, sep, value = line.strip().partition(":")
        if sep and key not in cur:
            cur[key.strip()] = value.strip()
    if not records:
        return NotAvailable("dmidecode printed no Memory Device records")
    dimms: list[Dimm] = []
    for r in records:
        size = _dmi_size(r.get("Size", ""))
        mtype = clean(r.get("Type"))
        if size is None or size <= 0:
            continue
        if mtype.lower() in {"flash", "rom", "eeprom", "sram"} or r.get("Form Factor", "").lower() == "chip":
            continue
        speed = r.get("Speed", "")
        conf = r.get("Configured Memory Speed", r.get("Configured Clock Speed", ""))
        dimms.append(
            Dimm(
                locator=clean(r.get("Locator")),
                size_bytes=size,
                type=mtype if mtype.lower() != "unknown" else "",
                speed_mts=to_int(speed) if "unknown" not in speed.lower() else None,
                configured_speed_mts=to_int(conf) if "unknown" not in conf.lower() else None,
                manufacturer=clean(r.get("Manufacturer")),
                part_number=clean(r.get("Part Number")),
            )
        )
    return tuple(dimms), len(records)


def collect_dimms(deadline: float | None = None) -> tuple[tuple[Dimm, ...], int] | NotAvailable:
    if hasattr(os, "geteuid") and os.geteuid() != 0 and not os.access("/sys/firmware/dmi/tables/DMI", os.R_OK):
        return NotAvailable("dmidecode needs root (SMBIOS tables are readable by root only)")
    out = run_tool(["dmidecode", "-t", "17"], timeout=remaining(deadline, 5.0))
    if out.error is not None:
        if "permission denied" in out.error.reason:
            return NotAvailable("dmidecode needs root")
        return out.error
    return parse_dmidecode_memory(out.stdout)


def collect(deadline: float | None = None) -> MemoryInfo | NotAvailable:
    totals: MemTotals | NotAvailable
    raw = read_text("/proc/meminfo")
    totals = parse_meminfo(raw) if isinstance(raw, str) else raw
    if isinstance(totals, NotAvailable):
        out = run_tool(["free", "-b"], timeout=remaining(deadline, 3.0))
        totals = out.error if out.error is not None else parse_free(out.stdout)
    dimm_result = collect_dimms(deadline)
    if isinstance(dimm_result, NotAvailable):
        dimms: tuple[Dimm, ...] | NotAvailable = dimm_result
        slots = None
    else:
        dimms, slots = dimm_result
    if isinstance(totals, NotAvailable):
        if isinstance(dimms, NotAvailable):
            return totals
        return MemoryInfo(total_bytes=None, available_bytes=None, swap_total_bytes=None, dimms=dimms,
                          dimm_slots=slots)
    return MemoryInfo(total_bytes=totals.total_bytes, available_bytes=totals.available_bytes,
                      swap_total_bytes=totals.swap_total_bytes, dimms=dimms, dimm_slots=slots)
