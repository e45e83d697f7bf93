"""NVIDIA GPUs: NVML (nvidia-ml-py) first, `nvidia-smi -q -x` / `--query-gpu` CSV as fallbacks,
plus the NVLink states (`nvidia-smi nvlink -s`) and the topology matrix (`nvidia-smi topo -m`)."""

from __future__ import annotations

import contextlib
import csv
import re
import xml.etree.ElementTree as ET
from typing import Any

from fleetbench.inventory import NvidiaGpu, NvidiaInfo, NvLink, Topology

from ._common import NotAvailable, clean, remaining, run_tool, to_float, to_int

# ---------------------------------------------------------------- parsers


def _text(el: ET.Element | None, path: str) -> str:
    if el is None:
        return ""
    found = el.find(path)
    if found is None or found.text is None:
        return ""
    return clean(found.text)


def _ecc_sum(gpu: ET.Element, scope: str) -> int | None:
    node = gpu.find(f"ecc_errors/{scope}")
    if node is None:
        return None
    total = None
    # Hopper+ (driver ≥ 550): sram_uncorrectable_*, dram_uncorrectable; older: double_bit/total.
    for child in node:
        tag = child.tag
        if ("uncorrectable" in tag and "threshold" not in tag) or tag == "double_bit":
            val = to_int(_text(child, "total")) if tag == "double_bit" else to_int(clean(child.text))
            if val is not None:
                total = (total or 0) + val
    return total


def parse_smi_xml(text: str) -> NvidiaInfo | NotAvailable:
    """Parse `nvidia-smi -q -x`."""
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError):
        return NotAvailable("nvidia-smi -q -x printed no valid XML")
    if root.tag != "nvidia_smi_log":
        return NotAvailable("nvidia-smi -q -x: unexpected root element")
    driver = _text(root, "driver_version")
    cuda = _text(root, "cuda_version")
    gpus: list[NvidiaGpu] = []
    for i, g in enumerate(root.findall("gpu")):
        minor = to_int(_text(g, "minor_number"))
        gpus.append(
            NvidiaGpu(
                index=i,
                name=_text(g, "product_name"),
                uuid=_text(g, "uuid"),
                serial=_text(g, "serial"),
                pci_bus_id=_text(g, "pci/pci_bus_id") or clean(g.get("id")),
                memory_total_mib=to_int(_text(g, "fb_memory_usage/total")) or 0,
                memory_used_mib=to_int(_text(g, "fb_memory_usage/used")),
                driver_version=driver,
                cuda_version=cuda,
                vbios_version=_text(g, "vbios_version"),
                temperature_c=to_float(_text(g, "temperature/gpu_temp")),
                power_draw_w=to_float(_text(g, "gpu_power_readings/instant_power_draw"))
                or to_float(_text(g, "gpu_power_readings/power_draw"))
                or to_float(_text(g, "power_readings/power_draw")),
                power_limit_w=to_float(_text(g, "gpu_power_readings/current_power_limit"))
                or to_float(_text(g, "power_readings/power_limit")),
                ecc_mode=_text(g, "ecc_mode/current_ecc"),
                ecc_uncorrected_volatile=_ecc_sum(g, "volatile"),
                ecc_uncorrected_aggregate=_ecc_sum(g, "aggregate"),
                persistence_mode=_text(g, "persistence_mode"),
                mig_mode=_text(g, "mig_mode/current_mig"),
                max_sm_clock_mhz=to_int(_text(g, "max_clocks/sm_clock")),
                pcie_gen_max=to_int(_text(g, "pci/pci_gpu_link_info/pcie_gen/max_link_gen")),
                pcie_gen_current=to_int(_text(g, "pci/pci_gpu_link_info/pcie_gen/current_link_gen")),
                pcie_width_max=to_int(_text(g, "pci/pci_gpu_link_info/link_widths/max_link_width")),
                pcie_width_current=to_int(_text(g, "pci/pci_gpu_link_info/link_widths/current_link_width")),
            )
        )
        if minor is not None and minor != i:
            pass  # nvidia-smi lists GPUs in index order; the minor number is the /dev node, not the index.
    if not gpus and not driver:
        return NotAvailable("nvidia-smi -q -x lists no GPU and no driver")
    return NvidiaInfo(source="nvidia-smi -q -x", driver_version=driver, cuda_version=cuda, gpus=tuple(gpus))


