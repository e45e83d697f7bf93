"""Fuzz every parser: random, truncated and garbled input never raises; the result is a
well-formed NotAvailable or a value of the parser's type (possibly partial)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetbench.agent.inventory import (
    NotAvailable,
    amd,
    ascend,
    cpu,
    disks,
    engine,
    hygon,
    memory,
    nics,
    nvidia,
    system,
)
from fleetbench.agent.inventory._common import NA_PREFIX

FIX = Path(__file__).resolve().parents[2] / "fixtures"

# parser, the real capture it is mutated from, the types a good result may have
CASES: list[tuple[str, Callable[[str], Any], str, tuple[type, ...]]] = [
    ("lscpu_json", cpu.parse_lscpu_json, "nvidia-h200x8/lscpu.json", (cpu.CpuInfo,)),
    ("lscpu_text", cpu.parse_lscpu_text, "kunpeng920/lscpu.txt", (cpu.CpuInfo,)),
    ("meminfo", memory.parse_meminfo, "nvidia-h200x8/meminfo.txt", (memory.MemTotals,)),
    ("free", memory.parse_free, "nvidia-h200x8/free.txt", (memory.MemTotals,)),
    ("dmidecode", memory.parse_dmidecode_memory, "dmidecode/supermicro-as1124us-dmidecode.txt", (tuple,)),
    ("smi_xml", nvidia.parse_smi_xml, "nvidia-h200x8/nvidia-smi-q-x.xml", (nvidia.NvidiaInfo,)),
    ("smi_csv", nvidia.parse_smi_query_csv, "nvidia-h200x8/nvidia-smi-query.txt", (nvidia.NvidiaInfo,)),
    ("smi_table", nvidia.parse_smi_table, "nvidia-h200x8/nvidia-smi.txt", (nvidia.NvidiaInfo,)),
    ("smi_table_flat", nvidia.parse_smi_table, "nvidia-h200x8-seed000/nvidia-smi-flattened.txt",
     (nvidia.NvidiaInfo,)),
    ("nvlink", nvidia.parse_nvlink_status, "nvidia-h200x8/nvidia-smi-nvlink.txt", (dict,)),
    ("topo", nvidia.parse_topo, "nvidia-h20x8/nvidia-smi-topo.txt", (nvidia.Topology,)),
    ("npu_smi", ascend.parse_npu_smi_info, "ascend-910b3x8/npu-smi-info.txt", (ascend.AscendInfo,)),
    ("cann", ascend.parse_cann_info, "ascend-910b3x8/ascend_toolkit_install.info", (str,)),
    ("hy_smi", hygon.parse_hy_smi_table, "hygon/hy-smi-hycu-k100ai.txt", (hygon.HyTable,)),
    ("hy_smi_dcu", hygon.parse_hy_smi_table, "hygon/rocm-smi-dcu-z100l.txt", (hygon.HyTable,)),
    ("hy_smi_kv", hygon.parse_hy_smi_kv, "hygon/hy-smi-a-excerpt-hycu.txt", (dict,)),
    ("amd_smi_text", amd.parse_amd_smi_static_text, "amd/amd-smi-static-mi350x-gpu0.txt", (amd.AmdInfo,)),
    ("rocm_smi_json", amd.parse_rocm_smi_json, "amd/rocm-smi-showproductname-mi250x.json", (amd.AmdInfo,)),
    ("lsblk", disks.parse_lsblk_json, "nvidia-h200x8/lsblk.txt", (tuple,)),
    ("os_release", system.parse_os_release, "nvidia-h200x8/os-release.txt", (system.OsRelease,)),
    ("uname", system.parse_uname, "nvidia-h200x8/uname.txt", (str,)),
]

SMALL: list[tuple[str, Callable[[str], Any], tuple[type, ...]]] = [
    ("amd_smi_json", amd.parse_amd_smi_json, (amd.AmdInfo,)),  # no real JSON capture found; random text only
    ("speed", nics.parse_speed, (int, type(None))),
    ("ib_rate", nics.parse_ib_rate, (float, type(None))),
    ("ib_state", nics.parse_ib_state, (str,)),
    ("dtk", hygon.dtk_version_from_path, (str,)),
    ("runtime", lambda t: system.parse_runtime_version("docker", t), (system.RuntimeVersion,)),
    ("base_url", engine.base_url, (str,)),
    ("engine", lambda t: engine.parse_engine(t, t, t), (engine.EngineInfo,)),
    ("engine_json", lambda t: engine.parse_engine('{"version": ' + t + "}", '{"data": [' + t + "]}"),
     (engine.EngineInfo,)),
]


def check(result: Any, ok: tuple[type, ...]) -> None:
    if isinstance(result, NotAvailable):
        assert str(result).startswith(NA_PREFIX) and result.reason
        return
    assert isinstance(result, ok), f"{type(result)} not in {ok}"


@st.composite
def garbled(draw: st.DrawFn, text: str) -> str:
    """The real capture truncated, with a slice replaced by random text, or lines dropped/duplicated."""
    kind = draw(st.sampled_from(["truncate", "splice", "lines", "bytes"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "splice":
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 200)))
        return text[:i] + draw(st.text(max_size=60)) + text[j:]
    if kind == "lines":
        lines = text.splitlines(keepends=True)
        if not lines:
            return text
        picked = draw(st.lists(st.integers(0, len(lines) - 1), max_size=len(lines) + 5))
        return "".join(lines[k] for k in picked)
    data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 20))):
        if not data:
            break
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return data.decode("utf-8", "replace")


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize(("name", "parse", "path", "ok"), CASES, ids=[c[0] for c in CASES])
def test_parser_on_its_real_capture(
    name: str, parse: Callable[[str], Any], path: str, ok: tuple[type, ...]
) -> None:
    result = parse((FIX / path).read_text(encoding="utf-8"))
    assert isinstance(result, ok), f"{name}: {result}"


@pytest.mark.parametrize(("name", "parse", "path", "ok"), CASES, ids=[c[0] for c in CASES])
def test_parser_garbled_capture(name: str, parse: Callable[[str], Any], path: str, ok: tuple[type, ...]) -> None:
    text = (FIX / path).read_text(encoding="utf-8")

    @FUZZ
    @given(garbled(text))
    def run(s: str) -> None:
        check(parse(s), ok)

    run()


@pytest.mark.parametrize(("name", "parse", "path", "ok"), CASES, ids=[c[0] for c in CASES])
def test_parser_random_text(name: str, parse: Callable[[str], Any], path: str, ok: tuple[type, ...]) -> None:
    @FUZZ
    @given(st.text(max_size=400))
    def run(s: str) -> None:
        check(parse(s), ok)

    run()


@pytest.mark.parametrize(("name", "parse", "ok"), SMALL, ids=[c[0] for c in SMALL])
def test_small_parsers_random_text(name: str, parse: Callable[[str], Any], ok: tuple[type, ...]) -> None:
    @FUZZ
    @given(st.text(max_size=120))
    def run(s: str) -> None:
        check(parse(s), ok)

    run()


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=20))
def test_json_parsers_on_arbitrary_json(doc: Any) -> None:
    import json

    text = json.dumps(doc)
    for parse, ok in ((cpu.parse_lscpu_json, (cpu.CpuInfo,)), (amd.parse_amd_smi_json, (amd.AmdInfo,)),
                      (amd.parse_rocm_smi_json, (amd.AmdInfo,)), (disks.parse_lsblk_json, (tuple,))):
        check(parse(text), ok)
