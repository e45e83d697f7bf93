"""The hardware job (kind 6): accelerator health and performance on this node, in the job's child process.

Levels, deterministic as DCGM's are: `quick` reads health (fleetbench.hardware.health_checks) and runs
`dcgmi diag -r 1` when DCGM is installed — no load; `standard` adds, per accelerator, a dense bf16 matrix
multiply (TFLOP/s), a device-to-device copy and pinned host↔device copies (GB/s), the PCIe link re-read
under load, an all-reduce across the node's accelerators (nccl-tests' all_reduce_perf, else
torch.distributed) and `dcgmi diag -r 2`; `stress` runs matrix multiplies on every accelerator at once
for `duration_s` while clocks, temperature, power and throttle reasons are sampled each second.

Kernels run through torch (CUDA, ROCm, or torch_npu), else cupy (copies only: it has no bf16 matrix
multiply), else not at all: every check whose tool is missing is SKIPPED with the reason, never passed.
Standard and stress refuse to run beside a loaded engine (another process holding > 10 % of an
accelerator's memory) unless the case allows it, and size their buffers within the memory that is free.
Everything found is written to JOB_DIR/hardware.json (fleetbench.jobs_schema.HardwareResult).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fleetbench.errors import JobError
from fleetbench.hardware import (
    BAD_THROTTLE,
    NODE,
    DeviceHealth,
    busy_devices,
    count_check,
    dcgm_checks,
    health_checks,
    throttle_names,
)
from fleetbench.jobs_schema import BUSY_FRACTION, HardwareResult, HardwareSpec, HwCheck, HwDevice

from . import hardware_probe
from .inventory._common import NotAvailable, run_tool

RESULT_FILE = "hardware.json"
GEMM_ITERS = 20
COPY_ITERS = 10
WARMUP = 3
MEMORY_SHARE = 0.5  # buffers use at most this share of an accelerator's free memory
SAMPLE_S = 1.0
ALLREDUCE_MIB = 512


class EventSink(Protocol):
    def send(self, **event: Any) -> None: ...


class Kernels(Protocol):
    name: str
    gemm_note: str  # why the matrix multiply cannot run ("" when it can)
    gemm_dtype: str

    def count(self) -> int: ...
    def free_bytes(self, i: int) -> int: ...
    def gemm(self, i: int, n: int, iters: int) -> float: ...  # seconds for `iters` n×n×n products
    def d2d(self, i: int, nbytes: int, iters: int) -> float: ...  # seconds for `iters` copies
    def h2d(self, i: int, nbytes: int, iters: int) -> float: ...
    def d2h(self, i: int, nbytes: int, iters: int) -> float: ...


class TorchKernels:
    """torch on CUDA / ROCm (`torch.cuda`) or Ascend (`torch.npu`, with torch_npu imported); timed by device events."""

    gemm_note = ""
    gemm_dtype = "bf16"

    def __init__(self, torch: Any, device_type: str) -> None:
        self.torch = torch
        self.type = device_type
        self.mod = getattr(torch, device_type)
        self.name = f"torch {torch.__version__} ({device_type})"

    def count(self) -> int:
        return int(self.mod.device_count())

    def free_bytes(self, i: int) -> int:
        return int(self.mod.mem_get_info(i)[0])

    def _timed(self, i: int, fn: Callable[[], None], iters: int) -> float:
        dev = self.mod
        with dev.device(i):
            for _ in range(WARMUP):
                fn()
            dev.synchronize(i)
            start, end = dev.Event(enable_timing=True), dev.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1000.0

    def gemm(self, i: int, n: int, iters: int) -> float:
        t = self.torch
        d = t.device(self.type, i)
        a = t.randn(n, n, device=d, dtype=t.bfloat16)
        b = t.randn(n, n, device=d, dtype=t.bfloat16)
        c = t.empty(n, n, device=d, dtype=t.bfloat16)
        return self._timed(i, lambda: t.mm(a, b, out=c), iters)  # the buffers go back to the cache on return

    def d2d(self, i: int, nbytes: int, iters: int) -> float:
        t = self.torch
        d = t.device(self.type, i)
        src = t.empty(nbytes, dtype=t.uint8, device=d).fill_(1)
        dst = t.empty_like(src)
        return self._timed(i, lambda: dst.copy_(src), iters)

    def _host(self, i: int, nbytes: int, to_device: bool, iters: int) -> float:
        t = self.torch
        host = t.empty(nbytes, dtype=t.uint8, pin_memory=True).fill_(1)
        dev = t.empty(nbytes, dtype=t.uint8, device=t.device(self.type, i))
        if to_device:
            return self._timed(i, lambda: dev.copy_(host, non_blocking=True), iters)
        return self._timed(i, lambda: host.copy_(dev, non_blocking=True), iters)

    def release(self) -> None:
        """Give cached buffers back, so what the next check (or a serving engine) sees free is free."""
        self.mod.empty_cache()

    def h2d(self, i: int, nbytes: int, iters: int) -> float:
        return self._host(i, nbytes, True, iters)

    def d2h(self, i: int, nbytes: int, iters: int) -> float:
        return self._host(i, nbytes, False, iters)


class CupyKernels:
    """cupy: the copies only (cupy has no bf16 matrix multiply)."""

    gemm_note = "cupy has no bf16 matrix multiply (install torch for it)"
    gemm_dtype = ""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.name = f"cupy {cp.__version__}"

    def count(self) -> int:
        return int(self.cp.cuda.runtime.getDeviceCount())

    def free_bytes(self, i: int) -> int:
        with self.cp.cuda.Device(i):
            return int(self.cp.cuda.runtime.memGetInfo()[0])

    def _timed(self, i: int, fn: Callable[[], None], iters: int) -> float:
        cp = self.cp
        with cp.cuda.Device(i):
            for _ in range(WARMUP):
                fn()
            cp.cuda.Device(i).synchronize()
            start, end = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            return float(cp.cuda.get_elapsed_time(start, end)) / 1000.0

    def gemm(self, i: int, n: int, iters: int) -> float:
        raise NotImplementedError(self.gemm_note)

    def d2d(self, i: int, nbytes: int, iters: int) -> float:
        cp = self.cp
        with cp.cuda.Device(i):
            src = cp.ones(nbytes, dtype=cp.uint8)
            dst = cp.empty_like(src)
            return self._timed(i, lambda: dst.__setitem__(slice(None), src), iters)

    def _host(self, i: int, nbytes: int, to_device: bool, iters: int) -> float:
        cp = self.cp
        import numpy as np

        with cp.cuda.Device(i):
            mem = cp.cuda.alloc_pinned_memory(nbytes)
            host = np.frombuffer(mem, dtype=np.uint8, count=nbytes)
            dev = cp.empty(nbytes, dtype=cp.uint8)
            stream = cp.cuda.get_current_stream()
            if to_device:
                return self._timed(i, lambda: dev.set(host, stream=stream), iters)
            return self._timed(i, lambda: dev.get(stream=stream, out=host), iters)

    def h2d(self, i: int, nbytes: int, iters: int) -> float:
        return self._host(i, nbytes, True, iters)

    def d2h(self, i: int, nbytes: int, iters: int) -> float:
        return self._host(i, nbytes, False, iters)


class StandinKernels:
    """CPU stand-ins (numpy), for the job's lifecycle on machines without an accelerator (tests only).
    `slow`: index -> speed factor, to play one slow accelerator among several."""

    gemm_note = ""
    gemm_dtype = "float32 on the CPU (stand-in)"

    def __init__(self, count: int, slow: dict[int, float]) -> None:
        self.n = count
        self.slow = slow
        self.name = "cpu-standin (numpy)"

    def count(self) -> int:
        return self.n

    def free_bytes(self, i: int) -> int:
        return hardware_probe.STANDIN_MEMORY_MIB << 20

    def _timed(self, i: int, fn: Callable[[], object], iters: int) -> float:
        """The fastest of `iters` runs, times `iters`: a CPU shared with other processes makes a mean noisy, and
        the tests that use stand-ins compare them across a fleet."""
        for _ in range(WARMUP):
            fn()
        best = math.inf
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        elapsed = best * iters
        factor = self.slow.get(i, 1.0)
        if factor < 1.0:  # a slow accelerator: its work takes 1/factor as long
            time.sleep(elapsed * (1 / factor - 1))
            elapsed /= factor
        return elapsed

    def gemm(self, i: int, n: int, iters: int) -> float:
        import numpy as np

        a = np.ones((n, n), dtype=np.float32)
        return self._timed(i, lambda: a @ a, iters)

    def _copy(self, i: int, nbytes: int, iters: int) -> float:
        import numpy as np

        src = np.ones(nbytes, dtype=np.uint8)
        dst = np.empty_like(src)
        return self._timed(i, lambda: np.copyto(dst, src), iters)

    d2d = h2d = d2h = _copy


def kernels(vendor: str) -> Kernels | NotAvailable:
    """What can run kernels here, or why nothing can."""
    cfg = hardware_probe.standin_config()
    if cfg is not None:
        return StandinKernels(int(cfg.get("visible", cfg.get("count", 2))),
                              {int(k): float(v) for k, v in (cfg.get("slow") or {}).items()})
    reasons = []
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # torch's index i is NVML's index i (bus order)
    try:
        import torch
    except Exception as exc:
        reasons.append(f"torch is not installed ({type(exc).__name__})")
    else:
        if vendor == "huawei":
            try:
                import torch_npu  # noqa: F401  (registers torch.npu)
            except Exception as exc:
                reasons.append(f"torch_npu is not installed ({type(exc).__name__})")
            else:
                if torch.npu.is_available():
                    return TorchKernels(torch, "npu")
                reasons.append("torch_npu sees no NPU")
        elif torch.cuda.is_available():
            return TorchKernels(torch, "cuda")
        else:
            reasons.append(f"torch {torch.__version__} sees no CUDA/ROCm device")
    try:
        import cupy
    except Exception:
        reasons.append("cupy is not installed")
    else:
        try:
            if cupy.cuda.runtime.getDeviceCount() > 0:
                return CupyKernels(cupy)
        except Exception as exc:
            reasons.append(f"cupy sees no device ({type(exc).__name__})")
    return NotAvailable("; ".join(reasons))


# --- the checks --------------------------------------------------------------------------------------


def _skip(name: str, index: int, reason: str, tool: str = "") -> HwCheck:
    return HwCheck(name=name, index=index, status="skipped", detail=reason, tool=tool)


def _error(name: str, index: int, exc: BaseException, tool: str = "") -> HwCheck:
    traceback.print_exc()  # to job.log
    return HwCheck(name=name, index=index, status="error", detail=f"{type(exc).__name__}: {str(exc)[:300]}", tool=tool)


def sizes(free: int, matmul_n: int, copy_bytes: int) -> tuple[int, int, str]:
    """Matrix size and copy size that fit in MEMORY_SHARE of the free memory (3 n² bf16 matrices; two copy
    buffers), halved until they do; and a note when they were cut."""
    budget = free * MEMORY_SHARE
    n, nbytes = matmul_n, copy_bytes
    while 3 * n * n * 2 > budget and n > 256:
        n //= 2
    while 2 * nbytes > budget and nbytes > (1 << 20):
        nbytes //= 2
    note = ""
    if (n, nbytes) != (matmul_n, copy_bytes):
        note = f"sized to the free memory ({free / (1 << 30):.1f} GiB free): n={n}, copy {nbytes >> 20} MiB"
    return n, nbytes, note


def perf_checks(k: Kernels, i: int, spec: HardwareSpec) -> list[HwCheck]:
    """One accelerator's matrix multiply and copies, as measured figures."""
    out: list[HwCheck] = []
    n, nbytes, note = sizes(k.free_bytes(i), spec.matmul_size, spec.copy_mib << 20)
    if k.gemm_note:
        out.append(_skip("gemm_bf16_tflops", i, k.gemm_note, k.name))
    else:
        try:
            s = k.gemm(i, n, GEMM_ITERS)
            tflops = 2 * n**3 * GEMM_ITERS / s / 1e12
            out.append(HwCheck(name="gemm_bf16_tflops", index=i, status="measured", value=tflops, unit="TFLOP/s",
                               tool=k.name, detail=f"{n}×{n}×{n} {k.gemm_dtype}, mean of {GEMM_ITERS} after "
                                                   f"{WARMUP} warm-up" + (f"; {note}" if note else "")))
        except Exception as exc:
            out.append(_error("gemm_bf16_tflops", i, exc, k.name))
    for name, fn, moved, what in (("memcpy_d2d_gbps", k.d2d, 2, "device to device, bytes read + written"),
                                  ("h2d_gbps", k.h2d, 1, "host (pinned) to device"),
                                  ("d2h_gbps", k.d2h, 1, "device to host (pinned)")):
        try:
            s = fn(i, nbytes, COPY_ITERS)
            out.append(HwCheck(name=name, index=i, status="measured", value=moved * nbytes * COPY_ITERS / s / 1e9,
                               unit="GB/s", tool=k.name, detail=f"{nbytes >> 20} MiB {what}, mean of {COPY_ITERS}"))
        except Exception as exc:
            out.append(_error(name, i, exc, k.name))
        finally:
            getattr(k, "release", lambda: None)()
    return out


