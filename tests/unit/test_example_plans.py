"""The example plans for the seeds stay valid and say what the seeds ran."""

from pathlib import Path

from fleetbench.controller.orchestrator import plan_steps
from fleetbench.controller.plan import EvalCase, PerfCase, SweepCase, load_plan
from fleetbench.controller.report.model import equivalent_command

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"


def test_seed_000_perf_eval_and_long_context():
    plan = load_plan(EXAMPLES / "seed-000.yaml")
    perf, acc, long = plan.cases
    assert isinstance(perf, PerfCase) and (perf.parallel, perf.number, perf.rate) == (84, 512, 5.0)
    # the seed's own command line comes back out of the plan
    assert equivalent_command(plan, "perf-6k-1k", plan.endpoint.url) == (
        "evalscope perf --rate 5 --parallel 84 --number 512 --model DeepSeek-V3.2 --tokenizer-path "
        "/data/models/DeepSeek-V3.2 --url http://127.0.0.1:8000/v1/completions --api openai --dataset random "
        "--max-tokens 1000 --min-tokens 1000 --prefix-length 0 --min-prompt-length 6000 --max-prompt-length 6000 "
        "--extra-args '{\"ignore_eos\": true}'")
    assert isinstance(acc, EvalCase) and acc.expect[0].threshold == 93.1 and acc.expect[0].tolerance == 1.0
    assert long.type == "long_context" and long.input_tokens == 128000 and long.number == 1


def test_seed_001_sweeps_are_2_lengths_by_11_concurrencies_by_2_ratios():
    plan = load_plan(EXAMPLES / "seed-001.yaml")
    sweeps = [c for c in plan.cases if isinstance(c, SweepCase)]
    assert [s.range_ratio for s in sweeps] == [0.7, 0.8]
    assert sum(len(s.points()) for s in sweeps) == 2 * 11 * 2  # length pairs, not crossed
    assert sweeps[0].pairs == ((3500, 1500), (3000, 400))
    assert "--min-prompt-length 2450 --max-prompt-length 3500" in equivalent_command(plan, "sweep-ratio-70", "u")
    assert len([c for c in plan.cases if isinstance(c, EvalCase)]) == 2


def test_seed_002_is_an_input_by_concurrency_sweep_with_loops():
    plan = load_plan(EXAMPLES / "seed-002.yaml")
    short, long = plan.cases
    assert isinstance(short, SweepCase) and short.loops == 3
    assert len(short.points()) == 5 * 5 * 3 and len(long.points()) == 3 * 3
    assert len(plan_steps(plan)) == 75 + 9


def test_hardware_plan_runs_quick_then_standard_before_the_load():
    from fleetbench.controller.plan import HardwareCase
    from fleetbench.jobs_schema import JobKind

    plan = load_plan(EXAMPLES / "hardware.yaml")
    quick, standard, _ = plan.cases
    assert isinstance(quick, HardwareCase) and quick.level == "quick" and quick.expected_count == 8
    assert isinstance(standard, HardwareCase) and standard.expect["gemm_bf16_tflops"] == (0.75, None)
    assert standard.fleet_tolerance == 0.10 and equivalent_command(plan, "hw-standard", "u") == ""
    assert [s.kind for s in plan_steps(plan)] == [JobKind.HARDWARE, JobKind.HARDWARE, JobKind.PERF]
