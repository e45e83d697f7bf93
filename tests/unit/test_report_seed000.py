"""The report read section by section against seed 000's hand-written report (issue 16, items 10-17): each
test reads the rendered Markdown or HTML of the sample run (tests/support/report_sample.py)."""

from __future__ import annotations

import re

import pytest
from support.report_sample import sample_report

from fleetbench.controller.report import content as c
from fleetbench.controller.report.markdown import render_markdown
from fleetbench.controller.report.model import people
from fleetbench.controller.verdict import threshold_text


@pytest.fixture(scope="module")
def report():
    return sample_report()


@pytest.fixture(scope="module")
def md(report):
    return render_markdown(report, "en")


@pytest.fixture(scope="module")
def zh(report):
    return render_markdown(report, "zh")


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


# --- item 10: seed 000's summary rows; thresholds and values for people; an accuracy threshold's effective value

def test_summary_has_seed_000_rows_in_its_order(md):
    perf = _section(md, "### 2.1 Case `perf-6k-1k`", "### 2.2")
    rows = [line.split(" | ")[0].lstrip("| ") for line in perf.splitlines() if line.startswith("| ")]
    summary = rows[rows.index("Key") + 2:rows.index("Key") + 8]
    assert summary == ["Time taken for tests (s)", "Number of concurrency", "Request rate (req/s)",
                       "Total requests", "Successful requests", "Failed requests"]
    assert "| Number of concurrency | 4 | 4 | 8 (4 × 2 nodes) |" in perf
    assert "| Request rate (req/s) | -1 (no limit) | -1 (no limit) | -1 (no limit) |" in perf
    assert "Succeed requests" not in md


def test_thresholds_and_measured_values_are_formatted_for_people(md, zh):
    perf = _section(md, "### 2.1 Case `perf-6k-1k`", "### 2.2")
    assert "tpot_avg_s ≤ 20 ms" in perf and "tpm_total ≥ 100,000 tok/min" in perf
    assert "| n1 | tpot_avg_s | ≤ | 20 ms | 20.93 ms | FAIL |" in perf
    assert "tpot_avg_s — measured 20.93 ms, expected ≤ 20 ms" in perf
    assert "1e+" not in md and "0.020 " not in md and "900.0 ms" not in md
    # an accuracy threshold shows the value it is judged against, official − tolerance, in both languages
    ev = _section(md, "### 2.3 Case `gsm8k`", "### 2.4")
    assert "score of gsm8k ≥ 59.5 (official 60 − tolerance 0.5)" in ev
    assert "| cluster | score:gsm8k | ≥ | 59.5 (official 60 − tolerance 0.5) | 40 | FAIL |" in ev
    assert "预期 ≥ 59.5（官方分数 60 − 允许偏差 0.5）" in zh and "official" not in _section(zh, "## 3.", "## 4.")


def test_stored_threshold_strings_are_reformatted():
    """Stores written before the catalogue hold "<= 0.02" or "<= 20.0 ms": both read "≤ 20 ms"."""
    assert people("<= 0.02", "tpot_avg_s", threshold=True) == "≤ 20 ms"
    assert people("<= 20.0 ms", "tpot_avg_s", threshold=True) == "≤ 20 ms"
    assert people(">= 1000000", "tpm_total", threshold=True) == "≥ 1,000,000 tok/min"
    assert people("0.020934", "tpot_avg_s") == "20.93 ms"
    assert people("saturated", "load_generator") == "saturated"
    assert threshold_text("score:gsm8k", "official", 60.0, 0.5) == "≥ 59.5 (official 60 − 0.5)"
    assert threshold_text("tpot_avg_s", "max", 0.02) == "≤ 20 ms"


# --- item 12: the body keeps the cluster table and a p50/p99 row per node; full per-node tables in the appendix

def test_per_node_percentile_tables_move_to_the_appendix(md, report):
    perf = _section(md, "### 2.1 Case `perf-6k-1k`", "### 2.2")
    assert perf.count("| Percentile |") == 1  # the cluster's only
    n2 = report.cases[0].node_figures["n2"]
    p50, p99 = n2.percentiles["ttft_s"][50], n2.percentiles["ttft_s"][99]
    assert f"| n2 | {p50 * 1000:,.2f} | {p99 * 1000:,.2f} |" in perf
    appendix = md[md.index("## 6. Appendix: per-node percentiles"):]
    assert "### `perf-6k-1k`: percentiles of node n2" in appendix
    assert appendix.count("| Percentile |") == 2  # n1 and n2 of perf-6k-1k (perf-extra-args: none succeeded)


