"""The fleet view: table rows, drift verdict and exit code, snapshot diffs, the snapshot store and the
`ctl inventory diff/snapshots` commands, on inventories built from the real 8×H200 and seed 001 (8×H20)
captures. Variations (a newer driver, a link down, a hotter GPU) are made inline with model_copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetbench.agent.inventory import cpu, disks, memory, nvidia, system
from fleetbench.controller import fleetview as fv
from fleetbench.controller.cli import app
from fleetbench.controller.store import Store
from fleetbench.errors import ConfigError, StoreError
from fleetbench.inventory import Inventory, NotAvailable

FIX = Path(__file__).resolve().parents[1] / "fixtures"
H200 = FIX / "nvidia-h200x8"


def h200_nvidia() -> nvidia.NvidiaInfo:
    info = nvidia.parse_smi_xml((H200 / "nvidia-smi-q-x.xml").read_text())
    assert isinstance(info, nvidia.NvidiaInfo)
    links = nvidia.parse_nvlink_status((H200 / "nvidia-smi-nvlink.txt").read_text())
    assert not isinstance(links, NotAvailable)
    topo = nvidia.parse_topo((H200 / "nvidia-smi-topo.txt").read_text())
    return nvidia.with_nvlinks(info, links, "nvidia-smi nvlink -s").model_copy(update={"topology": topo})


def h200_node(hostname: str = "h200-a", nv: nvidia.NvidiaInfo | NotAvailable | None = None,
              kernel: str | None = None, mem: memory.MemoryInfo | None = None) -> Inventory:
    """The real 8×H200 server as its agent would report it (every section from a capture)."""
    totals = memory.parse_meminfo((H200 / "meminfo.txt").read_text())
    assert isinstance(totals, memory.MemTotals)
    return Inventory(
        hostname=hostname, collected_at=1795357800.0,
        cpu=cpu.parse_lscpu_json((H200 / "lscpu.json").read_text()),
        memory=mem or memory.MemoryInfo(total_bytes=totals.total_bytes, available_bytes=totals.available_bytes,
                                        swap_total_bytes=totals.swap_total_bytes,
                                        dimms=NotAvailable("dmidecode not found")),
        nvidia=h200_nvidia() if nv is None else nv,
        ascend=NotAvailable("npu-smi not found"), hygon=NotAvailable("hy-smi not found"),
        amd=NotAvailable("amd-smi not found; rocm-smi not found"),
        disks=disks.parse_lsblk_json((H200 / "lsblk.txt").read_text()),
        network=NotAvailable("no /sys/class/net"),
        os_release=system.parse_os_release((H200 / "os-release.txt").read_text()),
        kernel_release=kernel or system.parse_uname((H200 / "uname.txt").read_text()),
        container_runtimes=(system.RuntimeVersion(name="docker", version="28.2.2"),), python_version="3.12.3",
        evalscope_version="1.4.1", engine=NotAvailable("no endpoint URL given"),
        timings_s={"nvidia": 0.2},
    )


def with_driver(info: nvidia.NvidiaInfo, driver: str, cuda: str) -> nvidia.NvidiaInfo:
    gpus = tuple(g.model_copy(update={"driver_version": driver, "cuda_version": cuda}) for g in info.gpus)
    return info.model_copy(update={"driver_version": driver, "cuda_version": cuda, "gpus": gpus})


def with_gpu(info: nvidia.NvidiaInfo, index: int, **changes: object) -> nvidia.NvidiaInfo:
    gpus = tuple(g.model_copy(update=changes) if g.index == index else g for g in info.gpus)  # type: ignore[arg-type]
    return info.model_copy(update={"gpus": gpus})


def link_down(info: nvidia.NvidiaInfo, index: int, link: int) -> nvidia.NvidiaInfo:
    gpu = next(g for g in info.gpus if g.index == index)
    links = tuple(n.model_copy(update={"active": False}) if n.link == link else n for n in gpu.nvlinks)
    return with_gpu(info, index, nvlinks=links)


# ------------------------------------------------------------------------------------------ rows


def test_row_of_the_real_h200_server() -> None:
    row = fv.fleet_row("n1", h200_node())
    assert row == {
        "node": "n1", "hostname": "h200-a", "cpu": "Intel(R) Xeon(R) Processor", "cpus": "128",
        "memory": "550.8 GiB", "accelerators": "8× NVIDIA H200 143771 MiB", "driver": "580.159.04",
        "toolkit": "CUDA 13.0", "os": "Ubuntu 24.04.3 LTS", "kernel": "6.18.44-fc-v657-gpu", "engine": "",
    }
    assert list(row) == [k for k, _ in fv.COLUMNS]


def test_row_of_seed_001_h20_and_of_a_node_without_accelerators() -> None:
    h20 = nvidia.parse_smi_table((FIX / "nvidia-h20x8/nvidia-smi.txt").read_text())
    assert isinstance(h20, nvidia.NvidiaInfo)
    row = fv.fleet_row("n2", h200_node(nv=h20))
    assert row["accelerators"] == "8× NVIDIA H20 97871 MiB"
    assert (row["driver"], row["toolkit"]) == ("535.216.03", "CUDA 12.2")
    bare = fv.fleet_row("n3", h200_node(nv=NotAvailable("nvidia-smi not found")))
    assert (bare["accelerators"], bare["driver"], bare["toolkit"]) == ("none", "", "")


def test_row_shows_dimms_when_dmidecode_was_readable() -> None:
    parsed = memory.parse_dmidecode_memory((FIX / "dmidecode/supermicro-as1124us-dmidecode.txt").read_text())
    assert not isinstance(parsed, NotAvailable)
    dimms, slots = parsed
    row = fv.fleet_row("n1", h200_node(mem=memory.MemoryInfo(total_bytes=270 << 30, available_bytes=None,
                                                             swap_total_bytes=0, dimms=dimms, dimm_slots=slots)))
    assert row["memory"] == "256.0 GiB (16× 16 GB DDR4)"


# ------------------------------------------------------------------------------ drift → exit code


def test_identical_nodes_pass_check() -> None:
    a = fv.assess({"n1": h200_node("a"), "n2": h200_node("b"), "n3": h200_node("c")}, check=True)
    assert (a.findings, a.errors, a.exit_code) == ([], {}, 0)
    assert [r["node"] for r in a.rows] == ["n1", "n2", "n3"]
    (line,) = fv.drift_summary(a)
    assert line.startswith("drift: none — n1, n2, n3 agree on accelerator model")


def test_drift_exits_1_only_with_check() -> None:
    base = h200_nvidia()
    fleet = {"n1": h200_node("a"), "n2": h200_node("b", nv=with_driver(base, "570.195.03", "12.8")),
             "n3": h200_node("c")}
    checked = fv.assess(fleet, check=True)
    assert checked.exit_code == 1
    assert [f.message for f in checked.findings] == [
        "n2: driver 570.195.03 differs from the majority 580.159.04 (n1, n3)",
        "n2: CUDA 12.8 differs from the majority 13.0 (n1, n3)",
    ]
    assert fv.drift_cells(checked.findings) == {"n2": {"driver", "toolkit"}}
    assert fv.drift_summary(checked) == [
        "drift: 2 findings over 3 node(s):",
        "  - n2: driver 570.195.03 differs from the majority 580.159.04 (n1, n3)",
        "  - n2: CUDA 12.8 differs from the majority 13.0 (n1, n3)",
    ]
    assert fv.assess(fleet, check=False).exit_code == 0


def test_link_down_on_one_node_is_drift() -> None:
    fleet = {"n1": h200_node(), "n2": h200_node(nv=link_down(h200_nvidia(), 3, 7))}
    a = fv.assess(fleet, check=True)
    assert a.exit_code == 1
    assert [f.message for f in a.findings] == ["n2: 1 NVLink link(s) down: GPU3 link 7"]
    assert fv.drift_cells(a.findings) == {"n2": {"accelerators"}}


def test_unreachable_node_exits_2_even_with_drift() -> None:
    fleet: dict[str, Inventory | str] = {
        "n1": h200_node(), "n2": h200_node(kernel="6.8.0-45-generic"), "n3": h200_node(),
        "n4": "n4 (10.0.0.14:50051) is unreachable: connection refused",
    }
    a = fv.assess(fleet, check=True)
    assert a.exit_code == 2
    assert a.errors == {"n4": "n4 (10.0.0.14:50051) is unreachable: connection refused"}
    assert a.rows[3] == {"node": "n4", "error": fleet["n4"]}
    assert [f.node for f in a.findings] == ["n2"]
    assert fv.decide_exit({}, [], check=True) == 0
    assert fv.decide_exit({"n1": "x"}, [], check=False) == 2


def test_no_node_answered() -> None:
    a = fv.assess({"n1": "down"}, check=False)
    assert a.exit_code == 2
    assert fv.drift_summary(a) == ["drift: not checked, no node answered"]


def test_parse_inventory_refuses_garbage_with_one_line() -> None:
    doc = h200_node().model_dump(mode="json")
    assert fv.parse_inventory(json.dumps(doc)) == Inventory.from_document(doc)
    with pytest.raises(ValueError, match="not JSON"):
        fv.parse_inventory("{")
    with pytest.raises(ValueError, match="unsupported inventory schema"):
        fv.parse_inventory(json.dumps({**doc, "schema": "fleetbench.inventory/9"}))


# ------------------------------------------------------------------------------------------ diff


def doc(inv: Inventory) -> dict[str, object]:
    return json.loads(inv.model_dump_json())  # as stored: through JSON


def test_same_server_later_is_no_change_despite_volatile_fields() -> None:
    later = with_gpu(h200_nvidia(), 0, temperature_c=71.0, power_draw_w=650.2, memory_used_mib=130000,
                     pcie_gen_current=1, pcie_width_current=8)
    a = h200_node()
    assert isinstance(a.memory, memory.MemoryInfo)
    b = h200_node(nv=later).model_copy(update={"collected_at": 1795361400.0, "timings_s": {"nvidia": 3.1},
                                               "memory": a.memory.model_copy(update={"available_bytes": 1 << 30})})
    assert fv.diff_documents(doc(a), doc(b)) == []
    assert fv.is_volatile("nvidia.gpus[5].temperature_c")
    assert not fv.is_volatile("nvidia.gpus[5].ecc_uncorrected_volatile")


def test_driver_upgrade_link_down_and_ecc_field_by_field() -> None:
    base = h200_nvidia()
    after = link_down(with_gpu(with_driver(base, "580.200.01", "13.1"), 2, ecc_uncorrected_volatile=4), 3, 7)
    changes = fv.diff_documents(doc(h200_node()), doc(h200_node(nv=after)))
    texts = [c.text() for c in changes]
    assert texts[:3] == [
        "nvidia.driver_version: 580.159.04 → 580.200.01",
        "nvidia.cuda_version: 13.0 → 13.1",
        "nvidia.gpus[0].driver_version: 580.159.04 → 580.200.01",
    ]
    assert "nvidia.gpus[2].ecc_uncorrected_volatile: 0 → 4" in texts
    assert "nvidia.gpus[3].nvlinks[7].active: true → false" in texts
    assert len(changes) == 2 + 8 * 2 + 1 + 1
    assert all(c.kind == fv.CHANGED for c in changes)


def test_disk_and_gpu_added_or_removed_are_matched_by_key_not_position() -> None:
    a = h200_node()
    assert not isinstance(a.disks, NotAvailable) and len(a.disks) == 2
    nvme = disks.Disk(name="nvme0n1", size_bytes=3840755982336, model="SAMSUNG MZQL23T8HCLS", rotational=False,
                      transport="nvme")
    b = a.model_copy(update={"disks": a.disks[1:] + (nvme,)})
    changes = fv.diff_documents(doc(a), doc(b))
    assert [(c.path, c.kind) for c in changes] == [("disks[vda]", "removed"), ("disks[nvme0n1]", "added")]
    assert changes[1].after == {"name": "nvme0n1", "size_bytes": 3840755982336, "model": "SAMSUNG MZQL23T8HCLS",
                                "rotational": False, "transport": "nvme"}
    seven = h200_nvidia().model_copy(update={"gpus": h200_nvidia().gpus[:7]})
    (gone,) = fv.diff_documents(doc(a), doc(h200_node(nv=seven)))
    assert (gone.path, gone.kind) == ("nvidia.gpus[7]", "removed")
    assert "temperature_c" not in gone.before and gone.before["uuid"].startswith("GPU-")
    assert gone.text().startswith('nvidia.gpus[7]: removed (was {"index": 7, "name": "NVIDIA H200"')


def test_section_no_longer_available_is_one_change() -> None:
    gone = h200_node(nv=NotAvailable("NVML did not initialise: Driver Not Loaded; nvidia-smi not found"))
    (c,) = fv.diff_documents(doc(h200_node()), doc(gone))
    assert c.path == "nvidia" and c.kind == fv.CHANGED
    assert c.after == "not available: NVML did not initialise: Driver Not Loaded; nvidia-smi not found"
    assert "power_draw_w" not in json.dumps(c.before)


def test_dimms_matched_by_locator() -> None:
    parsed = memory.parse_dmidecode_memory((FIX / "dmidecode/supermicro-as1124us-dmidecode.txt").read_text())
    assert not isinstance(parsed, NotAvailable)
    dimms, slots = parsed
    a = h200_node(mem=memory.MemoryInfo(total_bytes=270 << 30, available_bytes=200 << 30, swap_total_bytes=0,
                                        dimms=dimms, dimm_slots=slots))
    b = h200_node(mem=memory.MemoryInfo(total_bytes=270 << 30, available_bytes=100 << 30, swap_total_bytes=0,
                                        dimms=dimms[1:], dimm_slots=slots))
    (c,) = fv.diff_documents(doc(a), doc(b))
    assert (c.path, c.kind) == (f"memory.dimms[{dimms[0].locator}]", "removed")


def test_lists_without_keys_compare_by_position() -> None:
    a = {"nvidia": {"topology": {"matrix": [["X", "NV18"], ["NV18", "X"]]}}}
    b = {"nvidia": {"topology": {"matrix": [["X", "SYS"], ["NV18", "X"], ["PIX", "X"]]}}}
    assert [c.text() for c in fv.diff_documents(a, b)] == [
        "nvidia.topology.matrix[0][1]: NV18 → SYS", 'nvidia.topology.matrix[2]: added ["PIX", "X"]',
    ]


def test_snapshot_refs_and_node_pairing() -> None:
    assert fv.parse_snapshot_ref("i1") == fv.SnapshotRef("i1")
    assert fv.parse_snapshot_ref("i1:10.0.0.5:50051") == fv.SnapshotRef("i1", "10.0.0.5:50051")
    for bad in ("", ":n1", "i1:"):
        with pytest.raises(ConfigError):
            fv.parse_snapshot_ref(bad)
    a, b = fv.SnapshotRef("A"), fv.SnapshotRef("B")
    assert fv.pair_nodes(a, ["n1", "n2", "n3"], b, ["n3", "n1"]) == [fv.NodePair("n1", "n1"),
                                                                     fv.NodePair("n3", "n3")]
    assert fv.pair_nodes(a, ["n1", "n2"], b, ["n1", "n2"], node="n2") == [fv.NodePair("n2", "n2")]
    pair = fv.pair_nodes(fv.SnapshotRef("A", "n1"), ["n1"], fv.SnapshotRef("B", "n9"), ["n9"])
    assert pair == [fv.NodePair("n1", "n9")] and pair[0].label == "n1 → n9"
    assert fv.pair_nodes(fv.SnapshotRef("A", "n2"), ["n1", "n2"], b, ["n2"]) == [fv.NodePair("n2", "n2")]
    with pytest.raises(ConfigError, match="share no node"):
        fv.pair_nodes(a, ["n1"], b, ["n2"])
    with pytest.raises(ConfigError, match="snapshot B has no node 'n5'"):
        fv.pair_nodes(a, ["n5"], b, ["n1"], node="n5")
    with pytest.raises(ConfigError, match="snapshot A has no node 'n7'"):
        fv.pair_nodes(fv.SnapshotRef("A", "n7"), ["n1"], b, ["n1"])


# ----------------------------------------------------------------------- store and CLI (in process)


def stored(tmp_path: Path) -> tuple[Path, Store]:
    path = tmp_path / "s.sqlite"
    store = Store(path)
    first = {n: h200_node(n).model_dump_json() for n in ("n1", "n2")}
    store.add_inventory_snapshot("i1", 1000.0, [
        {"node": "n1", "address": "10.0.0.11:50051", "inventory_json": first["n1"]},
        {"node": "n2", "address": "10.0.0.12:50051", "inventory_json": first["n2"]},
        {"node": "n3", "address": "10.0.0.13:50051", "error": "n3 (10.0.0.13:50051) is unreachable: refused"},
    ])
    hot = with_gpu(link_down(with_driver(h200_nvidia(), "580.200.01", "13.1"), 3, 7), 0, temperature_c=80.0)
    store.add_inventory_snapshot("i2", 2000.0, [
        {"node": "n2", "address": "10.0.0.12:50051", "inventory_json": h200_node("n2").model_dump_json()},
        {"node": "n1", "address": "10.0.0.11:50051", "inventory_json": h200_node("n1", hot).model_dump_json()},
    ])
    return path, store


def test_store_lists_and_reads_snapshots(tmp_path: Path) -> None:
    _path, store = stored(tmp_path)
    assert store.inventory_snapshots() == [
        {"snapshot_id": "i2", "taken_at": 2000.0, "nodes": ["n2", "n1"], "failed": []},
        {"snapshot_id": "i1", "taken_at": 1000.0, "nodes": ["n1", "n2", "n3"], "failed": ["n3"]},
    ]
    assert [s["snapshot_id"] for s in store.inventory_snapshots(node="n3")] == ["i1"]
    rows = store.inventory_snapshot("i1")
    assert [(r["node"], r["address"], r["error"]) for r in rows][2] == \
        ("n3", "10.0.0.13:50051", "n3 (10.0.0.13:50051) is unreachable: refused")
    assert Inventory.from_document(json.loads(rows[0]["inventory_json"])).hostname == "n1"
    with pytest.raises(StoreError, match="no inventory snapshot i9"):
        store.inventory_snapshot("i9")


def test_cli_diff_and_snapshots(tmp_path: Path) -> None:
    path, _ = stored(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["inventory", "diff", "i1", "i2", "--db", str(path)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("from i1 (") and "ignored" in lines[0]
    assert lines[1] == "n1: 19 changes"
    assert "  nvidia.driver_version: 580.159.04 → 580.200.01" in lines
    assert "  nvidia.gpus[3].nvlinks[7].active: true → false" in lines
    assert not any("temperature" in ln for ln in lines[1:])
    assert lines[-1] == "n2: no change"
    assert runner.invoke(app, ["inventory", "diff", "i1", "i2", "--db", str(path), "--check"]).exit_code == 1
    r = runner.invoke(app, ["inventory", "diff", "i1:n2", "i2:n2", "--db", str(path), "--check"])
    assert (r.exit_code, r.output.splitlines()[1]) == (0, "n2: no change")
    r = runner.invoke(app, ["inventory", "diff", "i1", "i2", "--node", "n1", "--db", str(path), "--json"])
    out = json.loads(r.output)
    assert [n["node_a"] for n in out["nodes"]] == ["n1"]
    assert {"path": "nvidia.cuda_version", "kind": "changed", "before": "13.0", "after": "13.1"} \
        in out["nodes"][0]["changes"]
    assert "nvidia.gpus[].temperature_c" in out["ignored"]
    r = runner.invoke(app, ["inventory", "diff", "i1:n3", "i2:n1", "--db", str(path)])
    assert r.exit_code == 2 and "snapshot i1 has no usable inventory of n3" in r.output
    r = runner.invoke(app, ["inventory", "snapshots", "--db", str(path)])
    assert r.exit_code == 0 and "i1" in r.output and "n1, n2, n3" in r.output
    r = runner.invoke(app, ["inventory", "--db", str(path)])
    assert r.exit_code == 2 and "needs --nodes" in r.output


def test_docs_list_every_volatile_path() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "inventory.md").read_text()
    for path in fv.VOLATILE_PATHS:
        assert f"- `{path}`" in text, path
