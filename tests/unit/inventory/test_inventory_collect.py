"""collect(): the deadline holds when a tool hangs, failures become "not available", JSON round-trips."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from fleetbench.agent.inventory import SCHEMA, Inventory, NotAvailable, collect, memory, nvidia
from fleetbench.agent.inventory import cpu as cpu_mod

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def _tool(bindir: Path, name: str, body: str) -> None:
    p = bindir / name
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only fake tools (and sleep/cat from the system)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for real in ("sleep", "cat"):
        for d in ("/bin", "/usr/bin"):
            if os.path.exists(os.path.join(d, real)):
                (bindir / real).symlink_to(os.path.join(d, real))
                break
    monkeypatch.setenv("PATH", str(bindir))
    # No NVML here: make the import fail so the nvidia-smi fallback is exercised.
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    return bindir


def test_hanging_tool_respects_deadline(fake_path: Path) -> None:
    _tool(fake_path, "nvidia-smi", "exec sleep 30")
    _tool(fake_path, "lscpu", f"cat '{FIX / 'kunpeng920' / 'lscpu.txt'}'")
    t0 = time.monotonic()
    inv = collect(None, deadline_s=2.0)
    took = time.monotonic() - t0
    assert took < 3.0
    assert isinstance(inv.nvidia, NotAvailable)
    assert "timed out" in inv.nvidia.reason or "deadline" in inv.nvidia.reason
    assert inv.cpu_model == "Kunpeng-920" and inv.cpu_count == 192  # other collectors still answered
    inv.model_dump_json()


def test_fake_tools_end_to_end(fake_path: Path) -> None:
    h200 = FIX / "nvidia-h200x8"
    _tool(fake_path, "nvidia-smi", f"""case "$1" in
  -q) cat '{h200 / 'nvidia-smi-q-x.xml'}' ;;
  nvlink) cat '{h200 / 'nvidia-smi-nvlink.txt'}' ;;
  topo) cat '{h200 / 'nvidia-smi-topo.txt'}' ;;
  *) exit 3 ;;
