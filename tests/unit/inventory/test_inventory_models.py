"""The inventory as pydantic models: stored documents (written by the code before them) still load and
re-serialise unchanged, a typo or a wrong type in a received document is a one-line error naming the field,
and a collector returning something the model refuses costs that section only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.agent import inventory as agent_inventory
from fleetbench.controller import fleetview as fv
from fleetbench.inventory import SCHEMA, CpuInfo, Inventory, NotAvailable

STORED = Path(__file__).resolve().parents[2] / "data" / "inventory"


def stored(name: str) -> dict[str, object]:
    return json.loads((STORED / name).read_text())


@pytest.mark.parametrize("name", ["h200-nvidia.json", "ascend-hygon-amd.json"])
def test_stored_documents_load_and_reserialise_unchanged(name: str) -> None:
    doc = stored(name)
    inv = Inventory.from_document(doc)
    assert inv.model_dump(mode="json") == doc
    assert list(json.loads(inv.model_dump_json())) == list(doc)  # "schema" first, then the fields in order
    assert Inventory.model_validate_json(inv.model_dump_json()) == inv
    assert fv.parse_inventory((STORED / name).read_text()) == inv


def test_stored_h200_reads_as_before() -> None:
    inv = Inventory.from_document(stored("h200-nvidia.json"))
    # the values the dataclass code computed from this document
    assert inv.summary_row() == {
        "hostname": "h200-a", "cpu": "Intel(R) Xeon(R) Processor", "memory": "256.0 GiB (16× 16 GB DDR4)",
        "accelerators": "8× NVIDIA H200 143771 MiB", "driver": "580.159.04", "toolkit": "CUDA 13.0",
        "os": "Ubuntu 24.04.3 LTS", "kernel": "6.18.44-fc-v657-gpu", "engine": "vllm 0.11.0"}
    assert inv.unavailable() == {"ascend": "not available: npu-smi not found",
                                 "hygon": "not available: hy-smi not found",
                                 "amd": "not available: amd-smi not found; rocm-smi not found"}
    assert (inv.memory_size_bytes(), inv.cpu_count, inv.memory_total_bytes) == (274877906944, 128, 289910292480)
    assert not isinstance(inv.nvidia, NotAvailable) and not isinstance(inv.nvidia.topology, NotAvailable)
    assert inv.nvidia.topology.link("GPU0", "GPU1") == "NV18"
    assert sum(len(g.nvlinks) for g in inv.nvidia.gpus) == 8 * 18 and inv.nvlinks_down() == []


def test_stored_mixed_vendors_read_as_before() -> None:
    inv = Inventory.from_document(stored("ascend-hygon-amd.json"))
    assert inv.summary_row() == {
        "hostname": "mixed-b", "cpu": "Kunpeng-920 ×4", "memory": "1.0 TiB",
        "accelerators": "8× Ascend 910B3 65536 MiB, 8× Hygon DCU, 1× AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2",
        "driver": "24.1.0.3, 6.3.x", "toolkit": "CANN 8.0.0, DTK 24.04.1", "os": "", "kernel": "",
        "engine": "sglang 0.5.2"}
    assert len(inv.accelerators) == 17
    assert (inv.accelerators[0].vendor, inv.accelerators[0].cuda_version) == ("ascend", "8.0.0")
    # a "not available: …" text is a NotAvailable, also where the field is text itself
    assert inv.kernel_release == NotAvailable("uname did not answer")
    assert inv.evalscope_version == NotAvailable("evalscope is not installed")
    assert sorted(inv.unavailable()) == ["container_runtimes", "disks", "evalscope_version", "kernel_release",
                                         "nvidia", "os_release"]


def test_unknown_key_is_one_line_naming_it() -> None:
    doc = stored("h200-nvidia.json")
    cpu = doc["cpu"]
    assert isinstance(cpu, dict)
    cpu["modle"] = cpu.pop("model")
    with pytest.raises(ValueError) as err:
        fv.parse_inventory(json.dumps(doc))
    assert str(err.value) == "the agent's inventory cannot be read: cpu.modle is not a known key (and 1 more)"
    with pytest.raises(ValueError, match=r"^newer_field is not a known key$"):
        Inventory.from_document({**stored("h200-nvidia.json"), "newer_field": 1})


def test_wrong_types_name_the_field() -> None:
    doc = stored("h200-nvidia.json")
    nv = doc["nvidia"]
    assert isinstance(nv, dict)
    nv["gpus"][2]["nvlinks"][5]["active"] = "maybe"
    with pytest.raises(ValueError) as err:
        Inventory.from_document(doc)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("nvidia.gpus[2].nvlinks[5].active is invalid: input should be a valid boolean")
    with pytest.raises(ValueError, match=r"^kernel_release is invalid: input should be a valid string$"):
        Inventory.from_document({**stored("h200-nvidia.json"), "kernel_release": 6})


def test_schema_is_required_and_checked() -> None:
    doc = stored("h200-nvidia.json")
    with pytest.raises(ValueError, match=r"unsupported inventory schema None"):
        Inventory.from_document({k: v for k, v in doc.items() if k != "schema"})
    with pytest.raises(ValueError, match=r"unsupported inventory schema 'fleetbench.inventory/2'"):
        Inventory.from_document({**doc, "schema": "fleetbench.inventory/2"})
    with pytest.raises(ValueError, match="must be a JSON object"):
        Inventory.from_document([doc])
    assert Inventory.from_document(doc).model_dump(mode="json")["schema"] == SCHEMA


def test_collector_returning_a_misfit_costs_only_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = CpuInfo(model="m", vendor="v", architecture="x86_64", sockets=1, cores_per_socket=2,
                  threads_per_core=1, logical_cpus=2, numa_nodes=1)
    monkeypatch.setattr(agent_inventory, "_collectors", lambda _url: {
        "cpu": lambda _d: cpu, "memory": lambda _d: {"total": "lots"}, "nvidia": lambda _d: NotAvailable("none"),
        "ascend": lambda _d: NotAvailable("none"), "hygon": lambda _d: NotAvailable("none"),
        "amd": lambda _d: NotAvailable("none"), "disks": lambda _d: (), "network": lambda _d: NotAvailable("none"),
        "os_release": lambda _d: NotAvailable("none"), "kernel_release": lambda _d: 42,
        "container_runtimes": lambda _d: (), "evalscope_version": lambda _d: "1.4.1",
        "engine": lambda _d: NotAvailable("none")})
    inv = agent_inventory.collect(None, deadline_s=2.0)
    assert inv.cpu == cpu and inv.evalscope_version == "1.4.1"
    assert isinstance(inv.memory, NotAvailable) and inv.memory.reason.startswith(
        "memory collector returned a value that does not fit the inventory")
    assert isinstance(inv.kernel_release, NotAvailable)
    assert Inventory.from_document(json.loads(inv.model_dump_json())) == inv
