"""Ascend (npu-smi), Hygon (hy-smi, both driver generations) and AMD (amd-smi / rocm-smi) on real captures."""

from __future__ import annotations

from pathlib import Path

from fleetbench.agent.inventory import amd, ascend, hygon
from fleetbench.agent.inventory._common import NotAvailable

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def read(*p: str) -> str:
    return FIX.joinpath(*p).read_text(encoding="utf-8")


def test_npu_smi_910b3_x8() -> None:
    info = ascend.parse_npu_smi_info(read("ascend-910b3x8", "npu-smi-info.txt"))
    assert isinstance(info, ascend.AscendInfo)
    assert info.npu_smi_version == "24.1.0.3"
    assert len(info.npus) == 8
    assert [n.npu_id for n in info.npus] == list(range(8))
    assert {n.name for n in info.npus} == {"910B3"}
    assert {n.health for n in info.npus} == {"OK"}
    assert {n.hbm_total_mb for n in info.npus} == {65536}
    n0 = info.npus[0]
    assert (n0.chip_id, n0.bus_id, n0.power_w, n0.temperature_c, n0.hbm_used_mb) == (
        0, "0000:C1:00.0", 94.7, 54.0, 3396)
    assert info.npus[7].bus_id == "0000:42:00.0"


def test_cann_version() -> None:
    assert ascend.parse_cann_info(read("ascend-910b3x8", "ascend_toolkit_install.info")) == "8.0.0"
    assert isinstance(ascend.parse_cann_info("package_name=x\n"), NotAvailable)


def test_hy_smi_hycu_generation_k100ai() -> None:
    table = hygon.parse_hy_smi_table(read("hygon", "hy-smi-hycu-k100ai.txt"))
    assert isinstance(table, hygon.HyTable)
    assert table.generation == "hycu"
    assert len(table.rows) == 8
    r0 = table.rows[0]
    assert (r0.temperature_c, r0.power_w, r0.power_cap_w, r0.perf, r0.mode) == (59.0, 114.0, 400.0, "auto", "Normal")
    kv = hygon.parse_hy_smi_kv(read("hygon", "hy-smi-a-excerpt-hycu.txt"))
    kv2 = hygon.parse_hy_smi_kv(read("hygon", "hy-smi-showmemavailable-hycu.txt"))
    for k, v in kv2.items():
        kv.setdefault(k, {}).update(v)
    info = hygon.merge(table, kv)
    assert [d.name for d in info.dcus] == ["K100_AI"] * 8
    assert {d.vram_available_mib for d in info.dcus} == {65438}


def test_hy_smi_hydcu_generation_dcu_label() -> None:
    table = hygon.parse_hy_smi_table(read("hygon", "rocm-smi-dcu-z100l.txt"))
    assert isinstance(table, hygon.HyTable)
    assert table.generation == "hydcu"
    assert len(table.rows) == 8
    assert table.rows[0].vram_percent == 37.0
    assert table.rows[0].power_cap_w == 280.0
    assert table.rows[0].perf == "manual"


def test_dtk_version_from_symlink_target() -> None:
    assert hygon.dtk_version_from_path("/opt/dtk-24.04.1") == "24.04.1"
    assert isinstance(hygon.dtk_version_from_path("/opt/rocm"), NotAvailable)


def test_rocm_smi_json_mi250x() -> None:
    info = amd.parse_rocm_smi_json(read("amd", "rocm-smi-showproductname-mi250x.json"))
    assert isinstance(info, amd.AmdInfo)
    assert len(info.gpus) == 1
    assert info.gpus[0].name == "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2"
    assert info.gpus[0].gfx_version == "gfx9010"


def test_amd_smi_static_text_mi350x() -> None:
    info = amd.parse_amd_smi_static_text(read("amd", "amd-smi-static-mi350x-gpu0.txt"))
    assert isinstance(info, amd.AmdInfo)
    g = info.gpus[0]
    assert (g.index, g.name, g.bus_id, g.driver_version, g.gfx_version) == (
        0, "AMD Instinct MI350X", "0000:05:00.0", "6.18.3", "gfx950")


def test_amd_smi_json_shapes() -> None:
    # Both JSON layouts amd-smi has used (a bare list; {"gpu_data": [...]}), written for this test.
    one = '[{"gpu": 0, "asic": {"market_name": "X"}, "vram": {"size": {"value": 192, "unit": "GB"}}}]'
    two = '{"gpu_data": [{"gpu": 1, "asic": {"market_name": "X"}, "driver": {"version": "6.8"}}]}'
    a, b = amd.parse_amd_smi_json(one), amd.parse_amd_smi_json(two)
    assert isinstance(a, amd.AmdInfo) and a.gpus[0].vram_total_mib == 192 * 1024
    assert isinstance(b, amd.AmdInfo) and b.gpus[0].index == 1 and b.driver_version == "6.8"
