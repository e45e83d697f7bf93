"""Secrets at rest: certificate keys never readable by others, the plan's API key never in a report."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fleetbench.controller.certs import init_fleet_certs
from fleetbench.controller.demo import DEMO_PLAN
from fleetbench.controller.plan import load_plan
from fleetbench.controller.report.model import equivalent_command


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
    import pytest

    from fleetbench.controller.store import Store
    from fleetbench.errors import StoreError

    db = tmp_path / "fleetbench.sqlite"
    db.write_bytes(b"this is not a database, it was overwritten" * 100)
    with pytest.raises(StoreError) as err:
        Store(db)
    message = str(err.value)
    assert str(db) in message and ".recover" in message and "\n" not in message