QUERY_FIELDS = (
    "index,name,uuid,serial,pci.bus_id,memory.total,memory.used,driver_version,vbios_version,temperature.gpu,"
    "power.draw,power.limit,ecc.mode.current,ecc.errors.uncorrected.volatile.total,"
    "ecc.errors.uncorrected.aggregate.total,persistence_mode,mig.mode.current,clocks.max.sm,"
    "pcie.link.gen.max,pcie.link.gen.current,pcie.link.width.max,pcie.link.width.current"
)

_CSV_KEYS = {
    "index": "index", "name": "name", "uuid": "uuid", "serial": "serial", "pci.bus_id": "pci_bus_id",
    "memory.total": "memory_total_mib", "memory.used": "memory_used_mib", "driver_version": "driver_version",
    "vbios_version": "vbios_version", "temperature.gpu": "temperature_c", "power.draw": "power_draw_w",
    "power.limit": "power_limit_w", "ecc.mode.current": "ecc_mode",
    "ecc.errors.uncorrected.volatile.total": "ecc_uncorrected_volatile",
    "ecc.errors.uncorrected.aggregate.total": "ecc_uncorrected_aggregate", "persistence_mode": "persistence_mode",
    "mig.mode.current": "mig_mode", "clocks.max.sm": "max_sm_clock_mhz", "pcie.link.gen.max": "pcie_gen_max",
    "pcie.link.gen.current": "pcie_gen_current", "pcie.link.width.max": "pcie_width_max",
    "pcie.link.width.current": "pcie_width_current",
}
_INT_FIELDS = {"memory_total_mib", "memory_used_mib", "ecc_uncorrected_volatile", "ecc_uncorrected_aggregate",
               "max_sm_clock_mhz", "pcie_gen_max", "pcie_gen_current", "pcie_width_max", "pcie_width_current"}
_FLOAT_FIELDS = {"temperature_c", "power_draw_w", "power_limit_w"}


def parse_smi_query_csv(text: str, cuda_version: str = "") -> NvidiaInfo | NotAvailable:
    """Parse `nvidia-smi --query-gpu=… --format=csv` (with its header line)."""
    try:
        rows = [r for r in csv.reader(text.splitlines(), skipinitialspace=True) if r]
    except csv.Error as exc:
        return NotAvailable(f"nvidia-smi --query-gpu output is not CSV: {exc}")
    if len(rows) < 1:
        return NotAvailable("nvidia-smi --query-gpu printed nothing")
    header = [re.sub(r"\s*\[.*?\]\s*$", "", h.strip()) for h in rows[0]]
    if "index" not in header and "name" not in header:
        return NotAvailable("nvidia-smi --query-gpu output has no header")
    gpus: list[NvidiaGpu] = []
    for n, row in enumerate(rows[1:]):
        kw: dict[str, Any] = {}
        for h, v in zip(header, row, strict=False):
            key = _CSV_KEYS.get(h)
            if key is None:
                continue
            if key in _INT_FIELDS:
                kw[key] = to_int(clean(v))
            elif key in _FLOAT_FIELDS:
                kw[key] = to_float(clean(v))
            elif key != "index":
                kw[key] = clean(v)
        idx = to_int(row[header.index("index")]) if "index" in header and header.index("index") < len(row) else None
        kw["index"] = idx if idx is not None else n
        kw["name"] = kw.get("name") or ""
        kw["memory_total_mib"] = kw.get("memory_total_mib") or 0
        kw["cuda_version"] = cuda_version
        gpus.append(NvidiaGpu(**kw))
    if not gpus:
        return NotAvailable("nvidia-smi --query-gpu lists no GPU")
    driver = next((g.driver_version for g in gpus if g.driver_version), "")
    return NvidiaInfo(source="nvidia-smi --query-gpu", driver_version=driver, cuda_version=cuda_version,
                      gpus=tuple(gpus))


