"""Hardware acceptance, the pure parts: health from real captures (nvidia-smi -q -x of an 8×H200 server,
npu-smi of 8×910B3, hy-smi of 8×K100_AI), faulty accelerators, the reference table and the judging against
spec and fleet. The faulty inputs (an ECC error, a downgraded PCIe link, a throttled clock, one slow GPU
among 8, a DCGM failure) exist as no capture: they are built inline here, in the shape NVML and
`dcgmi diag -j` give them, each from a healthy device of the H200 capture with one field changed."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from fleetbench.agent.hardware_job import parse_all_reduce_perf, sizes
from fleetbench.agent.hardware_probe import health_from_hy_smi, health_from_npu_smi, health_from_smi_xml
from fleetbench.errors import ConfigError
from fleetbench.hardware import (
    FIGURES,
    FigureExpect,
    busy_devices,
    count_check,
    dcgm_checks,
    find_sku,
    health_checks,
    judge_hardware,
    reference_table,
    throttle_names,
)
from fleetbench.inventory import NotAvailable
from fleetbench.jobs_schema import HardwareResult, HardwareSpec, HwCheck, HwDevice, parse_spec

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def h200_capture() -> list:
    devices = health_from_smi_xml((FIX / "nvidia-h200x8" / "nvidia-smi-q-x.xml").read_text())
    assert not isinstance(devices, NotAvailable)
    return devices


def by_name(checks: list[HwCheck]) -> dict[str, HwCheck]:
    return {c.name: c for c in checks}


# --- health from real captures ----------------------------------------------------------------------


def test_healthy_h200_capture_passes_every_check_it_can_make_and_skips_links_with_the_reason():
    devices = h200_capture()
    assert len(devices) == 8 and {d.name for d in devices} == {"NVIDIA H200"}
    d = devices[0]
    assert (d.ecc_uncorrected_volatile, d.ecc_uncorrected_aggregate) == (0, 0)
    assert (d.remap_pending, d.remap_failed) == (False, False)
    assert d.throttle_reasons == ("gpu_idle",)
    assert (d.pcie_gen_current, d.pcie_gen_max, d.pcie_width_current, d.pcie_width_max) == (5, 5, 16, 16)
    assert d.memory_total_mib == 143771 and d.memory_used_mib == 0
    checks = by_name(health_checks(d))
    assert {n: c.status for n, c in checks.items()} == {
        "ecc_uncorrected_volatile": "pass", "ecc_uncorrected_aggregate": "pass", "memory_repair": "pass",
        "throttle": "pass", "pcie_link": "pass", "links": "skipped", "persistence_mode": "pass", "mig_mode": "pass"}
    assert "does not report NVLink" in checks["links"].detail  # the XML has no link states: said, not passed
    assert checks["pcie_link"].detail == "PCIe gen 5 x16 (max gen 5 x16)"


def test_npu_smi_capture_gives_health_and_memory_and_skips_what_npu_smi_does_not_say():
    devices = health_from_npu_smi((FIX / "ascend-910b3x8" / "npu-smi-info.txt").read_text())
    assert not isinstance(devices, NotAvailable)
    assert len(devices) == 8 and devices[0].name == "910B3" and devices[0].memory_total_mib == 65536
    assert devices[0].memory_used_mib == 3396  # 5 % in use at idle: below the busy threshold
    assert busy_devices(devices, 0.10) == []
    checks = by_name(health_checks(devices[0]))
    assert checks["device_health"].status == "pass" and "health OK" in checks["device_health"].detail
    assert checks["ecc_uncorrected_volatile"].status == "skipped"
    assert "npu-smi info does not report" in checks["ecc_uncorrected_volatile"].detail
    assert find_sku(devices[0].name).sku == "Ascend 910B3"


def test_hy_smi_capture_gives_mode_and_the_card_series():
    devices = health_from_hy_smi((FIX / "hygon" / "hy-smi-hycu-k100ai.txt").read_text(),
                                 (FIX / "hygon" / "hy-smi-a-excerpt-hycu.txt").read_text())
    assert not isinstance(devices, NotAvailable)
    assert len(devices) == 8 and devices[0].name == "K100_AI"
    checks = by_name(health_checks(devices[0]))
    assert checks["device_health"].status == "pass"
    assert all(c.status == "skipped" for n, c in checks.items() if n != "device_health")
    assert find_sku("K100_AI").sku == "Hygon K100_AI"
    assert devices[0].memory_used_percent == 0 and busy_devices(devices, 0.10) == []


def test_a_loaded_hygon_card_is_seen_through_vram_percent():
    table = (FIX / "hygon" / "hy-smi-hycu-k100ai.txt").read_text().replace(
        "0       59.0C    114.0W     auto     400.0W     0%  ", "0       59.0C    114.0W     auto     400.0W     87% ")
    kv = (FIX / "hygon" / "hy-smi-a-excerpt-hycu.txt").read_text() + \
        (FIX / "hygon" / "hy-smi-showmemavailable-hycu.txt").read_text()
    devices = health_from_hy_smi(table, kv)
    assert not isinstance(devices, NotAvailable)
    assert devices[0].memory_used_percent == 87 and devices[0].memory_total_mib is None  # no --showmeminfo capture
    assert busy_devices(devices, 0.10) == ["K100_AI 0: 87% of its memory in use"]


def test_a_unhealthy_npu_fails():
    text = (FIX / "ascend-910b3x8" / "npu-smi-info.txt").read_text().replace("| 0     910B3               | OK  ",
                                                                             "| 0     910B3               | Alarm")
    devices = health_from_npu_smi(text)
    assert not isinstance(devices, NotAvailable)
    check = by_name(health_checks(devices[0]))["device_health"]
    assert check.status == "fail" and "health Alarm" in check.detail


# --- faulty accelerators (NVML's fields, built from the healthy capture) ------------------------------


def nvml_json(**changes: object) -> dict:
    """One GPU as the agent's NVML probe reads it (fleetbench.hardware.DeviceHealth as JSON)."""
    healthy = dataclasses.asdict(h200_capture()[0]) | {"source": "nvml", "links_total": 18, "links_down": [],
                                                         "link_errors": 0}
    return healthy | changes


