"""The job specs a plan's cases give each node, built as the models the agent validates
(fleetbench.jobs_schema): the run's jobs (controller/orchestrator.py) and preflight's one-request shapes
(controller/preflight.py) both come from here."""

from __future__ import annotations

from dataclasses import replace

from fleetbench.errors import ConfigError
from fleetbench.jobs_schema import EvalSpec, HardwareSpec, LongContextSpec, PerfSpec

from .fleet import Node
from .plan import EvalCase, HardwareCase, PerfCase, Plan


def eval_spec(plan: Plan, case: EvalCase, node: Node) -> EvalSpec:
    """The eval job's spec for `node`, validated here as the agent will validate it (ConfigError naming
    the field)."""
    return EvalSpec.from_wire({
        "url": node.endpoint or plan.endpoint.url,
        "api_key": plan.endpoint.api_key,
        "model": plan.model,
        "datasets": list(case.datasets),
        "dataset_args": case.dataset_args,
        "generation_config": case.generation_config,
        "eval_batch_size": case.eval_batch_size,
        "stream": case.stream,
        "limit": case.limit,
        "timeout_s": case.timeout_s,
    })


def perf_spec(plan: Plan, case: PerfCase, node: Node) -> PerfSpec:
    """The perf (or long-context) job's spec for `node`, validated as the agent will validate it. A `load: split`
    case sends to the plan's one endpoint whatever the node's override (pass the node's share: split_share)."""
    model = LongContextSpec if case.type == "long_context" else PerfSpec
    return model.from_wire({
        "url": plan.endpoint.url if case.load == "split" else (node.endpoint or plan.endpoint.url),
        "api": plan.endpoint.api,
        "api_key": plan.endpoint.api_key,
        "model": plan.model,
        "tokenizer_path": plan.tokenizer,
        "dataset": case.dataset,
        "number": case.number,
        "parallel": case.parallel,
        "rate": case.rate,
        "input_tokens": case.input_tokens,
        "output_tokens": case.output_tokens,
        "extra_args": case.extra_args,
        "stream": case.stream,
        "workers": case.workers,
        "range_ratio": case.range_ratio,
        "fixed_output": case.fixed_output,
    })


def split_share(case: PerfCase, index: int, count: int) -> PerfCase:
    """Node `index` of `count`'s share of a `load: split` case, whose parallel, number and rate are the cluster's
    totals: parallel and number divided as evenly as integers allow (the first nodes take the remainder, one each),
    so the shares add up to exactly the totals; the rate divided equally (Poisson streams add up to the total
    rate). ConfigError when a total is smaller than the number of agents (a node would get nothing to send)."""
    if case.load != "split":
        return case
    for key in ("parallel", "number"):
        if getattr(case, key) < count:
            raise ConfigError(f"case {case.id}: load split divides {key} {getattr(case, key)} across {count} agents; "
                              f"it must be at least {count}")

    def share(total: int) -> int:
        return total // count + (1 if index < total % count else 0)

    parallel, number = share(case.parallel), share(case.number)
    return replace(case, parallel=min(parallel, number), number=number,
                   rate=case.rate / count if case.rate > 0 else case.rate,
                   workers=min(case.workers, parallel, number) if case.workers else 0)


def hardware_spec(case: HardwareCase, node: Node) -> HardwareSpec:
    """The hardware job's spec for `node`, validated as the agent will validate it."""
    return HardwareSpec.from_wire({
        "level": case.level, "duration_s": case.duration_s, "allow_busy": case.allow_busy,
        "expected_count": case.expected_count, "matmul_size": case.matmul_size, "copy_mib": case.copy_mib,
        "node": node.name,
    })
