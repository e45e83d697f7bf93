"""Each accelerator's health as its management tool reports it (fleetbench.hardware.DeviceHealth).

NVML (nvidia-ml-py) first, `nvidia-smi -q -x` when NVML cannot start, then `npu-smi info` (Ascend) and
`hy-smi` (Hygon). The parsers are pure functions over the tools' text, tested on real captures
(tests/fixtures); the collectors run the tools. The reasons a tool is missing are kept so that every
check it would have made is SKIPPED with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from fleetbench.hardware import THROTTLE_BITS, DeviceHealth, throttle_names

from .inventory._common import NotAvailable, clean, run_tool, to_int
from .inventory.ascend import parse_npu_smi_info
from .inventory.hygon import merge, parse_hy_smi_kv, parse_hy_smi_table
from .inventory.nvidia import nvml

STANDIN_ENV = "FLEETBENCH_TEST_HW_STANDIN"
"""Test hook: a JSON object `{"count": 2, "slow": {"1": 0.5}, "used_mib": {"0": 9000}, "visible": 1}` makes the
hardware job use CPU stand-ins for accelerators (numpy kernels; accelerator 1 runs at half speed; 0 has 9000 MiB
in use; the kernels' runtime sees only the first),
so the job's lifecycle is tested on machines without one. The agent logs a warning when it is set."""
STANDIN_MEMORY_MIB = 16384


@dataclass
class Probe:
    """What was found: the accelerators (in index order) and why tools were not used."""

    devices: list[DeviceHealth] = field(default_factory=list)
    vendor: str = ""  # nvidia | huawei | hygon | cpu-standin | ""
    missing: list[str] = field(default_factory=list)


def standin_config() -> dict[str, Any] | None:
    raw = os.environ.get(STANDIN_ENV, "")
    if not raw:
        return None
    cfg = json.loads(raw)
    return cfg if isinstance(cfg, dict) else {"count": int(cfg)}


def standin_devices(cfg: dict[str, Any]) -> list[DeviceHealth]:
    used = {int(k): int(v) for k, v in (cfg.get("used_mib") or {}).items()}
    return [DeviceHealth(index=i, name="CPU stand-in", vendor="cpu-standin", source="cpu-standin",
                         uuid=f"standin-{i}", memory_total_mib=STANDIN_MEMORY_MIB, memory_used_mib=used.get(i, 0),
                         ecc_mode="Enabled", ecc_uncorrected_volatile=0, ecc_uncorrected_aggregate=0,
                         retired_pages_pending=False, remap_pending=False, remap_failed=False, throttle_reasons=(),
                         pcie_gen_current=5, pcie_gen_max=5, pcie_width_current=16, pcie_width_max=16,
                         links_total=0, persistence_mode="Enabled", mig_mode="Disabled")
            for i in range(int(cfg.get("count", 2)))]


# --- parsers ------------------------------------------------------------------------------------------


def _text(el: ET.Element | None, path: str) -> str:
    found = el.find(path) if el is not None else None
    return clean(found.text) if found is not None and found.text is not None else ""


def _yes(text: str) -> bool | None:
    t = text.strip().lower()
    if t in ("yes", "true", "active"):
        return True
    if t in ("no", "false", "not active"):
        return False
    return None


def _ecc_total(gpu: ET.Element, scope: str) -> int | None:
    node = gpu.find(f"ecc_errors/{scope}")
    if node is None:
        return None
    total = None
    for child in node:  # Hopper+: sram_uncorrectable_*, dram_uncorrectable; older: double_bit/total
        tag = child.tag
        if ("uncorrectable" in tag and "threshold" not in tag) or tag == "double_bit":
            raw = _text(child, "total") if tag == "double_bit" else clean(child.text or "")
            val = to_int(raw)
            if val is not None:
                total = (total or 0) + val
    return total


def health_from_smi_xml(text: str) -> list[DeviceHealth] | NotAvailable:
    """`nvidia-smi -q -x`: ECC, retired pages, row remapping, clock-event reasons, PCIe link, MIG, persistence."""
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError):
        return NotAvailable("nvidia-smi -q -x printed no valid XML")
    out = []
    for i, g in enumerate(root.findall("gpu")):
        reasons_el = g.find("clocks_event_reasons")
        if reasons_el is None:
            reasons_el = g.find("clocks_throttle_reasons")
        reasons: tuple[str, ...] | None = None
        if reasons_el is not None:
            names = set(THROTTLE_BITS.values())
            found = []
            for child in reasons_el:
                name = child.tag.removeprefix("clocks_event_reason_").removeprefix("clocks_throttle_reason_")
                name = {"display_clocks_setting": "display_clock_setting"}.get(name, name)
                if name in names and _yes(child.text or ""):
                    found.append(name)
            reasons = tuple(found)
        pending = [_yes(_text(g, f"retired_pages/{tag}")) for tag in ("pending_blacklist", "pending_retirement")]
        out.append(DeviceHealth(
            index=i, name=_text(g, "product_name"), vendor="nvidia", source="nvidia-smi -q -x",
            uuid=_text(g, "uuid"), bus_id=_text(g, "pci/pci_bus_id") or clean(g.get("id")),
            memory_total_mib=to_int(_text(g, "fb_memory_usage/total")),
            memory_used_mib=to_int(_text(g, "fb_memory_usage/used")),
            ecc_mode=_text(g, "ecc_mode/current_ecc"),
            ecc_uncorrected_volatile=_ecc_total(g, "volatile"),
            ecc_uncorrected_aggregate=_ecc_total(g, "aggregate"),
            retired_pages_pending=None if all(p is None for p in pending) else any(p for p in pending),
            remap_pending=_yes(_text(g, "remapped_rows/remapped_row_pending")),
            remap_failed=_yes(_text(g, "remapped_rows/remapped_row_failure")),
            throttle_reasons=reasons,
            pcie_gen_current=to_int(_text(g, "pci/pci_gpu_link_info/pcie_gen/current_link_gen")),
            pcie_gen_max=to_int(_text(g, "pci/pci_gpu_link_info/pcie_gen/max_link_gen")),
            pcie_width_current=to_int(_text(g, "pci/pci_gpu_link_info/link_widths/current_link_width")),
            pcie_width_max=to_int(_text(g, "pci/pci_gpu_link_info/link_widths/max_link_width")),
            persistence_mode=_text(g, "persistence_mode"), mig_mode=_text(g, "mig_mode/current_mig"),
        ))
    if not out:
        return NotAvailable("nvidia-smi -q -x lists no GPU")
    return out


