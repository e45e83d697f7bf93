"""The eval job: evalscope's own eval engine against the node's endpoint, in the job's child process.

evalscope computes every score; this module only drives it (offline, datasets
from local paths, outputs under JOB_DIR/evalscope-eval/), reports progress by
watching evalscope's prediction files grow, and reads evalscope's report files
back into `scores.json` (one row per dataset and metric, in percent) and
`samples.jsonl` (evalscope's per-sample verdicts). The readers are pure and
import nothing from evalscope, so the agent and the tests can use them.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import TypeAdapter

from fleetbench.jobs_schema import EvalSpec, ScoreRow, SubsetScoreRow

from .endpoint_check import check_endpoint

WORK_DIR_NAME = "evalscope-eval"
SCORES_FILE = "scores.json"
SAMPLES_FILE = "samples.jsonl"
PROGRESS_INTERVAL_S = 0.5


class EventSink(Protocol):
    def send(self, **event: Any) -> None: ...


# --- reading evalscope's outputs (pure) ------------------------------------------------------


def _metric_name(metric: dict[str, Any]) -> str:
    """evalscope ≤ 1.4 names a metric (`mean_acc`, `AverageAccuracy`); 1.14 gives it an identity."""
    if metric.get("legacy_name"):
        return str(metric["legacy_name"])
    if metric.get("name"):
        return str(metric["name"])
    ident = metric.get("identity") or {}
    name = str(ident.get("name", "score"))
    aggregation = ident.get("aggregation", "mean")
    dims = ident.get("dimensions") or {}
    if aggregation in ("mean", "identity") and not dims:
        return name
    suffix = ",".join(f"{k}={v}" for k, v in sorted(dims.items()))
    return f"{name}:{aggregation}" + (f"[{suffix}]" if suffix else "")


def _scale(metric: dict[str, Any]) -> tuple[float, str]:
    """(factor, unit) turning a metric's stored value into what is reported: a ratio becomes percent."""
    sem = metric.get("semantics")
    if isinstance(sem, dict):
        if sem.get("display_kind") == "percent":
            return float(sem.get("display_multiplier") or 100.0), "%"
        value_range = sem.get("value_range") or {}
        if value_range.get("min") == 0 and value_range.get("max") == 1:
            return 100.0, "%"
        return 1.0, str(sem.get("display_unit") or "")
    score = metric.get("score")
    if isinstance(score, int | float) and 0.0 <= score <= 1.0:  # evalscope ≤ 1.4: accuracies as ratios
        return 100.0, "%"
    return 1.0, ""


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def report_scores(report: dict[str, Any]) -> list[ScoreRow]:
    """The rows of one evalscope report (reports/<model>/<dataset>.json): primary metric first,
    diagnostic metrics left out when the report has quality ones."""
    dataset = str(report.get("dataset_name") or report.get("name", "").rpartition("@")[2])
    metrics = [m for m in report.get("metrics") or [] if isinstance(m, dict)]
    quality = [m for m in metrics if (m.get("semantics") or {}).get("kind", "quality") != "diagnostic"]
    metrics = quality or metrics
    primary = report.get("primary_metric_identity")
    metrics.sort(key=lambda m: 0 if primary and m.get("identity") == primary else 1)
    rows = []
    for m in metrics:
        factor, unit = _scale(m)
        subsets = [SubsetScoreRow(subset=str(s.get("name", "")), score=round(_num(s.get("score")) * factor, 6),
                                  samples=int(s.get("num") or 0))
                   for c in m.get("categories") or [] for s in c.get("subsets") or []
                   if isinstance(s, dict) and not s.get("is_aggregate")]
        names = sorted({s.subset for s in subsets})
        samples = int(m.get("num") or sum(s.samples for s in subsets))
        rows.append(ScoreRow(dataset=dataset, subset=names[0] if len(names) == 1 else "OVERALL",
                             metric=_metric_name(m), score=round(_num(m.get("score")) * factor, 6), samples=samples,
                             unit=unit, subsets=tuple(subsets)))
    return rows


