"""The agent's hardware and software inventory.

`collect()` runs one collector per source in daemon threads and returns within
`deadline_s` even when a tool hangs: a collector that has not finished by then,
a missing tool, a permission error or output that cannot be parsed becomes a
`NotAvailable` ("not available: <reason>") on that field, never an exception.
`Inventory.to_dict()` is the JSON document described in docs/inventory.md.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import types
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

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
from ._common import NotAvailable
from .amd import AmdInfo
from .ascend import AscendInfo
from .cpu import CpuInfo
from .disks import Disk
from .engine import EngineInfo
from .hygon import HygonInfo
from .memory import MemoryInfo
from .nics import NetInfo
from .nvidia import NvidiaInfo
from .system import OsRelease, RuntimeVersion

SCHEMA = "fleetbench.inventory/1"

__all__ = ["SCHEMA", "Accelerator", "Inventory", "NotAvailable", "collect", "format_bytes"]


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One accelerator of any vendor, in the shape the gRPC reply carries.

    `cuda_version` holds the accelerator's toolkit version: CUDA for NVIDIA,
    CANN for Ascend, DTK for Hygon (empty when unknown).
    """

    vendor: str
    index: int
    name: str
    uuid: str
    memory_total_mib: int
    driver_version: str
    cuda_version: str


def _na_str(v: object) -> str:
    return "" if isinstance(v, NotAvailable) else str(v)