def test_an_uncorrected_ecc_error_fails_with_its_count():
    from fleetbench.hardware import DeviceHealth

    checks = by_name(health_checks(DeviceHealth.from_dict(nvml_json(ecc_uncorrected_volatile=2,
                                                                    ecc_uncorrected_aggregate=3))))
    assert checks["ecc_uncorrected_volatile"].status == "fail" and checks["ecc_uncorrected_volatile"].value == 2
    assert checks["ecc_uncorrected_aggregate"].detail == "3 uncorrected ECC error(s) (aggregate)"


def test_a_downgraded_pcie_link_fails_and_an_idle_gen_drop_says_so():
    from fleetbench.hardware import DeviceHealth

    narrow = by_name(health_checks(DeviceHealth.from_dict(nvml_json(pcie_width_current=8))))["pcie_link"]
    assert narrow.status == "fail" and narrow.detail == "PCIe gen 5 x8 (max gen 5 x16): link trained below its maximum"
    slow = by_name(health_checks(DeviceHealth.from_dict(nvml_json(pcie_gen_current=3))))["pcie_link"]
    assert slow.status == "fail" and "read at idle" in slow.detail
    loaded = by_name(health_checks(DeviceHealth.from_dict(nvml_json(pcie_gen_current=3)), loaded=True))["pcie_link"]
    assert loaded.status == "fail" and "read at idle" not in loaded.detail


def test_a_throttled_clock_fails_but_idle_and_power_cap_reasons_do_not():
    from fleetbench.hardware import DeviceHealth

    assert throttle_names(0x1 | 0x40) == ("gpu_idle", "hw_thermal_slowdown")
    hot = by_name(health_checks(DeviceHealth.from_dict(nvml_json(throttle_reasons=list(throttle_names(0x41))))))
    assert hot["throttle"].status == "fail" and hot["throttle"].detail == "clocks throttled: hw_thermal_slowdown"
    capped = by_name(health_checks(DeviceHealth.from_dict(nvml_json(throttle_reasons=["sw_power_cap"]))))
    assert capped["throttle"].status == "pass"


def test_a_link_down_a_pending_remap_and_mig_fail():
    from fleetbench.hardware import DeviceHealth

    checks = by_name(health_checks(DeviceHealth.from_dict(nvml_json(links_down=[3], link_errors=5, remap_pending=True,
                                                                    mig_mode="Enabled"))))
    assert checks["links"].status == "fail" and checks["links"].detail == "17 of 18 links up; down: 3; 5 link error(s)"
    assert checks["memory_repair"].status == "fail" and "row remapping pending" in checks["memory_repair"].detail
    assert checks["mig_mode"].status == "fail"


