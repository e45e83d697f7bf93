"""Verdict states of a case, a node and a run, and the reasons behind them. Pure.

An acceptance report is a contract: a measurement that cannot be trusted is INVALID (rerun),
never PASS (MLPerf LoadGen's rule), and a run that could not be done is ERROR, never FAIL.

| state      | meaning                                                            | exit |
| PASS       | every expectation held and the measurement is valid                | 0    |
| FAIL       | the servers did not meet an expectation                            | 1    |
| ERROR      | could not run (preflight, busy or unreachable agent, setup)         | 2    |
| INVALID    | ran, but a validity check failed: the figures cannot be trusted    | 3    |
| INCOMPLETE | interrupted before every case finished (`ctl resume` completes it) | 3    |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fleetbench.figure_catalog import figure as figure_catalog
from fleetbench.figure_catalog import format_value


class State(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    INVALID = "invalid"
    INCOMPLETE = "incomplete"


EXIT_CODES: dict[State, int] = {State.PASS: 0, State.FAIL: 1, State.ERROR: 2, State.INVALID: 3,
                                State.INCOMPLETE: 3}
EXIT_HELP = ("Exit codes: 0 PASS; 1 FAIL (an expectation was not met); 2 ERROR (could not run: bad input, "
             "unreachable or busy agent, preflight failed; nothing judged); 3 INVALID or INCOMPLETE (ran, but the "
             "measurement cannot be trusted, or was interrupted: rerun or `ctl resume`).")


def parse_state(value: str | None) -> State | None:
    try:
        return State((value or "").lower())
    except ValueError:
        return None


@dataclass(frozen=True)
class Check:
    """One validity sub-check of a case (MLPerf LoadGen style), shown with what was measured."""

    name: str  # start_skew | node_results | load_generator | clock_uncertainty | min_duration | min_requests | nodes
    scope: str  # a node name or "cluster"
    measured: str  # formatted for people
    bound: str  # formatted for people
    passed: bool
    detail: str = ""

    def line(self) -> str:
        text = f"{self.name} ({self.scope}): {self.measured}, bound {self.bound}"
        return f"{text}; {self.detail}" if self.detail else text


@dataclass(frozen=True)
class Reason:
    """Why a case, node or run is not PASS: one line an operator can act on."""

    state: State
    case_id: str
    scope: str  # node name, "cluster", or "" for the run
    what: str  # figure, check or problem
    measured: str = ""
    threshold: str = ""

    def line(self) -> str:
        where = " ".join(p for p in (self.case_id, self.scope) if p)
        text = f"{self.state.upper()} {where}: {self.what}" if where else f"{self.state.upper()}: {self.what}"
        if self.measured:
            text += f": measured {self.measured}"
        if self.threshold:
            text += f", expected {self.threshold}"
        return text

    def to_dict(self) -> dict[str, str]:
        return {"state": self.state.value, "case_id": self.case_id, "scope": self.scope, "what": self.what,
                "measured": self.measured, "threshold": self.threshold}


def worst(states: Iterable[State]) -> State:
    """A case's state from its parts: ERROR > INVALID > FAIL > PASS (a figure measured by an invalid
    run is not trusted either way). INCOMPLETE (interrupted) ranks first."""
    order = (State.INCOMPLETE, State.ERROR, State.INVALID, State.FAIL)
    seen = set(states)
    return next((s for s in order if s in seen), State.PASS)


def run_state(case_states: Sequence[State], interrupted: bool = False) -> State:
    """The run's state: INCOMPLETE when interrupted; a FAIL anywhere is a broken contract even if another
    case was INVALID; then INVALID; a run with no judged case is never PASS."""
    if interrupted:
        return State.INCOMPLETE
    if State.ERROR in case_states:
        return State.ERROR
    if State.FAIL in case_states:
        return State.FAIL
    if State.INVALID in case_states or State.INCOMPLETE in case_states:
        return State.INVALID
    return State.PASS if case_states else State.INVALID


def fmt_value(value: float, unit: str = "") -> str:
    """A figure for people: 1,000,000 not 1e+06; seconds below one shown in ms; never NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:,.1f} ms"
        return f"{value:,.3f} s"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def figure_unit(figure: str) -> str:
    return "s" if figure.endswith("_s") else ""


def figure_text(figure: str, value: float) -> str:
    """A figure's value for people, as the figure catalogue formats it: "20.07 ms", "1,366,560 tok/min"; a
    score ("score:<dataset>") as a plain number."""
    return format_value(figure, value)


def threshold_text(figure: str, op: str, threshold: float, tolerance: float = 0.0) -> str:
    """An expectation's limit for people: "≤ 20 ms", "≥ 1,000,000 tok/min"; an official score with the value
    it is judged against, "≥ 59.5 (official 60 − 0.5)"."""
    if op == "official":
        return f"≥ {threshold - tolerance:g} (official {threshold:g} − {tolerance:g})"
    sign = {"min": "≥", "max": "≤"}.get(op, op)
    try:
        return f"{sign} {figure_catalog(figure).threshold(threshold)}"
    except KeyError:
        return f"{sign} {format_value(figure, threshold)}"
