"""CPU: `lscpu -J` (JSON) or plain `lscpu`; x86_64 Intel/AMD/Hygon and aarch64 Kunpeng."""

from __future__ import annotations

import json
from typing import Any

from fleetbench.inventory import CpuInfo

from ._common import NotAvailable, clean, remaining, run_tool, to_int


def _from_fields(fields: dict[str, str]) -> CpuInfo | NotAvailable:
    def get(*keys: str) -> str:
        for k in keys:
            v = clean(fields.get(k))
            if v:
                return v
        return ""

    model = get("Model name", "BIOS Model name")
    arch = get("Architecture")
    logical = to_int(get("CPU(s)"))
    if not model and not arch and logical is None:
        return NotAvailable("lscpu output has no Model name, Architecture or CPU(s)")
    sockets = to_int(get("Socket(s)"))
    if sockets is None:  # lscpu on some aarch64 kernels reports clusters, not sockets
        sockets = to_int(get("Cluster(s)"))
    return CpuInfo(
        model=model,
        vendor=get("Vendor ID", "BIOS Vendor ID"),
        architecture=arch,
        sockets=sockets,
        cores_per_socket=to_int(get("Core(s) per socket", "Core(s) per cluster")),
        threads_per_core=to_int(get("Thread(s) per core")),
        logical_cpus=logical,
        numa_nodes=to_int(get("NUMA node(s)")),
    )


def _walk(entries: Any, out: dict[str, str]) -> None:
    if not isinstance(entries, list):
        return
    for e in entries:
        if not isinstance(e, dict):
            continue
        field = e.get("field")
        data = e.get("data")
        if isinstance(field, str):
            key = field.strip().rstrip(":").strip()
            if key and key not in out and data is not None:
                out[key] = str(data)
        _walk(e.get("children"), out)


def parse_lscpu_json(text: str) -> CpuInfo | NotAvailable:
    """Parse `lscpu -J` (flat, or nested with "children" as in util-linux ≥ 2.38)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return NotAvailable("lscpu -J printed no valid JSON")
    if not isinstance(doc, dict):
        return NotAvailable("lscpu -J printed JSON of an unexpected shape")
    fields: dict[str, str] = {}
    _walk(doc.get("lscpu"), fields)
    return _from_fields(fields)


def parse_lscpu_text(text: str) -> CpuInfo | NotAvailable:
    """Parse plain `lscpu` ("Key:   value" lines)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key and key not in fields:
            fields[key] = value.strip()
    return _from_fields(fields)


def collect(deadline: float | None = None) -> CpuInfo | NotAvailable:
    out = run_tool(["lscpu", "-J"], timeout=remaining(deadline, 5.0))
    if out.error is None:
        info = parse_lscpu_json(out.stdout)
        if not isinstance(info, NotAvailable):
            return info
    plain = run_tool(["lscpu"], timeout=remaining(deadline, 5.0))
    if plain.error is not None:
        return plain.error
    return parse_lscpu_text(plain.stdout)
