"""The fleet view of inventories: one row per node, the drift verdict and exit code, and snapshot diffs.

Pure: inventories (or their JSON documents) in, rows, findings and changes out.
`ctl inventory` (controller/cli/inventory.py) is a thin layer over this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbench.errors import ConfigError
from fleetbench.inventory import Inventory

from .drift import DriftFinding, check_drift

# (row key, column header) of the fleet table, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("node", "node"),
    ("hostname", "host"),
    ("cpu", "CPU"),
    ("cpus", "CPUs"),
    ("memory", "memory"),
    ("accelerators", "accelerators"),
    ("driver", "driver"),
    ("toolkit", "CUDA/CANN/DTK"),
    ("os", "OS"),
    ("kernel", "kernel"),
    ("engine", "engine"),
)

# The table column that shows each drift finding's field.
FINDING_COLUMN: dict[str, str] = {
    "accelerator_model": "accelerators",
    "accelerator_count": "accelerators",
    "accelerator_memory": "accelerators",
    "nvlink_down": "accelerators",
    "ecc_uncorrected": "accelerators",
    "mig_enabled": "accelerators",
    "driver_version": "driver",
    "cuda_version": "toolkit",
    "cann_version": "toolkit",
    "dtk_version": "toolkit",
    "kernel": "kernel",
    "memory_size": "memory",
}

EXIT_OK, EXIT_DRIFT, EXIT_CANNOT_RUN = 0, 1, 2


def parse_inventory(detail_json: str) -> Inventory:
    """An agent's `detail_json` as an Inventory; ValueError with a one-line reason when it cannot be read."""
    try:
        doc = json.loads(detail_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the agent's inventory is not JSON: {exc}") from None
    try:
        return Inventory.from_document(doc)
    except ValueError as exc:
        raise ValueError(f"the agent's inventory cannot be read: {exc}") from None


def fleet_row(node: str, inv: Inventory) -> dict[str, str]:
    """One table row: `summary_row()` plus the node name and the logical CPU count."""
    row = {"node": node, **inv.summary_row()}
    row["cpus"] = str(inv.cpu_count) if inv.cpu_count else ""
    return {key: row.get(key, "") for key, _ in COLUMNS}


def drift_cells(findings: Iterable[DriftFinding]) -> dict[str, set[str]]:
    """node -> the table columns that hold a value a finding is about (for highlighting)."""
    cells: dict[str, set[str]] = {}
    for f in findings:
        col = FINDING_COLUMN.get(f.field)
        if col:
            cells.setdefault(f.node, set()).add(col)
    return cells


@dataclass(frozen=True)
class FleetAssessment:
    rows: list[dict[str, str]]  # one per node, in the order asked; an unreachable node has "error"
    findings: list[DriftFinding]
    errors: dict[str, str]  # node -> why its inventory is missing
    exit_code: int

    @property
    def checked_nodes(self) -> list[str]:
        return [r["node"] for r in self.rows if "error" not in r]


def decide_exit(errors: Mapping[str, str], findings: Sequence[DriftFinding], check: bool) -> int:
    """2 when a node's inventory is missing (the fleet cannot be judged); with --check, 1 on drift; else 0."""
    if errors:
        return EXIT_CANNOT_RUN
    if check and findings:
        return EXIT_DRIFT
    return EXIT_OK


def assess(results: Mapping[str, Inventory | str], check: bool) -> FleetAssessment:
    """Rows, drift findings and the exit code of `ctl inventory` for {node: Inventory or error text}."""
    rows: list[dict[str, str]] = []
    errors: dict[str, str] = {}
    inventories: dict[str, Inventory] = {}
    for node, r in results.items():
        if isinstance(r, Inventory):
            inventories[node] = r
            rows.append(fleet_row(node, r))
        else:
            errors[node] = r
            rows.append({"node": node, "error": r})
    findings = check_drift(inventories)
    return FleetAssessment(rows, findings, errors, decide_exit(errors, findings, check))


def drift_summary(assessment: FleetAssessment) -> list[str]:
    """Plain-words lines for the operator: every finding, or why there is none."""
    nodes = assessment.checked_nodes
    if assessment.findings:
        n = len(assessment.findings)
        return [f"drift: {n} finding{'s' if n != 1 else ''} over {len(nodes)} node(s):",
                *(f"  - {f.message}" for f in assessment.findings)]
    if not nodes:
        return ["drift: not checked, no node answered"]
    what = ("agree on accelerator model, count and memory, driver, CUDA/CANN/DTK, kernel and memory size; "
            if len(nodes) > 1 else "is the only node checked; ")
    line = f"drift: none — {', '.join(nodes)} {what}no NVLink link down, no uncorrected ECC error, no MIG"
    if assessment.errors:
        line += f" (not checked: {', '.join(assessment.errors)})"
    return [line]


# ---------------------------------------------------------------------------------- snapshot diff

# Fields that change from one minute to the next on an unchanged server; `diff` leaves them out.
# Paths are flattened JSON paths with every list index written `[]`; a path names its whole subtree.
VOLATILE_PATHS: tuple[str, ...] = (
    "collected_at",
    "timings_s",
    "memory.available_bytes",
    "nvidia.gpus[].memory_used_mib",
    "nvidia.gpus[].temperature_c",
    "nvidia.gpus[].power_draw_w",
    "nvidia.gpus[].pcie_gen_current",
    "nvidia.gpus[].pcie_width_current",
    "ascend.npus[].temperature_c",
    "ascend.npus[].power_w",
    "ascend.npus[].aicore_percent",
    "ascend.npus[].memory_used_mb",
    "ascend.npus[].hbm_used_mb",
    "hygon.dcus[].temperature_c",
    "hygon.dcus[].power_w",
    "hygon.dcus[].vram_percent",
    "hygon.dcus[].util_percent",
    "hygon.dcus[].vram_available_mib",
)
_VOLATILE = frozenset(VOLATILE_PATHS)
_INDEX = re.compile(r"\[[^\]]*\]")

# List items are matched by the first of these key fields that every item of both lists has, unique in each
# list (GPUs by index, NVLinks by link, DIMMs by locator, disks/NICs/runtimes by name, IB ports by device and
# port); otherwise by position.
_KEY_FIELDS: tuple[tuple[str, ...], ...] = (
    ("index",), ("npu_id", "chip_id"), ("device", "port"), ("link",), ("locator",), ("name",),
)

ADDED, REMOVED, CHANGED = "added", "removed", "changed"


@dataclass(frozen=True)
class Change:
    path: str  # flattened JSON path, e.g. "nvidia.gpus[3].nvlinks[7].active"
    kind: str  # "changed", "added" (only in B) or "removed" (only in A)
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "before": self.before, "after": self.after}

    def text(self) -> str:
        if self.kind == ADDED:
            return f"{self.path}: added {show(self.after)}"
        if self.kind == REMOVED:
            return f"{self.path}: removed (was {show(self.before)})"
        return f"{self.path}: {show(self.before)} → {show(self.after)}"


