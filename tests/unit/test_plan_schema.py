"""The plan and fleet schemas: declared once as models, printed as JSON Schema (`ctl plan schema`,
`ctl fleet schema`) for editors; the example plans and the demo plan are valid under the printed
schema, and an unknown key is rejected both by the schema and by ctl, with a close spelling named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fleetbench.controller.cli import app
from fleetbench.controller.demo import DEMO_PLAN
from fleetbench.controller.fleet import load_fleet
from fleetbench.controller.plan import load_plan
from fleetbench.errors import ConfigError
from fleetbench.fleet_schema import FleetDoc
from fleetbench.plan_schema import PlanDoc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"
PLANS = sorted(EXAMPLES.glob("*.yaml"))
FLEET = """\
version: 1
tls: {ca: certs/ca.pem, cert: certs/controller.pem, key: certs/controller.key}
nodes:
  n1: {address: "10.0.0.11:50051", endpoint: "http://127.0.0.1:8001/v1/completions", labels: {gpu: h200, rack: 3}}
  n2: "10.0.0.12:50051"
  n3:
    address: gpu3.example:50051
    connect: ssh
    ssh: {user: ops, port: 22, key: ~/.ssh/id_ed25519, known_hosts: ~/.ssh/known_hosts, host: 10.0.0.13}
    deploy: {dir: /opt/fleetbench, data_dir: /var/lib/fleetbench, python: python3, service: auto}
  n4: {address: "[::1]:50051", ssh_user: admin, ssh_port: 2222, deploy: {listen: "0.0.0.0:50051"}}
"""


def printed(*command: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, list(command))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def validator(kind: str, doc_model: Any) -> Any:
    """A function telling whether a document is valid: jsonschema on the printed schema, else the models."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with evalscope
        def valid(data: Any) -> bool:
            try:
                doc_model.model_validate(data)
            except ValueError:
                return False
            return True
        return valid
    schema = printed(kind, "schema")
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator(schema)
    return checker.is_valid


def demo_plan() -> dict[str, Any]:
    return yaml.safe_load(DEMO_PLAN.format(tokenizer="/models/demo", gsm8k="/data/gsm8k"))


@pytest.fixture(scope="module")
def plan_valid() -> Any:
    return validator("plan", PlanDoc)


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_every_example_plan_is_valid_under_the_printed_schema(path, plan_valid):
    assert path.read_text().startswith("# yaml-language-server: $schema=plan.schema.json\n")
    assert plan_valid(yaml.safe_load(path.read_text()))


def test_the_demo_plan_is_valid_under_the_printed_schema(plan_valid):
    assert plan_valid(demo_plan())


def test_the_schema_next_to_the_examples_is_the_printed_one():
    assert PLANS, "no example plans"
    on_disk = json.loads((EXAMPLES / "plan.schema.json").read_text())
    assert on_disk == printed("plan", "schema"), "regenerate: ctl plan schema > examples/plans/plan.schema.json"


@pytest.mark.parametrize("where", ["root", "endpoint", "case", "expect", "bounds", "cluster", "eval"])
def test_the_schema_and_ctl_reject_an_unknown_key(where, plan_valid, tmp_path):
    data = demo_plan()
    perf, sweep, _long, acc = data["cases"]
    target = {"root": data, "endpoint": data["endpoint"], "case": perf, "expect": perf["expect"],
              "bounds": sweep["expect"]["success_rate"], "cluster": data["cluster"], "eval": acc}[where]
    target["typo_key"] = 1
    assert not plan_valid(data)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"typo_key is not a known (key|figure)"):
        load_plan(path)


def test_the_schema_rejects_a_bad_value_or_a_missing_key(plan_valid):
    data = demo_plan()
    data["cases"][0]["parallel"] = 0
    assert not plan_valid(data)
    data = demo_plan()
    del data["cases"][1]["type"]  # a sweep's keys under a perf case (the default type)
    assert not plan_valid(data)
    data = demo_plan()
    data["cases"][3]["type"] = "benchmark"
    assert not plan_valid(data)
    data = demo_plan()
    del data["cases"][3]["dataset_args"]["gsm8k"]["local_path"]
    assert not plan_valid(data)


