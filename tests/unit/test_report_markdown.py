"""The Markdown report of a fixed run (tests/support/report_sample.py, the `sample_report` fixture), compared
with the files under tests/golden/. After an intended change, regenerate them and review the diff:

    FLEETBENCH_REGEN_GOLDEN=1 .venv/bin/pytest -q tests/unit/test_report_markdown.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fleetbench.controller.report.markdown import render_markdown

GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.fixture
def shanghai_time(monkeypatch):
    """Report times are local; the golden files are in UTC+08:00."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_markdown_matches_golden(lang, shanghai_time, sample_report):
    text = render_markdown(sample_report, lang)
    path = GOLDEN / f"report-sample.{lang}.md"
    if os.environ.get("FLEETBENCH_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}; see this file's docstring"


def test_markdown_shows_sweep_eval_and_conclusion_values(shanghai_time, sample_report):
    report = sample_report
    md = render_markdown(report, "en")
    sweep = report.cases[1]
    avg = next(a for a in sweep.sweep_averages if a.scope == "cluster" and a.parallel == 2)
    # the loop-average row: bold, with the model's values; the cluster's concurrency per node × nodes
    assert f"| **128** | **512** | **4 (2 × 2 nodes)** | **avg of 2** | **{avg.latency_avg_s:.3f}** | " \
           f"**{avg.output_throughput_tps:.2f}** |" in md
    # the cluster's samples: 5 questions counted once, answered by each of the 2 nodes it pools
    assert "| cluster | gsm8k | mean_acc | 5 questions × 2 nodes (n1, n2) | 40.00 | 60.00 | 0.5 | -20.00 | FAIL |" in md
    perf = report.cases[0]
    c = perf.cluster
    assert f"({c.input_tokens:,} + {c.output_tokens:,}) / {c.wall_time_s:.3f} s × 60 = **{c.tpm_total:,.0f}**" in md
    assert "stragglers (output throughput > 10% below the fleet median): n2." in md
    assert "Overall verdict: **ERROR**" in md
    # the accuracy threshold by its effective value (official − tolerance)
    assert "- **FAIL** `gsm8k` cluster: score:gsm8k — measured 40, expected ≥ 59.5 (official 60 − tolerance 0.5)" \
        in md
    assert "(times in UTC+08:00)" in md
    zh = render_markdown(report, "zh")
    for heading in ("## 1. 基本信息", "### 1.2 测试环境", "**硬件配置**", "**软件配置**", "## 2. 测试用例",
                    "## 3. 结论", "## 4. 指标定义", "## 5. 附录"):
        assert heading in zh
    assert "| 上述机器数量 |" in zh.replace(" | 节点 |", " |") or "上述机器数量" in zh