# --- item 13: latency figures in ms with two decimals where evalscope 1.14 prints ms

def test_ttft_tpot_itl_in_ms_with_two_decimals(md, report):
    cl = report.cases[0].cluster
    assert f"| Average time per output token (ms) | 20.93 | 26.22 | {cl.tpot_avg_s * 1000:.2f} |" in md
    assert "| Percentile | TTFT (ms) | ITL (ms) | TPOT (ms) | Latency (s) |" in md
    assert re.search(r"\| 99% \| 1,301\.50 \| 31\.94 \| 29\.04 \|", md)


# --- item 14: sweeps

def test_sweep_best_cluster_tpm_comes_from_loop_averages(md, report):
    sweep = report.cases[1]
    averages = [a for a in sweep.sweep_averages if a.scope == "cluster"]
    best = max(averages, key=lambda a: a.tpm_total)
    best_loop = max((r for r in sweep.sweep if r.scope == "cluster"), key=lambda r: r.figures.tpm_total)
    assert best_loop.figures.tpm_total > best.tpm_total  # a lucky loop is not the headline
    concl = _section(md, "## 3. Conclusion", "## 4.")
    assert f"averaged over 2 loop(s): **{best.tpm_total:,.0f}** tok/min at input 128, output 512, " \
           f"concurrency 4 (2 × 2 nodes)" in concl
    # traceable: the loop-average row of the cluster table carries that TPM in its last column
    table = _section(md, "**Sweep — cluster**", "**Sweep — n1**")
    assert "| **128** | **512** | **4 (2 × 2 nodes)** | **avg of 2** |" in table
    assert table.splitlines()[2].endswith("| TPM total (tok/min) |")
    assert f"**{best.tpm_total:,.0f}** |" in table


# --- item 11: seed 000's hardware table; the drift sentence and every value in the zh report's language

def test_hardware_table_as_seed_000(md, zh):
    hw = _section(md, "**Hardware**", "**Software**")
    assert "| Hardware | Configuration | Count |" in hw
    assert "| CPU | INTEL(R) XEON(R) PLATINUM 8558 (96 cores, 192 threads per machine) | 2 |" in hw
    assert "| Memory | 32 × 64 GB DDR5 (2.0 TiB in all) | 32 |" in hw
    assert "| Accelerators | NVIDIA H200 143,771 MiB | 8 |" in hw
    assert "8 × InfiniBand 400 Gb/s (mlx5_0, " in hw and "2 × Ethernet 25 Gb/s (eth0, eth1)" in hw
    assert "| Machines | n1, n2 | 2 |" in hw
    zh_hw = _section(zh, "**硬件配置**", "**软件配置**")
    assert "| 硬件名称 | 配置信息 | 数量 |" in zh_hw and "| 上述机器数量 | n1, n2 | 2 |" in zh_hw
    assert "（每台 96 核，192 线程）" in zh_hw and "（共 2.0 TiB）" in zh_hw


def test_drift_sentence_is_translated(md, zh):
    assert "drift: none — n1, n2 agree on accelerator model" in md
    drift = _section(zh, "**一致性检查**", "## 2.")
    assert "一致性检查：无差异 — n1, n2 的加速卡型号" in drift
    assert not re.search(r"[A-Za-z]{4,}", drift.replace("NVLink", "").replace("CUDA/CANN/DTK", "")
                         .replace("ECC", "").replace("MIG", "")), drift


def test_drift_findings_are_translated(report):
    from dataclasses import replace

    from fleetbench.controller.drift import DriftFinding
    drifted = replace(report, drift_findings=[DriftFinding("n2", "driver_version", "570.1", "580.159.04", "x")])
    assert c.drift_lines(drifted, "zh") == ["一致性检查：2 个节点中发现 1 处差异：",
                                            "  - n2：驱动版本为 570.1，与多数节点（580.159.04）不同"]


# --- item 17: the demo plan's case purposes speak the operator's language

def test_demo_case_purposes_say_what_is_verified():
    import yaml

    from fleetbench.controller.demo import DEMO_PLAN
    plan = yaml.safe_load(DEMO_PLAN.format(tokenizer="/models/demo", gsm8k="/data/gsm8k"))
    for case in plan["cases"]:
        purpose = case["purpose"]
        assert not re.search(r"seed|simulat|\(the .* table\)", purpose, re.IGNORECASE), purpose
        assert purpose.split()[0] in ("Verify", "Measure"), purpose


# --- item 16: print without an orphaned caption or heading; the zh HTML names CJK fonts; docs name the package

