"""NVIDIA parsers on real captures: an 8×H200 server (shared fixtures), seed 000 (8×H200) and seed 001 (8×H20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.agent.inventory import nvidia
from fleetbench.agent.inventory._common import NotAvailable

FIX = Path(__file__).resolve().parents[2] / "fixtures"
H200 = FIX / "nvidia-h200x8"
UUID0 = "GPU-aba6f9c0-61d7-d4a0-4f12-e8367d00f3f9"
UUID7 = "GPU-c3508179-c450-c426-56ab-2c9408da6d36"


def read(p: Path) -> str:
    return p.read_text(encoding="utf-8")


def test_xml_h200_every_gpu() -> None:
    info = nvidia.parse_smi_xml(read(H200 / "nvidia-smi-q-x.xml"))
    assert isinstance(info, nvidia.NvidiaInfo)
    assert info.driver_version == "580.159.04"
    assert info.cuda_version == "13.0"
    assert len(info.gpus) == 8
    assert [g.index for g in info.gpus] == list(range(8))
    assert {g.name for g in info.gpus} == {"NVIDIA H200"}
    assert {g.memory_total_mib for g in info.gpus} == {143771}
    g0 = info.gpus[0]
    assert g0.uuid == UUID0
    assert info.gpus[7].uuid == UUID7
    assert g0.serial == "1653724065969"
    assert g0.pci_bus_id == "00000000:00:06.0"
    assert g0.vbios_version == "96.00.A5.00.1A"
    assert g0.ecc_mode == "Enabled"
    assert g0.ecc_uncorrected_volatile == 0 and g0.ecc_uncorrected_aggregate == 0
    assert g0.persistence_mode == "Enabled"
    assert g0.mig_mode == "Disabled" and not g0.mig_enabled
    assert g0.max_sm_clock_mhz == 1980
    assert (g0.pcie_gen_max, g0.pcie_gen_current, g0.pcie_width_max, g0.pcie_width_current) == (5, 5, 16, 16)
    assert g0.power_limit_w == 700.0
    assert g0.temperature_c == 36.0


def test_xml_uuids_match_nvidia_smi_L() -> None:
    info = nvidia.parse_smi_xml(read(H200 / "nvidia-smi-q-x.xml"))
    assert isinstance(info, nvidia.NvidiaInfo)
    listed = [ln.split("UUID: ")[1].rstrip(")") for ln in read(H200 / "nvidia-smi-L.txt").splitlines() if ln]
    assert [g.uuid for g in info.gpus] == listed


def test_query_csv_h200() -> None:
    info = nvidia.parse_smi_query_csv(read(H200 / "nvidia-smi-query.txt"), cuda_version="13.0")
    assert isinstance(info, nvidia.NvidiaInfo)
    assert len(info.gpus) == 8
    assert info.driver_version == "580.159.04"
    g7 = info.gpus[7]
    assert g7.index == 7 and g7.name == "NVIDIA H200" and g7.uuid == UUID7
    assert g7.memory_total_mib == 143771 and g7.memory_used_mib == 0
    assert g7.pci_bus_id == "00000000:00:0D.0"
    assert g7.power_draw_w == 76.64 and g7.power_limit_w == 700.0
    assert g7.ecc_uncorrected_volatile == 0
    assert g7.persistence_mode == "Enabled" and g7.mig_mode == "Disabled"
    assert g7.max_sm_clock_mhz == 1980
    assert g7.cuda_version == "13.0"


def test_table_h200() -> None:
    info = nvidia.parse_smi_table(read(H200 / "nvidia-smi.txt"))
    assert isinstance(info, nvidia.NvidiaInfo)
    assert (info.driver_version, info.cuda_version) == ("580.159.04", "13.0")
    assert len(info.gpus) == 8
    assert {g.memory_total_mib for g in info.gpus} == {143771}
    assert info.gpus[3].pci_bus_id == "00000000:00:09.0"
    assert all(g.mig_mode == "Disabled" and g.ecc_uncorrected_volatile == 0 for g in info.gpus)


def test_table_seed000_flattened_h200() -> None:
    info = nvidia.parse_smi_table(read(FIX / "nvidia-h200x8-seed000" / "nvidia-smi-flattened.txt"))
    assert isinstance(info, nvidia.NvidiaInfo)
    assert (info.driver_version, info.cuda_version) == ("570.195.03", "12.8")
    assert len(info.gpus) == 8
    assert {g.name for g in info.gpus} == {"NVIDIA H200"}
    assert {g.memory_total_mib for g in info.gpus} == {143771}
    assert info.gpus[0].memory_used_mib == 113228
    assert info.gpus[7].pci_bus_id == "00000000:DB:00.0"
    assert all(g.persistence_mode == "Disabled" for g in info.gpus)


def test_table_seed001_h20() -> None:
    info = nvidia.parse_smi_table(read(FIX / "nvidia-h20x8" / "nvidia-smi.txt"))
    assert isinstance(info, nvidia.NvidiaInfo)
    assert (info.driver_version, info.cuda_version) == ("535.216.03", "12.2")
    assert [g.name for g in info.gpus] == ["NVIDIA H20"] * 8
    assert {g.memory_total_mib for g in info.gpus} == {97871}
    assert info.gpus[5].pci_bus_id == "00000000:AE:00.0"


def test_nvlink_status_h200_all_up() -> None:
    links = nvidia.parse_nvlink_status(read(H200 / "nvidia-smi-nvlink.txt"))
    assert not isinstance(links, NotAvailable)
    assert sorted(links) == list(range(8))
    for gpu_links in links.values():
        assert len(gpu_links) == 18
        assert all(n.active and n.speed_gbps == 26.562 for n in gpu_links)


def test_nvlink_status_h20_single_gpu() -> None:
    links = nvidia.parse_nvlink_status(read(FIX / "nvidia-h20x8" / "nvidia-smi-nvlink-i0.txt"))
    assert not isinstance(links, NotAvailable)
    assert list(links) == [0] and len(links[0]) == 18 and all(n.active for n in links[0])


def test_nvlink_inactive_link_is_down() -> None:
    # Derived from the real capture: one link line replaced with the "<inactive>" form nvidia-smi prints.
    text = read(H200 / "nvidia-smi-nvlink.txt").replace("\t Link 5: 26.562 GB/s", "\t Link 5: <inactive>", 1)
    links = nvidia.parse_nvlink_status(text)
    assert not isinstance(links, NotAvailable)
    info = nvidia.parse_smi_xml(read(H200 / "nvidia-smi-q-x.xml"))
    assert isinstance(info, nvidia.NvidiaInfo)
    merged = nvidia.with_nvlinks(info, links, "nvidia-smi nvlink -s")
    assert merged.gpus[0].nvlinks_down == (5,)
    assert all(g.nvlinks_down == () for g in merged.gpus[1:])
    assert merged.nvlink_source == "nvidia-smi nvlink -s"


def test_topo_h200() -> None:
    topo = nvidia.parse_topo(read(H200 / "nvidia-smi-topo.txt"))
    assert isinstance(topo, nvidia.Topology)
    assert topo.devices == tuple(f"GPU{i}" for i in range(8))
    assert topo.link("GPU0", "GPU7") == "NV18"
    assert topo.link("GPU3", "GPU3") == "X"
    assert topo.cpu_affinity == ("0-127",) * 8
    assert topo.numa_affinity == ("0",) * 8


def test_topo_h20_with_nics() -> None:
    topo = nvidia.parse_topo(read(FIX / "nvidia-h20x8" / "nvidia-smi-topo.txt"))
    assert isinstance(topo, nvidia.Topology)
    assert len(topo.devices) == 17  # 8 GPUs + 9 NICs
    assert topo.link("GPU0", "GPU1") == "NV18"
    assert topo.link("GPU0", "NIC1") == "PIX"
    assert topo.link("GPU4", "NIC0") == "SYS"
    assert topo.cpu_affinity[4] == "52-103,156-207"
    assert topo.numa_affinity[7] == "1"


@pytest.mark.parametrize("text", ["", "garbage", "<nvidia_smi_log>", "<other/>"])
def test_xml_garbage_is_not_available(text: str) -> None:
    assert isinstance(nvidia.parse_smi_xml(text), NotAvailable)


def test_collect_without_nvml_or_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = nvidia.collect(use_nvml=False)
    assert isinstance(result, NotAvailable)
    assert "nvidia-smi not found" in result.reason
