"""Huawei Ascend NPUs: `npu-smi info` plus the CANN toolkit's ascend_toolkit_install.info."""

from __future__ import annotations

import glob
import os
import re

from fleetbench.inventory import AscendInfo, Npu

from ._common import NotAvailable, clean, read_text, remaining, run_tool, to_float

_BANNER = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)")
_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_npu_smi_info(text: str) -> AscendInfo | NotAvailable:
    """Parse `npu-smi info` (Atlas 800 A2 / 910B: one chip per NPU; A3: two chips per NPU)."""
    banner = _BANNER.search(text)
    version = banner.group(2) if banner else ""
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("|")]
    npus: list[Npu] = []
    i = 0
    while i < len(lines) - 1:
        a = _cells(lines[i])
        if len(a) >= 3 and re.fullmatch(r"\d+\s+\S.*", a[0]) and "NPU" not in a[0] and "Chip" not in a[0]:
            b = _cells(lines[i + 1])
            id_name = a[0].split(None, 1)
            chip_cell = b[0].split() if b else []
            if len(b) >= 3 and chip_cell and chip_cell[0].isdigit():
                nums_a = a[2].split()
                pairs_b = _PAIR.findall(b[2])
                aicore = b[2].split()[0] if b[2].split() else ""
                memory = pairs_b[0] if len(pairs_b) >= 2 else None
                hbm = pairs_b[-1] if pairs_b else None
                npus.append(
                    Npu(
                        npu_id=int(id_name[0]),
                        chip_id=int(chip_cell[0]),
                        name=id_name[1].strip() if len(id_name) > 1 else "",
                        health=a[1],
                        bus_id=b[1],
                        power_w=to_float(nums_a[0]) if nums_a and nums_a[0] != "-" else None,
                        temperature_c=to_float(nums_a[1]) if len(nums_a) > 1 else None,
                        aicore_percent=to_float(aicore) if aicore and aicore != "-" else None,
                        memory_used_mb=int(memory[0]) if memory else None,
                        memory_total_mb=int(memory[1]) if memory else None,
                        hbm_used_mb=int(hbm[0]) if hbm else None,
                        hbm_total_mb=int(hbm[1]) if hbm else None,
                    )
                )
                i += 2
                continue
        i += 1
    if not npus:
        return NotAvailable("no NPU row found in npu-smi info")
    return AscendInfo(npu_smi_version=version, npus=tuple(npus))


def parse_cann_info(text: str) -> str | NotAvailable:
    """Parse ascend_toolkit_install.info (key=value): the CANN toolkit's `version`."""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "version" and clean(value):
            return clean(value)
    return NotAvailable("ascend_toolkit_install.info has no version")


CANN_INFO_GLOBS = (
    "{home}/*/ascend_toolkit_install.info",
    "/usr/local/Ascend/ascend-toolkit/latest/*/ascend_toolkit_install.info",
    "/usr/local/Ascend/ascend-toolkit/latest/ascend_toolkit_install.info",
    "/usr/local/Ascend/cann/*/ascend_toolkit_install.info",
)


def collect_cann() -> str | NotAvailable:
    home = os.environ.get("ASCEND_TOOLKIT_HOME", "/usr/local/Ascend/ascend-toolkit/latest")
    for pattern in CANN_INFO_GLOBS:
        for path in sorted(glob.glob(pattern.format(home=home))):
            raw = read_text(path)
            if isinstance(raw, str):
                return parse_cann_info(raw)
    return NotAvailable("no CANN toolkit found (ascend_toolkit_install.info)")


def collect(deadline: float | None = None) -> AscendInfo | NotAvailable:
    out = run_tool(["npu-smi", "info"], timeout=remaining(deadline, 8.0))
    if out.error is not None:
        return out.error
    info = parse_npu_smi_info(out.stdout)
    if isinstance(info, NotAvailable):
        return info
    return AscendInfo(npu_smi_version=info.npu_smi_version, npus=info.npus, cann_version=collect_cann())

