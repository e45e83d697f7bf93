"""The inventory, declared once as pydantic models: the agent's collectors (fleetbench.agent.inventory) build
them, the controller reads them back (drift check, fleet view, report), and their JSON is the document
described in docs/inventory.md that travels in `InventoryReply.detail_json` and is stored.

`inv.model_dump_json()` writes the document (`"schema": "fleetbench.inventory/1"` first);
`Inventory.from_document()` reads one back with a one-line error. Every record refuses an unknown key
(a typo or a newer agent's field is an error, not silently dropped). A field that could not be collected
is a `NotAvailable`, in JSON the string "not available: <reason>".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticSerializationUnexpectedValue, core_schema

from .schema_base import dotted, problems

SCHEMA = "fleetbench.inventory/1"

NA_PREFIX = "not available: "
NA_ERROR = "not_available"  # the error type of a value that is neither the field's type nor "not available: …"


@dataclass(frozen=True, slots=True)
class NotAvailable:
    """A field that could not be collected, and why; in JSON the string "not available: <reason>"."""

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

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any) -> NotAvailable:
            na = value if isinstance(value, NotAvailable) else NotAvailable.parse(value)
            if na is None:
                raise PydanticCustomError(NA_ERROR, "is not \"not available: <reason>\"")
            return na

        def serialise(value: Any) -> str:
            if isinstance(value, NotAvailable):
                return str(value)
            raise PydanticSerializationUnexpectedValue("not a NotAvailable")  # a union's other member's turn

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(serialise))


NOT_COLLECTED = NotAvailable("not collected")

T = TypeVar("T")
# A value or the reason it is missing. "not available: …" is tried first: for a text field it is a string too.
OrNA = Annotated[Union[NotAvailable, T], Field(union_mode="left_to_right")]  # noqa: UP007 (a generic alias)


def is_na(value: object) -> bool:
    return isinstance(value, NotAvailable)


class Record(BaseModel):
    """One record of the inventory: immutable, and an unknown key in a document is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- per-source records


class CpuInfo(Record):
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


class Dimm(Record):
    locator: str
    size_bytes: int
    type: str
    speed_mts: int | None
    configured_speed_mts: int | None
    manufacturer: str
    part_number: str


class MemoryInfo(Record):
    total_bytes: int | None
    available_bytes: int | None
    swap_total_bytes: int | None
    dimms: OrNA[tuple[Dimm, ...]]
    dimm_slots: int | None = None

    @property
    def dimm_total_bytes(self) -> int | None:
        if isinstance(self.dimms, NotAvailable) or not self.dimms:
            return None
        return sum(d.size_bytes for d in self.dimms)


class NvLink(Record):
    link: int
    active: bool
    speed_gbps: float | None = None  # GB/s per link as nvidia-smi prints it


class NvidiaGpu(Record):
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


class Topology(Record):
    devices: tuple[str, ...]
    matrix: tuple[tuple[str, ...], ...]  # matrix[i][j]: link from devices[i] to devices[j] ("X", "NV18", "SYS", …)
    cpu_affinity: tuple[str, ...] = ()
    numa_affinity: tuple[str, ...] = ()

    def link(self, a: str, b: str) -> str:
        try:
            return self.matrix[self.devices.index(a)][self.devices.index(b)]
        except (ValueError, IndexError):
            return ""


class NvidiaInfo(Record):
    source: str
    driver_version: str
    cuda_version: str
    gpus: tuple[NvidiaGpu, ...]
    topology: OrNA[Topology] = NOT_COLLECTED
    nvlink_source: str = ""


class Npu(Record):
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


class AscendInfo(Record):
    npu_smi_version: str  # the "Version:" of npu-smi's banner: the driver version
    npus: tuple[Npu, ...]
    cann_version: OrNA[str] = NOT_COLLECTED


class Dcu(Record):
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


class HygonInfo(Record):
    generation: str  # "hydcu" (DCU label) or "hycu" (HCU label)
    dcus: tuple[Dcu, ...]
    driver_version: str = ""
    dtk_version: OrNA[str] = NOT_COLLECTED


class AmdGpu(Record):
    index: int
    name: str
    bus_id: str = ""
    vram_total_mib: int | None = None
    driver_version: str = ""
    gfx_version: str = ""


class AmdInfo(Record):
    source: str
    gpus: tuple[AmdGpu, ...]
    driver_version: str = ""


class Disk(Record):
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


class Nic(Record):
    name: str
    driver: str = ""
    speed_mbps: int | None = None
    state: str = ""
    mac: str = ""


class IbPort(Record):
    device: str
    port: int
    rate_gbps: float | None
    rate: str = ""
    state: str = ""
    link_layer: str = ""  # "InfiniBand" or "Ethernet" (RoCE)


class NetInfo(Record):
    nics: tuple[Nic, ...]
    ib_ports: OrNA[tuple[IbPort, ...]]


