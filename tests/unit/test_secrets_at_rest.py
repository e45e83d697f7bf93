"""Secrets at rest: certificate keys never readable by others, the plan's API key never in a report."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetbench.controller.certs import init_fleet_certs
from fleetbench.controller.demo import DEMO_PLAN
from fleetbench.controller.plan import load_plan
from fleetbench.controller.report.model import equivalent_command
from fleetbench.errors import ConfigError


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_certs_init_under_umask_000_keeps_keys_private(tmp_path):
    old = os.umask(0)
    try:
        written = init_fleet_certs(tmp_path / "certs", {"n1": ["127.0.0.1"]})
    finally:
        os.umask(old)
    assert mode(tmp_path / "certs") == 0o700
    keys = [p for p in written if p.suffix == ".key"]
    assert keys and all(mode(p) == 0o600 for p in keys)
    assert all(mode(p) == 0o644 for p in written if p.suffix == ".pem")
    assert not list((tmp_path / "certs").glob(".*.tmp"))  # written atomically, nothing left behind


def test_eval_command_in_the_report_hides_the_api_key(tmp_path):
    text = DEMO_PLAN.format(tokenizer=tmp_path, gsm8k=tmp_path).replace("api_key: EMPTY", "api_key: sk-secret-123")
    (tmp_path / "plan.yaml").write_text(text)
    plan = load_plan(tmp_path / "plan.yaml")
    command = equivalent_command(plan, "accuracy-demo", "http://127.0.0.1:8000/v1/completions")
    assert "sk-secret-123" not in command and "--api-key ***" in command


def test_a_damaged_store_is_named_with_the_way_out(tmp_path):


    from fleetbench.controller.store import Store
    from fleetbench.errors import StoreError

    db = tmp_path / "fleetbench.sqlite"
    db.write_bytes(b"this is not a database, it was overwritten" * 100)
    with pytest.raises(StoreError) as err:
        Store(db)
    message = str(err.value)
    assert str(db) in message and ".recover" in message and "\n" not in message


# --- secrets in job specs and stored plans (issue 15, item 4) ---------------------------------------------

def test_split_takes_api_keys_and_every_header_value_and_merge_puts_them_back():
    import copy

    from fleetbench.secrets import merge, split

    doc = {"perf": [{"case_id": "a", "spec": {"url": "http://h/v1", "api_key": "sk-live-1", "model": "m",
                                              "headers": {"Authorization": "Bearer t0k", "X-Trace": "1"}}}],
           "evals": [{"case_id": "e", "spec": {"api_key": "EMPTY", "generation_config": {
               "extra_headers": {"Cookie": "session=abc"}}}}]}
    public, secrets = split(copy.deepcopy(doc))
    assert secrets == {"perf/0/spec/api_key": "sk-live-1", "perf/0/spec/headers/Authorization": "Bearer t0k",
                       "perf/0/spec/headers/X-Trace": "1",
                       "evals/0/spec/generation_config/extra_headers/Cookie": "session=abc"}
    assert "sk-live-1" not in str(public) and "t0k" not in str(public) and "abc" not in str(public)
    assert public["perf"][0]["spec"]["headers"] == {"Authorization": "***", "X-Trace": "***"}
    assert public["evals"][0]["spec"]["api_key"] == "EMPTY"  # "no key" is not a secret
    assert merge(public, secrets) == doc


def test_scrub_replaces_a_secret_as_written_and_as_json_writes_it():
    from fleetbench.secrets import scrub

    data = b'api_key=sk-"q"1 {"api_key": "sk-\\"q\\"1"} Bearer t0ken-xyz; short=ab'
    assert scrub(data, ['sk-"q"1', "Bearer t0ken-xyz", "ab"]) == b'api_key=*** {"api_key": "***"} ***; short=ab'


@pytest.mark.parametrize("endpoint", [
    "endpoint: {url: http://127.0.0.1:8000/v1/completions, api_key: sk-secret-123}",
    "endpoint:\n  url: http://127.0.0.1:8000/v1/completions\n  api_key: 'sk-secret-123'  # ops key",
    'endpoint:\n  url: http://127.0.0.1:8000/v1/completions\n  api_key: "sk-secret-123"',
    "endpoint: {url: http://127.0.0.1:8000/v1/completions, api_key: 12345678}",
])
def test_the_stored_plan_keeps_no_api_key(tmp_path, endpoint):
    from fleetbench.controller.plan import load_plan, parse_plan
    from fleetbench.controller.yamlfile import parse_yaml
    from fleetbench.secrets import redact_plan_text

    text = (f"name: p\nmodel: m\n{endpoint}\ntokenizer: /tok\n# the key sk-secret-123 is the ops team's\n"
            "cases:\n  - {id: c, parallel: 1, number: 1, input_tokens: 8, output_tokens: 8, "
            "purpose: 'uses sk-secret-123'}\n")
    (tmp_path / "plan.yaml").write_text(text)
    plan = load_plan(tmp_path / "plan.yaml")
    stored = redact_plan_text(text, plan.endpoint.api_key)
    assert plan.endpoint.api_key not in stored
    again = parse_plan(parse_yaml(stored, Path("<stored>"), "plan"))
    assert again.endpoint.api_key == "***"
    assert again.cases[0].purpose == plan.cases[0].purpose.replace(plan.endpoint.api_key, "***")
    assert redact_plan_text(text.replace("sk-secret-123", "EMPTY").replace("12345678", "EMPTY"), "EMPTY") == \
        text.replace("sk-secret-123", "EMPTY").replace("12345678", "EMPTY")


def test_resuming_a_run_whose_key_was_not_stored_asks_for_it(tmp_path):
    from fleetbench.controller.runner import stored_plan
    from fleetbench.controller.store import Store
    from fleetbench.errors import ConfigError
    from fleetbench.secrets import redact_plan_text

    text = ("name: p\nmodel: m\nendpoint: {url: 'http://127.0.0.1:8000/v1/completions', api_key: sk-secret-123}\n"
            "tokenizer: /tok\ncases:\n  - {id: c, parallel: 1, number: 1, input_tokens: 8, output_tokens: 8}\n")
    store = Store(tmp_path / "s.sqlite")
    store.create_run("r1", "p", "m", redact_plan_text(text, "sk-secret-123"), ["n1"], "0.1.0")
    with pytest.raises(ConfigError, match="set FLEETBENCH_API_KEY to the key and run `ctl resume r1` again"):
        stored_plan(store, "r1")
    assert stored_plan(store, "r1", "sk-secret-123").endpoint.api_key == "sk-secret-123"


def test_the_agent_closes_its_data_dir_but_never_a_shared_folder(tmp_path):
    from fleetbench.agent.jobs import JobManager

    data = tmp_path / "agent"
    data.mkdir(mode=0o755)
    (data / "agent.sqlite").write_bytes(b"")
    (data / "agent.sqlite").chmod(0o644)  # as an older agent left them
    JobManager(data)
    assert mode(data) == 0o700 and mode(data / "jobs") == 0o700 and mode(data / "agent.sqlite") == 0o600
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(ConfigError, match="is a shared folder; give the agent a data dir of its own"):
        JobManager(shared)
    assert mode(shared) == 0o1777