def test_unknown_health_fields_are_refused():
    from fleetbench.hardware import DeviceHealth

    with pytest.raises(ValueError, match="unknown device health field"):
        DeviceHealth.from_dict(nvml_json(ecc_errors=1))


def test_dcgm_results_are_kept_as_dcgm_judged_them():
    doc = {"DCGM GPU Diagnostic": {"test_categories": [
        {"category": "Deployment", "tests": [{"name": "Denylist", "results": [{"status": "Pass"}]}]},
        {"category": "Hardware", "tests": [{"name": "Memory", "results": [
            {"gpu_id": "0", "status": "Pass"},
            {"gpu_id": "1", "status": "Fail", "warnings": [{"warning": "DBE error detected on GPU 1"}]},
            {"gpu_id": "2", "status": "Skip"}]}]}]}}
    checks = dcgm_checks(doc, 2)
    assert [(c.name, c.index, c.status) for c in checks] == [
        ("dcgm_r2:Denylist", -1, "pass"), ("dcgm_r2:Memory", 0, "pass"), ("dcgm_r2:Memory", 1, "fail"),
        ("dcgm_r2:Memory", 2, "skipped")]
    assert checks[2].detail == "DCGM Fail: DBE error detected on GPU 1"


def test_all_reduce_perf_output_is_read_for_its_average_bus_bandwidth():
    out = "#  size count type redop root time algbw busbw\n...\n# Out of bounds values : 0 OK\n" \
          "# Avg bus bandwidth    : 182.347 \n#\n"
    assert parse_all_reduce_perf(out) == pytest.approx(182.347)
    assert parse_all_reduce_perf("nothing here") is None


def test_buffers_are_sized_to_the_free_memory():
    assert sizes(100 << 30, 8192, 2048 << 20) == (8192, 2048 << 20, "")
    n, nbytes, note = sizes(1 << 30, 8192, 2048 << 20)  # 1 GiB free: half of it for 3 n² bf16 and 2 copies
    assert 3 * n * n * 2 <= (1 << 29) and 2 * nbytes <= (1 << 29) and "sized to the free memory" in note


def test_busy_devices_names_the_accelerator_and_its_share():
    from fleetbench.hardware import DeviceHealth

    loaded = DeviceHealth.from_dict(nvml_json(memory_used_mib=70000))
    assert busy_devices([loaded], 0.10) == ["NVIDIA H200 0: 70,000 of 143,771 MiB in use (49%)"]


# --- the reference table -------------------------------------------------------------------------------


def test_the_reference_table_covers_the_skus_and_every_entry_says_where_it_comes_from():
    table = reference_table()
    skus = {r.sku for r in table}
    for want in ("H200", "H100 SXM", "H20", "A100 80GB SXM", "L40S", "Ascend 910B1", "Ascend 910B2", "Ascend 910B3",
                 "Ascend 910B4", "Hygon K100_AI"):
        assert want in skus
    for r in table:
        assert len(r.source) > 40 and r.basis in ("datasheet", "reported"), r.sku
    assert find_sku("NVIDIA H200").sku == "H200"
    assert find_sku("NVIDIA H20").sku == "H20"  # not H200: the pattern is a whole word
    assert find_sku("NVIDIA H100 80GB HBM3").sku == "H100 SXM"
    assert find_sku("NVIDIA H100 PCIe").sku == "H100 PCIe"
    assert find_sku("NVIDIA A100-SXM4-80GB").sku == "A100 80GB SXM"
    assert find_sku("NVIDIA A100-PCIE-40GB").sku == "A100 40GB PCIe"
    assert find_sku("CPU stand-in") is None
    h200 = find_sku("NVIDIA H200")
    assert h200.spec("gemm_bf16_tflops") == 989 and h200.spec("memcpy_d2d_gbps") == 4800
    assert h200.spec("h2d_gbps") == pytest.approx(63.008)  # PCIe gen 5 x16, one direction
    assert set(FIGURES) == {"gemm_bf16_tflops", "memcpy_d2d_gbps", "h2d_gbps", "d2h_gbps", "allreduce_busbw_gbps",
                            "stress_gemm_bf16_tflops"}


# --- judging against spec and fleet ------------------------------------------------------------------