def is_volatile(path: str) -> bool:
    return _INDEX.sub("[]", path) in _VOLATILE


def strip_volatile(value: Any, path: str = "") -> Any:
    """`value` (found at `path`) without its volatile fields, for showing an added or removed subtree."""
    if isinstance(value, dict):
        return {k: strip_volatile(v, _join(path, k)) for k, v in value.items()
                if not is_volatile(_join(path, k))}
    if isinstance(value, list):
        return [strip_volatile(v, f"{path}[]") for v in value]
    return value


def show(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list_keys(a: list[Any], b: list[Any]) -> tuple[list[str], list[str]]:
    for fields in _KEY_FIELDS:
        ok = True
        keyed: list[list[str]] = []
        for items in (a, b):
            if not all(isinstance(x, dict) and all(x.get(f) not in (None, "") for f in fields) for x in items):
                ok = False
                break
            keys = ["/".join(str(x[f]) for f in fields) for x in items]
            if len(set(keys)) != len(keys):
                ok = False
                break
            keyed.append(keys)
        if ok and (a or b):
            return keyed[0], keyed[1]
    return [str(i) for i in range(len(a))], [str(i) for i in range(len(b))]


def _diff(a: Any, b: Any, path: str, out: list[Change]) -> None:
    if path and is_volatile(path):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            p = _join(path, str(k))
            if is_volatile(p):
                continue
            if k not in b:
                out.append(Change(p, REMOVED, before=strip_volatile(a[k], p)))
            elif k not in a:
                out.append(Change(p, ADDED, after=strip_volatile(b[k], p)))
            else:
                _diff(a[k], b[k], p, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        ka, kb = _list_keys(a, b)
        ia, ib = dict(zip(ka, a, strict=True)), dict(zip(kb, b, strict=True))
        for k in ka + [k for k in kb if k not in ia]:
            p = f"{path}[{k}]"
            if k not in ib:
                out.append(Change(p, REMOVED, before=strip_volatile(ia[k], p)))
            elif k not in ia:
                out.append(Change(p, ADDED, after=strip_volatile(ib[k], p)))
            else:
                _diff(ia[k], ib[k], p, out)
        return
    if a != b:
        out.append(Change(path or "(document)", CHANGED, before=strip_volatile(a, path),
                          after=strip_volatile(b, path)))


def diff_documents(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """What changed from inventory document A to B, field by field (flattened JSON paths), volatile fields
    (VOLATILE_PATHS) left out. A section that is "not available: …" on one side and collected on the other is
    one change at the section's path."""
    out: list[Change] = []
    _diff(dict(a), dict(b), "", out)
    return out


@dataclass(frozen=True)
class SnapshotRef:
    snapshot_id: str
    node: str | None = None  # `ID:NODE` names one node of the snapshot


def parse_snapshot_ref(text: str) -> SnapshotRef:
    """`ID` or `ID:NODE` (snapshot ids hold no colon; a node name may, e.g. host:port)."""
    sid, sep, node = text.strip().partition(":")
    if not sid or (sep and not node):
        raise ConfigError(f"{text!r} is not a snapshot id (SNAPSHOT or SNAPSHOT:NODE; `ctl inventory snapshots`)")
    return SnapshotRef(sid, node or None)


@dataclass(frozen=True)
class NodePair:
    node_a: str
    node_b: str

    @property
    def label(self) -> str:
        return self.node_a if self.node_a == self.node_b else f"{self.node_a} → {self.node_b}"


def pair_nodes(a: SnapshotRef, a_nodes: Sequence[str], b: SnapshotRef, b_nodes: Sequence[str],
               node: str | None = None) -> list[NodePair]:
    """Which node of snapshot A is compared with which node of B.

    `A:n1 B:n2` compares those two; `--node n1` picks one node present in both; otherwise every node the
    two snapshots share, in A's order. ConfigError when a named node is missing or nothing is shared."""
    for ref, nodes in ((a, a_nodes), (b, b_nodes)):
        if ref.node is not None and ref.node not in nodes:
            raise ConfigError(f"snapshot {ref.snapshot_id} has no node {ref.node!r} (it has: {', '.join(nodes)})")
    if node is not None:
        for ref, nodes in ((a, a_nodes), (b, b_nodes)):
            if ref.node is None and node not in nodes:
                raise ConfigError(f"snapshot {ref.snapshot_id} has no node {node!r} (it has: {', '.join(nodes)})")
    na = a.node or (node if node is not None else None)
    nb = b.node or (node if node is not None else None)
    if na is not None and nb is not None:
        return [NodePair(na, nb)]
    if na is not None or nb is not None:
        one = na if na is not None else nb
        assert one is not None
        other_ref, other_nodes = (b, b_nodes) if na is not None else (a, a_nodes)
        if one not in other_nodes:
            raise ConfigError(f"snapshot {other_ref.snapshot_id} has no node {one!r} (it has: "
                              f"{', '.join(other_nodes)}); name it as {other_ref.snapshot_id}:NODE")
        return [NodePair(one, one)]
    shared = [n for n in a_nodes if n in b_nodes]
    if not shared:
        raise ConfigError(f"snapshots {a.snapshot_id} ({', '.join(a_nodes)}) and {b.snapshot_id} "
                          f"({', '.join(b_nodes)}) share no node; compare two nodes as SNAPSHOT:NODE")
    return [NodePair(n, n) for n in shared]


@dataclass
class NodeDiff:
    pair: NodePair
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"node_a": self.pair.node_a, "node_b": self.pair.node_b,
                "changes": [c.to_dict() for c in self.changes]}