@dataclass(frozen=True, slots=True)
class Inventory:
    hostname: str
    collected_at: float
    cpu: CpuInfo | NotAvailable
    memory: MemoryInfo | NotAvailable
    nvidia: NvidiaInfo | NotAvailable
    ascend: AscendInfo | NotAvailable
    hygon: HygonInfo | NotAvailable
    amd: AmdInfo | NotAvailable
    disks: tuple[Disk, ...] | NotAvailable
    network: NetInfo | NotAvailable
    os_release: OsRelease | NotAvailable
    kernel_release: str | NotAvailable
    container_runtimes: tuple[RuntimeVersion, ...] | NotAvailable
    python_version: str
    evalscope_version: str | NotAvailable
    engine: EngineInfo | NotAvailable
    timings_s: dict[str, float] = field(default_factory=dict)
    schema: str = SCHEMA

    # ------------------------------------------------------------ convenience views

    @property
    def cpu_model(self) -> str:
        return "" if isinstance(self.cpu, NotAvailable) else self.cpu.model

    @property
    def cpu_count(self) -> int:
        """Logical CPUs."""
        if isinstance(self.cpu, NotAvailable) or self.cpu.logical_cpus is None:
            return 0
        return self.cpu.logical_cpus

    @property
    def memory_total_bytes(self) -> int:
        if isinstance(self.memory, NotAvailable) or self.memory.total_bytes is None:
            return 0
        return self.memory.total_bytes

    @property
    def os(self) -> str:
        return "" if isinstance(self.os_release, NotAvailable) else self.os_release.pretty_name

    @property
    def kernel(self) -> str:
        return _na_str(self.kernel_release)

    @property
    def accelerators(self) -> list[Accelerator]:
        out: list[Accelerator] = []
        if not isinstance(self.nvidia, NotAvailable):
            out += [Accelerator("nvidia", g.index, g.name, g.uuid, g.memory_total_mib, g.driver_version,
                                g.cuda_version) for g in self.nvidia.gpus]
        if not isinstance(self.ascend, NotAvailable):
            cann = _na_str(self.ascend.cann_version)
            out += [Accelerator("ascend", n.npu_id if n.chip_id == 0 else n.npu_id * 100 + n.chip_id,
                                f"Ascend {n.name}" if not n.name.lower().startswith("ascend") else n.name, "",
                                n.hbm_total_mb or 0, self.ascend.npu_smi_version, cann) for n in self.ascend.npus]
        if not isinstance(self.hygon, NotAvailable):
            dtk = _na_str(self.hygon.dtk_version)
            out += [Accelerator("hygon", d.index, f"Hygon {d.name}" if d.name else "Hygon DCU", "",
                                d.vram_total_mib or 0, self.hygon.driver_version, dtk) for d in self.hygon.dcus]
        if not isinstance(self.amd, NotAvailable):
            out += [Accelerator("amd", g.index, g.name, "", g.vram_total_mib or 0, g.driver_version or
                                self.amd.driver_version, "") for g in self.amd.gpus]
        return out

    @property
    def gpus(self) -> list[Accelerator]:
        """Every accelerator (NVIDIA GPUs, Ascend NPUs, Hygon DCUs, AMD GPUs)."""
        return self.accelerators

    @property
    def driver_version(self) -> str:
        vals = sorted({a.driver_version for a in self.accelerators if a.driver_version})
        return ", ".join(vals)

    @property
    def toolkit(self) -> str:
        """"CUDA 13.0", "CANN 8.0.0", "DTK 24.04.1" (several joined by ", ")."""
        parts: list[str] = []
        if not isinstance(self.nvidia, NotAvailable) and self.nvidia.cuda_version:
            parts.append(f"CUDA {self.nvidia.cuda_version}")
        if not isinstance(self.ascend, NotAvailable) and not isinstance(self.ascend.cann_version, NotAvailable):
            parts.append(f"CANN {self.ascend.cann_version}")
        if not isinstance(self.hygon, NotAvailable) and not isinstance(self.hygon.dtk_version, NotAvailable):
            parts.append(f"DTK {self.hygon.dtk_version}")
        return ", ".join(parts)

    def nvlinks_down(self) -> list[str]:
        if isinstance(self.nvidia, NotAvailable):
            return []
        return [f"GPU{g.index} link {n}" for g in self.nvidia.gpus for n in g.nvlinks_down]

    def ecc_uncorrected(self) -> dict[int, int]:
        """GPU index → uncorrected ECC errors (the larger of the volatile and aggregate counts), only when > 0."""
        if isinstance(self.nvidia, NotAvailable):
            return {}
        out: dict[int, int] = {}
        for g in self.nvidia.gpus:
            n = max(g.ecc_uncorrected_volatile or 0, g.ecc_uncorrected_aggregate or 0)
            if n > 0:
                out[g.index] = n
        return out

    def mig_enabled(self) -> list[int]:
        if isinstance(self.nvidia, NotAvailable):
            return []
        return [g.index for g in self.nvidia.gpus if g.mig_enabled]

    def memory_size_bytes(self) -> int:
        """Installed memory: the DIMM total when dmidecode could be read, else MemTotal."""
        if isinstance(self.memory, NotAvailable):
            return 0
        return self.memory.dimm_total_bytes or self.memory.total_bytes or 0

    def unavailable(self) -> dict[str, str]:
        """Top-level fields that could not be collected, with their reasons."""
        return {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), NotAvailable)}

    def summary_row(self) -> dict[str, str]:
        """Short strings for one row of a fleet table."""
        cpu = ""
        if not isinstance(self.cpu, NotAvailable):
            cpu = self.cpu.model or self.cpu.architecture
            if self.cpu.sockets and self.cpu.sockets > 1:
                cpu += f" ×{self.cpu.sockets}"
        mem = ""
        total = self.memory_size_bytes()
        if total:
            mem = format_bytes(total)
            if not isinstance(self.memory, NotAvailable) and not isinstance(self.memory.dimms, NotAvailable) \
                    and self.memory.dimms:
                groups = Counter((d.size_bytes, d.type) for d in self.memory.dimms)
                mem += " (" + " + ".join(
                    f"{n}× {format_dimm(size)}{' ' + t if t else ''}"
                    for (size, t), n in sorted(groups.items(), key=lambda kv: (-kv[1], -kv[0][0]))
                ) + ")"
        accs = Counter((a.name, a.memory_total_mib) for a in self.accelerators)
        acc = ", ".join(f"{n}× {name}{f' {m} MiB' if m else ''}" for (name, m), n in accs.items()) or "none"
        engine = ""
        if isinstance(self.engine, EngineInfo) and self.engine.name != "unknown":
            engine = f"{self.engine.name} {self.engine.version}"
        return {
            "hostname": self.hostname,
            "cpu": cpu,
            "memory": mem,
            "accelerators": acc,
            "driver": self.driver_version,
            "toolkit": self.toolkit,
            "os": self.os,
            "kernel": self.kernel,
            "engine": engine,  # "vllm 0.11.0", "sglang 0.5.2"; "" when the endpoint did not say
        }

    # ------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        d = _encode(self)
        assert isinstance(d, dict)
        return {"schema": self.schema, **{k: v for k, v in d.items() if k != "schema"}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        if not isinstance(data, dict):
            raise ValueError("an inventory must be a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise ValueError(f"unsupported inventory schema {schema!r} (expected {SCHEMA!r})")
        inv = _decode(cls, data)
        assert isinstance(inv, Inventory)
        return inv


def format_bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_dimm(n: int) -> str:
    """DIMM sizes as the vendor labels them (dmidecode's binary "GB")."""
    if n >= 1 << 30 and n % (1 << 30) == 0:
        return f"{n >> 30} GB"
    return f"{n >> 20} MB"


# ---------------------------------------------------------------- generic (de)serialisation


def _encode(v: Any) -> Any:
    if isinstance(v, NotAvailable):
        return str(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _encode(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, tuple | list):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    return v


_HINTS: dict[type, dict[str, Any]] = {}


def _decode(tp: Any, v: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        na = NotAvailable.parse(v)
        if na is not None and NotAvailable in args:
            return na
        if v is None and type(None) in args:
            return None
        last: Exception | None = None
        for a in args:
            if a in (NotAvailable, type(None)):
                continue
            try:
                return _decode(a, v)
            except (TypeError, ValueError, KeyError) as exc:
                last = exc
        raise ValueError(f"cannot decode {v!r} as {tp}: {last}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(v, list | tuple):
            raise TypeError(f"expected a list, got {type(v).__name__}")
        return tuple(_decode(args[0], x) for x in v)
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(v, dict):
            raise TypeError("expected an object")
        return {_decode(kt, k) if kt is not int else int(k): _decode(vt, x) for k, x in v.items()}
    if tp is NotAvailable:
        na = NotAvailable.parse(v)
        if na is None:
            raise ValueError(f"expected 'not available: …', got {v!r}")
        return na
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise TypeError(f"expected an object for {tp.__name__}")
        hints = _HINTS.get(tp)
        if hints is None:
            hints = _HINTS[tp] = typing.get_type_hints(tp)
        kwargs = {f.name: _decode(hints[f.name], v[f.name]) for f in dataclasses.fields(tp) if f.name in v}
        return tp(**kwargs)
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError("expected a number")
        return float(v)
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError("expected an integer")
        return v
    if tp is bool:
        if not isinstance(v, bool):
            raise TypeError("expected true/false")
        return v
    if tp is str:
        if not isinstance(v, str):
            raise TypeError("expected a string")
        return v
    return v


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
    return Inventory(
        hostname=socket.gethostname(),
        collected_at=time.time(),
        python_version=system_mod.python_version(),
        timings_s=times,
        **snapshot,
    )