_TABLE_HEAD = re.compile(r"Driver Version:\s*([\w.\-]+)(?:.*?CUDA Version:\s*([\w.\-/]+))?")
_TABLE_GPU = re.compile(r"^\|\s*(\d+)\s+(.+?)\s+(On|Off)\s+\|\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)")
_TABLE_MEM = re.compile(r"(\d+)\s*MiB\s*/\s*(\d+)\s*MiB")
# The same table flattened onto one line (as pasted into a document, seed 000).
_FLAT_GPU = re.compile(
    r"(?:^|\+|\s)(\d+)\s+(NVIDIA [^|+]*?|Tesla [^|+]*?|Quadro [^|+]*?)\s+(On|Off)\s+"
    r"([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)\s+\S+\s+(\S+)\s+.*?(\d+)MiB\s*/\s*(\d+)MiB"
)


def parse_smi_table(text: str) -> NvidiaInfo | NotAvailable:
    """Parse the default `nvidia-smi` table, also when pasted flattened onto one line."""
    head = _TABLE_HEAD.search(text)
    driver = head.group(1) if head else ""
    cuda = (head.group(2) or "") if head else ""
    if cuda.upper() == "N/A":
        cuda = ""
    gpus: list[NvidiaGpu] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _TABLE_GPU.match(line.strip())
        if m is None:
            continue
        mem = _TABLE_MEM.search(lines[i + 1]) if i + 1 < len(lines) else None
        ecc = line.rsplit("|", 2)[-2].strip() if line.count("|") >= 3 else ""
        mig = ""
        if i + 2 < len(lines) and lines[i + 2].count("|") >= 3:
            mig = clean(lines[i + 2].rsplit("|", 2)[-2].strip())
        gpus.append(
            NvidiaGpu(
                index=int(m.group(1)), name=m.group(2).strip(), pci_bus_id=m.group(4),
                persistence_mode="Enabled" if m.group(3) == "On" else "Disabled",
                memory_used_mib=int(mem.group(1)) if mem else None,
                memory_total_mib=int(mem.group(2)) if mem else 0,
                driver_version=driver, cuda_version=cuda,
                ecc_uncorrected_volatile=to_int(ecc) if ecc.isdigit() else None, mig_mode=mig,
            )
        )
    if not gpus:
        for m in _FLAT_GPU.finditer(text):
            ecc = m.group(5)
            gpus.append(
                NvidiaGpu(
                    index=int(m.group(1)), name=m.group(2).strip(), pci_bus_id=m.group(4),
                    persistence_mode="Enabled" if m.group(3) == "On" else "Disabled",
                    memory_used_mib=int(m.group(6)), memory_total_mib=int(m.group(7)),
                    driver_version=driver, cuda_version=cuda,
                    ecc_uncorrected_volatile=int(ecc) if ecc.isdigit() else None,
                )
            )
    if not gpus:
        return NotAvailable("no GPU row found in the nvidia-smi table")
    return NvidiaInfo(source="nvidia-smi", driver_version=driver, cuda_version=cuda, gpus=tuple(gpus))


_NVL_GPU = re.compile(r"^GPU\s+(\d+):")
_NVL_LINK = re.compile(r"^\s*Link\s+(\d+):\s*(.*)$")