def _report_files(work_dir: Path) -> list[Path]:
    reports = work_dir / "reports"
    return sorted(reports.glob("*/*.json")) if reports.is_dir() else []


def read_eval_scores(work_dir: Path) -> list[ScoreRow]:
    """Every dataset's scores from the reports evalscope wrote under `work_dir` (its work_dir), as the job
    result carries them (jobs_schema.ScoreRow: one declaration for the agent and the controller)."""
    rows: list[ScoreRow] = []
    for path in _report_files(work_dir):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and "metrics" in report:
            rows.extend(report_scores(report))
    return rows


def read_eval_samples(work_dir: Path) -> Iterator[dict[str, Any]]:
    """evalscope's verdict on each sample (reviews/<model>/<dataset>_<subset>.jsonl), line by line."""
    for path in _report_files(work_dir):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        dataset = str(report.get("dataset_name", path.stem))
        subsets = sorted({s.get("name", "") for m in report.get("metrics") or [] for c in m.get("categories") or []
                          for s in c.get("subsets") or [] if not s.get("is_aggregate")})
        for subset in subsets:
            review = work_dir / "reviews" / path.parent.name / f"{dataset}_{subset}.jsonl"
            if not review.exists():
                continue
            with review.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    score = (rec.get("sample_score") or {}).get("score") or {}
                    values = score.get("value") or {}
                    main = score.get("main_score_name") or next(iter(values), "")
                    yield {"dataset": dataset, "subset": subset, "index": rec.get("index"),
                           "target": rec.get("target"), "prediction": score.get("extracted_prediction"),
                           "score": values.get(main), "scores": values}


# --- progress -----------------------------------------------------------------------------------


