"""Hardware judging at fleet scale: N nodes × 8 H200s, every figure against spec and the fleet median, the rows
stored. A 24-GPU acceptance is small; this shows the judging stays well under a second at hundreds of nodes.
Run: .venv/bin/python bench/hardware_judging.py [--nodes 128] [--gpus 8]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from fleetbench.controller.store import Store
from fleetbench.hardware import FIGURES, FigureExpect, judge_hardware
from fleetbench.jobs_schema import HardwareResult, HwCheck, HwDevice

TYPICAL = {"gemm_bf16_tflops": 795.0, "memcpy_d2d_gbps": 4287.0, "h2d_gbps": 55.0, "d2h_gbps": 55.0,
           "stress_gemm_bf16_tflops": 665.0}


def fleet(nodes: int, gpus: int, seed: int = 0) -> dict[str, HardwareResult]:
    rnd = random.Random(seed)
    out = {}
    for n in range(nodes):
        checks = [HwCheck(name="accelerator_count", index=-1, status="measured", value=float(gpus))]
        for i in range(gpus):
            checks += [HwCheck(name=name, index=i, status="pass", value=0.0) for name in
                       ("ecc_uncorrected_volatile", "ecc_uncorrected_aggregate", "memory_repair", "throttle",
                        "pcie_link", "links", "persistence_mode", "mig_mode")]
            checks += [HwCheck(name=fig, index=i, status="measured", value=v * rnd.gauss(1.0, 0.01),
                               unit=FIGURES[fig][0]) for fig, v in TYPICAL.items()]
        out[f"node{n:04d}"] = HardwareResult(level="standard", devices=tuple(
            HwDevice(index=i, name="NVIDIA H200") for i in range(gpus)), checks=tuple(checks))
    slow = out["node0001"]  # one slow GPU: node0001 #5 at 80 %
    out["node0001"] = slow.model_copy(update={"checks": tuple(
        c.model_copy(update={"value": (c.value or 0) * 0.8}) if c.index == 5 and c.status == "measured" else c
        for c in slow.checks)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=128)
    ap.add_argument("--gpus", type=int, default=8)
    args = ap.parse_args()
    results = fleet(args.nodes, args.gpus)
    expect = {fig: FigureExpect(min_fraction_of_spec=0.6) for fig in TYPICAL}
    t0 = time.perf_counter()
    rows = judge_hardware(results, expect)
    judged = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db.sqlite")
        t1 = time.perf_counter()
        store.set_hardware("r", "hw", rows)
        stored = time.perf_counter() - t1
    failed = sorted({(r.node, r.index) for r in rows if r.status == "fail"})
    print(f"{args.nodes} nodes × {args.gpus} GPUs: {len(rows):,} rows judged in {judged:.3f} s, stored in "
          f"{stored:.3f} s; failed accelerators: {failed}")


if __name__ == "__main__":
    main()
