"""AMD GPUs: `amd-smi static --json` (ROCm ≥ 6), else `rocm-smi --showproductname --showmeminfo vram --json`."""

from __future__ import annotations

import json
import re
from typing import Any

from fleetbench.inventory import AmdGpu, AmdInfo

from ._common import NotAvailable, clean, remaining, run_tool, to_int

_MIB = {"b": 1 / (1 << 20), "kb": 1 / 1024, "kib": 1 / 1024, "mb": 1, "mib": 1, "gb": 1024, "gib": 1024}


def _vram_mib(v: Any) -> int | None:
    if isinstance(v, dict):
        n, unit = v.get("value"), str(v.get("unit", "MB")).lower()
        num = to_int(n)
        return int(num * _MIB.get(unit, 1)) if num is not None else None
    if isinstance(v, str):
        m = re.match(r"\s*(\d+)\s*([A-Za-z]*)", v)
        if m:
            return int(int(m.group(1)) * _MIB.get(m.group(2).lower() or "mb", 1))
    return to_int(v)


def _sub(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def parse_amd_smi_json(text: str) -> AmdInfo | NotAvailable:
    """Parse `amd-smi static --json`: a list of GPUs, or {"gpu_data": [...]} in newer releases."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return NotAvailable("amd-smi printed no valid JSON")
    items = doc.get("gpu_data") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        return NotAvailable("amd-smi JSON of an unexpected shape")
    gpus: list[AmdGpu] = []
    for n, g in enumerate(items):
        if not isinstance(g, dict):
            continue
        asic, bus, drv, vram = (_sub(g, k) for k in ("asic", "bus", "driver", "vram"))
        idx = to_int(g.get("gpu"))
        gpus.append(
            AmdGpu(
                index=idx if idx is not None else n,
                name=clean(asic.get("market_name")),
                bus_id=clean(bus.get("bdf")),
                vram_total_mib=_vram_mib(vram.get("size", vram.get("vram_size"))),
                driver_version=clean(drv.get("version", drv.get("driver_version"))),
                gfx_version=clean(asic.get("target_graphics_version")),
            )
        )
    if not gpus:
        return NotAvailable("amd-smi lists no GPU")
    return AmdInfo(source="amd-smi static --json", gpus=tuple(gpus),
                   driver_version=next((g.driver_version for g in gpus if g.driver_version), ""))


def parse_amd_smi_static_text(text: str) -> AmdInfo | NotAvailable:
    """Parse plain `amd-smi static` ("GPU: 0" blocks with indented SECTION: / KEY: value lines)."""
    gpus: list[AmdGpu] = []
    cur: dict[str, str] | None = None
    section = ""
    blocks: list[tuple[int, dict[str, str]]] = []
    for line in text.splitlines():
        m = re.match(r"^GPU:\s*(\d+)\s*$", line.strip())
        if m and not line.startswith(" "):
            cur = {}
            blocks.append((int(m.group(1)), cur))
            continue
        if cur is None or not line.strip():
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        if not value.strip():
            section = key.strip().upper()
        else:
            cur.setdefault(f"{section}.{key.strip().upper()}", value.strip())
    for idx, d in blocks:
        gpus.append(
            AmdGpu(
                index=idx,
                name=clean(d.get("ASIC.MARKET_NAME")),
                bus_id=clean(d.get("BUS.BDF")),
                vram_total_mib=_vram_mib(d.get("VRAM.SIZE", "")) if d.get("VRAM.SIZE") else None,
                driver_version=clean(d.get("DRIVER.VERSION")),
                gfx_version=clean(d.get("ASIC.TARGET_GRAPHICS_VERSION")),
            )
        )
    if not gpus:
        return NotAvailable("amd-smi static lists no GPU")
    return AmdInfo(source="amd-smi static", gpus=tuple(gpus),
                   driver_version=next((g.driver_version for g in gpus if g.driver_version), ""))


def parse_rocm_smi_json(text: str) -> AmdInfo | NotAvailable:
    """Parse `rocm-smi … --json`: {"card0": {...}, "system": {"Driver version": ...}}."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return NotAvailable("rocm-smi printed no valid JSON")
    if not isinstance(doc, dict):
        return NotAvailable("rocm-smi JSON of an unexpected shape")
    gpus: list[AmdGpu] = []
    for key, card in doc.items():
        m = re.fullmatch(r"card(\d+)", str(key))
        if not m or not isinstance(card, dict):
            continue
        c = {str(k).lower(): v for k, v in card.items()}
        name = clean(c.get("card series") or c.get("device name") or c.get("card model"))
        total_b = to_int(c.get("vram total memory (b)"))
        gpus.append(
            AmdGpu(
                index=int(m.group(1)), name=name, bus_id=clean(c.get("pci bus")),
                vram_total_mib=total_b // (1 << 20) if total_b else None,
                gfx_version=clean(c.get("gfx version")),
            )
        )
    if not gpus:
        return NotAvailable("rocm-smi lists no card")
    system = _sub(doc, "system")
    driver = clean(system.get("Driver version"))
    gpus.sort(key=lambda g: g.index)
    return AmdInfo(source="rocm-smi --json", gpus=tuple(gpus), driver_version=driver)


def collect(deadline: float | None = None) -> AmdInfo | NotAvailable:
    out = run_tool(["amd-smi", "static", "--json"], timeout=remaining(deadline, 8.0))
    reason = ""
    if out.error is None:
        info = parse_amd_smi_json(out.stdout)
        if not isinstance(info, NotAvailable):
            return info
        reason = info.reason
    else:
        reason = out.error.reason
    rs = run_tool(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json"],
                  timeout=remaining(deadline, 8.0))
    if rs.error is not None:
        return NotAvailable(f"{reason}; {rs.error.reason}")
    return parse_rocm_smi_json(rs.stdout)
