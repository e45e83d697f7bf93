"""The figure catalogue (fleetbench/figure_catalog.py): one table that names, labels, formats and defines every
figure, read by plan validation, the reports and compare."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from fleetbench.figure_catalog import FIGURES, METRICS, PERCENTILE_SETS, boundable, figure, format_value
from fleetbench.figures import DEFINITIONS, PERCENTILE_METRICS, Figures
from fleetbench.plan_schema import figure_names


def test_every_stored_figure_and_percentile_metric_is_catalogued():
    stored = {f.name for f in fields(Figures)} - {"percentiles"}
    assert stored <= set(FIGURES), stored - set(FIGURES)
    assert set(METRICS) == set(PERCENTILE_METRICS)
    for f in (*FIGURES.values(), *METRICS.values()):
        assert f.en and f.zh, f.name
        assert not f.definition or f.definition in DEFINITIONS, f.name


def test_format_for_people():
    assert FIGURES["tpot_avg_s"].format(0.02007) == "20.07 ms"  # visible against a 20 ms limit
    assert FIGURES["ttft_avg_s"].format(1.7905) == "1,790.50 ms"
    assert FIGURES["tpm_total"].format(1_366_560.4) == "1,366,560 tok/min"
    assert FIGURES["latency_avg_s"].format(22.3776) == "22.378 s"
    assert FIGURES["success_rate"].format(0.995) == "99.5%"
    assert FIGURES["requests"].format(512) == "512"
    assert FIGURES["tpot_avg_s"].format(math.nan) == "n/a"
    assert FIGURES["tpot_avg_s"].threshold(0.020) == "20 ms"
    assert FIGURES["tpm_total"].threshold(1_000_000) == "1,000,000 tok/min"
    assert FIGURES["tpot_avg_s"].number(0.02007) == "20.07"  # a table cell: the unit is in the header
    assert format_value("score:gsm8k", 60.0) == "60"


def test_labels_carry_the_shown_unit_in_both_languages():
    assert FIGURES["tpot_avg_s"].label("en") == "Average time per output token (ms)"
    assert FIGURES["tpot_avg_s"].label("zh") == "平均每 token 延迟 Avg TPOT (ms)"
    assert FIGURES["tpot_avg_s"].label("en", stored=True) == "Average time per output token (s)"
    assert FIGURES["succeeded"].label("en") == "Successful requests"
    assert FIGURES["tpm_total"].unit == "tok/min"
    with pytest.raises(ValueError, match="unknown report language"):
        FIGURES["tpm_total"].label("fr")


def test_percentile_figures_are_derived_from_their_metric():
    p99 = figure("ttft_p99_s")
    assert p99.format(1.5) == "1,500.00 ms" and p99.label("en") == "TTFT p99 (ms)" and p99.boundable
    assert figure("output_tps_p50").unit == "tok/s" and not figure("output_tps_p50").boundable
    assert figure("ttft_p0_s").label("en") == "TTFT min (ms)"
    with pytest.raises(KeyError):
        figure("ttft_avg")
    assert 0 in PERCENTILE_SETS["evalscope-1.14"] and 100 in PERCENTILE_SETS["evalscope-1.14"]


def test_plan_validation_reads_the_catalogue():
    names = figure_names()
    assert set(names) == set(boundable())
    assert "ttft_p99_s" in names and "tpm_total" in names
    assert "concurrency" not in names and "window_start" not in names  # not measured figures
    assert names["tpm_total"] == FIGURES["tpm_total"].describe


def test_the_json_report_carries_the_catalogue(sample_report):
    from fleetbench.controller.report.json_report import report_document
    doc = report_document(sample_report)
    assert doc["figures"]["tpot_avg_s"] == {"unit": "s", "shown_unit": "ms", "definition": "tpot",
                                            "label": {"en": "Average time per output token",
                                                      "zh": "平均每 token 延迟 Avg TPOT"}}
    stored = set(doc["cases"][0]["cluster"]) - {"percentiles"}
    assert stored <= set(doc["figures"])  # every figure in the document has its unit there