def test_print_keeps_every_caption_with_what_it_introduces(report):
    from fleetbench.controller.report.html import CSS, render_html
    page = render_html(report, "en")
    # a heading or caption and what it introduces are joined in a keep block; never two loose elements
    assert not re.search(r"</(h[2-4]|p)>\n<(table|pre|div class=\"charts\")", page)
    assert page.count('<div class="keep">') >= 30
    assert '<div class="keep"><h4>Equivalent command (per node)</h4><pre>' in page
    printed = CSS[CSS.index("@media print"):]
    assert ".keep { break-inside: avoid;" in printed and "h2, h3, h4, p.caption { break-after: avoid;" in printed


def test_zh_html_names_a_cjk_font_and_docs_the_package(report):
    from pathlib import Path

    from fleetbench.controller.report.html import render_html
    zh_page = render_html(report, "zh")
    assert '<html lang="zh-CN">' in zh_page
    assert re.search(r'html:lang\(zh-CN\) body \{ font-family: "Noto Sans CJK SC"', zh_page)
    docs = (Path(__file__).parents[2] / "docs" / "report.md").read_text()
    assert "apt-get install fonts-noto-cjk" in docs and "google-noto-sans-cjk-ttc-fonts" in docs


# --- item 14: the equivalent command names each node's endpoint, never n1's for all

def test_equivalent_command_per_node(report):
    from dataclasses import replace

    from fleetbench.controller.report.model import node_command
    same = node_command(report.plan, "perf-6k-1k", {"n1": "http://127.0.0.1:8000/v1/completions",
                                                    "n2": "http://127.0.0.1:8000/v1/completions"})
    assert "--url http://127.0.0.1:8000/v1/completions" in same and "#" not in same
    endpoints = {"n1": "http://10.0.0.11:8000/v1/completions", "n2": "http://10.0.0.12:8000/v1/completions"}
    cmd = node_command(report.plan, "perf-6k-1k", endpoints)
    assert cmd.splitlines()[:2] == ["# n1: ENDPOINT=http://10.0.0.11:8000/v1/completions",
                                    "# n2: ENDPOINT=http://10.0.0.12:8000/v1/completions"]
    assert "--url $ENDPOINT " in cmd and "10.0.0.11:8000/v1/completions --api" not in cmd
    ev = node_command(report.plan, "gsm8k", endpoints)
    assert "# n2: API_URL=http://10.0.0.12:8000/v1" in ev and "--api-url $API_URL " in ev
    cases = [replace(k, command=node_command(report.plan, k.case_id, endpoints)) if k.case_id == "perf-6k-1k"
             else k for k in report.cases]
    page = render_markdown(replace(report, cases=cases), "en")
    block = _section(page, "Equivalent command (per node):", "#### Results")
    assert "# n2: ENDPOINT=http://10.0.0.12:8000/v1/completions" in block and "--url $ENDPOINT" in block


# --- item 15: charts — SLO lines, one bar order, no label collisions, a legend off the data

def _charts(page: str) -> dict[str, str]:
    return {re.search(r"<title>(.*?)</title>", svg).group(1): svg
            for svg in re.findall(r'<svg class="chart".*?</svg>', page, flags=re.S)}


def _plot_top(svg: str) -> float:
    """The y of the plot's top gridline (the frame draws six, bottom to top)."""
    return min(float(y) for y in re.findall(r'<line x1="\d+" y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" '
                                            r'stroke="#e3e6e8"', svg))


def test_slo_threshold_lines_on_ttft_and_tpot_charts(report):
    from fleetbench.controller.report.html import render_html
    charts = _charts(render_html(report, "en"))
    tpot = charts["perf-6k-1k: TPOT percentiles per node"]
    ttft = charts["perf-6k-1k: TTFT percentiles per node"]
    assert "SLO tpot_avg_s ≤ 20 ms" in tpot and "SLO ttft_avg_s ≤ 900 ms" in ttft
    # the TPOT chart is in ms: its dashed line sits at 20 on an axis that reaches at least 20
    line = re.search(r'<line class="reference" x1="\d+" y1="([\d.]+)"', tpot)
    assert line is not None and ">ms</text>" in tpot
    top, bottom = _plot_top(tpot), max(float(y) for y in re.findall(r'y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" '
                                                                    r'stroke="#e3e6e8"', tpot))
    ymax = float(re.findall(r'text-anchor="end" font-size="11">([\d,.]+)</text>', tpot)[-1].replace(",", ""))
    assert abs((bottom - float(line.group(1))) / (bottom - top) * ymax - 20.0) < 0.01


