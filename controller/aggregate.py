"""Per-node and cluster figures for one case, and the verdicts of its expectations.

Pure: records in, typed results out. Cluster figures are the same
definitions (fleetbench.figures) applied to the union of all nodes' records,
each shifted onto the controller's clock by its node's measured offset.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetbench.columns import RecordColumns, as_columns
from fleetbench.figures import PERCENTILES, Figures, node_and_cluster_figures
from fleetbench.records import RequestRecord

from .plan import Expectation

CLUSTER = "cluster"
STRAGGLER_MARGIN = 0.10  # a node this far below the fleet median output throughput is flagged


@dataclass(frozen=True)
class Verdict:
    scope: str  # a node name or CLUSTER
    expectation: Expectation
    measured: float
    passed: bool
    note: str = ""

    @property
    def label(self) -> str:
        return "pass" if self.passed else ("error" if self.note else "fail")


@dataclass(frozen=True)
class CaseAggregate:
    nodes: dict[str, Figures]
    cluster: Figures
    sum_node_tpm_total: float
    sum_node_tpm_output: float
    start_skew_s: float
    stragglers: tuple[str, ...]


def shift_records(records: Sequence[RequestRecord] | RecordColumns, offset_s: float,
                  point: str = "") -> RecordColumns:
    """Node-clock records on the controller clock (offset = node clock - controller clock), as columns;
    `point`, when given, labels every record with its sweep point."""
    shifted = as_columns(records).shifted(offset_s)
    return shifted.with_point(point) if point else shifted


def aggregate_case(records_by_node: Mapping[str, Sequence[RequestRecord] | RecordColumns],
                   percentiles: Sequence[int] = PERCENTILES) -> CaseAggregate:
    """`records_by_node` must already be on the controller clock; `percentiles`: the plan's percentile set.
    Every record is looked at once: the cluster's figures come from the nodes' passes
    (fleetbench.figures.node_and_cluster_figures)."""
    names = list(records_by_node)
    per_node, cluster = node_and_cluster_figures([records_by_node[n] for n in names], percentiles)
    nodes = dict(zip(names, per_node, strict=True))
    firsts = [f.window_start for f in nodes.values() if not math.isnan(f.window_start)]
    skew = max(firsts) - min(firsts) if firsts else math.nan
    tputs = {n: f.output_throughput_tps for n, f in nodes.items() if not math.isnan(f.output_throughput_tps)}
    stragglers: tuple[str, ...] = ()
    if len(tputs) >= 2:
        med = statistics.median(tputs.values())
        stragglers = tuple(sorted(n for n, t in tputs.items() if t < med * (1 - STRAGGLER_MARGIN)))
    return CaseAggregate(
        nodes=nodes,
        cluster=cluster,
        sum_node_tpm_total=sum(f.tpm_total for f in nodes.values() if not math.isnan(f.tpm_total)),
        sum_node_tpm_output=sum(f.tpm_output for f in nodes.values() if not math.isnan(f.tpm_output)),
        start_skew_s=skew,
        stragglers=stragglers,
    )


def judge(scope: str, figures: Figures, expectations: Sequence[Expectation],
          extra: Mapping[str, float] | None = None) -> list[Verdict]:
    """Each expectation against `figures`, or against `extra` (figures computed beside them, e.g. goodput)."""
    out = []
    for e in expectations:
        try:
            measured = extra[e.figure] if extra and e.figure in extra else figures.value(e.figure)
        except KeyError:
            out.append(Verdict(scope, e, math.nan, False, note=f"figure {e.figure} is not available"))
            continue
        out.append(Verdict(scope, e, measured, e.check(measured)))
    return out


@dataclass(frozen=True)
class DatasetScore:
    """evalscope's score of one dataset on one scope, in percent, with the samples it is over."""

    dataset: str
    metric: str
    score: float
    samples: int


def pool_scores(by_node: Mapping[str, Sequence[DatasetScore]]) -> list[DatasetScore]:
    """The cluster's score of each dataset: every node's samples pooled, i.e. the sample-weighted mean
    sum(score_i × n_i) / sum(n_i) — exactly the fraction correct over all samples the fleet answered."""
    groups: dict[tuple[str, str], list[DatasetScore]] = {}
    for scores in by_node.values():
        for s in scores:
            groups.setdefault((s.dataset, s.metric), []).append(s)
    out = []
    for (dataset, metric), rows in groups.items():
        valid = [r for r in rows if not math.isnan(r.score) and r.samples > 0]
        n = sum(r.samples for r in valid)
        score = sum(r.score * r.samples for r in valid) / n if n else math.nan
        out.append(DatasetScore(dataset, metric, score, n))
    return out


def judge_scores(scope: str, scores: Sequence[DatasetScore], expectations: Sequence[Expectation]) -> list[Verdict]:
    """Expectations on `score:<dataset>` (the first metric evalscope reports for that dataset)."""
    by_dataset: dict[str, float] = {}
    for s in scores:
        by_dataset.setdefault(s.dataset, s.score)
    out = []
    for e in expectations:
        dataset = e.figure.partition(":")[2]
        if dataset not in by_dataset:
            out.append(Verdict(scope, e, math.nan, False, note=f"no score for dataset {dataset}"))
            continue
        out.append(Verdict(scope, e, by_dataset[dataset], e.check(by_dataset[dataset])))
    return out