def health_from_npu_smi(text: str) -> list[DeviceHealth] | NotAvailable:
    """`npu-smi info`: the Health column and HBM in use per chip (npu-smi says nothing of ECC or links here)."""
    info = parse_npu_smi_info(text)
    if isinstance(info, NotAvailable):
        return info
    return [DeviceHealth(index=i, name=n.name, vendor="huawei", source="npu-smi info", bus_id=n.bus_id,
                         memory_total_mib=n.hbm_total_mb, memory_used_mib=n.hbm_used_mb, health=n.health)
            for i, n in enumerate(info.npus)]


def health_from_hy_smi(table_text: str, kv_text: str = "") -> list[DeviceHealth] | NotAvailable:
    """`hy-smi` (the Mode column, VRAM%) and its "HCU[i] : key: value" outputs (`--showproductname` or `-a` for the
    card series, `--showmeminfo vram` and `--showmemavailable` for memory): memory in use is total − available
    when both are known, else the table's VRAM% (enough to see a loaded engine)."""
    table = parse_hy_smi_table(table_text)
    if isinstance(table, NotAvailable):
        return table
    info = merge(table, parse_hy_smi_kv(kv_text) if kv_text else {})
    out = []
    for d in info.dcus:
        used = d.vram_total_mib - d.vram_available_mib if d.vram_total_mib and d.vram_available_mib is not None \
            else None
        out.append(DeviceHealth(index=d.index, name=d.name or table.generation.upper(), vendor="hygon",
                                source="hy-smi", memory_total_mib=d.vram_total_mib, memory_used_mib=used,
                                memory_used_percent=d.vram_percent, health=d.mode))
    return out


# --- NVML -----------------------------------------------------------------------------------------------


