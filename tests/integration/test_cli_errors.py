"""Bad input gives one line on stderr and exit code 2 — never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetbench.controller.localfleet import free_port

CTL = [sys.executable, "-m", "fleetbench.controller"]
GOOD_PLAN = """\
name: t
model: m
endpoint: {url: http://127.0.0.1:9/v1/completions}
tokenizer: /tmp/tok
cases:
  - {id: c1, parallel: 1, number: 1, input_tokens: 10, output_tokens: 10}
"""


def ctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture
def files(tmp_path):
    (tmp_path / "plan.yaml").write_text(GOOD_PLAN)
    (tmp_path / "fleet.yaml").write_text(f"nodes:\n  n1: 127.0.0.1:{free_port()}\n")
    return tmp_path


def test_missing_plan_file(files):
    assert_one_line_error(ctl("run", "--plan", "nope.yaml", "--nodes", "n1", "--db", "x.db", cwd=files),
                          "plan file nope.yaml does not exist")


def test_malformed_yaml(files):
    (files / "plan.yaml").write_text("name: [unclosed\nmodel: m\n")
    assert_one_line_error(ctl("run", "--plan", "plan.yaml", "--nodes", "n1", cwd=files), "not valid YAML")


def test_unknown_key(files):
    (files / "plan.yaml").write_text(GOOD_PLAN.replace("model: m", "model: m\nmodle: typo"))
    assert_one_line_error(ctl("run", "--plan", "plan.yaml", "--nodes", "n1", cwd=files),
                          "plan.yaml:3: modle is not a known key")


def test_node_not_in_fleet_file(files):
    assert_one_line_error(ctl("run", "--plan", "plan.yaml", "--nodes", "n1,n7", cwd=files),
                          "node 'n7' is not in the fleet file")


def test_unreachable_agent(files):
    proc = ctl("run", "--plan", "plan.yaml", "--nodes", "n1", "--db", str(files / "s.db"), cwd=files)
    assert_one_line_error(proc, "n1 (127.0.0.1:")
    assert "unreachable" in proc.stderr


def test_ping_unreachable_exits_2(files):
    proc = ctl("ping", "--nodes", "n1", cwd=files)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout


def test_plan_check_ok_and_help(files):
    proc = ctl("plan", "check", "plan.yaml", cwd=files)
    assert proc.returncode == 0 and "1 case(s): c1" in proc.stdout
    helptext = ctl("run", "--help", cwd=files).stdout
    assert "--plan" in helptext and "--nodes" in helptext and "--db" in helptext


def test_output_piped_into_a_closed_reader_is_not_an_error(files):
    proc = subprocess.run(f"{sys.executable} -m fleetbench.controller --help | head -1", shell=True,
                          capture_output=True, text=True, timeout=60, cwd=files)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(f"{sys.executable} -m fleetbench.controller runs --db s.db | head -n 1", shell=True,
                          capture_output=True, text=True, timeout=60, cwd=files)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
