"""Fixtures shared by the unit and integration tests: the demo tokenizer, simulated endpoints, agents,
local fleets, plan files and the sample report. The helpers behind them are in tests/support/ (imported as
`support`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import processes
from support.fleets import Fleet
from support.processes import Agent, Endpoint
from support.report_sample import sample_report as _sample_report
from support.report_sample import sample_store as _sample_store

from fleetbench.controller.report.model import RunReport
from fleetbench.controller.store import Store
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer


@pytest.fixture(scope="session")
def demo_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo tokenizer's folder, written once per test session (it is read-only for every user); the
    agents the tests start may read it (support.processes.SHARED_ROOTS)."""
    path = ensure_demo_tokenizer(tmp_path_factory.mktemp("tok") / "demo")
    processes.SHARED_ROOTS.append(path.parent)
    return path


@pytest.fixture
def start_endpoint() -> Iterator[Callable[..., Endpoint]]:
    """start_endpoint(*args, ttft_ms=20, tpot_ms=2): a simulated endpoint, stopped after the test."""
    started: list[Endpoint] = []

    def start(*args: str, ttft_ms: float = 20, tpot_ms: float = 2) -> Endpoint:
        started.append(Endpoint(*args, ttft_ms=ttft_ms, tpot_ms=tpot_ms))
        return started[-1]

    yield start
    for ep in started:
        ep.stop()


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """start_agent(name="agent", *serve options, log=None): a real agent with its data dir tmp_path/name (its
    output in `log` when given), stopped after the test."""
    started: list[Agent] = []

    def start(name: str = "agent", *args: str, log: Path | None = None) -> Agent:
        started.append(Agent(tmp_path / name, *args, log=log).start())
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


def _fleets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Fleet]]:
    """The factory behind local_fleet and fresh_fleet: every fleet it started is stopped when it is closed."""
    with contextlib.ExitStack() as running:

        def start(size: int = 3, **options: Any) -> Fleet:
            fleet = Fleet.start(tmp_path_factory.mktemp("fleet"), size, **options)
            running.callback(fleet.stop)
            return fleet

        yield start


@pytest.fixture(scope="module")
def local_fleet(tmp_path_factory: pytest.TempPathFactory, demo_tokenizer: Path) -> Iterator[Callable[..., Fleet]]:
    """local_fleet(size=3, ttft_ms=20, tpot_ms=2, log_requests=False, **LocalFleet options): a fleet on loopback
    (real agents, simulated endpoints) with its fleet file, started once for the module that asks and stopped
    after its last test. Its agents may read the fleet's folder and the shared roots (tests/data, the demo
    tokenizer); `log_requests` has each endpoint log the requests it gets (Fleet.requests_seen)."""
    yield from _fleets(tmp_path_factory)


@pytest.fixture
def fresh_fleet(tmp_path_factory: pytest.TempPathFactory, demo_tokenizer: Path) -> Iterator[Callable[..., Fleet]]:
    """local_fleet's factory for one test: its fleets are stopped after that test. For a test that kills, stops
    or skews an agent or leaves a job running, which no other test may then share."""
    yield from _fleets(tmp_path_factory)


@pytest.fixture
def plan_file(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Path]:
    """plan_file(text, name="plan.yaml"): a plan (or fleet) file under tmp_path; `{tokenizer}` in it becomes
    the demo tokenizer's folder (made only for a text that names it)."""

    def write(text: str, name: str = "plan.yaml") -> Path:
        if "{tokenizer}" in text:
            text = text.replace("{tokenizer}", str(request.getfixturevalue("demo_tokenizer")))
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def sample_report() -> RunReport:
    """The fixed run of tests/support/report_sample.py, as `ctl report` loads it."""
    return _sample_report()


@pytest.fixture
def sample_store(tmp_path: Path) -> Iterator[Store]:
    """The fixed run written into a real store under tmp_path (to change and load again)."""
    store = _sample_store(tmp_path / "fleetbench.sqlite")
    yield store
    store.db.conn.close()
