"""Validity of one step's measurement, as MLPerf LoadGen judges a run: named sub-checks, each with what
was measured, any failing one makes the step INVALID (rerun), never PASS. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetbench.figures import Figures

from .verdict import Check, fmt_value

SKEW_FLOOR_S = 0.100  # start skew bound: max(this, SKEW_FRACTION × the common window)
SKEW_FRACTION = 0.01
CLOCK_UNCERTAINTY_FRACTION = 0.5  # a node's clock uncertainty (RTT / 2) may use half the skew bound


@dataclass(frozen=True)
class StepFacts:
    """What the checks look at, gathered by the orchestrator."""

    nodes: Sequence[str]  # every node the step was run on (the contract's N)
    with_results: Mapping[str, Figures]  # nodes whose job finished, with their figures
    errors: Mapping[str, str]  # nodes whose job failed: the error
    cluster: Figures | None
    start_skew_s: float
    saturated: Mapping[str, str]  # node -> what saturated (CPU, loop lag)
    rtt_s: Mapping[str, float]
    min_duration_s: float | None = None
    min_requests: int | None = None
    max_start_skew_s: float | None = None
    synchronized: bool = True  # load steps; an eval has no common start


def skew_bound(window_s: float, override: float | None = None) -> float:
    if override is not None:
        return override
    return max(SKEW_FLOOR_S, SKEW_FRACTION * window_s) if not math.isnan(window_s) else SKEW_FLOOR_S


def checks(f: StepFacts) -> list[Check]:
    n = len(f.nodes)
    out = [Check("nodes", "cluster", f"{len(f.with_results)} of {n} nodes", f"{n} of {n}",
                 len(f.with_results) == n,
                 "; ".join(f"{k}: {v}" for k, v in sorted(f.errors.items())))]
    for node in f.nodes:
        figs = f.with_results.get(node)
        if figs is None:
            continue
        out.append(Check("node_results", node, f"{figs.requests:,} completed", ">= 1", figs.requests >= 1,
                         "" if figs.requests else "the node sent no request or recorded none"))
        if f.min_requests is not None:
            out.append(Check("min_requests", node, f"{figs.requests:,}", f">= {f.min_requests:,}",
                             figs.requests >= f.min_requests))
        if node in f.saturated:
            out.append(Check("load_generator", node, "saturated", "not saturated", False,
                             f"{f.saturated[node]}: figures may be client-bound; add workers or a bigger client"))
    if not f.synchronized:
        return out
    window = f.cluster.wall_time_s if f.cluster is not None else math.nan
    bound = skew_bound(window, f.max_start_skew_s)
    if len(f.with_results) >= 2:
        skew_ok = not math.isnan(f.start_skew_s) and f.start_skew_s <= bound
        out.append(Check("start_skew", "cluster", fmt_value(f.start_skew_s, "s"), f"<= {fmt_value(bound, 's')}",
                         skew_ok, "" if skew_ok else "the nodes did not start together: the cluster figure is not "
                                                     "one simultaneous load"))
    for node in f.nodes:
        rtt = f.rtt_s.get(node, math.nan)
        if node not in f.with_results or len(f.nodes) < 2:
            continue
        limit = bound * CLOCK_UNCERTAINTY_FRACTION
        ok = not math.isnan(rtt) and rtt / 2 <= limit
        out.append(Check("clock_uncertainty", node, fmt_value(rtt / 2, "s"), f"<= {fmt_value(limit, 's')}", ok,
                         "" if ok else "round trip to the agent too long to place its clock"))
    if f.min_duration_s is not None:
        ok = not math.isnan(window) and window >= f.min_duration_s
        out.append(Check("min_duration", "cluster", fmt_value(window, "s"), f">= {fmt_value(f.min_duration_s, 's')}",
                         ok))
    return out


def eval_checks(nodes: Sequence[str], samples: Mapping[str, int], errors: Mapping[str, str]) -> list[Check]:
    """An eval step: every node ran, and every node that ran answered at least one scored question."""
    out = [Check("nodes", "cluster", f"{len(samples)} of {len(nodes)} nodes", f"{len(nodes)} of {len(nodes)}",
                 len(samples) == len(nodes), "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))]
    for node in nodes:
        if node in samples:
            out.append(Check("node_results", node, f"{samples[node]:,} scored samples", ">= 1", samples[node] >= 1,
                             "" if samples[node] else "evalscope scored nothing on this node"))
    return out


def hardware_checks(nodes: Sequence[str], judged: Mapping[str, int], skipped: Mapping[str, int],
                    errors: Mapping[str, str]) -> list[Check]:
    """A hardware step: every node ran its checks, and on every node at least one check was judged (passed or
    failed) — a node whose every check was SKIPPED (no tool, no accelerator) is not a pass."""
    out = [Check("nodes", "cluster", f"{len(judged)} of {len(nodes)} nodes", f"{len(nodes)} of {len(nodes)}",
                 len(judged) == len(nodes), "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))]
    for node in nodes:
        if node in judged:
            out.append(Check("hardware_judged", node, f"{judged[node]} judged, {skipped.get(node, 0)} skipped", ">= 1 "
                             "judged", judged[node] >= 1, "" if judged[node] else "every check was SKIPPED: nothing "
                             "on this node could be judged (see each check's reason)"))
    return out