esac""")
    _tool(fake_path, "npu-smi", f"cat '{FIX / 'ascend-910b3x8' / 'npu-smi-info.txt'}'")
    _tool(fake_path, "hy-smi", "echo 'hy-smi: something went wrong' >&2; exit 1")
    _tool(fake_path, "amd-smi", "echo '{not json'")
    _tool(fake_path, "lscpu", "exit 1")
    inv = collect(None, deadline_s=8.0)
    assert isinstance(inv.nvidia, nvidia.NvidiaInfo)
    assert inv.nvidia.source == "nvidia-smi -q -x"
    assert len(inv.nvidia.gpus) == 8
    assert all(len(g.nvlinks) == 18 and not g.nvlinks_down for g in inv.nvidia.gpus)
    assert not isinstance(inv.nvidia.topology, NotAvailable)
    assert not isinstance(inv.ascend, NotAvailable) and len(inv.ascend.npus) == 8
    assert isinstance(inv.hygon, NotAvailable) and "something went wrong" in inv.hygon.reason
    assert isinstance(inv.amd, NotAvailable)
    assert isinstance(inv.cpu, NotAvailable)
    nv = [g for g in inv.gpus if g.name == "NVIDIA H200"]
    assert len(nv) == 8 and {g.memory_total_mib for g in nv} == {143771}
    assert {(g.driver_version, g.cuda_version) for g in nv} == {("580.159.04", "13.0")}
    assert any(g.name == "Ascend 910B3" for g in inv.gpus)
    assert inv.nvlinks_down() == [] and inv.ecc_uncorrected() == {} and inv.mig_enabled() == []
    # JSON round trip, with every "not available" kept as a string.
    d = json.loads(inv.model_dump_json())
    assert d["schema"] == SCHEMA
    assert d["hygon"].startswith("not available: ")
    assert Inventory.from_document(d) == inv


def test_dmidecode_as_non_root_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    res = memory.collect_dimms()
    assert isinstance(res, NotAvailable) and "needs root" in res.reason


def _inventory(**over: object) -> Inventory:
    """An Inventory built from the real 8×H200 captures."""
    h200 = FIX / "nvidia-h200x8"
    nv = nvidia.parse_smi_xml((h200 / "nvidia-smi-q-x.xml").read_text())
    assert isinstance(nv, nvidia.NvidiaInfo)
    links = nvidia.parse_nvlink_status((h200 / "nvidia-smi-nvlink.txt").read_text())
    assert not isinstance(links, NotAvailable)
    nv = nvidia.with_nvlinks(nv, links, "nvidia-smi nvlink -s")
    base: dict[str, object] = dict(
        hostname="n1", collected_at=0.0, cpu=cpu_mod.parse_lscpu_json((h200 / "lscpu.json").read_text()),
        memory=memory.MemoryInfo(total_bytes=591424884736, available_bytes=None, swap_total_bytes=0,
                                 dimms=NotAvailable("dmidecode needs root")),
        nvidia=nv, ascend=NotAvailable("npu-smi not found"), hygon=NotAvailable("hy-smi not found"),
        amd=NotAvailable("amd-smi not found"), disks=(), network=NotAvailable("x"),
        os_release=NotAvailable("x"), kernel_release="6.18.44-fc-v657-gpu", container_runtimes=NotAvailable("x"),
        python_version="3.11.7", evalscope_version="1.4.1", engine=NotAvailable("no endpoint URL given"),
    )
    base.update(over)
    return Inventory(**base)  # type: ignore[arg-type]


def test_summary_row_h200() -> None:
    row = _inventory().summary_row()
    assert row["accelerators"] == "8× NVIDIA H200 143771 MiB"
    assert row["driver"] == "580.159.04"
    assert row["toolkit"] == "CUDA 13.0"
    assert row["memory"] == "550.8 GiB"
    assert row["cpu"] == "Intel(R) Xeon(R) Processor"
    assert row["kernel"] == "6.18.44-fc-v657-gpu"


def test_summary_row_names_the_engine_the_endpoint_reported() -> None:
    from fleetbench.agent.inventory.engine import EngineInfo

    vllm = EngineInfo(name="vllm", version="0.11.0", models=("DeepSeek-V3.2",))
    assert _inventory(engine=vllm).summary_row()["engine"] == "vllm 0.11.0"
    assert _inventory(engine=EngineInfo(name="unknown", version="unknown")).summary_row()["engine"] == ""


def test_summary_row_with_dimms_like_seed000() -> None:
    # Seed 000's hardware table: 2 sockets, 32 DDR5 DIMMs of 64 GB.
    dimms = tuple(memory.Dimm(locator=f"D{i}", size_bytes=64 << 30, type="DDR5", speed_mts=4800,
                              configured_speed_mts=4800, manufacturer="", part_number="") for i in range(32))
    cpu = cpu_mod.CpuInfo(model="INTEL(R) XEON(R) PLATINUM 8558", vendor="GenuineIntel", architecture="x86_64",
                          sockets=2, cores_per_socket=48, threads_per_core=2, logical_cpus=192, numa_nodes=2)
    inv = _inventory(cpu=cpu, memory=memory.MemoryInfo(total_bytes=2 << 40, available_bytes=None, swap_total_bytes=0,
                                                       dimms=dimms, dimm_slots=32))
    row = inv.summary_row()
    assert row["cpu"] == "INTEL(R) XEON(R) PLATINUM 8558 ×2"
    assert row["memory"] == "2.0 TiB (32× 64 GB DDR5)"


def test_grpc_view_properties() -> None:
    inv = _inventory()
    assert inv.hostname == "n1" and inv.cpu_count == 128 and inv.memory_total_bytes == 591424884736
    assert inv.kernel == "6.18.44-fc-v657-gpu" and inv.os == ""
    g = inv.gpus[0]
    assert (g.index, g.name, g.uuid, g.memory_total_mib, g.driver_version, g.cuda_version) == (
        0, "NVIDIA H200", "GPU-aba6f9c0-61d7-d4a0-4f12-e8367d00f3f9", 143771, "580.159.04", "13.0")


def test_from_document_rejects_other_schema() -> None:
    d = _inventory().model_dump(mode="json")
    d["schema"] = "something/2"
    with pytest.raises(ValueError, match="schema"):
        Inventory.from_document(d)
    assert Inventory.from_document(_inventory().model_dump(mode="json")) == _inventory()
