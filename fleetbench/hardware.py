"""Hardware acceptance, the pure parts shared by the agent and the controller.

The agent reads each accelerator's health into a `DeviceHealth` (from NVML, nvidia-smi, npu-smi or
hy-smi) and `health_checks` turns it into facts that pass or fail on their own (an uncorrected ECC
error, a link trained below its maximum). Figures (TFLOP/s, GB/s) come back as `measured` and the
controller judges them twice with `judge_hardware`: against the SKU's reference figure
(hardware_reference.yaml, shipped in the package, each entry with its source) and against the median
of the same SKU over the whole fleet, which is how one slow GPU among 24 is found. A check whose tool
is missing is SKIPPED with its reason and never counts as a pass.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from .jobs_schema import HardwareResult, HwCheck

# figure -> (unit, the reference figure it is judged against)
FIGURES: dict[str, tuple[str, str]] = {
    "gemm_bf16_tflops": ("TFLOP/s", "bf16_dense_tflops"),
    "memcpy_d2d_gbps": ("GB/s", "memory_bandwidth_gbps"),
    "h2d_gbps": ("GB/s", "pcie_gbps"),
    "d2h_gbps": ("GB/s", "pcie_gbps"),
    "allreduce_busbw_gbps": ("GB/s", "interconnect_gbps"),
    "stress_gemm_bf16_tflops": ("TFLOP/s", "bf16_dense_tflops"),
}
FIGURE_TEXT = {
    "gemm_bf16_tflops": "dense bf16 matrix multiply",
    "memcpy_d2d_gbps": "device-to-device copy (bytes read + written)",
    "h2d_gbps": "host to device over PCIe (pinned)",
    "d2h_gbps": "device to host over PCIe (pinned)",
    "allreduce_busbw_gbps": "all-reduce bus bandwidth across the node's accelerators",
    "stress_gemm_bf16_tflops": "sustained bf16 matrix multiply (stress), slowest window",
}
PCIE_LANE_GBPS = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}  # per lane, one direction, GB/s
FLEET_TOLERANCE = 0.10
# NVML clock-event (throttle) reasons that mean trouble when active on an idle or loaded GPU; the others
# (idle, application clocks, software power cap, sync boost) are how a healthy GPU manages its clocks.
BAD_THROTTLE = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown")
THROTTLE_BITS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
HEALTHY_NPU = ("ok",)
NODE = -1  # the index of a node-wide check


def throttle_names(mask: int) -> tuple[str, ...]:
    """NVML's clocksEventReasons bitmask as names."""
    return tuple(name for bit, name in sorted(THROTTLE_BITS.items()) if mask & bit)


# --- health: what an accelerator says about itself ---------------------------------------------------


