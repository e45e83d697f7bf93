"""`ctl run`: one plan on many nodes at once, stored as it goes, judged at the end.

Before any load: every agent answers, and a preflight job on every node checks paths, tokenizer,
free space and one request of each case's exact shape (controller/preflight.py); any problem is an
ERROR (exit 2) and no load is sent. Per step, a two-phase start: every node's job prepares
(evalscope loaded, prompts built) and reports READY — a node that cannot start (busy, unreachable)
cancels the step on all, so a partial load never runs — then one instant, converted to each agent's
clock, starts them all. Then follow progress, pull every record, store, aggregate, and judge: each
expectation (success_rate >= 1 unless the plan says otherwise) and each validity check
(controller/validity.py) give the step's state (controller/verdict.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fleetbench import __version__
from fleetbench.bounds import MAX_DEADLINE_S
from fleetbench.columns import RecordColumns
from fleetbench.errors import ConfigError, FleetbenchError, NodeError, RunError
from fleetbench.failures import summarize
from fleetbench.figures import Figures, compute_figures
from fleetbench.goodput import Goodput, Slo, compute_goodput
from fleetbench.hardware import FigureExpect, HwRow, judge_hardware
from fleetbench.jobs_schema import (
    EvalSpec,
    HardwareResult,
    HardwareSpec,
    JobKind,
    JobOutcome,
    JobState,
    PerfSpec,
    Saturation,
)
from fleetbench.records import RequestRecord
from fleetbench.secrets import redact_plan_text

from .aggregate import (
    CLUSTER,
    CaseAggregate,
    DatasetScore,
    Verdict,
    aggregate_case,
    judge,
    judge_scores,
    pool_scores,
    shift_records,
)
from .capacity import RATE_RATIO, CapacitySearch, capacity_result, probe_row
from .client import AgentClient, ClockSample
from .fleet import Node
from .follow import follow_job
from .plan import CapacityCase, EvalCase, Expectation, HardwareCase, PerfCase, Plan, SweepCase
from .progress import ProgressCounts, ProgressSink
from .specs import eval_spec, hardware_spec, perf_spec, split_share
from .store import HEARTBEAT_S, Store
from .validity import StepFacts, checks, eval_checks, hardware_checks
from .verdict import EXIT_CODES, Check, Reason, State, figure_text, parse_state, run_state, threshold_text

SUCCEEDED, READY = JobState.SUCCEEDED, JobState.READY
JOB_DONE = {s.value for s in JobState if s.terminal}  # succeeded, failed, cancelled, interrupted
JOB_STATE_NAMES = {s.value: s.label for s in JobState}
FAILED_NODE_STATES = {"failed", "cancelled", "interrupted", "error"}
# Two-phase start: how long every node may take to prepare (load evalscope, build prompts), and how far
# ahead of "now" the common instant is set once all are READY (plus 4 × the largest measured RTT).
READY_TIMEOUT_S = float(os.environ.get("FLEETBENCH_READY_TIMEOUT_S", "600"))
START_MARGIN_S = float(os.environ.get("FLEETBENCH_START_MARGIN_S", "0.25"))
READY_POLL_S = 0.05
# No progress (no event from the node's job) for this long ends that node's part of a step as ERROR. Derived from
# the step (Step.no_progress_s): the longest one request may take at a speed slower than any engine accepted
# (prefill at SLOWEST_PREFILL_TPS, decode at SLOWEST_TPOT_S a token) plus NO_PROGRESS_FLOOR_S; the environment
# variable overrides it for every step (tests, the fault bench).
NO_PROGRESS_ENV = "FLEETBENCH_NO_PROGRESS_S"
NO_PROGRESS_FLOOR_S = 120.0
SLOWEST_PREFILL_TPS = 500.0
SLOWEST_TPOT_S = 0.2
EVAL_NO_PROGRESS_S = 3600.0  # an eval sample of unknown length (no timeout_s, no max_tokens)
# A node given up on (no progress, its agent silent) may still be sending load: its job is cancelled again every
# CANCEL_RETRY_S (each try waiting CANCEL_TRY_S for the agent) until the agent answers or the run ends; then one
# last try of LAST_CANCEL_S.
CANCEL_RETRY_S = 1.0
CANCEL_TRY_S = 10.0
LAST_CANCEL_S = 5.0
HARDWARE_DEADLINE_EVENTS = 16  # a hardware job's deadline: this many of its no-progress deadlines (an event per GPU)
IMPLICIT_SUCCESS = Expectation("success_rate", "min", 1.0)
PROBE_SEQ = 100_000  # capacity probes are made as the search goes: their steps rows sort after the plan's steps
MAX_INVALID_PROBE_RETRIES = 2  # a capacity probe INVALID this many times in a row stops the search (INVALID)
WARMUP_SUFFIX = "~warmup"  # a step's warm-up requests are stored as the step "<step>~warmup": in no figure


@dataclass
class RunOutcome:
    run_id: str
    state: State = State.PASS
    verdicts: list[Verdict] = field(default_factory=list)
    node_errors: dict[str, str] = field(default_factory=dict)
    reasons: list[Reason] = field(default_factory=list)
    case_states: dict[str, State] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.state.value

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.state]


@dataclass(frozen=True)
class NodeResult:
    records: RecordColumns
    scores: list[DatasetScore]
    saturation: Saturation
    hardware: HardwareResult | None = None


def new_run_id() -> str:
    return time.strftime("r%Y%m%d-%H%M%S", time.localtime()) + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class Step:
    """One synchronized job on every node: a perf or long-context case, one point of a sweep, or an eval.

    A sweep runs point by point, each point started on all nodes at one common instant (its own
    agent job), so each point's cluster figure is a real simultaneous load; `step_id` is then
    "<case>@<point>", the key of the step's rows in the store, whose `steps` table holds its case,
    point and parameters as columns (`row()`)."""

    step_id: str
    kind: JobKind
    perf: PerfCase | None = None
    eval: EvalCase | None = None
    point: str = ""
    capacity: CapacityCase | None = None  # a capacity search: its probes are steps of their own
    rep: int = 0  # the run of a `repeat: N` case (1..N); 0 otherwise
    hardware: HardwareCase | None = None
    case_id: str = ""  # the plan's case; the step id when empty

    def row(self, seq: int) -> dict[str, Any]:
        """The step's row in the store's `steps` table."""
        sweep = bool(self.point) and self.perf is not None
        return {"step_id": self.step_id, "seq": seq, "case_id": self.case_id or self.step_id, "point": self.point,
                "kind": self.kind.name.lower(),
                **{k: getattr(self.perf, k) if sweep else None
                   for k in ("input_tokens", "output_tokens", "parallel", "number", "loop")}}

    @property
    def job_suffix(self) -> str:
        return self.step_id.replace("@", ".").replace("~", ".")  # job ids are [A-Za-z0-9._-]

    @property
    def total(self) -> int:
        return self.perf.number if self.perf else 0

    @property
    def no_progress_s(self) -> float:
        """How long the step's job may go without an event (a request done or failed) before the node is ERROR."""
        override = os.environ.get(NO_PROGRESS_ENV, "")
        with contextlib.suppress(ValueError):
            if override and float(override) > 0:
                return float(override)
        if self.perf is not None:
            return NO_PROGRESS_FLOOR_S + self.perf.input_tokens / SLOWEST_PREFILL_TPS + \
                self.perf.output_tokens * SLOWEST_TPOT_S
        if self.hardware is not None:  # one accelerator's checks or the whole stress window between events
            return NO_PROGRESS_FLOOR_S + 2.0 * self.hardware.duration_s
        assert self.eval is not None
        if self.eval.timeout_s:  # evalscope gives up on a sample after timeout_s: an event follows
            return NO_PROGRESS_FLOOR_S + 2.0 * self.eval.timeout_s
        max_tokens = self.eval.generation_config.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            return NO_PROGRESS_FLOOR_S + max_tokens * SLOWEST_TPOT_S
        return EVAL_NO_PROGRESS_S

    @property
    def deadline_s(self) -> float:
        """How long the step's job may run on its agent, preparation included (StartJobRequest.deadline_s): past
        it the agent's watchdog cancels the job even when no controller reaches it any more (one that gave up on a
        stopped agent). The preparation the controller waits for (READY_TIMEOUT_S), then the requests in waves of
        `parallel`, each wave given the step's whole no-progress deadline, plus the pacing of a `rate`; an eval of
        unknown size (no `limit`) has none (0)."""
        if self.perf is not None:
            waves = math.ceil(self.perf.number / max(self.perf.parallel, 1))
            paced = self.perf.number / self.perf.rate if self.perf.rate > 0 else 0.0
            return READY_TIMEOUT_S + waves * self.no_progress_s + paced
        if self.hardware is not None:
            return READY_TIMEOUT_S + HARDWARE_DEADLINE_EVENTS * self.no_progress_s
        assert self.eval is not None
        if not self.eval.limit:
            return 0.0
        samples = self.eval.limit * len(self.eval.datasets)
        return READY_TIMEOUT_S + math.ceil(samples / max(self.eval.eval_batch_size, 1)) * self.no_progress_s

    @property
    def expect(self) -> tuple[Expectation, ...]:
        """The plan's expectations, and for load steps success_rate >= 1 unless the plan bounds it: a case
        whose requests all failed is never PASS by default."""
        if self.eval is not None:
            return self.eval.expect
        if self.hardware is not None:
            return ()  # judged per accelerator (fleetbench.hardware.judge_hardware), not as figures
        assert self.perf is not None
        if any(e.figure == "success_rate" for e in self.perf.expect):
            return self.perf.expect
        return (*self.perf.expect, IMPLICIT_SUCCESS)


