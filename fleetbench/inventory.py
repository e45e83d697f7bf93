"""The inventory's data types, shared by the agent (which collects them, fleetbench.agent.inventory) and the
controller (which reads them back from the JSON document: drift check, fleet view, report).

`Inventory.to_dict()` is the JSON document described in docs/inventory.md; `Inventory.from_dict()` reads it
back. A field that could not be collected is a `NotAvailable` ("not available: <reason>").
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Union

SCHEMA = "fleetbench.inventory/1"

NA_PREFIX = "not available: "


@dataclass(frozen=True, slots=True)
class NotAvailable:
    """A field that could not be collected, and why."""

    reason: str

    def __str__(self) -> str:
        return NA_PREFIX + self.reason

    def to_json(self) -> str:
        return str(self)

    @staticmethod
    def parse(value: object) -> NotAvailable | None:
        """`NotAvailable` for a serialised "not available: …" string, else None."""
        if isinstance(value, str) and value.startswith(NA_PREFIX):
            return NotAvailable(value[len(NA_PREFIX):])
        return None


NOT_COLLECTED = NotAvailable("not collected")


def is_na(value: object) -> bool:
    return isinstance(value, NotAvailable)


# ---------------------------------------------------------------- per-source records


@dataclass(frozen=True, slots=True)
class CpuInfo:
    model: str
    vendor: str
    architecture: str
    sockets: int | None
    cores_per_socket: int | None
    threads_per_core: int | None
    logical_cpus: int | None
    numa_nodes: int | None

    @property
    def physical_cores(self) -> int | None:
        if self.sockets is None or self.cores_per_socket is None:
            return None
        return self.sockets * self.cores_per_socket


@dataclass(frozen=True, slots=True)
class Dimm:
    locator: str
    size_bytes: int
    type: str
    speed_mts: int | None
    configured_speed_mts: int | None
    manufacturer: str
    part_number: str


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    total_bytes: int | None
    available_bytes: int | None
    swap_total_bytes: int | None
    dimms: tuple[Dimm, ...] | NotAvailable
    dimm_slots: int | None = None

    @property
    def dimm_total_bytes(self) -> int | None:
        if isinstance(self.dimms, NotAvailable) or not self.dimms:
            return None
        return sum(d.size_bytes for d in self.dimms)


@dataclass(frozen=True, slots=True)
class NvLink:
    link: int
    active: bool
    speed_gbps: float | None = None  # GB/s per link as nvidia-smi prints it


@dataclass(frozen=True, slots=True)
class NvidiaGpu:
    index: int
    name: str
    uuid: str = ""
    serial: str = ""
    pci_bus_id: str = ""
    memory_total_mib: int = 0
    memory_used_mib: int | None = None
    driver_version: str = ""
    cuda_version: str = ""
    vbios_version: str = ""
    temperature_c: float | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    ecc_mode: str = ""
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    persistence_mode: str = ""
    mig_mode: str = ""
    max_sm_clock_mhz: int | None = None
    pcie_gen_max: int | None = None
    pcie_gen_current: int | None = None
    pcie_width_max: int | None = None
    pcie_width_current: int | None = None
    nvlinks: tuple[NvLink, ...] = ()

    @property
    def nvlinks_down(self) -> tuple[int, ...]:
        return tuple(n.link for n in self.nvlinks if not n.active)

    @property
    def mig_enabled(self) -> bool:
        return self.mig_mode.lower() == "enabled"


@dataclass(frozen=True, slots=True)
class Topology:
    devices: tuple[str, ...]
    matrix: tuple[tuple[str, ...], ...]  # matrix[i][j]: link from devices[i] to devices[j] ("X", "NV18", "SYS", …)
    cpu_affinity: tuple[str, ...] = ()
    numa_affinity: tuple[str, ...] = ()

    def link(self, a: str, b: str) -> str:
        try:
            return self.matrix[self.devices.index(a)][self.devices.index(b)]
        except (ValueError, IndexError):
            return ""


@dataclass(frozen=True, slots=True)
class NvidiaInfo:
    source: str
    driver_version: str
    cuda_version: str
    gpus: tuple[NvidiaGpu, ...]
    topology: Topology | NotAvailable = NOT_COLLECTED
    nvlink_source: str = ""


@dataclass(frozen=True, slots=True)
class Npu:
    npu_id: int
    chip_id: int
    name: str
    health: str
    bus_id: str = ""
    power_w: float | None = None
    temperature_c: float | None = None
    aicore_percent: float | None = None
    memory_used_mb: int | None = None
    memory_total_mb: int | None = None
    hbm_used_mb: int | None = None
    hbm_total_mb: int | None = None


@dataclass(frozen=True, slots=True)
class AscendInfo:
    npu_smi_version: str  # the "Version:" of npu-smi's banner: the driver version
    npus: tuple[Npu, ...]
    cann_version: str | NotAvailable = NOT_COLLECTED


@dataclass(frozen=True, slots=True)
class Dcu:
    index: int
    name: str = ""
    temperature_c: float | None = None
    power_w: float | None = None
    power_cap_w: float | None = None
    vram_percent: float | None = None
    util_percent: float | None = None
    perf: str = ""
    mode: str = ""
    vram_total_mib: int | None = None
    vram_available_mib: int | None = None


@dataclass(frozen=True, slots=True)
class HygonInfo:
    generation: str  # "hydcu" (DCU label) or "hycu" (HCU label)
    dcus: tuple[Dcu, ...]
    driver_version: str = ""
    dtk_version: str | NotAvailable = NOT_COLLECTED


@dataclass(frozen=True, slots=True)
class AmdGpu:
    index: int
    name: str
    bus_id: str = ""
    vram_total_mib: int | None = None
    driver_version: str = ""
    gfx_version: str = ""


@dataclass(frozen=True, slots=True)
class AmdInfo:
    source: str
    gpus: tuple[AmdGpu, ...]
    driver_version: str = ""


@dataclass(frozen=True, slots=True)
class Disk:
    name: str
    size_bytes: int | None
    model: str = ""
    rotational: bool | None = None
    transport: str = ""

    @property
    def kind(self) -> str:
        if self.transport == "nvme" or self.name.startswith("nvme"):
            return "NVMe"
        if self.rotational is False:
            return "SSD"
        if self.rotational is True:
            return "HDD"
        return ""


@dataclass(frozen=True, slots=True)
class Nic:
    name: str
    driver: str = ""
    speed_mbps: int | None = None
    state: str = ""
    mac: str = ""


@dataclass(frozen=True, slots=True)
class IbPort:
    device: str
    port: int
    rate_gbps: float | None
    rate: str = ""
    state: str = ""
    link_layer: str = ""  # "InfiniBand" or "Ethernet" (RoCE)


@dataclass(frozen=True, slots=True)
class NetInfo:
    nics: tuple[Nic, ...]
    ib_ports: tuple[IbPort, ...] | NotAvailable


@dataclass(frozen=True, slots=True)
class OsRelease:
    pretty_name: str
    id: str = ""
    version_id: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeVersion:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class EngineInfo:
    name: str  # "vllm", "sglang" or "unknown"
    version: str
    models: tuple[str, ...] = ()
    endpoint: str = ""


# ---------------------------------------------------------------- the inventory


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