def node_result(name: str, tflops: list[float], gbps: list[float] | None = None) -> HardwareResult:
    checks = [HwCheck(name="accelerator_count", index=-1, status="measured", value=float(len(tflops)))]
    for i, v in enumerate(tflops):
        checks.append(HwCheck(name="ecc_uncorrected_volatile", index=i, status="pass", value=0.0))
        checks.append(HwCheck(name="gemm_bf16_tflops", index=i, status="measured", value=v, unit="TFLOP/s"))
        if gbps:
            checks.append(HwCheck(name="memcpy_d2d_gbps", index=i, status="measured", value=gbps[i], unit="GB/s"))
    return HardwareResult(level="standard", devices=tuple(HwDevice(index=i, name=name) for i in range(len(tflops))),
                          checks=tuple(checks))


def test_one_slow_gpu_among_8_is_flagged_with_its_node_and_index():
    healthy = [792.0, 801.0, 788.0, 795.0, 799.0, 790.0, 797.0, 803.0]
    slow = [*healthy[:5], 640.0, *healthy[6:]]  # GPU 5 of n2: 19 % below the others
    rows = judge_hardware({"n1": node_result("NVIDIA H200", healthy), "n2": node_result("NVIDIA H200", slow),
                           "n3": node_result("NVIDIA H200", healthy)})
    gemm = [r for r in rows if r.check == "gemm_bf16_tflops"]
    failed = [r for r in gemm if r.status == "fail"]
    assert [(r.node, r.index) for r in failed] == [("n2", 5)]
    assert failed[0].fleet_median == pytest.approx(796.0)  # median of the 24 figures: (795 + 797) / 2
    assert failed[0].fleet_fraction == pytest.approx(640 / 796)
    assert "≥ 10% below: an outlier" in failed[0].detail and "over 24 H200(s)" in failed[0].detail
    assert all(r.status == "pass" for r in gemm if r is not failed[0])
    assert failed[0].reference == 989 and failed[0].fraction_of_spec == pytest.approx(640 / 989)


def test_spec_fraction_fails_a_fleet_that_is_uniformly_slow_and_passes_a_good_one():
    expect = {"gemm_bf16_tflops": FigureExpect(min_fraction_of_spec=0.75)}
    slow = judge_hardware({"n1": node_result("NVIDIA H200", [600.0, 605.0])}, expect)
    assert [r.status for r in slow if r.check == "gemm_bf16_tflops"] == ["fail", "fail"]
    assert "61% of spec 989 TFLOP/s (< 75%)" in slow[2].detail
    good = judge_hardware({"n1": node_result("NVIDIA H200", [790.0, 795.0])}, expect)
    assert [r.status for r in good if r.check == "gemm_bf16_tflops"] == ["pass", "pass"]


def test_a_figure_nothing_can_judge_is_skipped_never_passed():
    rows = judge_hardware({"n1": node_result("NVIDIA H200", [790.0])})  # one GPU, no bound: no peer, no spec asked
    gemm = next(r for r in rows if r.check == "gemm_bf16_tflops")
    assert gemm.status == "skipped" and "nothing to compare with" in gemm.detail
    count = next(r for r in rows if r.check == "accelerator_count")
    assert count.status == "skipped"


def test_a_reported_spec_is_not_judged_until_the_case_gives_the_vendors_figure():
    expect = {"gemm_bf16_tflops": FigureExpect(min_fraction_of_spec=0.8)}
    rows = judge_hardware({"n1": node_result("910B3", [200.0])}, expect)
    gemm = next(r for r in rows if r.check == "gemm_bf16_tflops")
    assert gemm.status == "skipped" and "reported, not from a datasheet" in gemm.detail
    rows = judge_hardware({"n1": node_result("910B3", [200.0])}, expect,
                          overrides={"Ascend 910B3": {"bf16_dense_tflops": 280.0}})
    gemm = next(r for r in rows if r.check == "gemm_bf16_tflops")
    assert gemm.status == "fail" and gemm.reference == 280 and gemm.fraction_of_spec == pytest.approx(200 / 280)


def test_node_counts_are_compared_with_the_fleet_and_with_the_expected_count():
    rows = judge_hardware({"n1": node_result("NVIDIA H200", [790.0] * 8), "n2": node_result("NVIDIA H200", [790.0] * 7),
                           "n3": node_result("NVIDIA H200", [790.0] * 8)})
    counts = {r.node: r.status for r in rows if r.check == "accelerator_count"}
    assert counts == {"n1": "pass", "n2": "fail", "n3": "pass"}
    assert count_check(7, 8).status == "fail" and count_check(8, 8).status == "pass"


