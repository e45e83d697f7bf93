"""Confinement (issue 15, item 1): a job reads files only under the agent's --allow-path roots (symlinks and
`..` resolved, never the agent's own state) and sends load only to its --allow-endpoint hosts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetbench.agent.confine import Confinement, EndpointRule
from fleetbench.errors import ConfigError, ConfinementError
from fleetbench.jobs_schema import EvalSpec, PerfSpec, PreflightSpec

URL = "http://127.0.0.1:8000/v1/completions"


def perf(**kw: object) -> PerfSpec:
    return PerfSpec.from_wire({"url": URL, "model": "m", "tokenizer_path": "/tok", "number": 1, "parallel": 1,
                               "input_tokens": 8, **kw})


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Confinement, Path, Path]:
    data, models = tmp_path / "data", tmp_path / "models"
    (models / "tok").mkdir(parents=True)
    data.mkdir()
    return Confinement.of(data, [models]), data, models


def test_default_is_the_data_dir_and_loopback(tmp_path):
    c = Confinement.of(tmp_path)
    assert c.roots == (Path(os.path.realpath(tmp_path)),)
    assert c.describe_endpoints() == "127.0.0.0/8, [::1], localhost"
    c.check_path("dataset_path", str(tmp_path / "prompts.txt"))
    for url in ("http://127.0.0.1:8000/v1", "http://127.9.9.9/v1", "https://localhost/v1", "http://[::1]:8/v1",
                "http://LOCALHOST:80/v1"):
        c.check_url("url", url)
    for url in ("http://10.0.0.5:8000/v1", "http://evil.example/v1", "http://127.0.0.1.nip.io/v1",
                "http://[::2]/v1", "http://0.0.0.0:8000/v1"):
        with pytest.raises(ConfinementError, match="is not an endpoint this agent may send load to"):
            c.check_url("url", url)


def test_shadow_style_exfiltration_is_refused_naming_the_roots(roots):
    c, _, models = roots
    with pytest.raises(ConfinementError) as err:
        c.check_spec(perf(dataset="line_by_line", dataset_path="/etc/shadow", tokenizer_path=str(models / "tok")))
    assert str(err.value) == ("dataset_path /etc/shadow is outside the paths this agent may read "
                              f"({models.resolve()}); start the agent with --allow-path DIR "
                              "(fleet file: deploy.allow_paths)")
    c.check_spec(perf(tokenizer_path=str(models / "tok")))


def test_dot_dot_and_symlinks_are_resolved_first(roots, tmp_path):
    c, _, models = roots
    (models / "link").symlink_to("/etc")
    with pytest.raises(ConfinementError, match=r"models/link/passwd \(resolves to /etc/passwd\) is outside"):
        c.check_path("dataset_path", str(models / "link" / "passwd"))
    with pytest.raises(ConfinementError, match="is outside"):
        c.check_path("tokenizer_path", str(models / ".." / "data" / ".." / ".." / "etc"))
    with pytest.raises(ConfinementError, match="must be an absolute path"):
        c.check_path("tokenizer_path", "tok")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "in").symlink_to(models / "tok")  # a link from outside into a root is fine
    c.check_path("tokenizer_path", str(tmp_path / "elsewhere" / "in"))


def test_the_agents_own_state_is_never_readable(tmp_path):
    c = Confinement.of(tmp_path)  # the data dir is the default root, but not its jobs or store
    for p in ("jobs/other-job/job.json", "jobs", "agent.sqlite", "agent.sqlite-wal"):
        with pytest.raises(ConfinementError, match="the agent's own state"):
            c.check_path("dataset_path", str(tmp_path / p))
    c.check_path("dataset_path", str(tmp_path / "datasets" / "x.jsonl"))


def test_eval_and_preflight_specs_are_checked_field_by_field(roots):
    c, _, models = roots
    ev = EvalSpec.from_wire({"url": "http://127.0.0.1:8000/v1", "model": "m", "datasets": ["gsm8k", "mmlu"],
                             "dataset_args": {"gsm8k": {"local_path": str(models)}, "mmlu": {"local_path": "/root"}}})
    with pytest.raises(ConfinementError, match=r"^dataset_args.mmlu.local_path /root is outside"):
        c.check_spec(ev)
    pre = PreflightSpec.from_wire({"perf": [{"case_id": "a", "spec": perf(tokenizer_path=str(models)).model_dump()},
                                            {"case_id": "b", "spec": perf(url="http://192.0.2.1/v1",
                                                                          tokenizer_path=str(models)).model_dump()}]})
    with pytest.raises(ConfinementError, match=r"^perf\[1\].spec.url http://192.0.2.1/v1 is not an endpoint"):
        c.check_spec(pre)


def test_endpoint_rules_hosts_networks_and_ports():
    c = Confinement.of(Path("/tmp"), [], ["10.0.0.0/24:8000", "engine.local", "[fd00::5]:9000", "192.0.2.7"])
    c.check_url("url", "http://10.0.0.77:8000/v1")
    c.check_url("url", "http://ENGINE.local:1234/v1")
    c.check_url("url", "http://[fd00::5]:9000/v1")
    c.check_url("url", "https://192.0.2.7/v1")
    for url in ("http://10.0.0.77:8001/v1", "http://10.0.1.1:8000/v1", "http://[fd00::5]:80/v1",
                "http://127.0.0.1:8000/v1", "http://engine.local.evil/v1"):
        with pytest.raises(ConfinementError):
            c.check_url("url", url)


@pytest.mark.parametrize("rule", ["", "http://x", "a b", "10.0.0.0/99", "h:0", "h:70000", "fd00::5"])
def test_a_bad_allow_endpoint_is_one_line(rule):
    with pytest.raises(ConfigError, match="--allow-endpoint"):
        EndpointRule.parse(rule)


def test_a_relative_allow_path_is_refused():
    with pytest.raises(ConfigError, match="--allow-path models must be an absolute path"):
        Confinement.of(Path("/tmp"), ["models"])
