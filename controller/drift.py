"""Fleet drift check: compare each node's inventory with the majority of the fleet.

Pure: inventories in, findings out. A node is flagged, in plain words, when it
differs from the majority on what matters for an acceptance test (accelerator
model, count and memory; driver and CUDA/CANN/DTK versions; kernel; installed
memory). NVLink links down, uncorrected ECC errors and MIG enabled are reported
for every node where they occur, whatever the other nodes show.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleetbench.inventory import Inventory, NotAvailable
from fleetbench.inventory import format_bytes as _format_bytes


@dataclass(frozen=True, slots=True)
class DriftFinding:
    node: str
    field: str
    value: str
    majority_value: str
    message: str


def _accel_model(inv: Inventory) -> str:
    names = sorted({a.name for a in inv.accelerators})
    return ", ".join(names) if names else "none"


def _accel_memory(inv: Inventory) -> str:
    mems = sorted({a.memory_total_mib for a in inv.accelerators if a.memory_total_mib})
    return ", ".join(f"{m} MiB" for m in mems) if mems else "unknown"


def _nvidia_attr(attr: str) -> Callable[[Inventory], str]:
    def get(inv: Inventory) -> str:
        if isinstance(inv.nvidia, NotAvailable):
            return ""
        return str(getattr(inv.nvidia, attr) or "")
    return get


def _cann(inv: Inventory) -> str:
    if isinstance(inv.ascend, NotAvailable) or isinstance(inv.ascend.cann_version, NotAvailable):
        return ""
    return inv.ascend.cann_version


def _dtk(inv: Inventory) -> str:
    if isinstance(inv.hygon, NotAvailable) or isinstance(inv.hygon.dtk_version, NotAvailable):
        return ""
    return inv.hygon.dtk_version


# (field, label, getter): compared with the majority; "" means the node has no such value (not compared
# unless another node has one, then shown as "none").
_COMPARED: tuple[tuple[str, str, Callable[[Inventory], str]], ...] = (
    ("accelerator_model", "accelerator model", _accel_model),
    ("accelerator_count", "accelerator count", lambda inv: str(len(inv.accelerators))),
    ("accelerator_memory", "accelerator memory", _accel_memory),
    ("driver_version", "driver", lambda inv: inv.driver_version),
    ("cuda_version", "CUDA", _nvidia_attr("cuda_version")),
    ("cann_version", "CANN", _cann),
    ("dtk_version", "DTK", _dtk),
    ("kernel", "kernel", lambda inv: inv.kernel),
)

MEMORY_TOLERANCE = 0.02  # MemTotal differs slightly between identical servers (firmware/kernel reservations)


def _names(nodes: list[str]) -> str:
    return ", ".join(nodes)


def _majority(values: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The value most nodes share (None on a tie for first place) and the nodes that have it."""
    counts = Counter(values.values())
    ranked = counts.most_common()
    if not ranked:
        return None, []
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, []
    top = ranked[0][0]
    return top, sorted(n for n, v in values.items() if v == top)


def _compare(field: str, label: str, values: Mapping[str, str]) -> list[DriftFinding]:
    if len(values) < 2 or len(set(values.values())) < 2:
        return []
    majority, holders = _majority(values)
    findings = []
    if majority is None:
        groups: dict[str, list[str]] = {}
        for n, v in values.items():
            groups.setdefault(v, []).append(n)
        desc = "; ".join(f"{v or 'none'} on {_names(sorted(ns))}" for v, ns in sorted(groups.items()))
        for n in sorted(values):
            v = values[n] or "none"
            findings.append(DriftFinding(n, field, v, "no majority",
                                         f"{n}: {label} {v}; the nodes disagree with no majority ({desc})"))
        return findings
    for n in sorted(values):
        v = values[n]
        if v != majority:
            findings.append(DriftFinding(
                n, field, v or "none", majority or "none",
                f"{n}: {label} {v or 'none'} differs from the majority {majority or 'none'} ({_names(holders)})",
            ))
    return findings


def _memory_findings(inventories: Mapping[str, Inventory]) -> list[DriftFinding]:
    sizes = {n: inv.memory_size_bytes() for n, inv in inventories.items() if inv.memory_size_bytes()}
    if len(sizes) < 2:
        return []
    ordered = sorted(sizes.values())
    median = ordered[len(ordered) // 2]
    same = sorted(n for n, s in sizes.items() if abs(s - median) <= MEMORY_TOLERANCE * median)
    if len(same) * 2 <= len(sizes):
        same_vals = {n: _format_bytes(s) for n, s in sizes.items()}
        return _compare("memory_size", "memory", same_vals)
    ref = _format_bytes(median)
    return [
        DriftFinding(n, "memory_size", _format_bytes(s), ref,
                     f"{n}: memory {_format_bytes(s)} differs from the majority {ref} ({_names(same)})")
        for n, s in sorted(sizes.items()) if n not in same
    ]


def check_drift(inventories: Mapping[str, Inventory]) -> list[DriftFinding]:
    """Every way each node differs from the fleet's majority, plus NVLink/ECC/MIG findings per node."""
    findings: list[DriftFinding] = []
    for field, label, getter in _COMPARED:
        values = {n: getter(inv) for n, inv in inventories.items()}
        if not any(values.values()):
            continue
        findings += _compare(field, label, values)
    findings += _memory_findings(inventories)
    for n in sorted(inventories):
        inv = inventories[n]
        down = inv.nvlinks_down()
        if down:
            findings.append(DriftFinding(
                n, "nvlink_down", str(len(down)), "0",
                f"{n}: {len(down)} NVLink link(s) down: {', '.join(down)}",
            ))
        ecc = inv.ecc_uncorrected()
        if ecc:
            desc = ", ".join(f"GPU{i}: {c}" for i, c in sorted(ecc.items()))
            findings.append(DriftFinding(
                n, "ecc_uncorrected", str(sum(ecc.values())), "0",
                f"{n}: uncorrected ECC errors on {len(ecc)} GPU(s) ({desc})",
            ))
        mig = inv.mig_enabled()
        if mig:
            findings.append(DriftFinding(
                n, "mig_enabled", ", ".join(f"GPU{i}" for i in mig), "none",
                f"{n}: MIG is enabled on {', '.join(f'GPU{i}' for i in mig)}",
            ))
    return findings