class PredictionTail:
    """Counts evalscope's prediction lines as they are appended (reading only the new bytes)."""

    def __init__(self, predictions_dir: Path) -> None:
        self.dir = predictions_dir
        self._offsets: dict[Path, int] = {}
        self.done = self.failed = self.output_tokens = 0

    def poll(self) -> None:
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*/*.jsonl")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # a line being written is read next time
            for line in chunk[:end].splitlines():
                self._count(line)
            self._offsets[path] = offset + end

    def _count(self, line: bytes) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            return
        self.done += 1
        output = rec.get("model_output") or {}
        if output.get("error"):
            self.failed += 1
        usage = output.get("usage") or {}
        self.output_tokens += int(usage.get("output_tokens") or 0)


def _watch(tail: PredictionTail, total: int, channel: EventSink, stop: threading.Event) -> None:
    started = time.time()
    last: tuple[int, int] | None = None
    while not stop.wait(PROGRESS_INTERVAL_S):
        tail.poll()
        if (tail.done, tail.failed) == last:
            continue
        last = (tail.done, tail.failed)
        elapsed = time.time() - started
        rate = tail.done / elapsed if elapsed > 0 else 0.0
        channel.send(type="progress", done=tail.done, total=total, failed=tail.failed,
                     output_tps=tail.output_tokens / elapsed if elapsed > 0 else 0.0, elapsed_s=elapsed,
                     eta_s=(total - tail.done) / rate if rate > 0 and total else -1.0)


# --- running evalscope --------------------------------------------------------------------------


def check_local_paths(spec: EvalSpec) -> None:
    """A missing dataset is the job's error before anything is loaded or sent."""
    for name, path in spec.local_paths().items():
        if not Path(path).exists():
            raise FileNotFoundError(f"dataset_args.{name}.local_path {path} does not exist on this node")


def task_config(spec: EvalSpec, work_dir: Path) -> dict[str, Any]:
    """The keyword arguments of evalscope's TaskConfig for this spec."""
    generation = spec.generation_config.as_dict()
    # evalscope's default for a service (it applies it only when generation_config is empty)
    generation.setdefault("temperature", 0.0)
    if spec.stream:
        generation["stream"] = True
    if spec.timeout_s is not None:
        generation["timeout"] = spec.timeout_s
    cfg: dict[str, Any] = {
        "model": spec.model,
        "api_url": spec.url,
        "api_key": spec.api_key or "EMPTY",
        "eval_type": "openai_api",
        "datasets": list(spec.datasets),
        "dataset_args": {name: spec.args(name).as_dict() for name in spec.datasets},
        "generation_config": generation,
        "eval_batch_size": spec.eval_batch_size,
        "work_dir": str(work_dir),
        "no_timestamp": True,
        "ignore_errors": spec.ignore_errors,
    }
    if spec.limit is not None:
        cfg["limit"] = spec.limit
    if spec.repeats != 1:
        cfg["repeats"] = spec.repeats
    if spec.seed is not None:
        cfg["seed"] = spec.seed
    return cfg


def _cache_env(job_dir: Path) -> dict[str, str]:
    """Caches (Hugging Face datasets' Arrow files, evalscope's, ModelScope's) in the job's folder:
    the agent's service may write nowhere else, and nothing is fetched into them (offline)."""
    cache = job_dir / "cache"
    return {"HF_HOME": str(cache / "huggingface"), "MODELSCOPE_CACHE": str(cache / "modelscope"),
            "EVALSCOPE_CACHE": str(cache / "evalscope")}


def _count_samples(cfg: Any) -> int:
    """Load every dataset the way the run will, so a bad name or file fails the job before any request,
    and the progress total is the real sample count (limit and subsets applied)."""
    from evalscope.api.registry import get_benchmark

    total = 0
    for name in cfg.datasets:  # repeats are applied as the samples are loaded
        total += sum(len(ds) for ds in get_benchmark(name, cfg).load_dataset().values())
    return total


def run_eval_job(job_dir: Path, spec: EvalSpec, channel: EventSink) -> int:
    """Run evalscope's eval for `spec` into JOB_DIR/evalscope-eval and write scores.json; raises on failure."""
    check_local_paths(spec)
    for key, value in _cache_env(job_dir).items():
        os.environ.setdefault(key, value)
    work_dir = job_dir / WORK_DIR_NAME
    channel.send(type="phase", message="loading evalscope")
    from evalscope.config import TaskConfig
    from evalscope.run import run_task

    cfg = TaskConfig(**task_config(spec, work_dir))
    channel.send(type="phase", message=f"loading datasets {', '.join(spec.datasets)}")
    total = _count_samples(cfg)
    check_endpoint(spec.url)
    channel.send(type="phase", message=f"evaluating {total} samples")
    channel.send(type="progress", done=0, total=total, failed=0, output_tps=0.0, elapsed_s=0.0, eta_s=-1.0)
    tail = PredictionTail(work_dir / "predictions")
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(tail, total, channel, stop), daemon=True)
    watcher.start()
    try:
        run_task(cfg)
    finally:
        stop.set()
        watcher.join(timeout=2)
    tail.poll()
    channel.send(type="progress", done=tail.done, total=total, failed=tail.failed, output_tps=0.0,
                 elapsed_s=0.0, eta_s=0.0, final=True)
    scores = read_eval_scores(work_dir)
    if not scores:
        raise RuntimeError(f"evalscope wrote no report under {work_dir / 'reports'}; see {job_dir / 'job.log'}")
    write_results(job_dir, work_dir, scores)
    summary = "; ".join(f"{s.dataset} {s.metric} {s.score:g}{s.unit} of {s.samples}" for s in scores)
    channel.send(type="phase", message=f"scores: {summary}")
    return 0


SCORE_ROWS = TypeAdapter(list[ScoreRow])


def write_results(job_dir: Path, work_dir: Path, scores: list[ScoreRow]) -> None:
    (job_dir / SCORES_FILE).write_bytes(SCORE_ROWS.dump_json(scores, indent=1))
    tmp = job_dir / (SAMPLES_FILE + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for sample in read_eval_samples(work_dir):
            f.write(json.dumps(sample) + "\n")
    tmp.replace(job_dir / SAMPLES_FILE)
