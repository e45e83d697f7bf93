"""The engine model in virtual time, output-length rules, fault draws, config and CLI parsing."""

from __future__ import annotations

from collections import Counter

import pytest

from fleetbench.endpoint.cli import build_parser, config_from_args
from fleetbench.endpoint.config import PRESETS, EndpointConfig, EngineModel, FaultConfig, preset_config
from fleetbench.endpoint.engine import EngineCore, simulate
from fleetbench.endpoint.server import _BadRequest, _pick_fault, output_tokens_for
from fleetbench.errors import ConfigError


def test_step_cost_and_first_token_from_prefill() -> None:
    m = EngineModel(
        prefill_tokens_per_s=1000.0, prefill_overhead_s=0.5, max_prefill_tokens_per_step=100,
        decode_base_s=0.01, decode_per_seq_s=0.001, max_batch=4, kv_cache_tokens=10_000,
    )  # fmt: skip
    core = EngineCore(m)
    seq = core.add(150, 3)
    step = core.plan()
    assert step is not None and step.prefill == [(seq, 100)] and step.duration == pytest.approx(0.01 + 0.5 + 0.1)
    assert core.apply(step) == []  # prompt not finished: no token yet
    step = core.plan()
    assert step is not None and step.duration == pytest.approx(0.01 + 0.5 + 0.05)
    assert core.apply(step) == [seq] and seq.generated == 1
    step = core.plan()
    assert step is not None and step.decode == [seq] and step.duration == pytest.approx(0.011)
    core.apply(step)
    core.apply(core.plan())  # type: ignore[arg-type]
    assert seq.done and core.idle and core.kv_used == 0


def test_batch_and_kv_limits_queue_requests() -> None:
    core = EngineCore(EngineModel(max_batch=2, kv_cache_tokens=1000))
    a, b, c = core.add(10, 10), core.add(10, 10), core.add(10, 10)
    core.plan()
    assert core.running == [a, b] and list(core.waiting) == [c]
    core.remove(a)
    core.plan()
    assert core.running == [b, c]
    kv = EngineCore(EngineModel(max_batch=10, kv_cache_tokens=100))
    x, y = kv.add(40, 20), kv.add(40, 20)
    kv.plan()
    assert kv.running == [x] and list(kv.waiting) == [y] and kv.kv_used == 60


def test_oversized_request_runs_alone() -> None:
    core = EngineCore(EngineModel(kv_cache_tokens=100))
    big = core.add(500, 10)
    core.plan()
    assert core.running == [big]


def test_ttft_rises_with_concurrency_and_prompt_length() -> None:
    m = PRESETS["fast"]
    ttft = [simulate(m, parallel=p, number=4 * p, input_tokens=512, output_tokens=32).avg_ttft_s for p in (1, 8, 32)]
    assert ttft[0] < ttft[1] < ttft[2]
    short = simulate(m, parallel=1, number=2, input_tokens=128, output_tokens=8).avg_ttft_s
    long = simulate(m, parallel=1, number=2, input_tokens=16_000, output_tokens=8).avg_ttft_s
    assert long > 10 * short
    tpot = [simulate(m, parallel=p, number=4 * p, input_tokens=64, output_tokens=64).avg_tpot_s for p in (1, 8)]
    assert tpot[1] > tpot[0]


def test_h200_like_preset_is_in_the_range_of_seed_000() -> None:
    r = simulate(PRESETS["h200-like"], parallel=84, number=512, input_tokens=6000, output_tokens=1000, rate=5)
    assert 1.2 <= r.avg_ttft_s <= 2.4
    assert 0.017 <= r.avg_tpot_s <= 0.022
    assert 2800 <= r.output_tokens_per_s <= 4000  # seed 000: 3320 tok/s


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 1000, "ignore_eos": True}, 1000),
        ({"max_tokens": 5}, 5),
        ({"max_tokens": 500}, 128),
        ({"max_tokens": 500, "min_tokens": 300}, 300),
        ({"max_completion_tokens": 7}, 7),
        ({"ignore_eos": True}, 128),
        ({}, 128),
    ],
)
def test_output_tokens_for(body: dict[str, object], expected: int) -> None:
    assert output_tokens_for(body, 128) == expected


@pytest.mark.parametrize("body", [{"max_tokens": 0}, {"max_tokens": "5"}, {"max_tokens": True}, {"min_tokens": -1}])
def test_output_tokens_for_rejects(body: dict[str, object]) -> None:
    with pytest.raises(_BadRequest):
        output_tokens_for(body, 128)


def test_fault_draw_is_seeded_and_proportional() -> None:
    faults = FaultConfig(http_500=0.1, reset=0.2, seed=5)
    draws = [_pick_fault(faults, i) for i in range(5000)]
    assert draws == [_pick_fault(faults, i) for i in range(5000)]
    counts = Counter(draws)
    assert counts["http_500"] == pytest.approx(500, rel=0.15) and counts["reset"] == pytest.approx(1000, rel=0.1)
    assert draws != [_pick_fault(FaultConfig(http_500=0.1, reset=0.2, seed=6), i) for i in range(5000)]
    assert _pick_fault(FaultConfig(), 0) is None


@pytest.mark.parametrize(
    "config",
    [
        EndpointConfig(port=70000),
        EndpointConfig(ttft_s=-1),
        EndpointConfig(faults=FaultConfig(http_500=0.7, reset=0.7)),
        EndpointConfig(faults=FaultConfig(stall=1.5)),
        EndpointConfig(engine=EngineModel(max_batch=0)),
    ],
)
def test_invalid_config(config: EndpointConfig) -> None:
    with pytest.raises(ConfigError):
        config.validate()


def test_presets() -> None:
    assert preset_config("fast", port=1).port == 1
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("nope")


def test_cli_flags_build_config() -> None:
    args = build_parser().parse_args(
        ["--port", "0", "--ttft-ms", "150", "--tpot-ms", "15", "--preset", "h200-like", "--fault-500", "0.1",
         "--fault-stall", "0.05", "--stall-s", "3", "--fault-seed", "9", "--model", "m"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.ttft_s, config.tpot_s, config.model, config.port) == (0.15, 0.015, "m", 0)
    assert config.engine == PRESETS["h200-like"]
    assert (config.faults.http_500, config.faults.stall, config.faults.stall_s, config.faults.seed) == (0.1, 0.05, 3, 9)
    assert config_from_args(build_parser().parse_args([])).engine is None
