"""The fleet drift check, on inventories built from the real 8×H200 capture and seeds 000/001."""

from __future__ import annotations

from pathlib import Path

from fleetbench.agent.inventory import memory, nvidia
from fleetbench.controller.drift import DriftFinding, check_drift
from fleetbench.inventory import Inventory, NotAvailable

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def _nv(path: str = "nvidia-h200x8/nvidia-smi-q-x.xml") -> nvidia.NvidiaInfo:
    info = nvidia.parse_smi_xml((FIX / path).read_text())
    assert isinstance(info, nvidia.NvidiaInfo)
    links = nvidia.parse_nvlink_status((FIX / "nvidia-h200x8/nvidia-smi-nvlink.txt").read_text())
    assert not isinstance(links, NotAvailable)
    return nvidia.with_nvlinks(info, links, "nvidia-smi nvlink -s")


def node(name: str, nv: nvidia.NvidiaInfo | NotAvailable | None = None, kernel: str = "5.15.0-164-generic",
         mem: int = 2 << 40) -> Inventory:
    return Inventory(
        hostname=name, collected_at=0.0, cpu=NotAvailable("x"),
        memory=memory.MemoryInfo(total_bytes=mem, available_bytes=None, swap_total_bytes=0,
                                 dimms=NotAvailable("dmidecode needs root")),
        nvidia=_nv() if nv is None else nv, ascend=NotAvailable("npu-smi not found"),
        hygon=NotAvailable("hy-smi not found"), amd=NotAvailable("amd-smi not found"), disks=(),
        network=NotAvailable("x"), os_release=NotAvailable("x"), kernel_release=kernel,
        container_runtimes=NotAvailable("x"), python_version="3.11", evalscope_version="1.4.1",
        engine=NotAvailable("x"),
    )


def with_driver(info: nvidia.NvidiaInfo, driver: str, cuda: str) -> nvidia.NvidiaInfo:
    gpus = tuple(g.model_copy(update={"driver_version": driver, "cuda_version": cuda}) for g in info.gpus)
    return info.model_copy(update={"driver_version": driver, "cuda_version": cuda, "gpus": gpus})


def test_identical_nodes_no_findings() -> None:
    assert check_drift({"n1": node("n1"), "n2": node("n2"), "n3": node("n3")}) == []


def test_driver_differs_from_majority() -> None:
    base = _nv()
    fleet = {
        "n1": node("n1", with_driver(base, "570.86.15", "12.8")),
        "n2": node("n2", with_driver(base, "570.195.03", "12.8")),
        "n3": node("n3", with_driver(base, "570.86.15", "12.8")),
    }
    findings = check_drift(fleet)
    assert findings == [DriftFinding(
        "n2", "driver_version", "570.195.03", "570.86.15",
        "n2: driver 570.195.03 differs from the majority 570.86.15 (n1, n3)",
    )]


def test_cuda_kernel_count_memory_and_model() -> None:
    base = _nv()
    h20 = nvidia.parse_smi_table((FIX / "nvidia-h20x8/nvidia-smi.txt").read_text())
    assert isinstance(h20, nvidia.NvidiaInfo)
    seven = base.model_copy(update={"gpus": base.gpus[:7]})
    fleet = {
        "n1": node("n1"), "n2": node("n2"), "n3": node("n3", seven), "n4": node("n4", kernel="6.8.0-45-generic"),
        "n5": node("n5", h20, mem=1 << 40),
    }
    by = {(f.node, f.field): f for f in check_drift(fleet)}
    assert by[("n3", "accelerator_count")].message == \
        "n3: accelerator count 7 differs from the majority 8 (n1, n2, n4, n5)"
    assert by[("n5", "accelerator_model")].value == "NVIDIA H20"
    assert by[("n5", "accelerator_model")].majority_value == "NVIDIA H200"
    assert by[("n5", "accelerator_memory")].value == "97871 MiB"
    assert by[("n5", "driver_version")].value == "535.216.03"
    assert by[("n5", "cuda_version")].message == "n5: CUDA 12.2 differs from the majority 13.0 (n1, n2, n3, n4)"
    assert by[("n4", "kernel")].message == \
        "n4: kernel 6.8.0-45-generic differs from the majority 5.15.0-164-generic (n1, n2, n3, n5)"
    assert by[("n5", "memory_size")].message == "n5: memory 1.0 TiB differs from the majority 2.0 TiB (n1, n2, n3, n4)"


def test_memtotal_jitter_is_not_drift() -> None:
    fleet = {"n1": node("n1", mem=591424884736), "n2": node("n2", mem=591424884736 - (300 << 20)),
             "n3": node("n3", mem=591424884736 + (10 << 20))}
    assert check_drift(fleet) == []


def test_no_majority() -> None:
    base = _nv()
    fleet = {"a": node("a", with_driver(base, "1", "13.0")), "b": node("b", with_driver(base, "2", "13.0"))}
    f = check_drift(fleet)
    assert {x.node for x in f} == {"a", "b"}
    assert all(x.majority_value == "no majority" for x in f)
    assert "no majority (1 on a; 2 on b)" in f[0].message


def test_nvlink_down_ecc_mig_reported_even_without_majority_difference() -> None:
    base = _nv()
    g = list(base.gpus)
    links = list(g[2].nvlinks)
    links[5] = nvidia.NvLink(link=5, active=False, speed_gbps=None)
    g[2] = g[2].model_copy(update={"nvlinks": tuple(links), "ecc_uncorrected_volatile": 3})
    g[4] = g[4].model_copy(update={"mig_mode": "Enabled"})
    broken = base.model_copy(update={"gpus": tuple(g)})
    findings = check_drift({"n1": node("n1", broken)})  # a single node: nothing to compare with
    msgs = {f.field: f.message for f in findings}
    assert msgs == {
        "nvlink_down": "n1: 1 NVLink link(s) down: GPU2 link 5",
        "ecc_uncorrected": "n1: uncorrected ECC errors on 1 GPU(s) (GPU2: 3)",
        "mig_enabled": "n1: MIG is enabled on GPU4",
    }


def test_node_without_gpus_in_a_gpu_fleet() -> None:
    fleet = {"n1": node("n1"), "n2": node("n2"), "n3": node("n3", NotAvailable("nvidia-smi not found"))}
    by = {(f.node, f.field): f for f in check_drift(fleet)}
    assert by[("n3", "accelerator_count")].message == "n3: accelerator count 0 differs from the majority 8 (n1, n2)"
    assert by[("n3", "driver_version")].value == "none"
