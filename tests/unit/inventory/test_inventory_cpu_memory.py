"""CPU and memory parsers on real captures: the 8×H200 server, Kunpeng 920 (aarch64), Hygon C86,
a Supermicro dmidecode."""

from __future__ import annotations

from pathlib import Path

from fleetbench.agent.inventory import cpu, memory
from fleetbench.agent.inventory._common import NotAvailable

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def read(*p: str) -> str:
    return FIX.joinpath(*p).read_text(encoding="utf-8")


def test_lscpu_json_and_text_agree_h200() -> None:
    j = cpu.parse_lscpu_json(read("nvidia-h200x8", "lscpu.json"))
    t = cpu.parse_lscpu_text(read("nvidia-h200x8", "lscpu.txt"))
    assert isinstance(j, cpu.CpuInfo)
    assert j == t
    assert j.model == "Intel(R) Xeon(R) Processor"
    assert j.vendor == "GenuineIntel" and j.architecture == "x86_64"
    assert (j.sockets, j.cores_per_socket, j.threads_per_core, j.logical_cpus, j.numa_nodes) == (1, 128, 1, 128, 1)


def test_lscpu_kunpeng920() -> None:
    c = cpu.parse_lscpu_text(read("kunpeng920", "lscpu.txt"))
    assert isinstance(c, cpu.CpuInfo)
    assert c.architecture == "aarch64"
    assert c.model == "Kunpeng-920" and c.vendor == "HiSilicon"
    assert (c.sockets, c.cores_per_socket, c.logical_cpus, c.numa_nodes) == (4, 48, 192, 8)
    assert c.physical_cores == 192


def test_lscpu_hygon_c86() -> None:
    c = cpu.parse_lscpu_text(read("hygon-c86", "lscpu-hygon-7260.txt"))
    assert isinstance(c, cpu.CpuInfo)
    assert c.model == "Hygon C86 7260 24-core Processor"
    assert c.vendor == "HygonGenuine"
    assert (c.sockets, c.cores_per_socket, c.logical_cpus, c.numa_nodes) == (2, 24, 48, 8)


def test_lscpu_nested_children_json() -> None:
    # util-linux ≥ 2.38 nests fields under "children"; same keys as the flat capture.
    text = (
        '{"lscpu": [{"field": "Architecture:", "data": "aarch64", "children": ['
        '{"field": "CPU(s):", "data": "192"}]}, {"field": "Vendor ID:", "data": "HiSilicon", "children": ['
        '{"field": "Model name:", "data": "Kunpeng-920", "children": [{"field": "Socket(s):", "data": "4"}]}]}]}'
    )
    c = cpu.parse_lscpu_json(text)
    assert isinstance(c, cpu.CpuInfo)
    assert (c.architecture, c.logical_cpus, c.model, c.sockets) == ("aarch64", 192, "Kunpeng-920", 4)


def test_meminfo_and_free_agree_h200() -> None:
    m = memory.parse_meminfo(read("nvidia-h200x8", "meminfo.txt"))
    f = memory.parse_free(read("nvidia-h200x8", "free.txt"))
    assert isinstance(m, memory.MemTotals) and isinstance(f, memory.MemTotals)
    assert m.total_bytes == 577563364 * 1024 == 591424884736
    assert f.total_bytes == 591424884736
    assert f.available_bytes == 590076522496
    assert m.swap_total_bytes == 0 == f.swap_total_bytes


def test_dmidecode_supermicro() -> None:
    res = memory.parse_dmidecode_memory(read("dmidecode", "supermicro-as1124us-dmidecode.txt"))
    assert not isinstance(res, NotAvailable)
    dimms, slots = res
    assert slots == 32
    assert len(dimms) == 16
    assert {d.size_bytes for d in dimms} == {16 << 30}
    assert {d.type for d in dimms} == {"DDR4"}
    assert {d.speed_mts for d in dimms} == {3200}
    assert {d.configured_speed_mts for d in dimms} == {3200}
    assert dimms[0].locator == "P1-DIMMA2"
    assert dimms[0].manufacturer == "SK Hynix"
    assert dimms[0].part_number == "HMA82GR7DJR8N-XN"
    assert sum(d.size_bytes for d in dimms) == 256 << 30


def test_dmidecode_permission_denied_says_needs_root() -> None:
    # Written for this test in the form dmidecode prints as non-root (not a captured file).
    text = ("# dmidecode 3.5\n/sys/firmware/dmi/tables/smbios_entry_point: Permission denied\n"
            "Scanning /dev/mem for entry point.\n/dev/mem: Permission denied\n")
    res = memory.parse_dmidecode_memory(text)
    assert isinstance(res, NotAvailable)
    assert "needs root" in str(res)
    assert str(res).startswith("not available: ")


def test_dmidecode_units() -> None:
    assert memory._dmi_size("16384 MB") == 16 << 30
    assert memory._dmi_size("64 GB") == 64 << 30
    assert memory._dmi_size("32 GiB") == 32 << 30
    assert memory._dmi_size("No Module Installed") is None