def _nvml_str(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def health_from_nvml(nv: Any) -> list[DeviceHealth]:
    """Every GPU through an initialised NVML module (`pynvml`); a query a GPU does not support is None."""
    out = []
    for i in range(int(nv.nvmlDeviceGetCount())):
        h = nv.nvmlDeviceGetHandleByIndex(i)

        def q(fn_name: str, *args: Any, _h: Any = h) -> Any:
            fn = getattr(nv, fn_name, None)
            if fn is None:
                return None
            try:
                return fn(_h, *args)
            except Exception:
                return None

        mem = q("nvmlDeviceGetMemoryInfo")
        pci = q("nvmlDeviceGetPciInfo")
        ecc = q("nvmlDeviceGetEccMode")
        mig = q("nvmlDeviceGetMigMode")
        pers = q("nvmlDeviceGetPersistenceMode")
        unc = getattr(nv, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
        vol = q("nvmlDeviceGetTotalEccErrors", unc, getattr(nv, "NVML_VOLATILE_ECC", 0))
        agg = q("nvmlDeviceGetTotalEccErrors", unc, getattr(nv, "NVML_AGGREGATE_ECC", 1))
        remap = q("nvmlDeviceGetRemappedRows")  # (corrected, uncorrected, pending, failure)
        retired = q("nvmlDeviceGetRetiredPagesPendingStatus")
        reasons = q("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:
            reasons = q("nvmlDeviceGetCurrentClocksThrottleReasons")
        links_total, down, errors = 0, [], 0
        for link in range(int(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18))):
            try:
                state = nv.nvmlDeviceGetNvLinkState(h, link)
            except Exception:
                continue  # no such link on this GPU
            links_total += 1
            if not state:
                down.append(link)
                continue
            for counter in ("NVML_NVLINK_ERROR_DL_REPLAY", "NVML_NVLINK_ERROR_DL_RECOVERY",
                            "NVML_NVLINK_ERROR_DL_CRC_FLIT"):
                if hasattr(nv, counter):
                    with contextlib.suppress(Exception):
                        errors += int(nv.nvmlDeviceGetNvLinkErrorCounter(h, link, getattr(nv, counter)))
        out.append(DeviceHealth(
            index=i, name=_nvml_str(q("nvmlDeviceGetName") or ""), vendor="nvidia", source="nvml",
            uuid=_nvml_str(q("nvmlDeviceGetUUID") or ""), bus_id=_nvml_str(pci.busId) if pci is not None else "",
            memory_total_mib=int(mem.total) // (1 << 20) if mem is not None else None,
            memory_used_mib=int(mem.used) // (1 << 20) if mem is not None else None,
            ecc_mode=("Enabled" if ecc[0] else "Disabled") if ecc is not None else "",
            ecc_uncorrected_volatile=int(vol) if vol is not None else None,
            ecc_uncorrected_aggregate=int(agg) if agg is not None else None,
            retired_pages_pending=bool(retired) if retired is not None else None,
            remap_pending=bool(remap[2]) if remap is not None else None,
            remap_failed=bool(remap[3]) if remap is not None else None,
            throttle_reasons=throttle_names(int(reasons)) if reasons is not None else None,
            pcie_gen_current=q("nvmlDeviceGetCurrPcieLinkGeneration"),
            pcie_gen_max=q("nvmlDeviceGetMaxPcieLinkGeneration"),
            pcie_width_current=q("nvmlDeviceGetCurrPcieLinkWidth"),
            pcie_width_max=q("nvmlDeviceGetMaxPcieLinkWidth"),
            links_total=links_total, links_down=tuple(down), link_errors=errors,
            persistence_mode=("Enabled" if pers else "Disabled") if pers is not None else "",
            mig_mode=("Enabled" if mig[0] else "Disabled") if mig is not None else "",
        ))
    return out


def probe() -> Probe:
    """The node's accelerators, from the first tool that answers."""
    cfg = standin_config()
    if cfg is not None:
        return Probe(standin_devices(cfg), "cpu-standin")
    found = Probe()
    nv = nvml()
    if not isinstance(nv, NotAvailable):
        try:
            devices = health_from_nvml(nv)
        except Exception as exc:
            found.missing.append(f"NVML query failed: {exc}")
        else:
            if devices:
                return Probe(devices, "nvidia")
            found.missing.append("NVML lists no GPU")
    else:
        found.missing.append(nv.reason)
    for argv, parse, vendor in ((["nvidia-smi", "-q", "-x"], health_from_smi_xml, "nvidia"),
                                (["npu-smi", "info"], health_from_npu_smi, "huawei")):
        if shutil.which(argv[0]) is None:
            found.missing.append(f"{argv[0]} is not installed")
            continue
        out = run_tool(argv, timeout=20.0)
        parsed = out.error if out.error is not None else parse(out.stdout)
        if isinstance(parsed, NotAvailable):
            found.missing.append(parsed.reason)
        else:
            return Probe(parsed, vendor)
    if shutil.which("hy-smi") is None:
        found.missing.append("hy-smi is not installed")
    else:
        table = run_tool(["hy-smi"], timeout=20.0)
        kv = "\n".join(out.stdout for args in (["--showproductname"], ["--showmeminfo", "vram"], ["--showmemavailable"])
                       if (out := run_tool(["hy-smi", *args], timeout=20.0)).error is None)
        parsed_h = table.error if table.error is not None else health_from_hy_smi(table.stdout, kv)
        if isinstance(parsed_h, NotAvailable):
            found.missing.append(parsed_h.reason)
        else:
            return Probe(parsed_h, "hygon")
    return found
