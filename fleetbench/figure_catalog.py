"""The figure catalogue: every figure's name, unit, display format, label (en/zh) and definition, in one table.

Plan validation (the names an `expect` block may bound, its did-you-mean), the reports (Markdown, HTML, XLSX,
JSON), `ctl compare` and `ctl show` all read this table, so a figure is named, labelled and formatted the same
everywhere. The *calculation* lives in fleetbench/figures.py; `definition` is a key of its DEFINITIONS.

    FIGURES["tpot_avg_s"].format(0.02007)      -> "20.07 ms"
    FIGURES["tpm_total"].format(1_366_560)     -> "1,366,560 tok/min"
    FIGURES["tpot_avg_s"].label("zh")          -> "平均每 token 延迟 Avg TPOT (ms)"
    figure("ttft_p99_s").number(1.5)           -> "1,500.00" (a table cell: the unit is in the header)

Times that evalscope 1.14 prints in ms (TTFT, TPOT, ITL) are shown in ms with two decimals, so 20.07 ms is
visible against a 20 ms limit; latency and wall time stay in seconds, as evalscope prints them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .figures import DEFINITIONS
from .goodput import FIGURES as GOODPUT

LANGS = ("en", "zh")
# The percentile sets a report can show: the older evalscope table (seed 000) and evalscope 1.14's, whose
# 0 and 100 are its "min" and "max" rows.
PERCENTILE_SETS: dict[str, tuple[int, ...]] = {
    "legacy": (10, 25, 50, 66, 75, 80, 90, 95, 98, 99),
    "evalscope-1.14": (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100),
}
# The percentiles a plan's `expect` may bound: either set's, min and max aside (plan validation checks that a
# bound percentile is in the set the plan chose, so it is always measured).
BOUND_PERCENTILES: tuple[int, ...] = tuple(sorted({p for ps in PERCENTILE_SETS.values() for p in ps} - {0, 100}))


@dataclass(frozen=True)
class Figure:
    """One figure: how it is named, stored, shown and defined."""

    name: str  # as stored and as a plan names it: ttft_avg_s, tpm_total, ttft_p99_s
    unit: str  # the stored value's unit: s, tok/s, tok/min, req/s, requests, tokens, ratio, Unix s, streams
    en: str  # label without the unit
    zh: str
    show_unit: str = ""  # the unit shown to people (ms for a time in s); "" = `unit`
    scale: float = 1.0  # shown = stored × scale
    decimals: int = 2
    definition: str = ""  # key of fleetbench.figures.DEFINITIONS; "" when the label says it all
    describe: str = ""  # one line for the plan schema and `ctl plan check`
    boundable: bool = True  # a plan's `expect` may name it
    group: str = "fig"  # the i18n key's group: fig (a figure), pct (a percentile table's column)

    @property
    def display_unit(self) -> str:
        return self.show_unit or self.unit

    @property
    def key(self) -> str:
        """The i18n key of the label (controller/report/i18n.py's TEXT holds it, generated from here)."""
        return f"{self.group}.{self.name}"

    def label(self, lang: str = "en", unit: bool = True, stored: bool = False) -> str:
        """The label in `lang` with its unit in brackets (a table header), e.g. "Avg TPOT (ms)"; `stored`: the
        stored value's unit (a spreadsheet holds the store's numbers, TPOT in s)."""
        if lang not in LANGS:
            raise ValueError(f"unknown report language {lang!r}; use one of {', '.join(LANGS)}")
        text = self.zh if lang == "zh" else self.en
        shown = self.unit if stored else self.display_unit
        if unit and shown and shown not in ("requests", "tokens", "streams"):
            text += f" ({'0-1' if shown == 'ratio' else shown})"
        return text

    def number(self, value: float | int | None, na: str = "n/a") -> str:
        """The value as a table cell (its unit is in the header): thousands separated, fixed decimals."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return na
        if self.unit == "ratio":
            return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
        if self.unit == "Unix s":
            return f"{value:.3f}"
        return f"{value * self.scale:,.{self.decimals}f}"

    def format(self, value: float | int | None, na: str = "n/a") -> str:
        """The value for people, with its unit: "20.07 ms", "1,366,560 tok/min", "99.5%", "512"."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return na
        if self.unit == "ratio":
            pct = f"{value * 100:.2f}".rstrip("0").rstrip(".")
            return f"{pct}%"
        text = self.number(value, na)
        shown = self.display_unit
        return text if shown in ("requests", "tokens", "streams", "") else f"{text} {shown}"

    def threshold(self, value: float | int | None, na: str = "n/a") -> str:
        """A limit as a plan states it, for people: "20 ms", "1,000,000 tok/min", "100%" (no padding zeros)."""
        text = self.format(value, na)
        if text == na or self.unit in ("ratio", "Unix s"):
            return text
        num, sep, unit = text.partition(" ")
        if "." in num:
            num = num.rstrip("0").rstrip(".")
        return num + sep + unit

    def definition_text(self, lang: str = "en") -> str:
        """The figure's definition sentence (fleetbench.figures.DEFINITIONS); "" when it has none."""
        if not self.definition:
            return ""
        if lang == "zh":
            return DEFINITIONS_ZH.get(self.definition, DEFINITIONS[self.definition])
        return DEFINITIONS[self.definition]


def _ms(name: str, en: str, zh: str, definition: str, describe: str) -> Figure:
    return Figure(name, "s", en, zh, show_unit="ms", scale=1000.0, decimals=2, definition=definition,
                  describe=describe)


_TABLE: tuple[Figure, ...] = (
    # evalscope's "Benchmarking summary", in its order (seed 000), then TPM
    Figure("wall_time_s", "s", "Time taken for tests", "测试耗时", decimals=3, definition="wall_time",
           describe="latest request end - earliest request start, seconds"),
    Figure("concurrency", "streams", "Number of concurrency", "并发数", decimals=0, boundable=False,
           describe="concurrent streams: the plan's parallel on a node, parallel × nodes for the cluster"),
    Figure("request_rate", "req/s", "Request rate", "请求速率", decimals=2, boundable=False,
           describe="the plan's request rate per node (-1: no limit, every stream sends at once)"),
    Figure("requests", "requests", "Total requests", "总请求数", decimals=0, describe="requests sent"),
    Figure("succeeded", "requests", "Successful requests", "成功请求数", decimals=0,
           describe="requests that succeeded"),
    Figure("failed", "requests", "Failed requests", "失败请求数", decimals=0, describe="requests that failed"),
    Figure("output_throughput_tps", "tok/s", "Output token throughput", "输出吞吐 Output token throughput",
           definition="output_throughput", describe="output tokens of successful requests / wall time, tokens/s"),
    Figure("total_throughput_tps", "tok/s", "Total token throughput", "总吞吐 Total token throughput",
           definition="total_throughput",
           describe="input + output tokens of successful requests / wall time, tokens/s"),
    Figure("request_throughput_rps", "req/s", "Request throughput", "请求吞吐", decimals=4,
           definition="request_throughput", describe="successful requests / wall time, requests/s"),
    Figure("tpm_total", "tok/min", "TPM total", "TPM 总计", decimals=0, definition="tpm",
           describe="tokens per minute: total throughput × 60"),
    Figure("tpm_output", "tok/min", "TPM output", "TPM 输出", decimals=0, definition="tpm",
           describe="output tokens per minute: output throughput × 60"),
    Figure("latency_avg_s", "s", "Average latency", "平均端到端时延 Avg latency", decimals=3, definition="latency",
           describe="end-to-end request latency, average, seconds"),
    _ms("ttft_avg_s", "Average time to first token", "平均首 token 时延 Avg TTFT", "ttft",
        "time to first token, average, seconds"),
    _ms("tpot_avg_s", "Average time per output token", "平均每 token 延迟 Avg TPOT", "tpot",
        "time per output token, average, seconds"),
    _ms("itl_avg_s", "Average inter-token latency", "平均 token 间隔 Avg ITL", "itl",
        "inter-token latency, average, seconds"),
    Figure("input_tokens_avg", "tokens", "Average input tokens per request", "平均输入 token 数", decimals=1,
           describe="input tokens per request, average"),
    Figure("output_tokens_avg", "tokens", "Average output tokens per request", "平均输出 token 数", decimals=1,
           describe="output tokens per request, average"),
    # the rest of a Figures record
    Figure("success_rate", "ratio", "Success rate", "成功率", definition="success_rate",
           describe="successful requests / all requests (0 to 1)"),
    Figure("input_tokens", "tokens", "Input tokens (sum)", "输入 token 总数", decimals=0, boundable=False),
    Figure("output_tokens", "tokens", "Output tokens (sum)", "输出 token 总数", decimals=0, boundable=False),
    Figure("window_start", "Unix s", "Window start", "窗口开始", boundable=False),
    Figure("window_end", "Unix s", "Window end", "窗口结束", boundable=False),
    # derived by the report: the seed-002 sweep columns and the cluster's extras
    Figure("avg_tps", "tok/s", "Avg TPS", "单个请求每秒生成 token 数 Avg TPS", boundable=False,
           describe="1 / average TPOT: the tokens per second one stream sees while decoding"),
    Figure("per_request_tps", "tok/s", "Per-request throughput", "平均单路吞吐", boundable=False,
           describe="output throughput / concurrency"),
    Figure("sum_node_tpm_total", "tok/min", "Σ per-node TPM total", "各节点 TPM 之和（总计）", decimals=0,
           boundable=False),
    Figure("sum_node_tpm_output", "tok/min", "Σ per-node TPM output", "各节点 TPM 之和（输出）", decimals=0,
           boundable=False),
    Figure("start_skew_s", "s", "Start skew", "启动时间差", decimals=3, boundable=False),
    # goodput against a case's per-request SLO (fleetbench/goodput.py: computed beside the Figures, bound with `slo`)
    Figure("goodput_ratio", "ratio", "Goodput ratio", "达标率", describe=GOODPUT["goodput_ratio"]),
    Figure("goodput_requests", "requests", "Requests meeting the SLO", "达标请求数", decimals=0,
           describe=GOODPUT["goodput_requests"]),
    Figure("goodput_rps", "req/s", "Goodput", "有效请求吞吐", decimals=4, describe=GOODPUT["goodput_rps"]),
    Figure("goodput_tps", "tok/s", "Goodput output", "有效输出吞吐", describe=GOODPUT["goodput_tps"]),
    Figure("goodput_tpm", "tok/min", "Goodput TPM", "有效 TPM", decimals=0, describe=GOODPUT["goodput_tpm"]),
)

# The per-request samples behind the percentile tables (fleetbench.figures.PERCENTILE_METRICS), in
# evalscope's column order; `name` is the key of Figures.percentiles.
METRICS: dict[str, Figure] = {f.name: replace(f, group="pct") for f in (
    _ms("ttft_s", "TTFT", "TTFT", "ttft", "time to first token"),
    _ms("itl_s", "ITL", "ITL", "itl", "inter-token latency"),
    _ms("tpot_s", "TPOT", "TPOT", "tpot", "time per output token"),
    Figure("latency_s", "s", "Latency", "时延 Latency", decimals=4, definition="latency",
           describe="end-to-end request latency"),
    Figure("input_tokens", "tokens", "Input tokens", "输入 token", decimals=0, boundable=False),
    Figure("output_tokens", "tokens", "Output tokens", "输出 token", decimals=0, boundable=False),
    Figure("output_tps", "tok/s", "Output", "单请求输出", boundable=False),
    Figure("total_tps", "tok/s", "Total", "单请求总计", boundable=False),
)}
# the metrics a plan may bound by percentile: ttft_pNN_s, tpot_pNN_s, itl_pNN_s, latency_pNN_s
BOUND_METRICS = ("ttft_s", "tpot_s", "itl_s", "latency_s")

FIGURES: dict[str, Figure] = {f.name: f for f in _TABLE}

_PCT = re.compile(r"^(?P<base>[a-z_]+?)_p(?P<p>\d{1,3})(?:_(?P<unit>s))?$")


def percentile_name(metric: str, p: int) -> str:
    """The name of a percentile figure: ("ttft_s", 99) -> "ttft_p99_s"; ("output_tps", 50) -> "output_tps_p50"."""
    base, _, unit = metric.rpartition("_")
    return f"{base}_p{p}_{unit}" if unit == "s" else f"{metric}_p{p}"


def percentile_label(p: int, lang: str = "en") -> str:
    """A percentile as evalscope 1.14 prints it: min for 0, max for 100, else "p%"."""
    return {0: "min", 100: "max"}.get(p, f"{p}%")


def figure(name: str) -> Figure:
    """A figure by name, percentiles included ("ttft_p99_s": TTFT's 99th percentile, in ms). KeyError otherwise."""
    if name in FIGURES:
        return FIGURES[name]
    m = _PCT.match(name)
    if m:
        metric = f"{m['base']}_{m['unit']}" if m["unit"] else m["base"]
        if metric in METRICS:
            p = int(m["p"])
            base = METRICS[metric]
            what = percentile_label(p)
            return replace(base, name=name, group="fig", en=f"{base.en} {'p' + str(p) if 0 < p < 100 else what}",
                           zh=f"{base.zh} {'p' + str(p) if 0 < p < 100 else what}",
                           definition=base.definition or "percentile",
                           describe=f"{base.describe}, {p}th percentile (nearest rank), seconds",
                           boundable=metric in BOUND_METRICS and p in BOUND_PERCENTILES)
    raise KeyError(name)


def boundable() -> dict[str, Figure]:
    """Every figure a plan's `expect` may bound, in catalogue order, then the percentiles."""
    out = {n: f for n, f in FIGURES.items() if f.boundable}
    for metric in BOUND_METRICS:
        for p in BOUND_PERCENTILES:
            name = percentile_name(metric, p)
            out[name] = figure(name)
    return out


def format_value(name: str, value: float | int | None, na: str = "n/a") -> str:
    """`figure(name).format(value)`, or a plain number for a name the catalogue does not know (a score)."""
    try:
        return figure(name).format(value, na)
    except KeyError:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return na
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


# Chinese wording of fleetbench.figures.DEFINITIONS (the English there is the single source; keys must match).
DEFINITIONS_ZH: dict[str, str] = {
    "ttft": "首 token 时延（TTFT）：从发出请求到收到第一个流式内容块的时间。",
    "tpot": "每输出 token 时延（TPOT，按请求）：(时延 - TTFT) / (输出 token 数 - 1)；"
            "对输出多于一个 token 的成功请求取平均。",
    "itl": "token 间隔（ITL）：相邻两个流式内容块之间的时间；平均值取所有成功请求的全部间隔。",
    "latency": "端到端时延：单个请求从发出到收到最后一个字节的时间。",
    "wall_time": "测试耗时：最晚结束的请求时间 - 最早开始的请求时间。",
    "output_throughput": "输出吞吐：成功请求的输出 token 总数 / 测试耗时。",
    "total_throughput": "总吞吐：成功请求的输入 + 输出 token 总数 / 测试耗时。",
    "request_throughput": "请求吞吐：成功请求数 / 测试耗时。",
    "tpm": "每分钟 token 数（TPM）：总吞吐 × 60（输出 TPM：输出吞吐 × 60）。",
    "cluster_throughput": "集群吞吐：所有节点的 token 总数 / 共同时间窗口"
                          "（所有节点中最晚结束 - 最早开始，各节点时钟按实测偏差校正）。",
    "cluster_percentiles": "集群百分位：所有节点逐请求样本并集的百分位，而非各节点百分位的平均。",
    "percentile": "百分位采用最近秩法（与 evalscope 相同）：n 个排序样本的第 p 百分位为第 ceil(p/100 × n) 个样本。",
    "success_rate": "成功率：成功请求数 / 全部请求数。",
}
