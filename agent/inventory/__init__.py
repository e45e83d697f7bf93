"""The agent's hardware and software inventory.

`collect()` runs one collector per source in daemon threads and returns within
`deadline_s` even when a tool hangs: a collector that has not finished by then,
a missing tool, a permission error or output that cannot be parsed becomes a
`NotAvailable` ("not available: <reason>") on that field, never an exception.
The result is the shared pydantic model `fleetbench.inventory.Inventory`; its JSON
(`model_dump_json()`) is the document described in docs/inventory.md.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from fleetbench.inventory import (
    SCHEMA,
    Accelerator,
    AmdInfo,
    AscendInfo,
    CpuInfo,
    Disk,
    EngineInfo,
    HygonInfo,
    Inventory,
    MemoryInfo,
    NetInfo,
    NotAvailable,
    NvidiaInfo,
    OsRelease,
    RuntimeVersion,
    format_bytes,
    format_dimm,
)

from . import amd as amd_mod
from . import ascend as ascend_mod
from . import cpu as cpu_mod
from . import disks as disks_mod
from . import engine as engine_mod
from . import hygon as hygon_mod
from . import memory as memory_mod
from . import nics as nics_mod
from . import nvidia as nvidia_mod
from . import system as system_mod

# The data types live in fleetbench/inventory.py (the controller reads them too); re-exported here.
__all__ = [
    "SCHEMA", "Accelerator", "AmdInfo", "AscendInfo", "CpuInfo", "Disk", "EngineInfo", "HygonInfo", "Inventory",
    "MemoryInfo", "NetInfo", "NotAvailable", "NvidiaInfo", "OsRelease", "RuntimeVersion", "collect", "format_bytes",
    "format_dimm",
]


# ---------------------------------------------------------------- collection

Collector = Callable[[float], Any]


def _collectors(endpoint_url: str | None) -> dict[str, Collector]:
    return {
        "cpu": cpu_mod.collect,
        "memory": memory_mod.collect,
        "nvidia": nvidia_mod.collect,
        "ascend": ascend_mod.collect,
        "hygon": hygon_mod.collect,
        "amd": amd_mod.collect,
        "disks": disks_mod.collect,
        "network": lambda _d: nics_mod.collect(),
        "os_release": lambda _d: system_mod.collect_os(),
        "kernel_release": lambda _d: system_mod.collect_kernel(),
        "container_runtimes": system_mod.collect_runtimes,
        "evalscope_version": lambda _d: system_mod.evalscope_version(),
        "engine": lambda _d: engine_mod.probe(endpoint_url),
    }


def collect(endpoint_url: str | None = None, deadline_s: float = 10.0) -> Inventory:
    """Collect everything within `deadline_s` seconds; never raises for a source that fails."""
    start = time.monotonic()
    # Leave a little room for assembling the result; tools get the rest.
    deadline = start + max(0.2, deadline_s - 0.3)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    lock = threading.Lock()

    def run(name: str, fn: Collector) -> None:
        t0 = time.monotonic()
        try:
            value = fn(deadline)
        except Exception as exc:  # a collector bug must not take the inventory down
            value = NotAvailable(f"{name} collector failed: {type(exc).__name__}: {exc}")
        with lock:
            results[name] = value
            timings[name] = round(time.monotonic() - t0, 3)

    threads = []
    for name, fn in _collectors(endpoint_url).items():
        t = threading.Thread(target=run, args=(name, fn), name=f"inventory-{name}", daemon=True)
        t.start()
        threads.append((name, t))
    for _name, t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        snapshot = dict(results)
        times = dict(timings)
    for name, _t in threads:
        if name not in snapshot:
            snapshot[name] = NotAvailable(f"{name} did not answer within the {deadline_s:g} s deadline")
    return _assemble(snapshot, times)


def _assemble(sections: dict[str, Any], timings: dict[str, float]) -> Inventory:
    """The Inventory of what the collectors returned; a section the model refuses (a collector bug) becomes
    a NotAvailable naming the problem, like any other failure, instead of losing the whole inventory."""

    def build() -> Inventory:
        return Inventory(hostname=socket.gethostname(), collected_at=time.time(),
                         python_version=system_mod.python_version(), timings_s=timings, **sections)

    try:
        return build()
    except ValidationError as exc:
        sections = dict(sections)
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            if name in sections and not isinstance(sections[name], NotAvailable):
                sections[name] = NotAvailable(f"{name} collector returned a value that does not fit the "
                                              f"inventory: {err['msg']}")
        return build()