@dataclass(frozen=True)
class DeviceHealth:
    """One accelerator's health as its management tool reported it; None: the tool did not say."""

    index: int
    name: str
    vendor: str = ""
    source: str = ""  # nvml, nvidia-smi -q -x, npu-smi info, hy-smi, cpu-standin
    uuid: str = ""
    bus_id: str = ""
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    memory_used_percent: float | None = None  # when the tool gives a share only (hy-smi's VRAM%)
    ecc_mode: str = ""
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    retired_pages_pending: bool | None = None
    remap_pending: bool | None = None
    remap_failed: bool | None = None
    throttle_reasons: tuple[str, ...] | None = None
    pcie_gen_current: int | None = None
    pcie_gen_max: int | None = None
    pcie_width_current: int | None = None
    pcie_width_max: int | None = None
    links_total: int | None = None  # NVLink / HCCS links present
    links_down: tuple[int, ...] | None = None
    link_errors: int | None = None  # replay / recovery / CRC errors over all links
    persistence_mode: str = ""
    mig_mode: str = ""
    health: str = ""  # npu-smi's Health column, hy-smi's Mode

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeviceHealth:
        """From JSON (the synthetic NVML fixtures, the agent's hardware-health.json); unknown keys refused."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown device health field(s): {', '.join(unknown)}")
        data = dict(d)
        for key in ("throttle_reasons", "links_down"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def _check(dev: DeviceHealth, name: str, ok: bool | None, detail: str, value: float | None = None,
           unit: str = "") -> HwCheck:
    if ok is None:
        return HwCheck(name=name, index=dev.index, status="skipped", detail=detail, tool=dev.source)
    return HwCheck(name=name, index=dev.index, status="pass" if ok else "fail", value=value, unit=unit, detail=detail,
                   tool=dev.source)


def _not_said(dev: DeviceHealth, what: str) -> str:
    return f"{dev.source or 'the tool'} does not report {what}"


def health_checks(dev: DeviceHealth, loaded: bool = False) -> list[HwCheck]:
    """Each health fact of one accelerator as a check; what its tool does not report is SKIPPED.
    `loaded`: read while a kernel ran (a PCIe link may train down to save power at idle)."""
    out: list[HwCheck] = []
    for scope in ("volatile", "aggregate"):
        n = getattr(dev, f"ecc_uncorrected_{scope}")
        if n is None:
            why = "ECC is disabled" if dev.ecc_mode.lower() == "disabled" else _not_said(dev, f"{scope} ECC counts")
            out.append(_check(dev, f"ecc_uncorrected_{scope}", None, why))
        else:
            out.append(_check(dev, f"ecc_uncorrected_{scope}", n == 0,
                              f"{n} uncorrected ECC error(s) ({scope})" if n else f"no uncorrected ECC error ({scope})",
                              float(n)))
    if dev.retired_pages_pending is None and dev.remap_pending is None and dev.remap_failed is None:
        out.append(_check(dev, "memory_repair", None, _not_said(dev, "retired pages or row remapping")))
    else:
        bad = [what for what, flag in (("page retirement pending", dev.retired_pages_pending),
                                       ("row remapping pending", dev.remap_pending),
                                       ("row remapping failed", dev.remap_failed)) if flag]
        out.append(_check(dev, "memory_repair", not bad,
                          "; ".join(bad) + " (reset the GPU; a failure needs an RMA)" if bad
                          else "no retired page or row remapping pending or failed"))
    if dev.throttle_reasons is None:
        out.append(_check(dev, "throttle", None, _not_said(dev, "clock-throttle reasons")))
    else:
        bad = [r for r in dev.throttle_reasons if r in BAD_THROTTLE]
        active = ", ".join(dev.throttle_reasons) or "none"
        out.append(_check(dev, "throttle", not bad, f"clocks throttled: {', '.join(bad)}" if bad
                          else f"no thermal or hardware slowdown (active reasons: {active})"))
    if None in (dev.pcie_gen_current, dev.pcie_gen_max, dev.pcie_width_current, dev.pcie_width_max):
        out.append(_check(dev, "pcie_link", None, _not_said(dev, "the PCIe link's generation and width")))
    else:
        gen_c, gen_m, w_c, w_m = (int(v or 0) for v in (dev.pcie_gen_current, dev.pcie_gen_max,
                                                       dev.pcie_width_current, dev.pcie_width_max))
        ok = gen_c >= gen_m and w_c >= w_m
        detail = f"PCIe gen {gen_c} x{w_c} (max gen {gen_m} x{w_m})"
        if not ok:
            detail += ": link trained below its maximum"
            if gen_c < gen_m and w_c >= w_m and not loaded:
                detail += " (read at idle, when a link may train down to save power; `standard` reads it under load)"
        out.append(_check(dev, "pcie_link", ok, detail))
    if dev.links_total is None:
        out.append(_check(dev, "links", None, _not_said(dev, "NVLink/HCCS links")))
    elif dev.links_total == 0:
        out.append(_check(dev, "links", None, "no NVLink/HCCS link on this accelerator"))
    else:
        down = tuple(dev.links_down or ())
        errors = dev.link_errors or 0
        ok = not down and errors == 0
        detail = f"{dev.links_total - len(down)} of {dev.links_total} links up"
        if down:
            detail += f"; down: {', '.join(str(i) for i in down)}"
        if errors:
            detail += f"; {errors} link error(s)"
        out.append(_check(dev, "links", ok, detail, float(dev.links_total - len(down))))
    if dev.persistence_mode:
        on = dev.persistence_mode.lower() == "enabled"
        out.append(_check(dev, "persistence_mode", on, "persistence mode enabled" if on else
                          "persistence mode disabled: the driver unloads between clients (nvidia-smi -pm 1)"))
    if dev.mig_mode:
        off = dev.mig_mode.lower() != "enabled"
        out.append(_check(dev, "mig_mode", off, "MIG disabled: the whole GPU" if off else
                          "MIG enabled: the GPU is partitioned, not one whole accelerator"))
    if dev.health:
        ok = dev.health.lower() in HEALTHY_NPU or (dev.vendor == "hygon" and dev.health.lower() == "normal")
        out.append(_check(dev, "device_health", ok, f"{dev.source or 'the tool'} reports health {dev.health}"))
    return out


def count_check(found: int, expected: int | None) -> HwCheck:
    """The node's accelerator count against the count the case expects."""
    if expected is None:
        return HwCheck(name="accelerator_count", index=NODE, status="measured", value=float(found), unit="",
                       detail=f"{found} accelerator(s) found; compared with the fleet by the controller")
    ok = found == expected
    return HwCheck(name="accelerator_count", index=NODE, status="pass" if ok else "fail", value=float(found),
                   detail=f"{found} accelerator(s) found, {expected} expected")