def parse_nvlink_status(text: str) -> dict[int, tuple[NvLink, ...]] | NotAvailable:
    """Parse `nvidia-smi nvlink -s`: per GPU index, each link's state and speed.

    A link printing "<inactive>" (or anything without a speed) is down.
    """
    result: dict[int, list[NvLink]] = {}
    cur: int | None = None
    for line in text.splitlines():
        g = _NVL_GPU.match(line.strip())
        if g:
            cur = int(g.group(1))
            result.setdefault(cur, [])
            continue
        m = _NVL_LINK.match(line)
        if m and cur is not None:
            rest = m.group(2).strip()
            speed = to_float(rest) if re.search(r"\d\s*GB/s", rest) else None
            active = speed is not None and speed > 0 and "inactive" not in rest.lower()
            result[cur].append(NvLink(link=int(m.group(1)), active=active, speed_gbps=speed))
    if not result:
        return NotAvailable("nvidia-smi nvlink -s lists no GPU")
    return {k: tuple(v) for k, v in result.items()}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_topo(text: str) -> Topology | NotAvailable:
    """Parse `nvidia-smi topo -m`: the GPU/NIC matrix and each GPU's CPU and NUMA affinity."""
    lines = [_ANSI.sub("", ln).rstrip() for ln in text.splitlines()]
    header_idx = next((i for i, ln in enumerate(lines) if re.match(r"^\s*GPU0\b", ln)), None)
    if header_idx is None:
        return NotAvailable("nvidia-smi topo -m printed no matrix header")
    header = re.split(r"\t+|\s{2,}|\s(?=GPU\d|NIC\d|mlx|CPU Aff|NUMA Aff|GPU NUMA)", lines[header_idx].strip())
    header = [h.strip() for h in header if h.strip()]
    devices = tuple(h for h in header if re.fullmatch(r"(GPU|NIC)\d+|mlx\S+", h))
    matrix: list[tuple[str, ...]] = []
    cpu_aff: list[str] = []
    numa_aff: list[str] = []
    for ln in lines[header_idx + 1:]:
        if not ln.strip() or ln.strip().startswith("Legend"):
            break
        parts = ln.split()
        if not parts or parts[0] not in devices:
            continue
        cells = parts[1:]
        matrix.append(tuple(cells[: len(devices)]))
        extra = cells[len(devices):]
        if parts[0].startswith("GPU"):
            cpu_aff.append(extra[0] if len(extra) > 0 else "")
            numa_aff.append(extra[1] if len(extra) > 1 else "")
    if not matrix:
        return NotAvailable("nvidia-smi topo -m printed no matrix rows")
    return Topology(devices=devices, matrix=tuple(matrix), cpu_affinity=tuple(cpu_aff), numa_affinity=tuple(numa_aff))


def with_nvlinks(info: NvidiaInfo, links: dict[int, tuple[NvLink, ...]], source: str) -> NvidiaInfo:
    gpus = tuple(g.model_copy(update={"nvlinks": links.get(g.index, g.nvlinks)}) for g in info.gpus)
    return info.model_copy(update={"gpus": gpus, "nvlink_source": source})


# ---------------------------------------------------------------- runners


