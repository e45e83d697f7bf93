"""Running a plan as a library call: connect, run (or resume) on every node, write the reports, say the conclusion.

`ctl run`, `ctl resume` and `ctl demo` are thin callers of `run_plan`; so can be any other program:

    result = run_plan(load_plan(path), nodes, Store(db), Path("out"), QuietProgress())
    sys.exit(result.exit_code)

Messages go to the progress sink (the console for the CLI); nothing here prints or exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fleetbench.errors import ConfigError, RunError
from fleetbench.secrets import REDACTED

from .client import AgentClient
from .fleet import Node, load_fleet
from .orchestrator import Orchestrator, RunOutcome, new_run_id
from .plan import Plan, parse_plan
from .progress import ProgressSink, RunFinished
from .report.content import at_top_note, best_sweep_point, concurrency_text
from .report.model import RunReport, load_report
from .report.output import write_report_files
from .store import Store
from .tunnels import forwarded
from .verdict import EXIT_CODES, State, fmt_value
from .yamlfile import parse_yaml

if TYPE_CHECKING:
    from .preflight import PreflightReport

T = TypeVar("T")

REPORT_FORMATS = ("md", "html", "xlsx", "json")
MAX_REASONS = 20  # reasons printed with the conclusion; the report has them all


@dataclass
class RunResult:
    """What a run (or resume) came to. `outcome` is None when nothing was judged (ERROR, INCOMPLETE)."""

    run_id: str
    state: State
    outcome: RunOutcome | None = None
    reports: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.state]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; SIGTERM (CI timeouts, systemd, `kill`) and SIGHUP (a closed terminal) stop it as Ctrl-C
    does (KeyboardInterrupt), so a run cancels its jobs on every agent and is stored as interrupted instead of
    leaving the load running. SIGINT too when the process started with it ignored (found when CI ran the suite
    from a background job: `kill -INT` was ignored and the run went on to PASS)."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        sigs = [signal.SIGTERM, signal.SIGHUP]
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a script (`cmd &`):
            sigs.append(signal.SIGINT)  # asyncio leaves an ignored SIGINT ignored; `kill -INT` must still cancel
        for sig in sigs:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        return await coro

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


async def with_clients(nodes: Sequence[Node], fn: Callable[[AgentClient], Coroutine[Any, Any, Any]]) -> list[Any]:
    """`fn(client)` on every node at once; one result or exception per node, in order."""
    async with forwarded(list(nodes)) as reachable:  # connect: ssh nodes through an SSH port forward
        clients = [AgentClient(n) for n in reachable]
        try:
            return await asyncio.gather(*(fn(c) for c in clients), return_exceptions=True)
        finally:
            for c in clients:
                await c.close()


def preflight_plan(plan: Plan, nodes: Sequence[Node], progress: ProgressSink) -> PreflightReport:
    """`ctl preflight`: the plan's checks on every node at once, without load."""
    from .preflight import run_preflight  # the agent-side checks only when asked for

    async def go() -> PreflightReport:
        async with forwarded(list(nodes)) as reachable:
            clients = {n.name: AgentClient(n) for n in reachable}
            try:
                return await run_preflight(plan, reachable, clients, f"preflight-{new_run_id()}", progress)
            finally:
                for c in clients.values():
                    await c.close()

    return run_async(go())


API_KEY_ENV = "FLEETBENCH_API_KEY"


def stored_plan(store: Store, run_id: str, api_key: str | None = None) -> Plan:
    """The plan a stored run was started with. The store keeps its API key as ***: resuming such a run needs
    the key again (`api_key`, from the environment), which is never written to the store."""
    plan = parse_plan(parse_yaml(store.run(run_id)["plan_yaml"], Path(f"<plan of {run_id}>"), "plan"))
    if plan.endpoint.api_key != REDACTED:
        return plan
    if not api_key:
        raise ConfigError(f"run {run_id} was started with an API key, which the store does not keep: set "
                          f"{API_KEY_ENV} to the key and run `ctl resume {run_id}` again")
    return dataclasses.replace(plan, endpoint=dataclasses.replace(plan.endpoint, api_key=api_key))


def nodes_of_run(store: Store, run_id: str, fleet: Path) -> list[Node]:
    """A stored run's nodes; the fleet file's entry wins when it names the node (TLS, SSH settings)."""
    known = load_fleet(fleet) if fleet.exists() else {}
    return [known.get(r["node"]) or Node(r["node"], r["address"], r["endpoint"] or "")
            for r in store.run_nodes(run_id)]


def run_plan(plan: Plan, nodes: Sequence[Node], store: Store, out_dir: Path, progress: ProgressSink,
             resume_id: str | None = None, lang: str = "en", force: bool = False) -> RunResult:
    """Run (or, with `resume_id`, resume) a plan, write the reports, tell the conclusion to `progress`.
    A run that could not be done (ERROR) or was interrupted (INCOMPLETE) writes no report. Resuming a run
    that another live controller drives raises RunBusyError unless `force`."""
    run_id = resume_id or new_run_id()

    async def go() -> RunOutcome:
        async with forwarded(list(nodes)) as reachable:  # connect: ssh nodes through an SSH port forward
            orch = Orchestrator(plan, reachable, store, progress)
            try:
                return await (orch.resume(run_id, force=force) if resume_id else orch.run(run_id))
            finally:
                await orch.close()

    try:
        outcome = run_async(go())
    except RunError as exc:
        for line in exc.lines:
            progress.message(f"  {line}")
        progress.message(f"run {run_id}: ERROR (could not run): {exc}; no report written; store {store.path}")
        return _finished(progress, RunResult(run_id, State.ERROR), store, [str(exc), *exc.lines])
    except KeyboardInterrupt:
        progress.message(f"run {run_id}: INCOMPLETE (interrupted); every agent's job was cancelled; "
                         f"`ctl resume {run_id}` completes it")
        return _finished(progress, RunResult(run_id, State.INCOMPLETE), store, ["interrupted"])
    paths = write_report_files(store, outcome.run_id, out_dir, REPORT_FORMATS, lang)
    for line in conclusion_lines(load_report(store, outcome.run_id), outcome, len(nodes)):
        progress.message(line)
    progress.message(f"run {outcome.run_id}: {outcome.state.upper()}; store {store.path}; report {paths[0]}")
    return _finished(progress, RunResult(outcome.run_id, outcome.state, outcome, paths), store,
                     [r.line() for r in outcome.reasons])