def busy_devices(devices: Sequence[DeviceHealth], fraction: float) -> list[str]:
    """Accelerators on which another process already holds more than `fraction` of the memory."""
    out = []
    for d in devices:
        if d.memory_total_mib and d.memory_used_mib is not None and d.memory_used_mib > fraction * d.memory_total_mib:
            out.append(f"{d.name or 'accelerator'} {d.index}: {d.memory_used_mib:,} of {d.memory_total_mib:,} MiB "
                       f"in use ({d.memory_used_mib / d.memory_total_mib:.0%})")
        elif not d.memory_total_mib and d.memory_used_percent is not None and d.memory_used_percent > fraction * 100:
            out.append(f"{d.name or 'accelerator'} {d.index}: {d.memory_used_percent:.0f}% of its memory in use")
    return out


# --- DCGM ---------------------------------------------------------------------------------------------


def dcgm_checks(doc: Mapping[str, Any], level: int) -> list[HwCheck]:
    """`dcgmi diag -r N -j`: one check per test and GPU, as DCGM judged it (Pass, Fail, Warn, Skip).
    Releases name the GPU `gpu_id`, `gpu_ids` or `entity_id`; a result with none is node-wide."""
    out: list[HwCheck] = []
    root = doc.get("DCGM GPU Diagnostic", doc)
    for cat in root.get("test_categories", []) if isinstance(root, Mapping) else []:
        for test in cat.get("tests", []):
            name = str(test.get("name", "test"))
            for res in test.get("results", []):
                status = str(res.get("status", "")).lower()
                gpu = res.get("gpu_id", res.get("entity_id", res.get("gpu_ids", NODE)))
                try:
                    index = int(str(gpu).split(",")[0])
                except ValueError:
                    index = NODE
                info = res.get("warnings") or res.get("info") or res.get("warning") or ""
                if isinstance(info, list):
                    info = "; ".join(str(w.get("warning", w) if isinstance(w, Mapping) else w) for w in info)
                hw = {"pass": "pass", "fail": "fail", "warn": "fail", "skip": "skipped"}.get(status, "skipped")
                out.append(HwCheck(name=f"dcgm_r{level}:{name}", index=index, status=hw,  # type: ignore[arg-type]
                                   detail=f"DCGM {res.get('status', '?')}" + (f": {info}" if info else ""),
                                   tool=f"dcgmi diag -r {level}"))
    return out


# --- the reference table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuRef:
    sku: str
    match: str
    vendor: str
    basis: str  # datasheet | reported
    source: str
    figures: dict[str, float | None] = field(default_factory=dict)

    def spec(self, figure: str) -> float | None:
        """The reference of a measured figure: its spec value, or the PCIe link's per-direction bandwidth."""
        ref = FIGURES.get(figure, ("", figure))[1]
        if ref == "pcie_gbps":
            gen, width = self.figures.get("pcie_gen"), self.figures.get("pcie_width")
            return PCIE_LANE_GBPS[int(gen)] * int(width) if gen and width and int(gen) in PCIE_LANE_GBPS else None
        return self.figures.get(ref)