def plan_steps(plan: Plan) -> list[Step]:
    steps: list[Step] = []
    for case in plan.cases:
        if isinstance(case, SweepCase):
            steps += [Step(pc.id, JobKind.PERF, perf=pc, point=label, case_id=case.id) for label, pc in case.points()]
        elif isinstance(case, EvalCase):
            steps.append(Step(case.id, JobKind.EVAL, eval=case))
        elif isinstance(case, CapacityCase):
            steps.append(Step(case.id, JobKind.PERF, capacity=case))
        elif isinstance(case, HardwareCase):
            steps.append(Step(case.id, JobKind.HARDWARE, hardware=case))
        elif case.repeat > 1:
            kind = JobKind.LONG_CONTEXT if case.type == "long_context" else JobKind.PERF
            steps += [Step(f"{case.id}@rep{k}", kind, perf=replace(case, id=f"{case.id}@rep{k}"),
                           point=f"rep{k}", rep=k, case_id=case.id) for k in range(1, case.repeat + 1)]
        else:
            steps.append(Step(case.id, JobKind.LONG_CONTEXT if case.type == "long_context" else JobKind.PERF,
                              perf=case))
    return steps


class Orchestrator:
    def __init__(self, plan: Plan, nodes: Sequence[Node], store: Store, progress: ProgressSink,
                 clients: dict[str, AgentClient] | None = None, preflight: bool = True) -> None:
        self.plan = plan
        self.nodes = list(nodes)
        self.store = store
        self.progress = progress
        self.clients = clients or {n.name: AgentClient(n) for n in nodes}
        self.clocks: dict[str, ClockSample] = {}
        self.run_preflight = preflight
        self._abandoned: dict[tuple[str, str], asyncio.Task[None]] = {}  # (node, job id) -> its cancel retries

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()

    async def check_agents(self) -> dict[str, Any]:
        """Every agent must answer before anything starts (else: exit 2, nothing stored)."""
        replies = await asyncio.gather(*(self.clients[n.name].ping() for n in self.nodes), return_exceptions=True)
        errors = [str(r) for r in replies if isinstance(r, BaseException)]
        if errors:
            raise NodeError("; ".join(errors))
        return {n.name: r for n, r in zip(self.nodes, replies, strict=True)}

    async def measure_clocks(self) -> None:
        samples = await asyncio.gather(*(self.clients[n.name].clock() for n in self.nodes), return_exceptions=True)
        for n, s in zip(self.nodes, samples, strict=True):
            if isinstance(s, ClockSample):
                self.clocks[n.name] = s

    async def run(self, run_id: str | None = None) -> RunOutcome:
        pings = await self.check_agents()
        run_id = run_id or new_run_id()
        self.store.create_run(run_id, self.plan.name, self.plan.model,  # the API key is not kept: ***
                              redact_plan_text(self.plan.source, self.plan.endpoint.api_key),
                              [n.name for n in self.nodes], __version__)
        self.store.claim_run(run_id)
        self.store.set_steps(run_id, [s.row(i) for i, s in enumerate(plan_steps(self.plan))])
        await self.measure_clocks()
        for n in self.nodes:
            clock = self.clocks.get(n.name, ClockSample(0.0, math.nan))
            self.store.add_node(
                run_id, n.name, address=n.address, endpoint=n.endpoint or self.plan.endpoint.url,
                hostname=pings[n.name].hostname, agent_version=pings[n.name].agent_version,
                evalscope_version=pings[n.name].evalscope_version, clock_offset_s=clock.offset_s,
                rtt_s=clock.rtt_s, inventory_json=await self._inventory_json(n),
            )
            self.store.heartbeat(run_id)  # inventories can take a while: still driving
        return await self._guarded(run_id, self._preflight_then_cases(run_id))

    async def resume(self, run_id: str, force: bool = False) -> RunOutcome:
        """Complete a run whose controller died or was interrupted: re-attach to jobs still running
        (StartJob is idempotent on the job id), fetch results that finished meanwhile, run again on a
        node alone the step its agent lost (the others' records are kept), run the steps not started yet.
        Records are upserted by (run, case, node, point, index): none counted twice. A run another live
        controller drives is refused unless `force` (its driver is then no longer alone)."""
        self.store.claim_run(run_id, force=force)  # atomic: of two resumes started together, one drives
        try:
            await self.check_agents()
        except BaseException:
            self.store.release_run(run_id)
            raise
        self.store.reopen_run(run_id)
        # a step judged with a node whose job failed or was lost runs again on that node (the others are kept)
        done = self.store.completed_cases(run_id) - self.store.steps_with_failed_nodes(run_id)
        steps = plan_steps(self.plan)
        self.store.set_steps(run_id, [s.row(i) for i, s in enumerate(steps)])
        self.progress.message(f"resuming run {run_id}: {len(done & {s.step_id for s in steps})} of {len(steps)} "
                              "step(s) already done")
        return await self._guarded(run_id, self._run_cases(run_id, done=done))

    async def _preflight_then_cases(self, run_id: str) -> RunOutcome:
        if self.run_preflight:
            from .preflight import run_preflight

            report = await run_preflight(self.plan, self.nodes, self.clients, f"{run_id}.preflight", self.progress)
            if not report.ok:
                raise RunError(f"preflight failed on {len({p.node for p in report.problems})} node(s); no load was "
                               "sent", lines=report.lines())
        return await self._run_cases(run_id, done=set())

    async def _heartbeat(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            with contextlib.suppress(Exception):  # a missed beat (store busy) is not a reason to stop the run
                self.store.heartbeat(run_id)

    async def _guarded(self, run_id: str, work: Any) -> RunOutcome:
        """Store how a run ended when it did not end normally: ERROR (could not run) or interrupted. While it
        runs, its heartbeat in the store says this controller drives it."""
        beat = asyncio.create_task(self._heartbeat(run_id))
        try:
            return await work  # type: ignore[no-any-return]
        except RunError as exc:
            exc.run_id = run_id
            self.store.finish_run(run_id, State.ERROR.value, error=str(exc), state="error",
                                  reasons=[Reason(State.ERROR, "", "", line) for line in exc.lines or [str(exc)]])
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.progress.message("interrupted: cancelling jobs on every agent")
            await asyncio.shield(self._cancel_all(run_id))
            self.store.finish_run(run_id, State.INCOMPLETE.value, state="interrupted",
                                  error=f"interrupted by the operator; `ctl resume {run_id}` completes it",
                                  reasons=[Reason(State.INCOMPLETE, "", "", "interrupted before every case finished; "
                                                  f"`ctl resume {run_id}` completes it")])
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(Exception):
                self.store.release_run(run_id)
            with contextlib.suppress(Exception):  # jobs given up on: one last cancel each
                await asyncio.shield(self._last_cancels())

    def _abandon(self, node: str, job_id: str) -> None:
        """The controller gave up on `node`'s job (no progress, or its agent stopped answering), but the job may
        still be sending load: ask its agent to cancel it again and again, in the background, until it answers
        or the run ends (the agent's own deadline, StartJobRequest.deadline_s, is the last resort)."""
        if (node, job_id) not in self._abandoned and node in self.clients:
            self._abandoned[(node, job_id)] = asyncio.create_task(self._cancel_until_answered(node, job_id))

    async def _cancel_until_answered(self, node: str, job_id: str) -> None:
        tries = 0
        while True:
            tries += 1
            try:
                status = await self.clients[node].cancel_job(job_id, timeout=CANCEL_TRY_S)
            except FleetbenchError:
                await asyncio.sleep(CANCEL_RETRY_S)
                continue
            self.progress.message(f"[{node}] job {job_id} given up on: its agent answered the cancel (try {tries}); "
                                  f"the job is {JOB_STATE_NAMES.get(status.state, status.state)}")
            return

    async def _last_cancels(self) -> None:
        """At the run's end: one last cancel of each job given up on whose agent has not answered yet."""
        pending = [key for key, task in self._abandoned.items() if not task.done()]
        for key in pending:
            self._abandoned[key].cancel()

        async def last(node: str, job_id: str) -> None:
            try:
                await self.clients[node].cancel_job(job_id, timeout=LAST_CANCEL_S)
            except FleetbenchError as exc:
                self.progress.message(f"[{node}] job {job_id} may still be running: its agent does not answer the "
                                      f"cancel ({_one_line(exc)}); the agent ends it at its deadline")

        await asyncio.gather(*(last(n, j) for n, j in pending), return_exceptions=True)
        self._abandoned.clear()

    async def _run_cases(self, run_id: str, done: set[str]) -> RunOutcome:
        outcome = RunOutcome(run_id)
        for step in plan_steps(self.plan):
            if step.step_id in done:
                self._recall_step(run_id, step, outcome)
                continue
            if step.capacity is not None:
                await self._run_capacity(run_id, step.capacity, outcome, done)
                continue
            await self._run_case(run_id, step, outcome)
        outcome.state = run_state(list(outcome.case_states.values()))
        if not outcome.case_states:
            outcome.reasons.append(Reason(State.INVALID, "", "", "the plan ran no case: nothing was judged"))
        self.store.finish_run(run_id, outcome.state.value, reasons=outcome.reasons)
        return outcome

    async def _run_capacity(self, run_id: str, case: CapacityCase, outcome: RunOutcome, done: set[str]) -> None:
        """The capacity search (controller/capacity.py): each probe a synchronized step on all nodes
        (`<case>@p<parallel>-try<k>`, or `<case>@r<rate>-try<k>` on a rate search; judged on the SLO like any
        step), until every scope's answer is found and confirmed. Under `load: split` the searched value is the
        cluster's total on one endpoint and the cluster is the only scope (a node's share is no server's answer).
        The case is INVALID when a probe is INVALID or ERROR (its figures cannot be trusted) or the search does not
        settle; FAIL for a scope where no value of the range held; else PASS. Resuming
        replays the stored probes (the search is deterministic given their outcomes)."""
        scopes = [CLUSTER] if case.load == "split" else [CLUSTER, *[n.name for n in self.nodes]]
        if case.axis == "rate":
            search = CapacitySearch(case.rate_min, case.rate_max, scopes, case.confirm, case.rate_step,
                                    ratio=0.0 if case.rate_step else RATE_RATIO)
        else:
            search = CapacitySearch(case.parallel_min, case.parallel_max, scopes, case.confirm, case.step)
        what = "rate" if case.axis == "rate" else "parallel"
        unit = (" req/s" if case.axis == "rate" else "") + (" in total" if case.load == "split" else " per node")
        rows: list[dict[str, Any]] = []
        stopped: list[Reason] = []
        budget = search.probe_budget()
        tries: dict[int | float, int] = {}  # value -> probe steps run there, invalid ones included
        invalid_in_a_row = 0
        while (parallel := search.next_probe()) is not None:
            if sum(tries.values()) >= budget:
                stopped.append(Reason(State.INVALID, case.id, "", f"the search did not settle in {budget} probes"))
                break
            attempt = tries[parallel] = tries.get(parallel, 0) + 1
            probe = case.probe(parallel, attempt)
            step = Step(probe.id, JobKind.PERF, perf=probe, point=probe.id.partition("@")[2], case_id=case.id)
            # the probe's row in the steps table (its case and point), after every step the plan lists
            self.store.set_steps(run_id, [step.row(PROBE_SEQ + sum(tries.values()))])
            probe_outcome = RunOutcome(run_id)
            if step.step_id in done:
                self._recall_step(run_id, step, probe_outcome)
            else:
                await self._run_case(run_id, step, probe_outcome)
            state = probe_outcome.case_states.get(step.step_id, State.INVALID)
            passed = {s: all(v.passed for v in probe_outcome.verdicts if v.scope == s) and
                      any(v.scope == s for v in probe_outcome.verdicts) for s in scopes}
            trusted = state not in (State.INVALID, State.ERROR)  # else within the SLO or not, nobody can say
            stored = {r["scope"]: r for r in self.store.figures(run_id) if r["case_id"] == step.step_id}
            for scope in scopes:
                row = stored.get(scope)
                rows.append(probe_row(scope, probe.parallel, attempt, state.value, passed[scope] and trusted,
                                      json.loads(row["figures_json"]) if row else {},
                                      json.loads(row["extra_json"] or "{}") if row else {},
                                      [v for v in probe_outcome.verdicts if v.scope == scope], rate=probe.rate,
                                      value=parallel))
            if trusted:
                self.progress.message(f"{case.id}: {what} {parallel:g}{unit} (try {attempt}): " + ", ".join(
                    f"{s} {'within' if passed[s] else 'outside'} the SLO" for s in scopes))
            else:
                # its figures cannot be trusted either way: run it again (a busy client, a slow start), and stop
                # the search when it stays so
                invalid_in_a_row += 1
                if invalid_in_a_row <= MAX_INVALID_PROBE_RETRIES and state is State.INVALID:
                    self.progress.message(f"{case.id}: the probe at {what} {parallel:g} (try {attempt}) was invalid; "
                                          "running it again")
                    continue
                stopped.append(Reason(State.INVALID, case.id, "", f"the probe at {what} {parallel:g} (try {attempt}) "
                                      f"was {state.value}: the search stopped, its answer cannot be trusted"))
                stopped += probe_outcome.reasons
                break
            invalid_in_a_row = 0
            search.record(parallel, passed)
        result = capacity_result(search, rows, case.axis)
        reasons = list(stopped)
        if not stopped:
            for scope in scopes:
                if result[scope][f"max_{case.axis}"] is None:
                    noun = "rate" if case.axis == "rate" else "concurrency"
                    reasons.append(Reason(State.FAIL, case.id, scope,
                                          f"no {noun} in [{case.lo:g}, {case.hi:g}]{unit} held the SLO"))
        by_scope: dict[str, list[Reason]] = {}
        for r in reasons:
            by_scope.setdefault(r.scope, []).append(r)
        for scope in scopes:
            self.store.set_case_verdict(run_id, case.id, scope, _scope_state(by_scope.get(scope, [])),
                                        by_scope.get(scope, []))
        state = State.INVALID if stopped else (State.FAIL if reasons else State.PASS)
        self.store.set_case_verdict(run_id, case.id, "case", state, reasons)
        # the case's own row (marks it done for resume): no figures of its own, the search's result beside it
        self.store.set_figures(run_id, case.id, CLUSTER, compute_figures([]), extra={
            "capacity": result, "slo": [{"figure": e.figure, "op": e.op, "threshold": e.threshold} for e in case.slo],
            "slo_preset": case.slo_preset, "nodes": [n.name for n in self.nodes], "axis": case.axis,
            "load": case.load,
            "all_nodes": [n.name for n in self.nodes], "probes": sum(tries.values())})
        outcome.case_states[case.id] = state
        outcome.reasons += reasons
        found = result[CLUSTER]
        value = found[f"max_{case.axis}"]
        self.progress.message(f"{case.id}: {state.upper()}; {sum(tries.values())} probes; cluster capacity "
                              + ("none" if value is None else f"{what} {value:g}{unit}")
                              + (f", TPM {found['tpm_total']:,.0f}, goodput TPM {found['goodput_tpm']:,.0f}"
                                 if value is not None else ""))

    def _recall_step(self, run_id: str, step: Step, outcome: RunOutcome) -> None:
        """A step judged before the controller stopped: its stored state and reasons."""
        outcome.verdicts += self.store.verdict_objects(run_id, step.step_id)
        outcome.node_errors.update(self.store.case_errors(run_id, step.step_id))
        for row in self.store.case_verdicts(run_id):
            if row["case_id"] == step.step_id and row["scope"] == "case":
                outcome.case_states[step.step_id] = parse_state(row["state"]) or State.INVALID
                outcome.reasons += [Reason(State(r["state"]), r["case_id"], r["scope"], r["what"], r["measured"],
                                           r["threshold"]) for r in row["reasons"]]

    async def _inventory_json(self, node: Node) -> str:
        try:
            reply = await self.clients[node.name].inventory(node.endpoint or self.plan.endpoint.url)
        except FleetbenchError as exc:
            self.progress.message(f"[{node.name}] inventory not collected: {exc}")
            return ""
        return str(reply.detail_json)

    async def _cancel_all(self, run_id: str) -> None:
        """Cancel every job of the run still going; their steps are then marked cancelled, so `ctl resume`
        runs them again (new job ids) rather than re-attach to cancelled jobs."""
        rows = [r for r in self.store.case_nodes(run_id) if r["state"] in ("starting", "queued", "running", "ready")]
        await self._cancel_jobs({(r["node"], r["job_id"]) for r in rows if r.get("job_id")})
        with self.store.transaction():
            for r in rows:
                self.store.set_case_node(run_id, r["case_id"], r["node"], state="cancelled",
                                         error="cancelled: the run was interrupted")

    async def _cancel_jobs(self, jobs: set[tuple[str, str]]) -> None:
        async def cancel(node: str, job_id: str) -> None:
            with contextlib.suppress(FleetbenchError):
                await self.clients[node].cancel_job(job_id)

        await asyncio.gather(*(cancel(n, j) for n, j in jobs if n in self.clients))

    # --- one step on every node --------------------------------------------------------------

    def _job_id(self, run_id: str, step: Step, node: str, fresh: bool = False) -> str:
        """`RUN.STEP`, or `RUN.STEP.aK` for the K-th attempt of a node whose earlier job failed or was lost
        (the agent died): `ctl resume` runs that node's step again, alone. `fresh`: every node starts a new
        attempt (a step interrupted before it was judged runs again on all nodes, together)."""
        base = f"{run_id}.{step.job_suffix}"
        previous = self.store.case_node(run_id, step.step_id, node)
        if not previous or not previous.get("job_id"):
            return base
        if fresh or (previous.get("state") or "") in FAILED_NODE_STATES:
            attempt = int(previous.get("attempt") or 0) + 1
            with self.store.transaction():  # the old attempt's records go with its job id, together
                self.store.delete_records(run_id, step.step_id, node)
                self.store.set_case_node(run_id, step.step_id, node, attempt=attempt, job_id="", state="starting",
                                         error="", last_seq=0, clock_offset_s=None)
            return f"{base}.a{attempt}"
        return str(previous["job_id"])

    async def _run_case(self, run_id: str, step: Step, outcome: RunOutcome) -> None:
        await self.measure_clocks()
        states = {(self.store.case_node(run_id, step.step_id, n.name) or {}).get("state") for n in self.nodes}
        fresh = bool(states & FAILED_NODE_STATES) and step.step_id not in self.store.completed_cases(run_id)
        job_ids = {n.name: self._job_id(run_id, step, n.name, fresh) for n in self.nodes}
        warmup = await self._warm_up(run_id, step) if step.perf is not None and step.perf.warmup_requests else []
        self.progress.case_started(step.step_id, [n.name for n in self.nodes], step.total)
        try:
            await self._start(run_id, step, job_ids)
            results = await asyncio.gather(*(self._collect_or_error(run_id, step, job_ids[n.name], n)
                                             for n in self.nodes), return_exceptions=True)
        finally:
            self.progress.case_finished(step.step_id)
        for res in results:
            if isinstance(res, BaseException) and not isinstance(res, Exception):
                raise res  # KeyboardInterrupt, cancellation: the run is interrupted
        with self.store.transaction():  # the step's judgement is stored whole or not at all (then resume redoes it)
            self._judge_step(run_id, step, outcome, results, warmup)
        self._print_failures(run_id, step)

    def _judge_step(self, run_id: str, step: Step, outcome: RunOutcome, results: list[Any],
                    warmup: list[Check] | None = None) -> None:
        """`warmup`: the checks of the step's warm-up (each node's warm-up job ran), judged with the step's own."""
        done: dict[str, NodeResult] = {}
        errors: dict[str, str] = {}
        for node, res in zip(self.nodes, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res  # KeyboardInterrupt, cancellation: the run is interrupted
                msg = str(res) if isinstance(res, FleetbenchError) else f"{type(res).__name__}: {res}"
                errors[node.name] = msg
                self.store.set_case_node(run_id, step.step_id, node.name, state="error", error=msg)
            else:
                done[node.name] = res
        outcome.node_errors.update(errors)
        hw_reasons: list[Reason] = []
        if step.eval is not None:
            verdicts, step_checks = self._judge_eval(run_id, step, done, errors)
        elif step.hardware is not None:
            verdicts, step_checks, hw_reasons = self._judge_hardware(run_id, step, done, errors)
        else:
            verdicts, step_checks = self._judge_load(run_id, step, done, errors)
        step_checks += warmup or []
        self.store.add_verdicts(run_id, step.step_id, verdicts)
        self.store.add_checks(run_id, step.step_id, step_checks)
        outcome.verdicts += verdicts
        state, reasons = self._states(run_id, step, verdicts, step_checks, errors, hw_reasons)
        outcome.case_states[step.step_id] = state
        outcome.reasons += reasons

    async def _warm_up(self, run_id: str, step: Step) -> list[Check]:
        """`warmup_requests` per node, the step's shape, started together on every node and run to the end
        before the measured step; stored as their own step `<step>~warmup`, so they are in no figure. A node
        whose warm-up job failed makes the step INVALID (check `warmup`): the engine was not warmed as planned."""
        assert step.perf is not None
        n = step.perf.warmup_requests
        count = len(self.nodes) if step.perf.load == "split" else 1  # split: n per agent once divided
        case = replace(step.perf, id=step.perf.id + WARMUP_SUFFIX, number=n * count,
                       parallel=min(step.perf.parallel, n * count), warmup_requests=0,
                       workers=min(step.perf.workers, n) if step.perf.workers else 0)
        wstep = Step(step.step_id + WARMUP_SUFFIX, JobKind.PERF, perf=case, point=step.point)
        job_ids = {node.name: self._job_id(run_id, wstep, node.name, fresh=True) for node in self.nodes}
        self.progress.case_started(wstep.step_id, [node.name for node in self.nodes], n)
        try:
            await self._start(run_id, wstep, job_ids)
            results = await asyncio.gather(*(self._collect(run_id, wstep, job_ids[node.name], node)
                                             for node in self.nodes), return_exceptions=True)
        finally:
            self.progress.case_finished(wstep.step_id)
        out = []
        for node, res in zip(self.nodes, results, strict=True):
            if isinstance(res, BaseException) and not isinstance(res, Exception):
                raise res
            if isinstance(res, BaseException):
                out.append(Check("warmup", node.name, "job failed", f"{n:,} requests sent", False, _one_line(res)))
            else:
                ok = sum(r.success for r in res.records)
                out.append(Check("warmup", node.name, f"{ok:,} of {len(res.records):,} succeeded",
                                 f"{n:,} requests sent", True))
        return out

    async def _start(self, run_id: str, step: Step, job_ids: dict[str, str]) -> None:
        """All nodes or none. Load steps: phase 1 arms the job on every node (a node that cannot take it,
        busy or unreachable, cancels the step everywhere: ERROR, no load sent); once every node is READY,
        phase 2 gives one instant on each agent's clock. Eval and hardware steps start at once on every node
        (no load on the endpoint to line up)."""
        armed = step.eval is None and step.hardware is None
        try:  # validated here as the agent validates it: a spec it would refuse is not sent to any node
            spec_of = {n.name: self._spec(step, n).model_dump(mode="json") for n in self.nodes}
        except ConfigError as bad:
            raise RunError(f"{step.step_id}: the job spec is invalid; no load was started on any node",
                           lines=[str(bad)]) from None

        async def arm(node: Node) -> Any:
            job_id = job_ids[node.name]
            previous = self.store.case_node(run_id, step.step_id, node.name) or {}
            if not (previous.get("job_id") == job_id and previous.get("clock_offset_s") is not None):
                clock = self.clocks.get(node.name)
                if clock is None:
                    raise NodeError(f"{node.name} ({node.address}) is unreachable: no clock sample")
                self.store.set_case_node(run_id, step.step_id, node.name, job_id=job_id, state="starting",
                                         error="", last_seq=0, clock_offset_s=clock.offset_s)
            return await self.clients[node.name].start_job(job_id, step.kind, spec_of[node.name], 0.0, armed=armed,
                                                           deadline_s=min(step.deadline_s, MAX_DEADLINE_S))

        started = await asyncio.gather(*(arm(n) for n in self.nodes), return_exceptions=True)
        refused = {n.name: r for n, r in zip(self.nodes, started, strict=True) if isinstance(r, BaseException)}
        if refused:
            await self._cancel_jobs({(n.name, job_ids[n.name]) for n in self.nodes if n.name not in refused})
            for name, exc in refused.items():
                self.store.set_case_node(run_id, step.step_id, name, state="error", error=_one_line(exc))
            raise RunError(f"{step.step_id}: {len(refused)} of {len(self.nodes)} node(s) could not take the job; "
                           "no load was started on any node",
                           lines=[f"{name}: {_one_line(exc)}" for name, exc in sorted(refused.items())])
        if not armed:
            return
        statuses = await self._wait_ready(run_id, step, job_ids)
        await self.measure_clocks()
        lead = START_MARGIN_S + 4 * max((c.rtt_s for c in self.clocks.values()), default=0.0)
        start_ctl = time.time() + lead
        waiting = [n for n in self.nodes if statuses[n.name].state == READY]

        async def go(node: Node) -> None:
            row = self.store.case_node(run_id, step.step_id, node.name) or {}
            offset = row.get("clock_offset_s")
            if offset is None:
                offset = self.clocks[node.name].offset_s
            self.store.set_case_node(run_id, step.step_id, node.name, start_at=start_ctl, state="running")
            await self.clients[node.name].start_at_instant(job_ids[node.name], start_ctl + offset)

        gone = await asyncio.gather(*(go(n) for n in waiting), return_exceptions=True)
        lost = {n.name: r for n, r in zip(waiting, gone, strict=True) if isinstance(r, BaseException)}
        if lost:  # a node that was READY went away in the last second: its siblings run; judged INVALID
            for name, exc in lost.items():
                self.progress.message(f"[{name}] {step.step_id}: missed the start: {_one_line(exc)}")

    async def _wait_ready(self, run_id: str, step: Step, job_ids: dict[str, str]) -> dict[str, Any]:
        """Until every node's job is READY (or, resuming, already past it). A node whose preparation fails
        or that is not ready by the deadline stops the step everywhere: ERROR, naming it."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        statuses: dict[str, Any] = {}
        pending = {n.name for n in self.nodes}
        failed: dict[str, str] = {}
        started = time.monotonic()
        for n in self.nodes:
            self.progress.node_progress(step.step_id, n.name, 0, step.total, 0, 0.0, -1.0, "preparing")
        while pending and time.monotonic() < deadline:
            replies = await asyncio.gather(*(self.clients[n].get_job(job_ids[n]) for n in sorted(pending)),
                                           return_exceptions=True)
            for name, st in zip(sorted(pending), replies, strict=True):
                if isinstance(st, BaseException):
                    failed[name] = _one_line(st)
                    pending.discard(name)
                    continue
                if st.state in (READY, SUCCEEDED) or (st.state not in JOB_DONE and st.ready_at > 0):
                    statuses[name] = st
                    pending.discard(name)
                    self.progress.node_progress(step.step_id, name, 0, step.total, 0, 0.0, -1.0,
                                                f"ready (prepared in {st.prepare_s:.1f} s)")
                elif st.state in JOB_DONE:
                    failed[name] = f"job {JOB_STATE_NAMES.get(st.state, st.state)} while preparing: " \
                                   f"{st.error or 'no detail'}"
                    pending.discard(name)
            if failed:
                break
            if pending:
                await asyncio.sleep(READY_POLL_S)
        if pending and not failed:
            waited = time.monotonic() - started
            failed = {name: f"not ready after {waited:.0f} s (still preparing; FLEETBENCH_READY_TIMEOUT_S raises "
                            "the limit)" for name in pending}
        if failed:
            await self._cancel_jobs({(n.name, job_ids[n.name]) for n in self.nodes})
            for name, msg in failed.items():
                self.store.set_case_node(run_id, step.step_id, name, state="error", error=msg)
            raise RunError(f"{step.step_id}: {len(failed)} node(s) could not prepare; no load was started on any "
                           "node", lines=[f"{name}: {msg}" for name, msg in sorted(failed.items())])
        return statuses

    def _spec(self, step: Step, node: Node) -> PerfSpec | EvalSpec | HardwareSpec:
        if step.eval is not None:
            return eval_spec(self.plan, step.eval, node)
        if step.hardware is not None:
            return hardware_spec(step.hardware, node)
        assert step.perf is not None
        index = [n.name for n in self.nodes].index(node.name)
        return perf_spec(self.plan, split_share(step.perf, index, len(self.nodes)), node)

    async def _collect_or_error(self, run_id: str, step: Step, job_id: str, node: Node) -> NodeResult:
        """`_collect`; a node that fails is shown and stored as ERROR at once, while the others still run."""
        try:
            return await self._collect(run_id, step, job_id, node)
        except Exception as exc:
            msg = str(exc) if isinstance(exc, FleetbenchError) else f"{type(exc).__name__}: {exc}"
            self.store.set_case_node(run_id, step.step_id, node.name, state="error", error=msg)
            self.progress.message(f"[{node.name}] {step.step_id}: error: {msg}")
            raise

    async def _collect(self, run_id: str, step: Step, job_id: str, node: Node) -> NodeResult:
        """Follow one node's job to its end, then pull and store its summary and every record."""
        client = self.clients[node.name]
        previous = self.store.case_node(run_id, step.step_id, node.name) or {}
        offset = previous.get("clock_offset_s")
        if offset is None:
            offset = self.clocks[node.name].offset_s if node.name in self.clocks else 0.0
        try:
            state = await self._follow(run_id, step, job_id, node, int(previous.get("last_seq") or 0))
        except NodeError:
            self._abandon(node.name, job_id)  # gave up on it: it may still be sending load
            raise
        summary, node_records = await client.result(job_id)
        # onto the controller's clock, once; a sweep point's records carry their point's label
        records = shift_records(node_records, offset, step.point)
        with self.store.transaction():  # a node's records and its final state together
            self.store.add_requests(run_id, step.step_id, node.name, offset, records)
            self.store.set_case_node(
                run_id, step.step_id, node.name, state=JOB_STATE_NAMES.get(state, str(state)), error=summary.error,
                evalscope_summary_json=_json(summary.evalscope_summary),
                evalscope_percentiles_json=_json(summary.evalscope_percentiles),
                result_json=_json(summary.result),
            )
        try:
            outcome = JobOutcome.from_wire(summary.result)
        except FleetbenchError as exc:
            raise NodeError(f"the agent's job result does not match this controller's: {exc}") from None
        saturation = outcome.saturation or Saturation()
        if saturation.saturated:
            self.progress.message(f"[{node.name}] warning: the load generator was saturated; figures may be "
                                  "client-bound (the step is INVALID)")
        if state != SUCCEEDED:
            raise NodeError(f"job {JOB_STATE_NAMES.get(state, state)}: {summary.error or 'no detail'}")
        scores = [DatasetScore(s.dataset, s.metric, s.score, s.samples) for s in outcome.scores or ()]
        if step.hardware is not None and outcome.hardware is None:
            raise NodeError("the hardware job returned no result")
        return NodeResult(records, scores, saturation, outcome.hardware)

    # --- judging -----------------------------------------------------------------------------

    def _judge_load(self, run_id: str, step: Step, done: dict[str, NodeResult],
                    errors: dict[str, str]) -> tuple[list[Verdict], list[Check]]:
        assert step.perf is not None
        verdicts: list[Verdict] = []
        node_figs: dict[str, Figures] = {}
        cluster: Figures | None = None
        skew = math.nan
        if done:
            agg = aggregate_case({n: r.records for n, r in done.items()}, self.plan.percentiles)
            node_figs, cluster, skew = agg.nodes, agg.cluster, agg.start_skew_s
            good = scope_goodput({n: r.records for n, r in done.items()}, agg, step.perf.slo)
            for name, figs in agg.nodes.items():
                self.store.set_figures(run_id, step.step_id, name, figs, extra=_goodput_extra(good, name))
                verdicts += judge(name, figs, step.expect, _goodput_values(good, name))
            self.store.set_figures(run_id, step.step_id, CLUSTER, agg.cluster, extra={
                "sum_node_tpm_total": agg.sum_node_tpm_total, "sum_node_tpm_output": agg.sum_node_tpm_output,
                "start_skew_s": agg.start_skew_s, "stragglers": list(agg.stragglers),
                "nodes": sorted(done), "error_nodes": sorted(errors), "all_nodes": [n.name for n in self.nodes],
                "load": step.perf.load, **_goodput_extra(good, CLUSTER),
            })
            verdicts += judge(CLUSTER, agg.cluster, step.expect, _goodput_values(good, CLUSTER))
            if step.kind == JobKind.PERF and (not step.point or step.rep):
                # the plan's cluster contract is about the load cases, not a sweep's low-concurrency
                # points or a single long-context request
                verdicts += judge(CLUSTER, agg.cluster, self.plan.cluster_expect, _goodput_values(good, CLUSTER))
        else:  # nothing measured: the step is still judged (and stored as judged, for resume)
            self.store.set_figures(run_id, step.step_id, CLUSTER, compute_figures([], self.plan.percentiles), extra={
                "nodes": [], "error_nodes": sorted(errors), "all_nodes": [n.name for n in self.nodes]})
        for name in sorted(errors):
            verdicts += [Verdict(name, e, math.nan, False, note=errors[name]) for e in step.expect]
        facts = StepFacts(
            nodes=[n.name for n in self.nodes], with_results=node_figs, errors=errors, cluster=cluster,
            start_skew_s=skew,
            saturated={n: r.saturation.text() for n, r in done.items() if r.saturation.saturated},
            rtt_s={n: c.rtt_s for n, c in self.clocks.items()}, min_duration_s=step.perf.min_duration_s,
            min_requests=step.perf.min_requests, max_start_skew_s=step.perf.max_start_skew_s,
        )
        return verdicts, checks(facts)

    def _judge_eval(self, run_id: str, step: Step, done: dict[str, NodeResult],
                    errors: dict[str, str]) -> tuple[list[Verdict], list[Check]]:
        verdicts: list[Verdict] = []
        scores_by_node = {n: r.scores for n, r in done.items()}
        for name, scores in scores_by_node.items():
            self.store.set_scores(run_id, step.step_id, name, scores)
            verdicts += judge_scores(name, scores, step.expect)
        cluster = pool_scores(scores_by_node)
        self.store.set_scores(run_id, step.step_id, CLUSTER, cluster)  # also marks the step done for resume
        if scores_by_node:
            verdicts += judge_scores(CLUSTER, cluster, step.expect)
        for name in sorted(errors):
            verdicts += [Verdict(name, e, math.nan, False, note=errors[name]) for e in step.expect]
        samples = {n: max((s.samples for s in scores), default=0) for n, scores in scores_by_node.items()}
        return verdicts, eval_checks([n.name for n in self.nodes], samples, errors)

    def _judge_hardware(self, run_id: str, step: Step, done: dict[str, NodeResult],
                        errors: dict[str, str]) -> tuple[list[Verdict], list[Check], list[Reason]]:
        """Every node's checks judged against spec and the fleet (fleetbench.hardware), stored row by row; a
        failed row is a FAIL reason naming node and accelerator, a check that broke an INVALID one. A node whose
        every check was SKIPPED fails validity: skipped checks never make a PASS on their own."""
        case = step.hardware
        assert case is not None
        results = {n: r.hardware for n, r in done.items() if r.hardware is not None}
        expect = {fig: FigureExpect(min_fraction_of_spec=frac, min=low) for fig, (frac, low) in case.expect.items()}
        rows = judge_hardware(results, expect, case.fleet_tolerance, case.reference)
        self.store.set_hardware(run_id, step.step_id, rows)  # also marks the step done for resume
        # a figure the case bounds that could not be judged (no torch, a reported spec, one GPU for an all-reduce)
        # leaves the expectation unmet either way: INVALID, as a perf figure that could not be measured
        reasons = [hardware_reason(step.step_id, r) for r in rows
                   if r.status in ("fail", "error") or (r.status == "skipped" and r.check in case.expect)]
        judged = {n: sum(1 for r in rows if r.node == n and r.status in ("pass", "fail")) for n in results}
        skipped = {n: sum(1 for r in rows if r.node == n and r.status == "skipped") for n in results}
        return [], hardware_checks([n.name for n in self.nodes], judged, skipped, errors), reasons

    def _states(self, run_id: str, step: Step, verdicts: list[Verdict], step_checks: list[Check],
                errors: dict[str, str], extra: Sequence[Reason] = ()) -> tuple[State, list[Reason]]:
        """Each scope's state and the step's, stored with their reasons. A failed check makes the step
        INVALID whatever the figures say; a failed expectation makes it FAIL; nothing judged is not PASS.
        `extra`: reasons judged elsewhere (a hardware step's failed accelerators)."""
        by_scope: dict[str, list[Reason]] = {}
        for r in extra:
            by_scope.setdefault(r.scope, []).append(r)
        for name, msg in errors.items():
            by_scope.setdefault(name, []).append(Reason(State.ERROR, step.step_id, name, f"job failed: {msg}"))
        for c in step_checks:
            if not c.passed:
                what = f"{c.name}: {c.detail}" if c.detail else c.name
                by_scope.setdefault(c.scope, []).append(Reason(State.INVALID, step.step_id, c.scope, what,
                                                               c.measured, c.bound))
        for v in verdicts:
            if not v.passed and v.scope not in errors:
                e = v.expectation
                what = e.figure + (f" ({v.note})" if v.note else "")
                if v.expectation.figure == "success_rate":
                    what += self._failure_note(run_id, step.step_id, v.scope)
                by_scope.setdefault(v.scope, []).append(Reason(
                    State.FAIL, step.step_id, v.scope, what, figure_text(e.figure, v.measured),
                    threshold_text(e.figure, e.op, e.threshold, e.tolerance)))
        scopes = {n.name for n in self.nodes} | {CLUSTER}
        for scope in sorted(scopes):
            reasons = by_scope.get(scope, [])
            self.store.set_case_verdict(run_id, step.step_id, scope, _scope_state(reasons), reasons)
        all_reasons = [r for scope in sorted(by_scope) for r in by_scope[scope]]
        if any(r.state in (State.ERROR, State.INVALID) for r in all_reasons):
            state = State.INVALID  # a node missing or a check failed: the contract was for every node, measured right
        elif any(r.state == State.FAIL for r in all_reasons):
            state = State.FAIL
        elif not verdicts and not extra and not any(c.passed for c in step_checks):
            state = State.INVALID
            all_reasons.append(Reason(State.INVALID, step.step_id, "", "nothing could be judged"))
        else:
            state = State.PASS
        self.store.set_case_verdict(run_id, step.step_id, "case", state, all_reasons)
        summary = f"{step.step_id}: {state.upper()}"
        if state is not State.PASS:
            summary += "; " + "; ".join(r.line() for r in all_reasons[:3])
            if len(all_reasons) > 3:
                summary += f" (+{len(all_reasons) - 3} more in the report)"
        self.progress.message(summary)
        return state, all_reasons

    def _failure_note(self, run_id: str, step_id: str, scope: str) -> str:
        rows = [r for r in self.store.failure_counts(run_id) if r["case_id"] == step_id
                and (scope == CLUSTER or r["node"] == scope)]
        classes = summarize((r["error"], r["count"]) for r in rows)
        if not classes:
            return ""
        return " — " + ", ".join(f"{c.error_class} × {c.count:,}" for c in classes[:3])

    def _print_failures(self, run_id: str, step: Step) -> None:
        """Per node, the classes of failed requests with counts: the reason is on the console at once."""
        rows = [r for r in self.store.failure_counts(run_id) if r["case_id"] == step.step_id]
        by_node: dict[str, list[tuple[str, int]]] = {}
        for r in rows:
            by_node.setdefault(r["node"], []).append((r["error"], r["count"]))
        for node, pairs in sorted(by_node.items()):
            classes = summarize(pairs)
            total = sum(c.count for c in classes)
            top = "; ".join(f"{c.error_class} × {c.count:,} (e.g. {c.example[:160]})" for c in classes[:3])
            self.progress.message(f"[{node}] {step.step_id}: {total:,} request(s) failed: {top}")

    async def _follow(self, run_id: str, step: Step, job_id: str, node: Node, last_seq: int = 0) -> int:
        """Watch a job to its end (resuming after a dropped stream), its progress shown and its last event
        stored so a restarted controller resumes from it."""
        seen_state = -1
        counts = ProgressCounts()

        def on_event(ev: Any) -> None:
            nonlocal seen_state
            if ev.state != seen_state or ev.seq % 20 == 0:
                seen_state = ev.state
                self.store.set_case_node(run_id, step.step_id, node.name, last_seq=ev.seq,
                                         state=JOB_STATE_NAMES.get(ev.state, str(ev.state)))
            done, failed, tps = counts.update(ev.done, ev.failed, ev.output_tps)
            self.progress.node_progress(step.step_id, node.name, done, ev.total or step.total, failed, tps,
                                        ev.eta_s, ev.message)

        limit = step.no_progress_s

        def on_quiet(quiet: float) -> None:  # never a silent wait
            self.progress.message(f"[{node.name}] {step.step_id}: no progress for {quiet:.0f} s (ERROR after "
                                  f"{limit:.0f} s without any)")

        state, last_seq = await follow_job(self.clients[node.name], job_id, on_event, from_seq=last_seq,
                                           no_progress_s=limit, on_quiet=on_quiet)
        self.store.set_case_node(run_id, step.step_id, node.name, last_seq=last_seq)
        return state


def scope_goodput(records_by_node: Mapping[str, Sequence[RequestRecord]], agg: CaseAggregate,
                  slo: Slo | None) -> dict[str, Goodput]:
    """Goodput of each node over its own window and of the cluster over the common window; {} without an SLO."""
    if slo is None:
        return {}
    out = {n: compute_goodput(recs, slo, agg.nodes[n].wall_time_s) for n, recs in records_by_node.items()}
    out[CLUSTER] = Goodput.merge(list(out.values()), agg.cluster.wall_time_s)  # the union: the nodes' counts
    return out


def _goodput_extra(good: dict[str, Goodput], scope: str) -> dict[str, Any]:
    return {"goodput": good[scope].to_dict()} if scope in good else {}


def _goodput_values(good: dict[str, Goodput], scope: str) -> dict[str, float]:
    return good[scope].values() if scope in good else {}


def hardware_reason(step_id: str, row: HwRow) -> Reason:
    """A failed (FAIL), broken or unjudged-but-expected (INVALID) hardware row as one line naming the node and the
    accelerator."""
    unjudged = "expected by the case but not judged: " if row.status == "skipped" else ""
    what = f"{'accelerator #' + str(row.index) + ' ' if row.index >= 0 else ''}{row.check}: {unjudged}{row.detail}"
    measured = "" if row.measured is None else f"{row.measured:,.4g} {row.unit}".strip()
    return Reason(State.FAIL if row.status == "fail" else State.INVALID, step_id, row.node, what, measured)


def _scope_state(reasons: list[Reason]) -> State:
    states = {r.state for r in reasons}
    for s in (State.ERROR, State.INVALID, State.FAIL):
        if s in states:
            return s
    return State.PASS


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, FleetbenchError) else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [""])[0][:300]


def _json(value: Any) -> str:
    return json.dumps(value)