def test_health_facts_keep_the_agents_verdict_and_a_broken_check_is_an_error():
    res = HardwareResult(level="quick", devices=(HwDevice(index=0, name="NVIDIA H200"),), checks=(
        HwCheck(name="ecc_uncorrected_volatile", index=0, status="fail", value=2.0, detail="2 uncorrected"),
        HwCheck(name="gemm_bf16_tflops", index=0, status="error", detail="RuntimeError: CUDA out of memory"),
        HwCheck(name="dcgm_r1", index=-1, status="skipped", detail="DCGM (dcgmi) is not installed")))
    rows = judge_hardware({"n1": res})
    assert [(r.check, r.status) for r in rows] == [("ecc_uncorrected_volatile", "fail"), ("gemm_bf16_tflops", "error"),
                                                   ("dcgm_r1", "skipped")]


# --- the spec on the wire ------------------------------------------------------------------------------


def test_hardware_spec_is_validated_field_by_field():
    spec = parse_spec(6, json.dumps({"level": "stress", "duration_s": 30, "allow_busy": True}))
    assert isinstance(spec, HardwareSpec) and spec.duration_s == 30
    with pytest.raises(ConfigError, match="level must be one of quick, standard, stress, got 'fast'"):
        parse_spec(6, json.dumps({"level": "fast"}))
    with pytest.raises(ConfigError, match="duration_s must be a positive integer, got 0"):
        parse_spec(6, json.dumps({"level": "stress", "duration_s": 0}))
    with pytest.raises(ConfigError, match="unknown hardware spec field"):
        parse_spec(6, json.dumps({"level": "quick", "levle": 1}))


# --- the case in the plan ----------------------------------------------------------------------------


def plan_text(case: str) -> str:
    return ("version: 1\nname: hw\nmodel: m\nendpoint: {url: 'http://127.0.0.1:1/v1/completions'}\ncases:\n"
            + case)


@pytest.mark.parametrize(("case", "message"), [
    ("  - {id: hw, type: hardware, level: fast}\n", "level must be quick, standard or stress"),
    ("  - {id: hw, type: hardware}\n", "level"),
    ("  - {id: hw, type: hardware, level: quick, expect: {gemm_bf16_tflops: {min: 1}}}\n",
     "cases[0].expect.gemm_bf16_tflops is not measured at level quick (it measures no figure: health only)"),
    ("  - {id: hw, type: hardware, level: stress, expect: {gemm_bf16_tflops: {min: 1}}}\n",
     "is not measured at level stress (it measures stress_gemm_bf16_tflops)"),
    ("  - {id: hw, type: hardware, level: standard, expect: {gemm_tflops: {min: 1}}}\n",
     "cases[0].expect.gemm_tflops is not a hardware figure; did you mean gemm_bf16_tflops?"),
    ("  - {id: hw, type: hardware, level: standard, expect: {gemm_bf16_tflops: {}}}\n",
     "needs min_fraction_of_spec and/or min"),
    ("  - {id: hw, type: hardware, level: quick, fleet_tolerance: 1.5}\n", "must be a number > 0 and < 1"),
    ("  - {id: hw, type: hardware, level: quick, reference: {H200: {bf16_tflops: 1}}}\n", "bf16_tflops"),
])
def test_a_bad_hardware_case_is_one_sentence_naming_the_key(tmp_path, case, message):
    from fleetbench.controller.plan import load_plan

    path = tmp_path / "plan.yaml"
    path.write_text(plan_text(case))
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_plan(path)
    assert "\n" not in str(err.value)


def test_a_hardware_case_becomes_the_spec_the_agent_validates(tmp_path):
    from fleetbench.controller.fleet import Node
    from fleetbench.controller.plan import HardwareCase, load_plan
    from fleetbench.controller.specs import hardware_spec

    path = tmp_path / "plan.yaml"
    path.write_text(plan_text("  - {id: hw, type: hardware, level: stress, duration_s: 30, allow_busy: true, "
                              "reference: {'Ascend 910B3': {bf16_dense_tflops: 280}}}\n"))
    case = load_plan(path).cases[0]
    assert isinstance(case, HardwareCase) and case.reference == {"Ascend 910B3": {"bf16_dense_tflops": 280.0}}
    spec = hardware_spec(case, Node("n1", "127.0.0.1:1"))
    assert spec.model_dump() == {"level": "stress", "duration_s": 30, "allow_busy": True, "expected_count": None,
                                 "matmul_size": 8192, "copy_mib": 2048, "node": "n1"}


