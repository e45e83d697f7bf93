"""`ctl inventory` against three real agents on loopback: the table, --check, --json, the stored snapshot,
`snapshots` and `diff`. (The drift → exit 1 path is covered in tests/unit/test_fleetview.py on inventories
from real captures: identical loopback agents cannot drift.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.fleets import Fleet, ctl

from fleetbench.controller.localfleet import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(local_fleet) -> Fleet:
    return local_fleet(3)


def test_table_check_snapshot_and_diff(fleet: Fleet) -> None:
    work, f = fleet.work, fleet.local
    db = str(work / "store.sqlite")
    args = ("inventory", "--nodes", "n1,n2,n3", "--fleet", str(work / "fleet.yaml"), "--db", db)
    first = ctl(*args, cwd=work)
    assert first.returncode == 0, first.stderr
    rows = [ln for ln in first.stdout.splitlines() if ln.startswith("│ n")]
    assert [r.split("│")[1].strip() for r in rows] == ["n1", "n2", "n3"]
    for header in ("CPU", "memory", "accelerators", "driver", "CUDA/CANN/DTK", "OS", "kernel"):
        assert header in first.stdout
    assert "drift: none — n1, n2, n3 agree" in first.stdout
    assert "Traceback" not in first.stderr

    second = ctl(*args, "--check", cwd=work)
    assert second.returncode == 0, second.stdout + second.stderr

    con = sqlite3.connect(db)
    snaps = con.execute("SELECT snapshot_id, node, address, inventory_json, error FROM inventory_snapshots "
                        "ORDER BY rowid").fetchall()
    assert len(snaps) == 6
    ids = list(dict.fromkeys(s[0] for s in snaps))
    assert len(ids) == 2 and f"snapshot {ids[0]} stored" in first.stdout
    assert [(s[1], s[2], s[4]) for s in snaps[:3]] == [(n.name, n.address, "") for n in f.nodes]
    assert json.loads(snaps[0][3])["schema"] == "fleetbench.inventory/1"

    listed = ctl("inventory", "snapshots", "--db", db, "--json", cwd=work)
    assert listed.returncode == 0
    assert [(s["snapshot_id"], s["nodes"]) for s in json.loads(listed.stdout)] == \
        [(ids[1], ["n1", "n2", "n3"]), (ids[0], ["n1", "n2", "n3"])]

    diff = ctl("inventory", "diff", ids[0], ids[1], "--db", db, "--check", cwd=work)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert diff.stdout.splitlines()[1:] == ["n1: no change", "n2: no change", "n3: no change"]
    # two nodes of one snapshot: only their endpoints differ (each loopback node has its own)
    cross = ctl("inventory", "diff", f"{ids[0]}:n1", f"{ids[0]}:n2", "--db", db, cwd=work)
    assert cross.returncode == 0
    assert cross.stdout.splitlines()[1:] == [
        "n1 → n2: 1 change",
        f"  engine.endpoint: {f.nodes[0].endpoint} → {f.nodes[1].endpoint}",
    ]


def test_json_output(fleet: Fleet) -> None:
    work, f = fleet.work, fleet.local
    proc = ctl("inventory", "--nodes", "n1,n2", "--fleet", str(work / "fleet.yaml"), "--db",
               str(work / "json.sqlite"), "--json", "--check", cwd=work)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["snapshot_id"].startswith("i") and doc["drift"] == [] and doc["exit_code"] == 0
    assert list(doc["nodes"]) == ["n1", "n2"]
    inv = doc["nodes"]["n1"]["inventory"]
    assert doc["nodes"]["n1"]["address"] == f.nodes[0].address
    assert inv["schema"] == "fleetbench.inventory/1" and "cpu" in inv and "nvidia" in inv


def test_unreachable_node_exits_2_and_is_recorded(fleet: Fleet) -> None:
    work = fleet.work
    dead = f"127.0.0.1:{free_port()}"
    db = str(work / "dead.sqlite")
    proc = ctl("inventory", "--nodes", f"n1,{dead}", "--fleet", str(work / "fleet.yaml"), "--db", db, "--check",
               cwd=work)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (err,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert err.startswith(f"error: {dead} ({dead}) is unreachable")
    assert "no inventory (error below)" in proc.stdout
    listed = json.loads(ctl("inventory", "snapshots", "--db", db, "--json", cwd=work).stdout)
    assert listed[0]["nodes"] == ["n1", dead] and listed[0]["failed"] == [dead]


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = ctl("inventory", "--nodes", "n1", "--db", str(tmp_path / "x.sqlite"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: node 'n1' is not host:port and there is no fleet file")
    proc = ctl("inventory", "diff", "nope", "nada", "--db", str(tmp_path / "x.sqlite"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: no inventory snapshot nope in {tmp_path / 'x.sqlite'}; "
                                   "`ctl inventory snapshots` lists the ones it holds")
