"""Disks: `lsblk -J -b -d -o NAME,SIZE,TYPE,MODEL,ROTA,TRAN`."""

from __future__ import annotations

import json

from fleetbench.inventory import Disk

from ._common import NotAvailable, clean, remaining, run_tool, to_int


def _bool(v: object) -> bool | None:
    if isinstance(v, bool):
        return v
    if v in ("1", 1):
        return True
    if v in ("0", 0):
        return False
    return None


def parse_lsblk_json(text: str) -> tuple[Disk, ...] | NotAvailable:
    """Parse `lsblk -J -b …`: whole disks only (type "disk"), zero-size devices (zram, empty) left out."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return NotAvailable("lsblk printed no valid JSON")
    devs = doc.get("blockdevices") if isinstance(doc, dict) else None
    if not isinstance(devs, list):
        return NotAvailable("lsblk JSON has no blockdevices list")
    disks: list[Disk] = []
    for d in devs:
        if not isinstance(d, dict) or str(d.get("type", "")) != "disk":
            continue
        size = to_int(d.get("size"))
        if not size:
            continue
        disks.append(Disk(name=clean(d.get("name")), size_bytes=size, model=clean(d.get("model")),
                          rotational=_bool(d.get("rota")), transport=clean(d.get("tran"))))
    return tuple(disks)


def collect(deadline: float | None = None) -> tuple[Disk, ...] | NotAvailable:
    out = run_tool(["lsblk", "-J", "-b", "-d", "-o", "NAME,SIZE,TYPE,MODEL,ROTA,TRAN"],
                   timeout=remaining(deadline, 5.0))
    if out.error is not None:
        return out.error
    return parse_lsblk_json(out.stdout)
