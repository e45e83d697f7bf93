"""Reading evalscope's eval outputs: report files captured from a real evalscope 1.14.1 run against the
simulator (tests/data/eval/evalscope-1.14.1, 3 of 5 gsm8k questions right) and a schema-v1 report of
evalscope 1.x (the table seed 000 printed, rebuilt as the file evalscope wrote)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from fleetbench.agent.eval_job import (
    SCORES_FILE,
    PredictionTail,
    read_eval_samples,
    read_eval_scores,
    report_scores,
    task_config,
    write_results,
)
from fleetbench.jobs_schema import EvalSpec, ScoreRow, SubsetScoreRow

DATA = Path(__file__).parents[1] / "data" / "eval"
V114 = DATA / "evalscope-1.14.1"
V1 = DATA / "evalscope-1.x-v1"


def test_scores_from_a_real_evalscope_1_14_report():
    assert read_eval_scores(V114) == [
        ScoreRow(dataset="gsm8k", subset="main", metric="accuracy", score=60.0, samples=5, unit="%",
                 subsets=(SubsetScoreRow(subset="main", score=60.0, samples=5),))
    ]


def test_per_sample_verdicts_from_real_review_files():
    samples = sorted(read_eval_samples(V114), key=lambda s: s["index"])
    assert [(s["index"], s["target"], s["prediction"], s["score"]) for s in samples] == [
        (0, ["7"], "7", 1.0),
        (1, ["30"], "30", 1.0),
        (2, ["12"], "11", 0.0),  # the canned reply that is wrong on purpose
        (3, ["7"], "", 0.0),  # generated words: nothing to extract
        (4, ["36"], "36", 1.0),
    ]
    assert all(s["dataset"] == "gsm8k" and s["subset"] == "main" for s in samples)


def test_schema_v1_report_of_older_evalscope_pools_subsets_in_percent():
    (row,) = read_eval_scores(V1)
    assert (row.dataset, row.subset, row.metric, row.score, row.samples, row.unit) == \
        ("aime25", "OVERALL", "mean_acc", 93.34, 30, "%")
    assert row.subsets == (SubsetScoreRow(subset="AIME2025-I", score=86.67, samples=15),
                           SubsetScoreRow(subset="AIME2025-II", score=100.0, samples=15))


def test_primary_metric_first_diagnostics_dropped_non_ratio_kept_raw():
    quality = {"kind": "quality", "display_kind": "number", "display_unit": "pts",
               "value_range": {"min": 0, "max": 10}}
    report = {
        "dataset_name": "mt_bench",
        "primary_metric_identity": {"name": "rating", "aggregation": "mean", "dimensions": {}},
        "metrics": [
            {"identity": {"name": "pass", "aggregation": "mean", "dimensions": {"k": 4}}, "num": 8, "score": 0.5,
             "semantics": {"kind": "quality", "display_kind": "percent", "display_multiplier": 100.0}},
            {"identity": {"name": "tokens", "aggregation": "mean", "dimensions": {}}, "num": 8, "score": 321.0,
             "semantics": {"kind": "diagnostic", "display_kind": "number"}},
            {"identity": {"name": "rating", "aggregation": "mean", "dimensions": {}}, "num": 8, "score": 7.25,
             "semantics": quality},
        ],
    }
    rows = report_scores(report)
    assert [(r.metric, r.score, r.unit) for r in rows] == [("rating", 7.25, "pts"), ("pass:mean[k=4]", 50.0, "%")]


def test_aggregate_subsets_are_not_counted_and_unreadable_reports_are_skipped(tmp_path: Path):
    work = tmp_path / "w"
    shutil.copytree(V114, work)
    (work / "reports" / "demo" / "broken.json").write_text("{not json")
    report = json.loads((work / "reports" / "demo" / "gsm8k.json").read_text())
    report["metrics"][0]["categories"][0]["subsets"].append(
        {"name": "OVERALL", "score": 0.6, "num": 5, "is_aggregate": True})
    (work / "reports" / "demo" / "gsm8k.json").write_text(json.dumps(report))
    (row,) = read_eval_scores(work)
    assert row.subsets == (SubsetScoreRow(subset="main", score=60.0, samples=5),) and row.samples == 5
    assert read_eval_scores(tmp_path / "missing") == []


def test_prediction_tail_counts_only_complete_lines_and_reads_each_once(tmp_path: Path):
    lines = (V114 / "predictions" / "demo" / "gsm8k_main.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 5
    out = tmp_path / "predictions" / "demo" / "gsm8k_main.jsonl"
    out.parent.mkdir(parents=True)
    tail = PredictionTail(tmp_path / "predictions")
    tail.poll()
    assert tail.done == 0
    out.write_bytes(lines[0] + lines[1] + lines[2][:40])  # the third is still being written
    tail.poll()
    assert (tail.done, tail.failed) == (2, 0)
    with out.open("ab") as f:
        f.write(lines[2][40:] + lines[3] + lines[4])
    tail.poll()
    tail.poll()
    expected_tokens = sum(json.loads(x)["model_output"]["usage"]["output_tokens"] for x in lines)
    assert (tail.done, tail.failed, tail.output_tokens) == (5, 0, expected_tokens)


def test_prediction_tail_counts_samples_the_endpoint_failed(tmp_path: Path):
    rec = json.loads((V114 / "predictions" / "demo" / "gsm8k_main.jsonl").read_text().splitlines()[0])
    rec["model_output"]["error"] = "Error code: 400 - context too long"
    out = tmp_path / "predictions" / "demo" / "gsm8k_main.jsonl"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(rec) + "\n")
    tail = PredictionTail(tmp_path / "predictions")
    tail.poll()
    assert (tail.done, tail.failed) == (1, 1)


def test_task_config_is_evalscope_service_eval_of_the_spec(tmp_path: Path):
    spec = EvalSpec.from_wire({
        "url": "http://10.0.0.5:8000/v1/chat/completions", "model": "DeepSeek-V3.2", "api_key": "k",
        "datasets": ["aime25"], "dataset_args": {"aime25": {"local_path": "/data/aime25", "few_shot_num": 0}},
        "generation_config": {"max_tokens": 56000, "temperature": 0.6,
                              "extra_body": {"chat_template_kwargs": {"thinking": True}}},
        "eval_batch_size": 16, "stream": True, "timeout_s": 6000, "limit": 5,
    })
    cfg = task_config(spec, tmp_path / "w")
    assert cfg == {
        "model": "DeepSeek-V3.2", "api_url": "http://10.0.0.5:8000/v1", "api_key": "k", "eval_type": "openai_api",
        "datasets": ["aime25"], "dataset_args": {"aime25": {"local_path": "/data/aime25", "few_shot_num": 0}},
        "generation_config": {"max_tokens": 56000, "temperature": 0.6, "stream": True, "timeout": 6000,
                              "extra_body": {"chat_template_kwargs": {"thinking": True}}},
        "eval_batch_size": 16, "work_dir": str(tmp_path / "w"), "no_timestamp": True, "ignore_errors": False,
        "limit": 5,
    }
    cfg["dataset_args"]["aime25"]["few_shot_num"] = 3  # a copy: the frozen spec is not touched
    assert spec.args("aime25").few_shot_num == 0
    bare = task_config(EvalSpec.from_wire({"url": "http://h:1/v1", "model": "m", "datasets": ["gsm8k"],
                                           "dataset_args": {"gsm8k": {"local_path": "/d"}}}), tmp_path)
    assert bare["generation_config"] == {"temperature": 0.0} and bare["api_key"] == "EMPTY"


def test_scores_file_reads_back_as_the_wire_rows_the_controller_gets(tmp_path: Path):
    """scores.json is jobs_schema.ScoreRow's JSON (one declaration): read back as agent/jobs.py reads it, a NaN
    score (a report without one) included."""
    rows = [*read_eval_scores(V114), ScoreRow(dataset="x", subset="OVERALL", metric="m", score=math.nan, samples=0)]
    write_results(tmp_path, V114, rows)
    back = [ScoreRow.model_validate(s) for s in json.loads((tmp_path / SCORES_FILE).read_text())]
    assert back[0] == rows[0] and math.isnan(back[1].score) and back[1].subset == "OVERALL"
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 5
