"""Plan and fleet files: the issue's plan works as written; every error names file, line and field."""


import pytest

from fleetbench.controller.fleet import load_fleet, resolve_nodes
from fleetbench.controller.plan import load_plan
from fleetbench.errors import ConfigError

ISSUE_PLAN = """\
name: DeepSeek-V3.2 acceptance
model: DeepSeek-V3.2
endpoint: {url: http://127.0.0.1:8000/v1/completions, api: openai, api_key: EMPTY}
tokenizer: /data/models/DeepSeek-V3.2
cases:
  - id: perf-6k-1k
    type: perf
    rate: 5
    parallel: 84
    number: 512
    input_tokens: 6000
    output_tokens: 1000
    extra_args: {ignore_eos: true}
    expect:
      ttft_avg_s: {max: 2.0}
      tpot_avg_s: {max: 0.020}
cluster:
  expect:
    tpm_total: {min: 1000000}
"""


def test_issue_plan_parses_as_written(plan_file):
    plan = load_plan(plan_file(ISSUE_PLAN))
    assert plan.model == "DeepSeek-V3.2" and plan.endpoint.api_key == "EMPTY"
    (case,) = plan.cases
    assert (case.rate, case.parallel, case.number, case.input_tokens, case.output_tokens) == (5, 84, 512, 6000, 1000)
    assert case.extra_args == {"ignore_eos": True}
    assert [(e.figure, e.op, e.threshold) for e in case.expect] == [("ttft_avg_s", "max", 2.0),
                                                                     ("tpot_avg_s", "max", 0.02)]
    assert [(e.figure, e.op, e.threshold) for e in plan.cluster_expect] == [("tpm_total", "min", 1e6)]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    parallel: 84", "    parallel: -3", "plan.yaml:9: cases[0].parallel must be a positive integer"),
        ("    parallel: 84", "    paralel: 84", "plan.yaml:9: cases[0].paralel is not a known key"),
        ("      ttft_avg_s: {max: 2.0}", "      ttft_avgs: {max: 2.0}",
         "plan.yaml:15: cases[0].expect.ttft_avgs is not a known figure"),
        ("    rate: 5", "    rate: fast", "plan.yaml:8: cases[0].rate must be a positive number"),
        ("tokenizer: /data/models/DeepSeek-V3.2\n", "", "tokenizer is required"),
        ("url: http://", "url: ftp://", "plan.yaml:3: endpoint.url must start with http:// or https://"),
    ],
)
def test_plan_errors_name_line_and_field(plan_file, old, new, message):
    text = ISSUE_PLAN.replace(old, new)
    assert text != ISSUE_PLAN
    with pytest.raises(ConfigError) as err:
        load_plan(plan_file(text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_malformed_plan(tmp_path, plan_file):
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"plan.yaml:2: not valid YAML"):
        load_plan(plan_file("name: x\n  bad: [unclosed\n"))


def test_fleet_names_addresses_and_endpoint_override(tmp_path, plan_file):
    fleet = plan_file("nodes:\n  n1: {address: '10.0.0.1:50051', endpoint: 'http://127.0.0.1:9000/v1'}\n"
                      "  n2: 10.0.0.2:50051\n", "fleet.yaml")
    nodes = load_fleet(fleet)
    assert nodes["n1"].endpoint == "http://127.0.0.1:9000/v1" and nodes["n2"].address == "10.0.0.2:50051"
    resolved = resolve_nodes("n2,n1,127.0.0.1:7000", fleet)
    assert [n.name for n in resolved] == ["n2", "n1", "127.0.0.1:7000"]
    with pytest.raises(ConfigError, match=r"node 'n9' is not in the fleet file .* \(known: n1, n2\)"):
        resolve_nodes("n1,n9", fleet)
    with pytest.raises(ConfigError, match="no fleet file"):
        resolve_nodes("n1", tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="more than once"):
        resolve_nodes("n1,n1", fleet)
    bad = plan_file("nodes:\n  n1: {address: 'not an address'}\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: nodes.n1.address 'not an address' is not a host:port address"):
        load_fleet(bad)


FIXED_OUTPUT_PLAN = """\
name: strict engine
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - {id: one, parallel: 2, number: 4, input_tokens: 64, output_tokens: 8, fixed_output: false}
  - {id: sw, type: sweep, parallel: [1, 2], number: 4, input_tokens: [64], output_tokens: [8], fixed_output: false}
  - id: cap
    type: capacity
    input_tokens: 64
    output_tokens: 8
    parallel: {min: 1, max: 8}
    slo: {ttft_p99_s: {max: 1.0}}
    fixed_output: false
  - {id: exact, parallel: 2, number: 4, input_tokens: 64, output_tokens: 8}
"""


def test_fixed_output_false_reaches_every_job_spec_and_the_report_command(plan_file):
    """`fixed_output: false` (engines that refuse min_tokens) is carried by perf cases, every sweep point and
    every capacity probe into the job spec, and the report's equivalent command has no --min-tokens."""
    from fleetbench.controller.fleet import Node
    from fleetbench.controller.report.model import equivalent_command
    from fleetbench.controller.specs import perf_spec

    plan = load_plan(plan_file(FIXED_OUTPUT_PLAN))
    one, sweep, cap, exact = plan.cases
    node = Node(name="n1", address="127.0.0.1:1")
    runs = [one, *(p for _, p in sweep.points()), cap.probe(4, 1)]
    assert [perf_spec(plan, c, node).fixed_output for c in runs] == [False] * 4
    assert perf_spec(plan, exact, node).fixed_output is True
    url = plan.endpoint.url
    assert "--min-tokens" not in equivalent_command(plan, "one", url)
    assert "--min-tokens" not in equivalent_command(plan, "cap", url)
    assert "--min-tokens 8" in equivalent_command(plan, "exact", url)