def test_fleet_schema_takes_every_key_and_rejects_an_unknown_one(tmp_path):
    valid = validator("fleet", FleetDoc)
    data = yaml.safe_load(FLEET)
    assert valid(data)
    (tmp_path / "fleet.yaml").write_text(FLEET)
    nodes = load_fleet(tmp_path / "fleet.yaml")
    assert nodes["n1"].labels == (("gpu", "h200"), ("rack", "3")) and nodes["n4"].ssh.port == 2222
    data["nodes"]["n3"]["ssh"]["usr"] = "ops"
    assert not valid(data)
    data = yaml.safe_load(FLEET)
    data["nodes"]["n2"] = "no port"
    assert not valid(data)


PLAN = """\
name: p
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
cases:
  - id: a
    parallel: 4
    number: 8
    input_tokens: 128
    output_tokens: 16
    expect:
      ttft_avg_s: {max: 2.0}
"""


@pytest.mark.parametrize(("old", "new", "message"), [
    ("ttft_avg_s:", "ttft_avg:",
     "plan.yaml:12: cases[0].expect.ttft_avg is not a known figure; did you mean ttft_avg_s?"),
    ("    parallel: 4", "    paralel: 4", "plan.yaml:7: cases[0].paralel is not a known key; did you mean parallel? "
                                          "(allowed: dataset, expect, extra_args, fixed_output, id, input_tokens"),
    ("{max: 2.0}", "{maxi: 2.0}",
     "plan.yaml:12: cases[0].expect.ttft_avg_s.maxi is not a known key; did you mean max?"),
    ("tokenizer: /t", "tokeniser: /t", "plan.yaml:4: tokeniser is not a known key; did you mean tokenizer?"),
    ("    parallel: 4", "    parallel: 4\n    nonsense: 1",
     "plan.yaml:8: cases[0].nonsense is not a known key (allowed:"),
])
def test_an_unknown_key_names_a_close_spelling(plan_file, old, new, message):
    text = PLAN.replace(old, new)
    assert text != PLAN
    with pytest.raises(ConfigError) as err:
        load_plan(plan_file(text))
    assert message in str(err.value)
    assert "did you mean" not in message or str(err.value).count("did you mean") == 1


def test_of_several_problems_the_first_in_the_file_is_reported(plan_file):
    text = PLAN.replace("name: p", "name: ''").replace("output_tokens: 16", "output_tokens: 0")
    with pytest.raises(ConfigError, match=r"plan.yaml:1: name must be a non-empty string"):
        load_plan(plan_file(text))
    text = PLAN.replace("number: 8", "number: x").replace("{max: 2.0}", "{max: fast}")
    with pytest.raises(ConfigError, match=r"plan.yaml:8: cases\[0\].number must be a positive integer"):
        load_plan(plan_file(text))


def test_a_problem_inside_one_case_type_names_the_case_not_the_type(plan_file):
    sweep = PLAN.replace("    parallel: 4", "    type: sweep\n    parallel: [4, 0]")
    with pytest.raises(ConfigError, match=r"plan.yaml:8: cases\[0\].parallel\[1\] must be a positive integer"):
        load_plan(plan_file(sweep))
    score = PLAN.replace("cases:\n", "cases:\n  - {id: e, type: eval, datasets: [a, b], dataset_args: "
                                      "{a: {local_path: /a}, b: {local_path: /b}}, expect: {score: {b: {min: x}}}}\n")
    with pytest.raises(ConfigError, match=r"plan.yaml:6: cases\[0\].expect.score.b.min must be a number"):
        load_plan(plan_file(score))


def test_fleet_errors_name_a_close_spelling(plan_file):
    path = plan_file("nodes:\n  n1:\n    address: 'h:1'\n    conect: ssh\n", "fleet.yaml")
    with pytest.raises(ConfigError, match=r"fleet.yaml:4: nodes.n1.conect is not a known key; did you mean connect\?"):
        load_fleet(path)
    path = plan_file("nodes:\n  n1: {address: 'h:1'}\ntls: {ca: a, cert: b}\n", "fleet.yaml")
    with pytest.raises(ConfigError, match=r"fleet.yaml:3: tls needs exactly ca, cert and key"):
        load_fleet(path)