@lru_cache(maxsize=1)
def reference_table() -> tuple[SkuRef, ...]:
    """The shipped table (fleetbench/hardware_reference.yaml), in match order."""
    doc = yaml.safe_load(resources.files("fleetbench").joinpath("hardware_reference.yaml").read_text("utf-8"))
    out = []
    for e in doc["skus"]:
        figures = {k: (None if e.get(k) is None else float(e[k])) for k in
                   ("bf16_dense_tflops", "memory_bandwidth_gbps", "pcie_gen", "pcie_width", "interconnect_gbps")}
        out.append(SkuRef(e["sku"], e["match"], e["vendor"], e["basis"], e["source"], figures))
    return tuple(out)


def find_sku(name: str, table: Sequence[SkuRef] | None = None) -> SkuRef | None:
    """The first entry whose pattern is found in the driver's name for the accelerator."""
    for ref in table if table is not None else reference_table():
        if re.search(ref.match, name, re.IGNORECASE):
            return ref
    return None


# --- judging: against spec and against the fleet -----------------------------------------------------


@dataclass(frozen=True)
class FigureExpect:
    """A case's bound on one measured figure."""

    min_fraction_of_spec: float | None = None
    min: float | None = None


@dataclass(frozen=True)
class HwRow:
    """One judged check on one accelerator (index -1: the node) — a row of the report's Hardware section."""

    node: str
    index: int
    device: str  # the accelerator's name as its driver reports it
    sku: str  # the reference entry it matched ("" when none)
    check: str
    status: str  # pass | fail | skipped | error
    measured: float | None = None
    unit: str = ""
    reference: float | None = None
    fraction_of_spec: float | None = None
    fleet_median: float | None = None
    fleet_fraction: float | None = None
    detail: str = ""

    @property
    def where(self) -> str:
        return self.node if self.index < 0 else f"{self.node} #{self.index}"


def _fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}" if abs(v) >= 1 else f"{v:.3g}"


def judge_hardware(results: Mapping[str, HardwareResult], expect: Mapping[str, FigureExpect] | None = None,
                   fleet_tolerance: float = FLEET_TOLERANCE,
                   overrides: Mapping[str, Mapping[str, float]] | None = None,
                   table: Sequence[SkuRef] | None = None) -> list[HwRow]:
    """Every check of every node, judged. Health facts keep the agent's pass/fail/skipped; each measured
    figure passes when it meets the case's bounds (the fraction of the SKU's datasheet figure, an absolute
    minimum) and is not `fleet_tolerance` or more below the median of the same SKU and figure over the fleet;
    it fails when either says no; it is SKIPPED (never a pass) when nothing could judge it. `overrides`:
    SKU -> {reference figure: value}, the vendor's figures for a SKU the table lacks or only reports."""
    expect = expect or {}
    overrides = overrides or {}
    devices = {(node, d.index): d.name for node, r in results.items() for d in r.devices}
    for node, r in results.items():  # a node-wide figure (the all-reduce) is its first accelerator's SKU's
        if r.devices:
            devices[(node, NODE)] = r.devices[0].name
    sku_of = {key: find_sku(name, table) for key, name in devices.items()}

    def group(node: str, index: int) -> str:
        ref = sku_of.get((node, index))
        return ref.sku if ref else devices.get((node, index), "")

    peers: dict[tuple[str, str], list[float]] = {}
    for node, r in results.items():
        for c in r.checks:
            if c.status == "measured" and c.value is not None and math.isfinite(c.value) \
                    and c.name != "accelerator_count":
                peers.setdefault((group(node, c.index), c.name), []).append(c.value)
    # each group's median once (sorting a 1,000-GPU group per row made a 128-node fleet take seconds)
    medians = {key: (statistics.median(values) if len(values) >= 2 else None, len(values))
               for key, values in peers.items()}
    counts = [float(len(r.devices)) for r in results.values()]
    usual_count = statistics.mode(counts) if counts else None

    rows: list[HwRow] = []
    for node in sorted(results):
        r = results[node]
        for c in r.checks:
            ref = sku_of.get((node, c.index))
            base: dict[str, Any] = {"node": node, "index": c.index, "device": "" if c.index < 0 else
                                    devices.get((node, c.index), ""), "sku": ref.sku if ref else "", "check": c.name,
                                    "measured": c.value, "unit": c.unit}
            if c.name == "accelerator_count" and c.status == "measured":
                if len(results) < 2 or usual_count is None:
                    rows.append(HwRow(**base, status="skipped", detail=f"{c.detail}; one node and no expected_count: "
                                      "nothing to compare with"))
                else:
                    ok = c.value == usual_count
                    rows.append(HwRow(**base, status="pass" if ok else "fail", fleet_median=usual_count,
                                      detail=f"{c.detail}; the fleet's usual count is {usual_count:.0f}"))
                continue
            if c.status != "measured":
                rows.append(HwRow(**base, status=c.status, detail=c.detail))
                continue
            rows.append(_judge_figure(node, c, base, ref, group(node, c.index), expect.get(c.name), medians,
                                      fleet_tolerance, overrides))
    return rows