class OsRelease(Record):
    pretty_name: str
    id: str = ""
    version_id: str = ""


class RuntimeVersion(Record):
    name: str
    version: str


class EngineInfo(Record):
    name: str  # "vllm", "sglang" or "unknown"
    version: str
    models: tuple[str, ...] = ()
    endpoint: str = ""


# ---------------------------------------------------------------- the inventory


class Accelerator(Record):
    """One accelerator of any vendor, in the shape the gRPC reply carries (derived, never stored).

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


class Inventory(Record):
    """One server's inventory. Its JSON starts with `"schema": "fleetbench.inventory/1"`; a document of
    another schema is refused rather than read field by field."""

    hostname: str
    collected_at: float
    cpu: OrNA[CpuInfo]
    memory: OrNA[MemoryInfo]
    nvidia: OrNA[NvidiaInfo]
    ascend: OrNA[AscendInfo]
    hygon: OrNA[HygonInfo]
    amd: OrNA[AmdInfo]
    disks: OrNA[tuple[Disk, ...]]
    network: OrNA[NetInfo]
    os_release: OrNA[OsRelease]
    kernel_release: OrNA[str]
    container_runtimes: OrNA[tuple[RuntimeVersion, ...]]
    python_version: str
    evalscope_version: OrNA[str]
    engine: OrNA[EngineInfo]
    timings_s: dict[str, float] = Field(default_factory=dict)

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
            out += [Accelerator(vendor="nvidia", index=g.index, name=g.name, uuid=g.uuid,
                                memory_total_mib=g.memory_total_mib, driver_version=g.driver_version,
                                cuda_version=g.cuda_version) for g in self.nvidia.gpus]
        if not isinstance(self.ascend, NotAvailable):
            cann = _na_str(self.ascend.cann_version)
            out += [Accelerator(vendor="ascend", index=n.npu_id if n.chip_id == 0 else n.npu_id * 100 + n.chip_id,
                                name=f"Ascend {n.name}" if not n.name.lower().startswith("ascend") else n.name,
                                uuid="", memory_total_mib=n.hbm_total_mb or 0,
                                driver_version=self.ascend.npu_smi_version, cuda_version=cann)
                    for n in self.ascend.npus]
        if not isinstance(self.hygon, NotAvailable):
            dtk = _na_str(self.hygon.dtk_version)
            out += [Accelerator(vendor="hygon", index=d.index, name=f"Hygon {d.name}" if d.name else "Hygon DCU",
                                uuid="", memory_total_mib=d.vram_total_mib or 0,
                                driver_version=self.hygon.driver_version, cuda_version=dtk) for d in self.hygon.dcus]
        if not isinstance(self.amd, NotAvailable):
            out += [Accelerator(vendor="amd", index=g.index, name=g.name, uuid="",
                                memory_total_mib=g.vram_total_mib or 0,
                                driver_version=g.driver_version or self.amd.driver_version, cuda_version="")
                    for g in self.amd.gpus]
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
        return {name: str(getattr(self, name)) for name in type(self).model_fields
                if isinstance(getattr(self, name), NotAvailable)}

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

    @model_serializer(mode="wrap")
    def _with_schema(self, handler: Callable[[Inventory], dict[str, Any]]) -> dict[str, Any]:
        return {"schema": SCHEMA, **handler(self)}

    @model_validator(mode="before")
    @classmethod
    def _known_schema(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema" in data:
            if data["schema"] != SCHEMA:
                raise PydanticCustomError(
                    "fleetbench", "unsupported inventory schema {schema} (expected {expected})",
                    {"schema": repr(data["schema"]), "expected": repr(SCHEMA)})
            data = {k: v for k, v in data.items() if k != "schema"}
        return data

    @classmethod
    def from_document(cls, doc: object) -> Inventory:
        """A stored or received document (parsed JSON); ValueError with one line when it is not an
        inventory of this schema or a field does not fit."""
        if not isinstance(doc, dict):
            raise ValueError("an inventory must be a JSON object")
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"unsupported inventory schema {doc.get('schema')!r} (expected {SCHEMA!r})")
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            raise ValueError(_one_line(exc, doc)) from None


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


def _one_line(exc: ValidationError, doc: Any) -> str:
    """A document's first problem as `path sentence`, and how many more: an unknown key first (a typo
    explains the "needs" that follows it), and a union's "not available" branch only when the field's own
    type has nothing to say."""
    found = list(zip(problems(exc, doc), exc.errors(include_url=False), strict=True))
    own = [f for f in found if f[1]["type"] != NA_ERROR] or found
    own.sort(key=lambda f: f[1]["type"] != "extra_forbidden")
    (loc, msg), _err = own[0]
    more = f" (and {len(own) - 1} more)" if len(own) > 1 else ""
    return f"{dotted(loc) + ' ' if loc else ''}{msg}{more}"