def test_a_node_with_only_skipped_checks_fails_validity_and_failed_rows_name_node_and_accelerator():
    from fleetbench.controller.orchestrator import hardware_reason
    from fleetbench.controller.validity import hardware_checks
    from fleetbench.controller.verdict import State
    from fleetbench.hardware import HwRow

    checks = hardware_checks(["n1", "n2", "n3"], {"n1": 12, "n2": 0}, {"n1": 3, "n2": 9}, {"n3": "job failed: refused"})
    assert [(c.name, c.scope, c.passed) for c in checks] == [
        ("nodes", "cluster", False), ("hardware_judged", "n1", True), ("hardware_judged", "n2", False)]
    assert "every check was SKIPPED" in checks[2].detail and checks[0].detail == "n3: job failed: refused"
    row = HwRow("n2", 5, "NVIDIA H200", "H200", "gemm_bf16_tflops", "fail", 640.0, "TFLOP/s", detail="81% of median")
    reason = hardware_reason("hw", row)
    assert reason.state == State.FAIL and reason.line() == (
        "FAIL hw n2: accelerator #5 gemm_bf16_tflops: 81% of median: measured 640 TFLOP/s")
    broken = hardware_reason("hw", dataclasses.replace(row, status="error", measured=None, detail="OOM"))
    assert broken.state == State.INVALID and broken.line() == "INVALID hw n2: accelerator #5 gemm_bf16_tflops: OOM"
    unjudged = hardware_reason("hw", dataclasses.replace(row, status="skipped", measured=None, detail="no torch"))
    assert unjudged.state == State.INVALID and unjudged.line() == (
        "INVALID hw n2: accelerator #5 gemm_bf16_tflops: expected by the case but not judged: no torch")


def test_the_all_reduce_of_a_node_is_judged_against_its_skus_interconnect_and_the_other_nodes():
    def with_allreduce(busbw: float) -> HardwareResult:
        base = node_result("NVIDIA H200", [790.0] * 8)
        return base.model_copy(update={"checks": (*base.checks, HwCheck(
            name="allreduce_busbw_gbps", index=-1, status="measured", value=busbw, unit="GB/s"))})

    rows = judge_hardware({"n1": with_allreduce(360.0), "n2": with_allreduce(250.0), "n3": with_allreduce(365.0)},
                          {"allreduce_busbw_gbps": FigureExpect(min_fraction_of_spec=0.7)})
    ar = {r.node: r for r in rows if r.check == "allreduce_busbw_gbps"}
    assert ar["n1"].reference == 450 and ar["n1"].sku == "H200" and ar["n1"].device == ""
    assert ar["n1"].fleet_median == 360 and ar["n1"].status == "pass"
    assert ar["n2"].status == "fail" and "56% of spec 450 GB/s (< 70%)" in ar["n2"].detail
    assert "69% of the fleet median 360 GB/s" in ar["n2"].detail


def test_ctl_compare_puts_the_same_accelerator_of_two_runs_side_by_side(tmp_path):
    from fleetbench.controller.history import compare
    from fleetbench.controller.store import Store
    from fleetbench.hardware import HwRow

    store = Store(tmp_path / "db.sqlite")
    for run, tflops in (("a", 800.0), ("b", 640.0)):
        store.create_run(run, "p", "m", "", ["n1"], "0")
        store.set_hardware(run, "hw", [
            HwRow("n1", 3, "NVIDIA H200", "H200", "gemm_bf16_tflops", "pass", tflops, "TFLOP/s"),
            HwRow("n1", 3, "NVIDIA H200", "H200", "ecc_uncorrected_volatile", "pass", 0.0, ""),  # a fact, no unit
            HwRow("n1", -1, "", "H200", "dcgm_r1", "skipped", None, "")])
    [d] = compare(store, "a", "b")
    assert (d.case_id, d.scope, d.figure, d.a, d.b) == ("hw", "n1 #3", "gemm_bf16_tflops", 800.0, 640.0)
    assert d.delta_pct == pytest.approx(-20.0)