def _nvml_str(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def nvml() -> Any:
    """The initialised pynvml module, or NotAvailable with the reason (the inventory and the hardware job)."""
    try:
        import pynvml as nv
    except ImportError:
        return NotAvailable("nvidia-ml-py (pynvml) is not installed")
    try:
        nv.nvmlInit()
    except Exception as exc:
        return NotAvailable(f"NVML did not initialise: {exc}")
    return nv


def collect_nvml() -> NvidiaInfo | NotAvailable:
    """Read every GPU through NVML. NotAvailable when nvidia-ml-py or the driver library is missing."""
    nv = nvml()
    if isinstance(nv, NotAvailable):
        return nv
    try:
        driver = _nvml_str(nv.nvmlSystemGetDriverVersion())
        try:
            cv = int(nv.nvmlSystemGetCudaDriverVersion_v2())
            cuda = f"{cv // 1000}.{(cv % 1000) // 10}"
        except Exception:
            cuda = ""
        gpus: list[NvidiaGpu] = []
        for i in range(int(nv.nvmlDeviceGetCount())):
            h = nv.nvmlDeviceGetHandleByIndex(i)

            def q(fn: Any, *args: Any, _h: Any = h) -> Any:
                try:
                    return fn(_h, *args)
                except Exception:
                    return None

            mem = q(nv.nvmlDeviceGetMemoryInfo)
            pci = q(nv.nvmlDeviceGetPciInfo)
            ecc = q(nv.nvmlDeviceGetEccMode)
            mig = q(nv.nvmlDeviceGetMigMode)
            temp = q(nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU)
            power = q(nv.nvmlDeviceGetPowerUsage)
            limit = q(nv.nvmlDeviceGetEnforcedPowerLimit)
            pers = q(nv.nvmlDeviceGetPersistenceMode)
            vol = q(nv.nvmlDeviceGetTotalEccErrors, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC)
            agg = q(nv.nvmlDeviceGetTotalEccErrors, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_AGGREGATE_ECC)
            links: list[NvLink] = []
            for link in range(int(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18))):
                try:
                    state = nv.nvmlDeviceGetNvLinkState(h, link)
                except Exception:
                    continue  # link not present on this GPU
                links.append(NvLink(link=link, active=bool(state)))
            gpus.append(
                NvidiaGpu(
                    index=i,
                    name=_nvml_str(q(nv.nvmlDeviceGetName) or ""),
                    uuid=_nvml_str(q(nv.nvmlDeviceGetUUID) or ""),
                    serial=_nvml_str(q(nv.nvmlDeviceGetSerial) or ""),
                    pci_bus_id=_nvml_str(pci.busId) if pci is not None else "",
                    memory_total_mib=int(mem.total) // (1 << 20) if mem is not None else 0,
                    memory_used_mib=int(mem.used) // (1 << 20) if mem is not None else None,
                    driver_version=driver,
                    cuda_version=cuda,
                    vbios_version=_nvml_str(q(nv.nvmlDeviceGetVbiosVersion) or ""),
                    temperature_c=float(temp) if temp is not None else None,
                    power_draw_w=power / 1000.0 if power is not None else None,
                    power_limit_w=limit / 1000.0 if limit is not None else None,
                    ecc_mode=("Enabled" if ecc[0] else "Disabled") if ecc is not None else "",
                    ecc_uncorrected_volatile=int(vol) if vol is not None else None,
                    ecc_uncorrected_aggregate=int(agg) if agg is not None else None,
                    persistence_mode=("Enabled" if pers else "Disabled") if pers is not None else "",
                    mig_mode=("Enabled" if mig[0] else "Disabled") if mig is not None else "",
                    max_sm_clock_mhz=q(nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_SM),
                    pcie_gen_max=q(nv.nvmlDeviceGetMaxPcieLinkGeneration),
                    pcie_gen_current=q(nv.nvmlDeviceGetCurrPcieLinkGeneration),
                    pcie_width_max=q(nv.nvmlDeviceGetMaxPcieLinkWidth),
                    pcie_width_current=q(nv.nvmlDeviceGetCurrPcieLinkWidth),
                    nvlinks=tuple(links),
                )
            )
        return NvidiaInfo(source="nvml", driver_version=driver, cuda_version=cuda, gpus=tuple(gpus),
                          nvlink_source="nvml" if any(g.nvlinks for g in gpus) else "")
    except Exception as exc:
        return NotAvailable(f"NVML query failed: {exc}")
    finally:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()


def collect(deadline: float | None = None, use_nvml: bool = True) -> NvidiaInfo | NotAvailable:
    info: NvidiaInfo | NotAvailable = collect_nvml() if use_nvml else NotAvailable("NVML not used")
    nvml_reason = info.reason if isinstance(info, NotAvailable) else ""
    if isinstance(info, NotAvailable):
        out = run_tool(["nvidia-smi", "-q", "-x"], timeout=remaining(deadline, 8.0))
        if out.error is None:
            info = parse_smi_xml(out.stdout)
        if isinstance(info, NotAvailable):
            csv_out = run_tool(["nvidia-smi", f"--query-gpu={QUERY_FIELDS}", "--format=csv"],
                               timeout=remaining(deadline, 5.0))
            if csv_out.error is not None:
                return NotAvailable(f"{nvml_reason}; {csv_out.error.reason}")
            info = parse_smi_query_csv(csv_out.stdout)
            if isinstance(info, NotAvailable):
                return info
    if not info.gpus:
        return info
    nvl = run_tool(["nvidia-smi", "nvlink", "-s"], timeout=remaining(deadline, 5.0))
    if nvl.error is None:
        links = parse_nvlink_status(nvl.stdout)
        if not isinstance(links, NotAvailable):
            info = with_nvlinks(info, links, "nvidia-smi nvlink -s")
    topo_out = run_tool(["nvidia-smi", "topo", "-m"], timeout=remaining(deadline, 5.0))
    topo = topo_out.error if topo_out.error is not None else parse_topo(topo_out.stdout)
    return info.model_copy(update={"topology": topo})