def test_one_bar_order_no_label_collisions_and_legends_off_the_data(report):
    from fleetbench.controller.report.html import render_html
    for lang in ("en", "zh"):
        charts = _charts(render_html(report, lang))
        cluster = "cluster" if lang == "en" else "集群"
        for title, svg in charts.items():
            if "<rect" in svg and "percentiles" not in title:  # bar charts: nodes in order, then the cluster
                names = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle" font-size="11">([^<]+)</text>',
                                   svg)
                bars = [n for n in names if n in ("n1", "n2", cluster)]
                assert bars == sorted(bars, key=lambda n: (n == cluster, n)), (title, bars)
            top = _plot_top(svg)
            for y in re.findall(r'<line class="legend" x1="[\d.]+" y1="([\d.]+)"', svg):
                assert float(y) + 6 < top, (title, "legend over the plot")
            # a reference line is named in the legend only: no label of it on the plot beside a bar's value
            assert 'fill="#c5221f"' not in svg, title
            # tick labels stay short, so they never reach the rotated axis title at x=14
            ticks = re.findall(r'text-anchor="end" font-size="11">([^<]+)</text>', svg)
            assert ticks and max(len(x) for x in ticks) <= 6, (title, ticks)
    tpm = _charts(render_html(report, "en"))["perf-6k-1k: TPM (total) per node and cluster"]
    assert ">200k</text>" in tpm and ">200,000</text>" not in tpm


def test_sweep_chart_labels_concurrency_per_node(report):
    from fleetbench.controller.report.html import render_html
    charts = _charts(render_html(report, "en"))
    assert any("concurrency per node (× 2 nodes)" in svg for title, svg in charts.items() if "sweep-128" in title)


def test_zh_check_values_and_job_errors_are_translated(zh):
    assert "| n1 | 节点结果 | 完成 16 个请求 | ≥ 1 | 通过 |  |" in zh
    assert "| n2 | 压测客户端未饱和 | 饱和 | 未饱和 | 未通过（无效） |" in zh
    assert "有结果的节点数 | 1 / 2 个节点 | 2 / 2 |" in zh
    assert "**错误**：任务失败：connection refused: n2" in zh  # the error line itself stays as the agent said
    for english in ("requests completed", "| saturated |", " of 2 nodes", "job failed"):
        assert english not in zh, english


# --- item 13: the percentile set offers evalscope 1.14's (min, 1, 5, 10, 25, 50, 75, 90, 95, 99, max)

PCT_PLAN = """\
name: p
model: m
endpoint: {url: http://127.0.0.1:8000/v1/completions}
tokenizer: /t
percentiles: evalscope-1.14
cases:
  - id: a
    parallel: 4
    number: 8
    input_tokens: 128
    output_tokens: 16
    expect:
      ttft_p5_s: {max: 2.0}
"""


def test_the_plan_chooses_evalscope_1_14_percentiles(tmp_path):
    from support.report_sample import records

    from fleetbench.controller.aggregate import aggregate_case
    from fleetbench.controller.plan import load_plan
    from fleetbench.controller.report.content import percentile_table
    from fleetbench.errors import ConfigError
    path = tmp_path / "plan.yaml"
    path.write_text(PCT_PLAN)
    plan = load_plan(path)
    assert plan.percentiles == (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100)
    recs = records(100, 1000.0, 4, 0.1, 0.02, 128, 16)
    cluster = aggregate_case({"n1": recs}, plan.percentiles).cluster
    tab = percentile_table(cluster, "en")
    assert [r[0] for r in tab.rows] == ["min", "1%", "5%", "10%", "25%", "50%", "75%", "90%", "95%", "99%", "max"]
    ttft = sorted(r.ttft_s for r in recs)
    assert tab.rows[0][1] == f"{ttft[0] * 1000:,.2f}" and tab.rows[-1][1] == f"{ttft[-1] * 1000:,.2f}"
    assert tab.rows[2][1] == f"{ttft[4] * 1000:,.2f}"  # nearest rank: ceil(5% × 100) = the 5th sample
    assert cluster.value("ttft_p5_s") == ttft[4]
    # a bound percentile the chosen set does not compute is a plan error, never an unmeasured FAIL
    path.write_text(PCT_PLAN.replace("ttft_p5_s", "ttft_p66_s"))
    with pytest.raises(ConfigError, match=r"ttft_p66_s is not in the evalscope-1.14 percentile set"):
        load_plan(path)
    path.write_text(PCT_PLAN.replace("percentiles: evalscope-1.14\n", ""))
    with pytest.raises(ConfigError, match=r"ttft_p5_s is not in the legacy percentile set"):
        load_plan(path)