def _finished(progress: ProgressSink, result: RunResult, store: Store, reasons: list[str]) -> RunResult:
    """Tell the sink how the run ended (the JSON stream's `run_finished` event) and return `result`."""
    progress.run_finished(RunFinished(result.run_id, result.state.value, result.exit_code, reasons,
                                      [str(p) for p in result.reports], str(store.path)))
    return result


def conclusion_lines(report: RunReport, outcome: RunOutcome, node_count: int) -> list[str]:
    """One line per case (its headline figure and state), then why the run is not PASS."""
    lines: list[str] = []
    for case in report.cases:
        state = case.verdict.upper()
        if case.case_type == "capacity":
            found = case.capacity.get("cluster", {})
            value = found.get(f"max_{case.capacity_axis}")
            per = "in total on one endpoint" if case.load == "split" else "per node"
            if value is None:
                noun = "rate" if case.capacity_axis == "rate" else "concurrency"
                lines.append(f"case {case.case_id}: capacity: no {noun} in the range held the SLO; {state}")
            else:
                amount = (f"{value:g} req/s" if case.capacity_axis == "rate" else f"{value}") + at_top_note(found, "en")
                lines.append(f"case {case.case_id}: capacity {amount} {per} within the SLO, cluster "
                             f"TPM {fmt_value(found['tpm_total'])}, goodput TPM {fmt_value(found['goodput_tpm'])} "
                             f"({len(found.get('probes', []))} probes); {state}")
        elif case.repeats.get("cluster", {}).get("tpm_total") is not None:
            st = case.repeats["cluster"]["tpm_total"]
            flagged = sorted({n for sc in case.repeats.values() for n, s in sc.items() if s.flagged})
            lines.append(f"case {case.case_id}: {st.n} runs; cluster TPM {fmt_value(st.mean)} ± "
                         f"{fmt_value(st.ci95)} (95 % CI)" + (f", spread over 5 %: {', '.join(flagged)}" if flagged
                                                              else "") + f"; {state}")
        elif case.case_type == "long_context":
            ok = sum(1 for f in case.node_figures.values() if f.requests and f.succeeded == f.requests)
            ttfts = [f.ttft_avg_s for f in case.node_figures.values() if f.succeeded]
            slowest = fmt_value(max(ttfts), "s") if ttfts else "n/a"
            lines.append(f"case {case.case_id}: long context: {ok} of {node_count} node(s) answered, "
                         f"slowest TTFT {slowest}; {state}")
        elif case.cluster is not None and case.cluster.succeeded and case.load == "split":
            lines.append(f"case {case.case_id}: one endpoint, load from {len(case.node_figures)} agents: TPM "
                         f"{fmt_value(case.cluster.tpm_total)}; {state}")
        elif case.case_type == "hardware":
            counts = {s: sum(1 for r in case.hardware if r.status == s) for s in ("pass", "fail", "skipped", "error")}
            lines.append(f"case {case.case_id}: hardware: {counts['pass']} passed, {counts['fail']} failed, "
                         f"{counts['skipped']} skipped, {counts['error']} broke; {state}")
        elif case.cluster is not None and case.cluster.succeeded:
            lines.append(f"case {case.case_id}: cluster TPM {fmt_value(case.cluster.tpm_total)} "
                         f"(Σ per-node {fmt_value(case.sum_node_tpm_total)}); {state}")
        elif case.sweep:
            best = best_sweep_point(case)  # from loop averages, as the report's conclusion (seed 002)
            if best is not None and any(r.scope == "cluster" and r.figures.succeeded for r in case.sweep):
                lines.append(f"case {case.case_id}: {len({r.point for r in case.sweep})} sweep points; best "
                             f"cluster TPM {fmt_value(best.tpm_total)} (average of {best.loops} loop(s)) at "
                             f"in{best.input_tokens}-out{best.output_tokens} concurrency "
                             f"{concurrency_text(best.parallel, best.concurrency, 'en')}; {state}")
            else:
                lines.append(f"case {case.case_id}: no successful request at any sweep point; {state}")
        elif case.scores:
            scores = ", ".join(f"{s.dataset} {'n/a' if math.isnan(s.score) else f'{s.score:.2f}'}"
                               for s in case.scores if s.scope == "cluster")
            lines.append(f"case {case.case_id}: cluster score {scores}; {state}")
        else:
            lines.append(f"case {case.case_id}: no successful request; {state}")
    if outcome.state is not State.PASS:
        lines.append(f"{outcome.state.upper()} because:")
        lines += [f"  - {reason.line()}" for reason in outcome.reasons[:MAX_REASONS]]
        if len(outcome.reasons) > MAX_REASONS:
            lines.append(f"  … and {len(outcome.reasons) - MAX_REASONS} more in the report")
    return lines