def parse_all_reduce_perf(text: str) -> float | None:
    """nccl-tests' `# Avg bus bandwidth    : 182.3` (GB/s)."""
    for line in text.splitlines():
        if "Avg bus bandwidth" in line:
            try:
                return float(line.rsplit(":", 1)[1].split()[0])
            except (IndexError, ValueError):
                return None
    return None


def _allreduce_worker(rank: int, world: int, port: int, nbytes: int, out_path: str, device_type: str) -> None:
    """One process per accelerator: NCCL on CUDA/ROCm, HCCL on Ascend (torch_npu)."""
    import torch
    import torch.distributed as dist

    if device_type == "npu":
        import torch_npu  # noqa: F401  (registers torch.npu and the hccl backend)
    mod = getattr(torch, device_type)
    mod.set_device(rank)
    dist.init_process_group("hccl" if device_type == "npu" else "nccl", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world)
    x = torch.ones(nbytes // 2, dtype=torch.bfloat16, device=f"{device_type}:{rank}")
    for _ in range(WARMUP):
        dist.all_reduce(x)
    mod.synchronize()
    t0 = time.perf_counter()
    for _ in range(COPY_ITERS):
        dist.all_reduce(x)
    mod.synchronize()
    elapsed = (time.perf_counter() - t0) / COPY_ITERS
    if rank == 0:
        Path(out_path).write_text(json.dumps({"seconds": elapsed}))
    dist.destroy_process_group()


def allreduce_check(k: Kernels | NotAvailable, count: int, job_dir: Path) -> HwCheck:
    """Bus bandwidth of an all-reduce across the node's accelerators (nccl-tests' definition:
    algorithm bandwidth × 2(n−1)/n)."""
    name = "allreduce_busbw_gbps"
    if count < 2:
        return _skip(name, NODE, f"{count} accelerator(s): nothing to all-reduce across")
    exe = shutil.which("all_reduce_perf")
    if exe is not None:
        out = run_tool([exe, "-b", f"{ALLREDUCE_MIB}M", "-e", f"{ALLREDUCE_MIB}M", "-g", str(count)], timeout=300.0)
        bw = parse_all_reduce_perf(out.stdout) if out.error is None else None
        if bw is None:
            return HwCheck(name=name, index=NODE, status="error", tool="all_reduce_perf",
                           detail=out.error.reason if out.error else "all_reduce_perf printed no average bus bandwidth")
        return HwCheck(name=name, index=NODE, status="measured", value=bw, unit="GB/s", tool="all_reduce_perf",
                       detail=f"{ALLREDUCE_MIB} MiB, {count} GPUs (nccl-tests)")
    if not isinstance(k, TorchKernels):
        return _skip(name, NODE, "neither nccl-tests' all_reduce_perf nor torch on the accelerators (NCCL/HCCL) "
                                 "is available")
    tool = f"torch.distributed ({'hccl' if k.type == 'npu' else 'nccl'})"
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    out_path = job_dir / "allreduce.json"
    nbytes = ALLREDUCE_MIB << 20
    try:
        mp.spawn(_allreduce_worker, args=(count, port, nbytes, str(out_path), k.type), nprocs=count, join=True)
        seconds = float(json.loads(out_path.read_text())["seconds"])
    except Exception as exc:
        return _error(name, NODE, exc, tool)
    busbw = nbytes / seconds / 1e9 * 2 * (count - 1) / count
    return HwCheck(name=name, index=NODE, status="measured", value=busbw, unit="GB/s", tool=tool,
                   detail=f"{ALLREDUCE_MIB} MiB bf16, {count} processes, mean of {COPY_ITERS}")


def dcgm(level: int) -> tuple[list[HwCheck], dict[str, Any] | None]:
    """`dcgmi diag -r LEVEL -j` when DCGM is installed: its results as they are, and one check per test and GPU."""
    if shutil.which("dcgmi") is None:
        return [_skip(f"dcgm_r{level}", NODE, "DCGM (dcgmi) is not installed")], None
    out = run_tool(["dcgmi", "diag", "-r", str(level), "-j"], timeout=600.0)
    if out.error is not None and not out.stdout:
        return [HwCheck(name=f"dcgm_r{level}", index=NODE, status="error", detail=out.error.reason,
                        tool=f"dcgmi diag -r {level}")], None
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        return [HwCheck(name=f"dcgm_r{level}", index=NODE, status="error", detail="dcgmi printed no JSON",
                        tool=f"dcgmi diag -r {level}")], None
    checks = dcgm_checks(doc, level)
    return checks or [_skip(f"dcgm_r{level}", NODE, "dcgmi ran no test")], doc


# --- stress -------------------------------------------------------------------------------------------


def _sample(nv: Any, handles: list[Any], t: float) -> list[dict[str, Any]]:
    out = []
    for i, h in enumerate(handles):
        row: dict[str, Any] = {"t_s": round(t, 2), "index": i}
        for key, fn, args, scale in (("sm_mhz", "nvmlDeviceGetClockInfo", (getattr(nv, "NVML_CLOCK_SM", 1),), 1.0),
                                     ("temp_c", "nvmlDeviceGetTemperature", (0,), 1.0),
                                     ("power_w", "nvmlDeviceGetPowerUsage", (), 0.001)):
            try:
                row[key] = float(getattr(nv, fn)(h, *args)) * scale
            except Exception:
                row[key] = None
        reasons = None
        for fn in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            if reasons is None and hasattr(nv, fn):
                try:
                    reasons = list(throttle_names(int(getattr(nv, fn)(h))))
                except Exception:
                    reasons = None
        row["throttle"] = reasons
        out.append(row)
    return out


def stress(k: Kernels, count: int, spec: HardwareSpec, channel: EventSink, before: list[DeviceHealth],
           nv: Any) -> tuple[list[HwCheck], list[dict[str, Any]]]:
    """Matrix multiplies on every accelerator at once for `duration_s`, one thread each, timed in windows of about
    a second; NVML sampled meanwhile. Figures: the median window (TFLOP/s); checks: throttling and new ECC errors."""
    if k.gemm_note:
        return [_skip("stress_gemm_bf16_tflops", i, k.gemm_note, k.name) for i in range(count)], []
    windows: dict[int, list[float]] = {i: [] for i in range(count)}
    errors: dict[int, BaseException] = {}
    deadline = time.monotonic() + spec.duration_s

    def run(i: int) -> None:
        iters = 4
        try:
            n, _, _ = sizes(k.free_bytes(i), spec.matmul_size, 1 << 20)
            while time.monotonic() < deadline:
                s = k.gemm(i, n, iters)
                windows[i].append(2 * n**3 * iters / s / 1e12)
                iters = max(1, min(200, int(iters * SAMPLE_S / max(s, 1e-3))))
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    samples: list[dict[str, Any]] = []
    handles = []
    if nv is not None:
        try:
            handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:
            handles = []
    t0 = time.monotonic()
    while any(t.is_alive() for t in threads):
        elapsed = time.monotonic() - t0
        if handles:
            samples += _sample(nv, handles, elapsed)
        channel.send(type="progress", done=int(min(elapsed, spec.duration_s)), total=spec.duration_s, failed=0,
                     output_tps=0.0, elapsed_s=elapsed, eta_s=max(0.0, spec.duration_s - elapsed))
        time.sleep(SAMPLE_S)
    out: list[HwCheck] = []
    after = {d.index: d for d in hardware_probe.probe().devices} if nv is not None else {}
    for i in range(count):
        if i in errors:
            out.append(_error("stress_gemm_bf16_tflops", i, errors[i], k.name))
            continue
        w = windows[i]
        if not w:
            out.append(HwCheck(name="stress_gemm_bf16_tflops", index=i, status="error", detail="no window completed",
                               tool=k.name))
            continue
        out.append(HwCheck(name="stress_gemm_bf16_tflops", index=i, status="measured", value=statistics.median(w),
                           unit="TFLOP/s", tool=k.name,
                           detail=f"median of {len(w)} windows over {spec.duration_s} s (min {min(w):,.1f}, "
                                  f"max {max(w):,.1f})"))
        mine = [s for s in samples if s["index"] == i]
        if not mine:
            out.append(_skip("stress_throttle", i, "no NVML samples (NVML not available)", k.name))
        else:
            seen = sorted({r for s in mine for r in (s["throttle"] or [])})
            bad = [r for r in seen if r in BAD_THROTTLE]
            temps = [s["temp_c"] for s in mine if s["temp_c"] is not None]
            clocks = [s["sm_mhz"] for s in mine if s["sm_mhz"] is not None]
            power = [s["power_w"] for s in mine if s["power_w"] is not None]
            lo, hi = min(clocks, default=math.nan), max(clocks, default=math.nan)
            hot, watts = max(temps, default=math.nan), max(power, default=math.nan)
            detail = (f"{len(mine)} samples; SM clock {lo:.0f}–{hi:.0f} MHz; max {hot:.0f} °C; max {watts:.0f} W; "
                      f"reasons seen: {', '.join(seen) or 'none'}")
            out.append(HwCheck(name="stress_throttle", index=i, status="fail" if bad else "pass", tool="nvml",
                               detail=("throttled: " + ", ".join(bad) + "; " if bad else "") + detail))
        b, a = next((d for d in before if d.index == i), None), after.get(i)
        if b is None or a is None or b.ecc_uncorrected_volatile is None or a.ecc_uncorrected_volatile is None:
            out.append(_skip("stress_ecc", i, "ECC counts not reported before and after", k.name))
        else:
            new = a.ecc_uncorrected_volatile - b.ecc_uncorrected_volatile
            out.append(HwCheck(name="stress_ecc", index=i, status="fail" if new else "pass", value=float(new),
                               tool=a.source, detail=f"{new} new uncorrected ECC error(s) during the stress"))
    return out, samples


# --- the job ------------------------------------------------------------------------------------------


def write_result(job_dir: Path, result: HardwareResult) -> None:
    tmp = job_dir / (RESULT_FILE + ".tmp")
    tmp.write_text(result.model_dump_json(indent=1))
    tmp.replace(job_dir / RESULT_FILE)


def run_hardware_job(job_dir: Path, spec: HardwareSpec, channel: EventSink) -> int:
    """Every check of `spec.level`, written to JOB_DIR/hardware.json; 0 when the checks ran (they carry the
    verdict). Standard and stress beside a loaded engine: JobError (the job fails with the reason)."""
    channel.send(type="phase", message=f"hardware {spec.level}: reading accelerator health")
    found = hardware_probe.probe()
    devices = found.devices
    checks: list[HwCheck] = [count_check(len(devices), spec.expected_count)]
    result = HardwareResult(level=spec.level)

    def save(**update: Any) -> None:
        nonlocal result
        result = result.model_copy(update={"checks": tuple(checks), **update})
        write_result(job_dir, result)

    hw_devices = tuple(HwDevice(index=d.index, name=d.name, vendor=d.vendor, uuid=d.uuid, bus_id=d.bus_id,
                                memory_total_mib=d.memory_total_mib, memory_used_mib=d.memory_used_mib)
                       for d in devices)
    if not devices:
        why = "; ".join(found.missing) or "no accelerator found"
        checks.append(_skip("accelerators", NODE, f"no accelerator management tool answered: {why}"))
    for d in devices:
        checks += health_checks(d)
    if found.vendor == "nvidia" or found.vendor == "cpu-standin":
        level = 2 if spec.level == "standard" else 1  # stress: the quick checks, then its own load
        dcgm_list, dcgm_doc = dcgm(level) if found.vendor == "nvidia" else (
            [_skip(f"dcgm_r{level}", NODE, "a CPU stand-in has no DCGM")], None)
        checks += dcgm_list
        result = result.model_copy(update={"dcgm": dcgm_doc})
    save(devices=hw_devices)
    if spec.level == "quick":
        channel.send(type="phase", message=_summary(checks))
        return 0
    busy = busy_devices(devices, BUSY_FRACTION)
    if busy and not spec.allow_busy:
        raise JobError(f"hardware {spec.level} refused: another process holds more than {BUSY_FRACTION:.0%} of an "
                       f"accelerator's memory (an engine is loaded?): {'; '.join(busy)}; stop it, or set allow_busy: "
                       "true in the case to run beside it")
    k = kernels(found.vendor)
    if isinstance(k, NotAvailable):
        reason = f"no kernel backend: {k.reason}"
        for d in devices:
            names = ("stress_gemm_bf16_tflops",) if spec.level == "stress" else (
                "gemm_bf16_tflops", "memcpy_d2d_gbps", "h2d_gbps", "d2h_gbps")
            checks += [_skip(n, d.index, reason) for n in names]
        if spec.level == "standard":
            checks.append(_skip("allreduce_busbw_gbps", NODE, reason))
        save(backend="")
        channel.send(type="phase", message=_summary(checks))
        return 0
    count = min(k.count(), len(devices)) if devices else 0
    for d in devices[count:]:  # CUDA_VISIBLE_DEVICES, a driver that lists more than the runtime sees
        names = ("stress_gemm_bf16_tflops",) if spec.level == "stress" else (
            "gemm_bf16_tflops", "memcpy_d2d_gbps", "h2d_gbps", "d2h_gbps")
        checks += [_skip(n, d.index, f"{k.name} sees {k.count()} accelerator(s), not this one") for n in names]
    save(backend=k.name)
    nv = hardware_probe.nvml() if found.vendor == "nvidia" else None
    nv = None if isinstance(nv, NotAvailable) else nv
    if spec.level == "standard":
        for i in range(count):
            channel.send(type="phase", message=f"accelerator {i}: matrix multiply and copies ({k.name})")
            try:
                checks += perf_checks(k, i, spec)
            except Exception as exc:  # the device itself would not answer (its free memory, say)
                checks.append(_error("gemm_bf16_tflops", i, exc, k.name))
            channel.send(type="progress", done=i + 1, total=count + 1, failed=0, output_tps=0.0, elapsed_s=0.0,
                         eta_s=-1.0)
            save()
        if nv is not None:  # the PCIe link read again under load: an idle link may train down to save power
            _reread_pcie_under_load(k, count, nv, checks)
        channel.send(type="phase", message=f"all-reduce across {count} accelerator(s)")
        checks.append(allreduce_check(k, count, job_dir))
        save()
    else:
        channel.send(type="phase", message=f"stress: matrix multiply on {count} accelerator(s) for {spec.duration_s} s")
        found_checks, samples = stress(k, count, spec, channel, devices, nv)
        checks += found_checks
        save(samples=tuple(samples))
    channel.send(type="progress", done=count + 1, total=count + 1, failed=0, output_tps=0.0, elapsed_s=0.0,
                 eta_s=0.0, final=True)
    channel.send(type="phase", message=_summary(checks))
    return 0


def _reread_pcie_under_load(k: Kernels, count: int, nv: Any, checks: list[HwCheck]) -> None:
    """Replace each idle `pcie_link` check by one read while a host-to-device copy runs."""
    for i in range(count):
        box: list[DeviceHealth] = []

        def read(i: int = i, box: list[DeviceHealth] = box) -> None:
            time.sleep(0.05)
            box.extend(d for d in hardware_probe.health_from_nvml(nv) if d.index == i)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            k.h2d(i, 256 << 20, 40)
        except Exception:
            traceback.print_exc()
        reader.join()
        if not box:
            continue
        loaded = next((c for c in health_checks(box[0], loaded=True) if c.name == "pcie_link"), None)
        if loaded is None:
            continue
        for j, c in enumerate(checks):
            if c.name == "pcie_link" and c.index == i:
                checks[j] = loaded.model_copy(update={"detail": loaded.detail + " (read under load)"})


def _summary(checks: list[HwCheck]) -> str:
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("pass", "fail", "skipped", "error", "measured")}
    return "hardware: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + "".join(
        f"; {c.name}{'' if c.index < 0 else f' #{c.index}'}: {c.detail}" for c in checks if c.status == "fail")[:400]