def _judge_figure(node: str, c: HwCheck, base: dict[str, Any], ref: SkuRef | None, sku: str,
                  bound: FigureExpect | None, medians: Mapping[tuple[str, str], tuple[float | None, int]],
                  tolerance: float,
                  overrides: Mapping[str, Mapping[str, float]]) -> HwRow:
    value = c.value
    if value is None or not math.isfinite(value):
        return HwRow(**base, status="error", detail=c.detail or "no figure measured")
    verdicts: list[bool] = []
    notes: list[str] = []
    reference = None
    fraction = None
    ref_name = FIGURES.get(c.name, ("", ""))[1]
    override = (overrides.get(sku) or {}).get(ref_name) if sku else None
    if override is not None:
        reference, basis = float(override), "the case's reference"
    elif ref is not None:
        reference, basis = ref.spec(c.name), ref.basis
    else:
        basis = ""
    if reference:
        fraction = value / reference
    if bound is not None and bound.min_fraction_of_spec is not None:
        if ref is None and override is None:
            notes.append(f"spec: no reference entry for {base['device'] or 'this accelerator'}")
        elif reference is None:
            notes.append(f"spec: {sku} has no {ref_name} figure (give it under the case's reference)")
        elif basis == "reported":
            notes.append(f"spec: {sku}'s {ref_name} is reported, not from a datasheet (give the vendor's under "
                         "the case's reference)")
        else:
            assert fraction is not None
            ok = fraction >= bound.min_fraction_of_spec - 1e-12
            verdicts.append(ok)
            notes.append(f"{fraction:.0%} of spec {_fmt(reference)} {c.unit} ({'≥' if ok else '<'} "
                         f"{bound.min_fraction_of_spec:.0%})")
    if bound is not None and bound.min is not None:
        ok = value >= bound.min
        verdicts.append(ok)
        notes.append(f"{'≥' if ok else '<'} min {_fmt(bound.min)} {c.unit}")
    median, peers = medians.get((sku, c.name), (None, 0))
    fleet_fraction = value / median if median else None
    if median and fleet_fraction is not None:
        ok = fleet_fraction > 1 - tolerance + 1e-12
        verdicts.append(ok)
        notes.append(f"{fleet_fraction:.0%} of the fleet median {_fmt(median)} {c.unit} over {peers} "
                     f"{sku or 'accelerator'}(s)" + ("" if ok else f" (≥ {tolerance:.0%} below: an outlier)"))
    else:
        notes.append(f"fleet: only {peers} {sku or 'accelerator'} measured, nothing to compare with")
    status = "skipped" if not verdicts else "pass" if all(verdicts) else "fail"
    detail = "; ".join(notes) + (f" — {c.detail}" if c.detail else "")
    return HwRow(**base, status=status, reference=reference, fraction_of_spec=fraction, fleet_median=median,
                 fleet_fraction=fleet_fraction, detail=detail)


def summary_counts(rows: Iterable[HwRow]) -> dict[str, int]:
    out = {"pass": 0, "fail": 0, "skipped": 0, "error": 0}
    for r in rows:
        out[r.status] = out.get(r.status, 0) + 1
    return out
