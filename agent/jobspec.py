"""Job specs on the agent: which model validates a kind, and what the agent decides from a spec.

The specs themselves (PerfSpec, LongContextSpec, EvalSpec, PreflightSpec) are declared once in
fleetbench.jobs_schema, shared with the controller that builds them; `parse_spec` validates a
StartJob's `spec_json` with the kind's model and raises ConfigError naming the field (the agent
answers INVALID_ARGUMENT with it).
"""

from __future__ import annotations

from typing import Any

from fleetbench.jobs_schema import JobKind, check_job_id, parse_spec, split_in_proportion

__all__ = ["KIND_EVAL", "KIND_HARDWARE", "KIND_LONG_CONTEXT", "KIND_PERF", "KIND_PREFLIGHT", "STREAMS_PER_WORKER",
           "auto_workers", "check_job_id", "parse_spec", "spec_total", "split_in_proportion"]

KIND_PERF, KIND_EVAL, KIND_LONG_CONTEXT, KIND_PREFLIGHT, KIND_HARDWARE = JobKind.PERF, JobKind.EVAL, \
    JobKind.LONG_CONTEXT, JobKind.PREFLIGHT, JobKind.HARDWARE
STREAMS_PER_WORKER = 64  # one process keeps TPOT within 1 % to 64-128 streams (docs/performance.md)


def auto_workers(parallel: int, number: int, cpus: int) -> int:
    """Load-generator processes for `workers: 0`: one per 64 streams, at most half the node's cores
    (the serving engine on the node needs CPU too), never more than parallel or number."""
    return max(1, min(-(-parallel // STREAMS_PER_WORKER), cpus // 2, parallel, number))


def spec_total(spec: Any) -> int:
    """Requests a job will send, for progress (0 when not known in advance)."""
    return int(getattr(spec, "total", 0) or 0)
