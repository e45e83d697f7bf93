"""Every label and sentence of the reports, in English and Chinese.

The Chinese follows the acceptance reports people write by hand today (seed 000: 基本信息,
测试环境, 硬件配置, 软件配置, 测试用例, 测试目的, 测试过程, 预期结果, 测试结果, 结论, 附录),
so a fleetbench report can be handed over in their place. Renderers look every string up
here with `t(key, lang, **fields)`; tests/unit/test_report_i18n.py checks that each key has
both languages with the same `{fields}` and that no renderer uses a key missing here.
"""

from __future__ import annotations

import string

from fleetbench.figure_catalog import DEFINITIONS_ZH, FIGURES, METRICS
from fleetbench.figures import DEFINITIONS

LANGS: tuple[str, ...] = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    # --- titles and sections
    "title": {"en": "Acceptance report: {plan}", "zh": "验收测试报告：{plan}"},
    "sec.basic": {"en": "1. Basic information", "zh": "1. 基本信息"},
    "sec.nodes": {"en": "1.1 Nodes", "zh": "1.1 测试节点"},
    "sec.environment": {"en": "1.2 Test environment", "zh": "1.2 测试环境"},
    "sec.hardware": {"en": "Hardware", "zh": "硬件配置"},
    "sec.software": {"en": "Software", "zh": "软件配置"},
    "sec.drift": {"en": "Drift check", "zh": "一致性检查"},
    "sec.cases": {"en": "2. Test cases", "zh": "2. 测试用例"},
    "sec.case": {"en": "2.{n} Case `{case}` — verdict: **{verdict}**",
                 "zh": "2.{n} 用例 `{case}` — 结论：**{verdict}**"},
    "sec.case_plain": {"en": "2.{n} Case {case} — verdict: {verdict}", "zh": "2.{n} 用例 {case} — 结论：{verdict}"},
    "sec.conclusion": {"en": "3. Conclusion", "zh": "3. 结论"},
    "sec.definitions": {"en": "4. Definitions", "zh": "4. 指标定义"},
    "sec.appendix": {"en": "5. Appendix: per-node inventory", "zh": "5. 附录：各节点硬件与软件信息"},
    "sec.appendix_percentiles": {"en": "6. Appendix: per-node percentiles", "zh": "6. 附录：各节点百分位"},
    "sec.charts": {"en": "Charts", "zh": "图表"},
    # --- basic information
    "col.item": {"en": "Item", "zh": "项目"},
    "col.value": {"en": "Value", "zh": "内容"},
    "basic.run": {"en": "Run", "zh": "运行编号"},
    "basic.plan": {"en": "Plan", "zh": "项目描述（测试计划）"},
    "basic.model": {"en": "Model", "zh": "模型"},
    "basic.time": {"en": "Time", "zh": "测试时间"},
    "basic.nodes": {"en": "Nodes", "zh": "测试节点"},
    "basic.verdict": {"en": "Verdict", "zh": "总体结论"},
    "basic.timezone": {"en": "times in UTC{offset}", "zh": "时间为 UTC{offset}"},
    # --- nodes table
    "col.node": {"en": "Node", "zh": "节点"},
    "col.address": {"en": "Address", "zh": "地址"},
    "col.host": {"en": "Host", "zh": "主机名"},
    "col.endpoint": {"en": "Endpoint", "zh": "推理服务地址"},
    "col.agent": {"en": "Agent", "zh": "代理版本"},
    "col.clock_offset": {"en": "Clock offset (s)", "zh": "时钟偏差 (s)"},
    "col.rtt": {"en": "RTT (ms)", "zh": "往返时延 (ms)"},
    # --- environment
    "env.cpu": {"en": "CPU", "zh": "CPU"},
    "env.cpus": {"en": "Logical CPUs", "zh": "逻辑核数"},
    "env.memory": {"en": "Memory", "zh": "内存"},
    "env.accelerators": {"en": "Accelerators", "zh": "加速卡（GPU/NPU/DCU）"},
    "env.machines": {"en": "Machines", "zh": "上述机器数量"},
    "env.os": {"en": "OS", "zh": "操作系统"},
    "env.kernel": {"en": "Kernel", "zh": "内核版本"},
    "env.driver": {"en": "Driver", "zh": "驱动版本"},
    "env.toolkit": {"en": "CUDA/CANN/DTK", "zh": "CUDA/CANN/DTK"},
    "env.engine": {"en": "Inference engine endpoint", "zh": "推理引擎服务"},
    "env.evalscope": {"en": "Test tool", "zh": "测试工具"},
    "env.fleetbench": {"en": "Test driver", "zh": "测试编排"},
    "env.hostname": {"en": "Host", "zh": "主机名"},
    "env.error": {"en": "Inventory", "zh": "硬件信息"},
    "col.hardware": {"en": "Hardware", "zh": "硬件名称"},
    "col.config": {"en": "Configuration", "zh": "配置信息"},
    "col.software": {"en": "Software", "zh": "软件名称"},
    "col.version": {"en": "Version", "zh": "版本信息"},
    "col.nodes": {"en": "Nodes", "zh": "节点"},
    "env.network": {"en": "Network (NICs, InfiniBand/RoCE)", "zh": "网络（网卡、InfiniBand/RoCE）"},
    "env.cpu_model": {"en": "CPU model", "zh": "CPU 型号"},
    "env.sockets": {"en": "CPU sockets", "zh": "CPU 路数"},
    "env.cores": {"en": "Physical cores", "zh": "物理核数"},
    "env.threads": {"en": "Threads (logical CPUs)", "zh": "线程数（逻辑核）"},
    "env.dimms": {"en": "Memory DIMMs", "zh": "内存条"},
    "env.accelerator_count": {"en": "Accelerator count", "zh": "加速卡数量"},
    "env.count": {"en": "Count", "zh": "数量"},
    "env.cpu_detail": {"en": "{model} ({cores} cores, {threads} threads per machine)",
                       "zh": "{model}（每台 {cores} 核，{threads} 线程）"},
    "env.memory_detail": {"en": "{dimms} ({total} in all)", "zh": "{dimms}（共 {total}）"},
    "drift.none": {"en": "drift: none — {nodes} agree on accelerator model, count and memory, driver, CUDA/CANN/DTK, "
                         "kernel and memory size; no NVLink link down, no uncorrected ECC error, no MIG",
                   "zh": "一致性检查：无差异 — {nodes} 的加速卡型号、数量与显存、驱动、CUDA/CANN/DTK、"
                         "内核及内存容量一致；无 NVLink 链路断开，无不可纠正 ECC 错误，未启用 MIG"},
    "drift.none_one": {"en": "drift: none — {nodes} is the only node checked; no NVLink link down, no uncorrected "
                             "ECC error, no MIG",
                       "zh": "一致性检查：无差异 — 仅检查了 {nodes} 一个节点；无 NVLink 链路断开，无不可纠正 ECC 错误，"
                             "未启用 MIG"},
    "drift.unchecked": {"en": " (not checked: {nodes})", "zh": "（未检查：{nodes}）"},
    "drift.findings": {"en": "drift: {n} finding(s) over {nodes} node(s):",
                       "zh": "一致性检查：{nodes} 个节点中发现 {n} 处差异："},
    "drift.finding": {"en": "{node}: {field} {value} differs from the majority {majority}",
                      "zh": "{node}：{field}为 {value}，与多数节点（{majority}）不同"},
    "val.saturated": {"en": "saturated", "zh": "饱和"},
    "val.not_saturated": {"en": "not saturated", "zh": "未饱和"},
    "val.n_of_nodes": {"en": "{n} of {total} nodes", "zh": "{n} / {total} 个节点"},
    "val.n_of": {"en": "{n} of {total}", "zh": "{n} / {total}"},
    "val.requests_completed": {"en": "{n} requests completed", "zh": "完成 {n} 个请求"},
    "val.scored_samples": {"en": "{n} scored samples", "zh": "{n} 个已评分样本"},
    "val.job_failed": {"en": "job failed: {error}", "zh": "任务失败：{error}"},
    "drift.no_majority": {"en": "no majority", "zh": "无多数值"},
    "drift.accelerator_model": {"en": "accelerator model", "zh": "加速卡型号"},
    "drift.accelerator_count": {"en": "accelerator count", "zh": "加速卡数量"},
    "drift.accelerator_memory": {"en": "accelerator memory", "zh": "加速卡显存"},
    "drift.driver_version": {"en": "driver", "zh": "驱动版本"},
    "drift.cuda_version": {"en": "CUDA", "zh": "CUDA 版本"},
    "drift.cann_version": {"en": "CANN", "zh": "CANN 版本"},
    "drift.dtk_version": {"en": "DTK", "zh": "DTK 版本"},
    "drift.kernel": {"en": "kernel", "zh": "内核版本"},
    "drift.memory_size": {"en": "memory", "zh": "内存容量"},
    "drift.nvlink_down": {"en": "NVLink links down", "zh": "NVLink 断开的链路"},
    "drift.ecc_uncorrected": {"en": "uncorrected ECC errors", "zh": "不可纠正 ECC 错误"},
    "drift.mig_enabled": {"en": "MIG enabled", "zh": "已启用 MIG 的 GPU"},
    "env.not_collected": {"en": "no inventory was collected", "zh": "未采集到硬件信息"},
    "env.config": {"en": "Configuration {n}", "zh": "配置 {n}"},
    # --- case section
    "case.type": {"en": "Type", "zh": "测试类型"},
    "type.perf": {"en": "performance", "zh": "性能测试"},
    "type.sweep": {"en": "performance sweep", "zh": "性能测试（多工况）"},
    "type.eval": {"en": "accuracy", "zh": "正确性测试"},
    "type.long_context": {"en": "long context", "zh": "超长上下文测试"},
    "type.hardware": {"en": "hardware acceptance", "zh": "硬件验收测试"},
    # --- hardware checks (a hardware case)
    "case.hardware": {"en": "Hardware checks (level {level}): each accelerator against its SKU's spec and the fleet "
                            "median of the same SKU",
                      "zh": "硬件检查（级别 {level}）：每张加速卡对照其型号规格值与集群中同型号的中位数"},
    "case.hardware_chart": {"en": "{figure} per accelerator", "zh": "各加速卡的 {figure}"},
    "hw.count": {"en": "{passed} passed, {failed} failed, {skipped} skipped (a SKIPPED check never counts as a "
                       "pass), {errors} broke.",
                 "zh": "{passed} 项通过，{failed} 项不通过，{skipped} 项跳过（跳过的检查不计为通过），"
                       "{errors} 项出错。"},
    "hw.outliers": {"en": "Outliers and failures: {items}.", "zh": "异常与不通过：{items}。"},
    "hw.backend": {"en": "node {node}: {backend}", "zh": "节点 {node}：{backend}"},
    "hw.accel": {"en": "Accelerator", "zh": "加速卡"},
    "hw.node_wide": {"en": "(node)", "zh": "（整机）"},
    "hw.check": {"en": "Check", "zh": "检查项"},
    "hw.measured": {"en": "Measured", "zh": "实测值"},
    "hw.reference": {"en": "Spec", "zh": "规格值"},
    "hw.fraction": {"en": "Of spec", "zh": "占规格比例"},
    "hw.median": {"en": "Fleet median", "zh": "集群中位数"},
    "hw.status": {"en": "Verdict", "zh": "判定"},
    "hw.detail": {"en": "Detail", "zh": "说明"},
    "hw.spec_line": {"en": "spec", "zh": "规格值"},
    "hw_status.pass": {"en": "PASS", "zh": "通过"},
    "hw_status.fail": {"en": "FAIL", "zh": "不通过"},
    "hw_status.skipped": {"en": "SKIPPED", "zh": "跳过"},
    "hw_status.error": {"en": "ERROR", "zh": "出错"},
    "hw.expect": {"en": "{figure} ≥ {fraction} of spec", "zh": "{figure} ≥ 规格值的 {fraction}"},
    "hw.expect_min": {"en": "{figure} ≥ {min}", "zh": "{figure} ≥ {min}"},
    "hw.expect_fleet": {"en": "every figure within {tolerance} of the fleet median of its SKU; health checks pass",
                        "zh": "每项指标不低于同型号集群中位数的 {tolerance} 以上；健康检查全部通过"},
    "case.purpose": {"en": "Purpose", "zh": "测试目的"},
    "case.command": {"en": "Equivalent command (per node)", "zh": "测试过程（每个节点上等价的命令）"},
    "case.expectations": {"en": "Expectations", "zh": "预期结果"},
    "case.no_expectations": {"en": "none stated", "zh": "未设定"},
    "case.results": {"en": "Results", "zh": "测试结果"},
    "case.verdicts": {"en": "Verdict of each expectation", "zh": "各项预期的判定"},
    "case.node_state": {"en": "node **{node}**: {state} — {error}", "zh": "节点 **{node}**：{state} — {error}"},
    "case.no_detail": {"en": "no detail", "zh": "无详细信息"},
    "case.summary": {
        "en": "Summary (per node and cluster; cluster = union of all nodes' records over the common window):",
        "zh": "汇总（各节点与集群；集群 = 所有节点请求记录的并集，按共同时间窗口计算）：",
    },
    "case.skew": {"en": "Start skew between nodes: {skew} s. Stragglers: {stragglers}.",
                  "zh": "节点间启动时间差：{skew} s。落后节点：{stragglers}。"},
    "case.cluster_percentiles": {"en": "Cluster percentiles (union of all nodes' successful requests):",
                                 "zh": "集群百分位（所有节点成功请求的并集）："},
    "case.cluster_percentiles_partial": {
        "en": "Cluster percentiles ({n} of {total} nodes: the union of their successful requests):",
        "zh": "集群百分位（{total} 个节点中的 {n} 个：其成功请求的并集）：",
    },
    "case.short_percentiles": {
        "en": "p50 and p99 per node and cluster (every node's full percentile table: appendix 6 and the spreadsheet):",
        "zh": "各节点及集群的 p50 与 p99（各节点完整百分位表见附录 6 及 Excel 报告）：",
    },
    "case.node_percentiles_of": {"en": "`{case}`: percentiles of node {node}", "zh": "`{case}`：节点 {node} 的百分位"},
    "case.states": {"en": "Verdict per node and cluster", "zh": "各节点及集群的判定"},
    "case.validity": {
        "en": "Validity (a failed check makes the case INVALID: its figures cannot be trusted, rerun it)",
        "zh": "有效性检查（任一项未通过则用例判为无效：数据不可信，需重测）",
    },
    "case.invalid": {
        "en": "**INVALID** — a validity check failed, so this case's figures cannot be trusted either way; rerun "
              "it. Failed: {checks}.",
        "zh": "**无效** — 有效性检查未通过，该用例的数据无论好坏都不可信，需重测。未通过的检查：{checks}。",
    },
    "case.check_line": {"en": "{check} ({scope}{point}): measured {measured}, bound {bound}",
                        "zh": "{check}（{scope}{point}）：实测 {measured}，界限 {bound}"},
    "case.failures": {"en": "Failures (failed requests per node by error class)",
                      "zh": "失败请求（按节点与错误类别统计）"},
    "case.long_context": {"en": "Long context: did each node answer the long prompt",
                          "zh": "超长上下文：各节点是否返回了结果"},
    "check.start_skew": {"en": "start skew between nodes", "zh": "节点间启动时间差"},
    "check.node_results": {"en": "node results", "zh": "节点结果"},
    "check.load_generator": {"en": "load generator not saturated", "zh": "压测客户端未饱和"},
    "check.clock_uncertainty": {"en": "clock uncertainty", "zh": "时钟不确定度"},
    "check.min_duration": {"en": "minimum duration", "zh": "最短测试时长"},
    "check.min_requests": {"en": "minimum requests", "zh": "最少请求数"},
    "check.nodes": {"en": "nodes with results", "zh": "有结果的节点数"},
    "check.warmup": {"en": "warm-up before the window", "zh": "测量窗口前的预热"},
    "check.hardware_judged": {"en": "hardware checks judged (not all SKIPPED)",
                              "zh": "已判定的硬件检查（并非全部跳过）"},
    "check.failed": {"en": "FAIL (INVALID)", "zh": "未通过（无效）"},
    "lc.answered": {"en": "Answered", "zh": "是否返回结果"},
    "lc.yes": {"en": "yes", "zh": "是"},
    "lc.no": {"en": "no", "zh": "否"},
    "lc.ttft": {"en": "TTFT", "zh": "首 token 时延 TTFT"},
    "lc.latency": {"en": "Latency", "zh": "端到端时延"},
    "lc.input": {"en": "Input tokens", "zh": "输入 token"},
    "lc.output": {"en": "Output tokens", "zh": "输出 token"},
    "lc.cluster": {"en": "Cluster: {n} of {total} nodes answered; slowest TTFT {ttft} ({node}).",
                   "zh": "集群：{total} 个节点中 {n} 个返回了结果；最慢的首 token 时延为 {ttft}（{node}）。"},
    "lc.cluster_none": {"en": "Cluster: {n} of {total} nodes answered.",
                        "zh": "集群：{total} 个节点中 {n} 个返回了结果。"},
    "case.no_success": {"en": "No request succeeded: no percentiles.", "zh": "没有成功的请求：无百分位数据。"},
    "case.saturated": {
        "en": "**Warning — {node}: the load generator was saturated** (CPU up to {cpu} of a core, event-loop lag "
              "p95 {lag} ms): this node's figures may measure the client, not the server. "
              "Re-run with fewer streams per worker.",
        "zh": "**警告 — {node}：压测客户端已饱和**（CPU 最高占单核的 {cpu}，事件循环延迟 p95 {lag} ms）："
              "该节点的数据可能反映的是客户端而非服务端的能力。请减少每个压测进程的并发后重测。",
    },
    "case.no_result": {"en": "No node produced a result.", "zh": "没有节点产生结果。"},
    "case.sweep": {"en": "Sweep — {scope}", "zh": "多工况性能数据 — {scope}"},
    "case.sweep_note": {
        "en": "Avg TPS = 1 / TPOT; per-request throughput = output throughput / concurrency; "
              "“avg” rows are the mean over loops.",
        "zh": "Avg TPS = 1 / TPOT；平均单路吞吐 = 系统吞吐 / 并发数；“平均”行为相同工况所有轮次的平均值。",
    },
    "case.scores": {"en": "Scores", "zh": "精度得分"},
    "case.scores_note": {
        "en": "Scores in percent; a scope passes when its score ≥ official − tolerance.",
        "zh": "得分为百分数；得分 ≥ 官方分数 − 允许偏差 即为通过。",
    },
    "scope.cluster": {"en": "cluster", "zh": "集群"},
    "type.capacity": {"en": "capacity search", "zh": "容量搜索"},
    "cap.title": {"en": "Capacity under the SLO ({slo}): the highest {what} at which every SLO figure "
                        "held in every run",
                  "zh": "SLO（{slo}）下的容量：每次运行均满足全部 SLO 指标的最高{what}"},
    # what a capacity search varies: per axis (parallel, rate) and load (each, split)
    "cap.what.parallel.each": {"en": "concurrency per node", "zh": "单节点并发"},
    "cap.what.parallel.split": {"en": "concurrency in total (one endpoint, load from {n} agents)",
                                "zh": "总并发（同一端点，负载来自 {n} 个代理）"},
    "cap.what.rate.each": {"en": "request rate per node (req/s)", "zh": "单节点请求速率（req/s）"},
    "cap.what.rate.split": {"en": "request rate in total (req/s; one endpoint, load from {n} agents)",
                            "zh": "总请求速率（req/s；同一端点，负载来自 {n} 个代理）"},
    "cap.amount.parallel.each": {"en": "**{v}** concurrent requests per node", "zh": "单节点 **{v}** 并发"},
    "cap.amount.parallel.split": {"en": "**{v}** concurrent requests in total (one endpoint, load from {n} agents)",
                                  "zh": "总计 **{v}** 并发（同一端点，负载来自 {n} 个代理）"},
    "cap.amount.rate.each": {"en": "**{v}** requests/s per node", "zh": "单节点 **{v}** 请求/秒"},
    "cap.amount.rate.split": {"en": "**{v}** requests/s in total (one endpoint, load from {n} agents)",
                              "zh": "总计 **{v}** 请求/秒（同一端点，负载来自 {n} 个代理）"},
    "cap.probes": {"en": "Probes, in run order (each a synchronized step on every node; figures of the cluster)",
                   "zh": "探测点（按运行顺序；每个探测点为所有节点同步启动的一步；集群指标）"},
    "cap.max_parallel": {"en": "Max {what}", "zh": "最高{what}"},
    "cap.none": {"en": "none in range", "zh": "范围内无"},
    "cap.at_top": {"en": " (the range's max: may be higher)", "zh": "（搜索上限，实际可能更高）"},
    "cap.parallel": {"en": "Probed: {what}", "zh": "探测值：{what}"},
    "cap.try": {"en": "Run", "zh": "次数"},
    "cap.cluster_within": {"en": "Cluster within SLO", "zh": "集群满足 SLO"},
    "cap.nodes_within": {"en": "Nodes within SLO", "zh": "满足 SLO 的节点"},
    "cap.ttft_p99": {"en": "p99 TTFT", "zh": "p99 TTFT"},
    "cap.tpot_p99": {"en": "p99 TPOT", "zh": "p99 TPOT"},
    "cap.yes": {"en": "yes", "zh": "是"},
    "cap.no": {"en": "no", "zh": "否"},
    "cap.found": {"en": "found: {n}", "zh": "结果：{n}"},
    "chart.cap_tpm": {"en": "{case}: TPM against {what} (cluster)",
                      "zh": "{case}：TPM 随{what}变化（集群）"},
    "chart.cap_ttft": {"en": "{case}: p99 TTFT against {what} (cluster)",
                       "zh": "{case}：p99 TTFT 随{what}变化（集群）"},
    "chart.cap_tpot": {"en": "{case}: p99 TPOT against {what} (cluster)",
                       "zh": "{case}：p99 TPOT 随{what}变化（集群）"},
    "concl.capacity": {"en": "`{case}`: capacity {amount} within the SLO ({slo}), "
                               "cluster TPM (total) **{tpm}** tok/min, goodput TPM **{goodput}** tok/min there "
                               "({probes} probes).",
                       "zh": "`{case}`：在 SLO（{slo}）下容量为{amount}，"
                             "此时集群 TPM（总计）**{tpm}** tok/min，"
                             "有效 TPM **{goodput}** tok/min（共 {probes} 次探测）。"},
    "concl.capacity_none": {"en": "`{case}`: no {what} in the search range held the SLO ({probes} probes).",
                            "zh": "`{case}`：搜索范围内没有满足 SLO 的{what}（共 {probes} 次探测）。"},
    "rep.title": {"en": "Repeats: mean ± 95 % confidence interval over {n} runs (Student's t), spread = (max − min) "
                        "/ mean",
                  "zh": "重复运行：{n} 次运行的均值 ± 95% 置信区间（Student t），"
                        "离散度 = (最大 − 最小) / 均值"},
    "rep.flagged": {"en": "Spread over 5 %: {names}.", "zh": "离散度超过 5%：{names}。"},
    "rep.spread": {"en": "(spread {spread} %)", "zh": "（离散度 {spread}%）"},
    "rep.flag": {"en": "⚠ > 5 %", "zh": "⚠ > 5%"},
    "concl.repeat": {"en": "`{case}`: {n} runs; cluster TPM (total) **{mean}** ± {ci} tok/min (95 % CI), spread "
                             "{spread} %.",
                     "zh": "`{case}`：共 {n} 次运行；集群 TPM（总计）**{mean}** ± {ci} tok/min"
                           "（95% 置信区间），离散度 {spread}%。"},
    "gp.title": {"en": "Goodput (per-request SLO: {slo}; failed requests count as misses)",
                 "zh": "有效吞吐（单请求 SLO：{slo}；失败请求计为未达标）"},
    "gp.met": {"en": "Requests meeting the SLO", "zh": "达标请求数"},
    "gp.ratio": {"en": "Goodput ratio", "zh": "达标率"},
    "gp.rps": {"en": "Goodput (req/s)", "zh": "有效请求吞吐 (req/s)"},
    "gp.tps": {"en": "Goodput output (tok/s)", "zh": "有效输出吞吐 (tok/s)"},
    "gp.tpm": {"en": "Goodput TPM (tok/min)", "zh": "有效 TPM (tok/min)"},
    "tpm.each": {"en": "TPM shown: each node's column is that node alone over its own window; the cluster column is "
                         "the union of all nodes' requests over the common window; Σ per-node TPM adds the nodes' own "
                         "figures.",
                 "zh": "TPM 口径：各节点列为该节点在自身时间窗口内的值；"
                       "集群列为所有节点请求之并集在共同时间窗口内的值；"
                       "各节点 TPM 之和为各节点自身数值相加。"},
    "tpm.split": {"en": "TPM shown: one endpoint, load from {n} agents (load: split): the cluster column is the shared "
                          "endpoint's TPM (the union of every agent's requests over the common window); each agent's "
                          "column is its share of the load, not a server's capacity.",
                  "zh": "TPM 口径：同一端点，负载来自 {n} 个代理（load: split）："
                        "集群列为该共享端点的 TPM（所有代理请求之并集在共同"
                        "时间窗口内的值）；各代理列为其分担的负载，并非某台服务器的能力。"},
    "scope.cluster_partial": {"en": "cluster ({n} of {total} nodes)", "zh": "集群（{total} 个节点中的 {n} 个）"},
    "scope.cluster_partial_points": {"en": "cluster (partial at {points})", "zh": "集群（部分节点：{points}）"},
    "scope.partial_point": {"en": "{point}: {n} of {total} nodes", "zh": "{point}：{total} 个节点中的 {n} 个"},
    "none": {"en": "none", "zh": "无"},
    "sep.list": {"en": "; ", "zh": "；"},
    "na": {"en": "n/a", "zh": "无"},
    # --- verdicts
    "verdict.pass": {"en": "PASS", "zh": "通过"},
    "verdict.fail": {"en": "FAIL", "zh": "不通过"},
    "verdict.error": {"en": "ERROR", "zh": "错误"},
    "verdict.invalid": {"en": "INVALID", "zh": "无效"},
    "verdict.incomplete": {"en": "INCOMPLETE", "zh": "未完成"},
    "state.pass": {"en": "every expectation held and the measurement is valid.",
                   "zh": "所有预期均满足，且测量有效。"},
    "state.fail": {"en": "the servers did not meet an expectation.", "zh": "服务端未满足某项预期。"},
    "state.error": {"en": "something could not run (preflight, a busy or unreachable agent, setup): what it covers "
                          "was not judged.",
                    "zh": "部分内容无法运行（预检失败、代理忙或不可达、环境准备失败），其涉及的部分未做判定。"},
    "state.invalid": {"en": "ran, but a validity check failed: the figures cannot be trusted; rerun.",
                      "zh": "已运行，但有效性检查未通过：数据不可信，需重测。"},
    "state.incomplete": {"en": "interrupted before every case finished; `ctl resume` completes it.",
                         "zh": "在所有用例完成前被中断；可用 `ctl resume` 继续完成。"},
    "verdict.none": {"en": "no official score", "zh": "无官方分数"},
    "col.scope": {"en": "Scope", "zh": "范围"},
    "col.figure": {"en": "Figure", "zh": "指标"},
    "col.op": {"en": "Op", "zh": "条件"},
    "col.threshold": {"en": "Threshold", "zh": "阈值"},
    "col.measured": {"en": "Measured", "zh": "实测值"},
    "col.verdict": {"en": "Verdict", "zh": "结论"},
    "col.note": {"en": "Note", "zh": "说明"},
    "col.state": {"en": "State", "zh": "判定"},
    "col.reasons": {"en": "Reasons", "zh": "原因"},
    "col.check": {"en": "Check", "zh": "检查项"},
    "col.bound": {"en": "Bound", "zh": "界限"},
    "col.result": {"en": "Result", "zh": "结果"},
    "col.detail": {"en": "Detail", "zh": "说明"},
    "col.error_class": {"en": "Error class", "zh": "错误类别"},
    "col.count": {"en": "Count", "zh": "次数"},
    "col.example": {"en": "Example", "zh": "示例"},
    "col.cluster_nodes": {"en": "Cluster nodes", "zh": "集群节点"},
    "col.case": {"en": "Case", "zh": "用例"},
    "col.tolerance": {"en": "Tolerance", "zh": "允许偏差"},
    "op.min": {"en": "≥", "zh": "≥"},
    "op.max": {"en": "≤", "zh": "≤"},
    "expect.line": {"en": "{scope}: {figure} {op} {threshold}", "zh": "{scope}：{figure} {op} {threshold}"},
    "expect.official": {"en": "{scope}: score of {dataset} {threshold}", "zh": "{scope}：{dataset} 得分 {threshold}"},
    "expect.official_short": {"en": "≥ {effective} (official {official} − tolerance {tolerance})",
                              "zh": "≥ {effective}（官方分数 {official} − 允许偏差 {tolerance}）"},
    "expect.case_scope": {"en": "every node and the cluster", "zh": "每个节点及集群"},
    # --- summary (evalscope's key/value form)
    "col.key": {"en": "Key", "zh": "指标"},
    # --- the plan's load (summary rows "Number of concurrency", "Request rate")
    "load.cluster": {"en": "{total} ({per_node} × {nodes} nodes)", "zh": "{total}（{per_node} × {nodes} 个节点）"},
    "load.no_limit": {"en": "-1 (no limit)", "zh": "-1（不限速）"},
    # --- percentiles
    "col.percentile": {"en": "Percentile", "zh": "百分位"},
    # --- sweep table (seed 002)
    "sw.input": {"en": "Input (tokens)", "zh": "输入"},
    "sw.output": {"en": "Output (tokens)", "zh": "输出"},
    "sw.parallel": {"en": "Concurrency", "zh": "并发数"},
    "sw.number": {"en": "Requests", "zh": "请求数"},
    "sw.loop": {"en": "Loop", "zh": "轮次"},
    "sw.point": {"en": "Point", "zh": "工况"},
    "sw.avg": {"en": "avg of {loops}", "zh": "{loops} 轮平均"},
    # --- eval table
    "ev.dataset": {"en": "Dataset", "zh": "数据集"},
    "ev.metric": {"en": "Metric", "zh": "指标"},
    "ev.samples": {"en": "Samples", "zh": "样本数"},
    "ev.score": {"en": "Score (%)", "zh": "得分 (%)"},
    "ev.official": {"en": "Official (%)", "zh": "官方分数 (%)"},
    "ev.tolerance": {"en": "Tolerance (points)", "zh": "允许偏差（分）"},
    "ev.delta": {"en": "Δ vs official (points)", "zh": "与官方差值（分）"},
    "ev.pooled": {"en": "{questions} questions × {nodes} nodes ({names})",
                  "zh": "{questions} 题 × {nodes} 个节点（{names}）"},
    "ev.pooled_uneven": {"en": "{samples} samples from {names}", "zh": "{samples} 个样本，来自 {names}"},
    "ev.nodes": {"en": "Nodes pooled", "zh": "合并的节点"},
    "ev.questions": {"en": "Questions per node", "zh": "每节点题数"},
    # --- conclusion
    "concl.tpm": {
        "en": "`{case}`: {cluster} TPM (total) = total throughput × 60 = Σ(input+output tokens) / window × 60 = "
              "({input} + {output}) / {window} s × 60 = **{tpm_total}** tok/min; output TPM = {output} / {window} s "
              "× 60 = **{tpm_output}** tok/min; Σ per-node TPM (total) = {sum_total}, (output) = {sum_output}.",
        "zh": "`{case}`：{cluster} TPM（总计）= 总吞吐 × 60 = Σ(输入+输出 token) / 时间窗口 × 60 = "
              "({input} + {output}) / {window} s × 60 = **{tpm_total}** tok/min；输出 TPM = {output} / {window} s "
              "× 60 = **{tpm_output}** tok/min；各节点 TPM 之和（总计）= {sum_total}，（输出）= {sum_output}。",
    },
    "concl.tpm_split": {
        "en": "`{case}`: one endpoint, load from {n} agents: the endpoint's TPM (total) = Σ(input+output tokens) of "
              "every agent's requests / common window × 60 = ({input} + {output}) / {window} s × 60 = **{tpm_total}** "
              "tok/min; output TPM = {output} / {window} s × 60 = **{tpm_output}** tok/min (Σ of the agents' own "
              "TPM: {sum_total}).",
        "zh": "`{case}`：同一端点，负载来自 {n} 个代理：端点 TPM（总计）= "
              "所有代理请求的 Σ(输入+输出 token) / 共同时间窗口 × 60 = "
              "({input} + {output}) / {window} s × 60 = **{tpm_total}** tok/min；"
              "输出 TPM = {output} / {window} s × 60 = "
              "**{tpm_output}** tok/min（各代理自身 TPM 之和：{sum_total}）。",
    },
    "concl.stragglers": {"en": "`{case}`: stragglers (output throughput > 10% below the fleet median): {nodes}.",
                         "zh": "`{case}`：落后节点（输出吞吐低于各节点中位数 10% 以上）：{nodes}。"},
    "concl.sweep": {
        "en": "`{case}`: {points} sweep points; best cluster TPM (total), averaged over {loops} loop(s): **{tpm}** "
              "tok/min at input {input}, output {output}, concurrency {concurrency} (output throughput {tps} tok/s; "
              "the loop-average row of the sweep table).",
        "zh": "`{case}`：共 {points} 个工况；按 {loops} 轮平均，集群 TPM（总计）最高为 **{tpm}** tok/min，出现在输入 "
              "{input}、输出 {output}、并发 {concurrency}（系统吞吐 {tps} tok/s；见多工况表的平均行）。",
    },
    "concl.eval": {"en": "`{case}`: {dataset} — cluster score {score} over {pooled} (official {official}, "
                         "tolerance {tolerance}): **{verdict}**.",
                   "zh": "`{case}`：{dataset} — 集群得分 {score}，基于 {pooled}（官方：{official}，允许偏差 "
                         "{tolerance}）：**{verdict}**。"},
    "concl.eval_plain": {"en": "`{case}`: {dataset} — cluster score {score} over {pooled}.",
                         "zh": "`{case}`：{dataset} — 集群得分 {score}，基于 {pooled}。"},
    "concl.long_context": {"en": "`{case}`: {result}", "zh": "`{case}`：{result}"},
    "concl.hardware": {"en": "`{case}` (hardware): {result}", "zh": "`{case}`（硬件）：{result}"},
    "concl.partial": {
        "en": "`{case}`: the cluster figures hold {n} of {total} nodes; left out (their job failed): {nodes}.",
        "zh": "`{case}`：集群数据只包含 {total} 个节点中的 {n} 个；未计入（任务失败）：{nodes}。",
    },
    "concl.no_result": {"en": "`{case}`: no node produced a result.", "zh": "`{case}`：没有节点产生结果。"},
    "concl.overall": {"en": "Overall verdict: **{verdict}** — {help}", "zh": "总体结论：**{verdict}** — {help}"},
    "concl.reasons": {"en": "Reasons:", "zh": "原因："},
    "reason.line": {"en": "**{state}** {where}: {what}{measured}{expected}",
                    "zh": "**{state}** {where}：{what}{measured}{expected}"},
    "reason.short": {"en": "**{state}**{point}: {what}{measured}{expected}",
                     "zh": "**{state}**{point}：{what}{measured}{expected}"},
    "reason.run": {"en": "**{state}**: {what}{measured}{expected}", "zh": "**{state}**：{what}{measured}{expected}"},
    "reason.node": {"en": "node {node}", "zh": "节点 {node}"},
    "reason.measured": {"en": " — measured {value}", "zh": " — 实测 {value}"},
    "reason.expected": {"en": ", expected {value}", "zh": "，预期 {value}"},
    "concl.all_passed": {"en": "Every expectation was met on every node and on the cluster.",
                         "zh": "所有节点及集群均满足全部预期，测试通过。"},
    # --- charts (HTML)
    "chart.sweep_tps": {"en": "{case}: output throughput vs concurrency ({scope})",
                        "zh": "{case}：系统吞吐与并发数（{scope}）"},
    "chart.sweep_latency": {"en": "{case}: latency vs concurrency ({scope})", "zh": "{case}：时延与并发数（{scope}）"},
    "chart.ttft_pct": {"en": "{case}: TTFT percentiles per node", "zh": "{case}：各节点 TTFT 百分位曲线"},
    "chart.tpot_pct": {"en": "{case}: TPOT percentiles per node", "zh": "{case}：各节点 TPOT 百分位曲线"},
    "chart.tpm_bars": {"en": "{case}: TPM (total) per node and cluster", "zh": "{case}：各节点与集群 TPM（总计）"},
    "chart.tps_bars": {"en": "{case}: output throughput per node and cluster",
                       "zh": "{case}：各节点与集群输出吞吐"},
    "chart.lc_ttft": {"en": "{case}: TTFT of the long prompt per node", "zh": "{case}：各节点超长输入的首 token 时延"},
    "chart.scores": {"en": "{case}: score per node vs official", "zh": "{case}：各节点得分与官方分数"},
    "axis.concurrency": {"en": "concurrency", "zh": "并发数"},
    "axis.concurrency_nodes": {"en": "concurrency per node (× {nodes} nodes)",
                               "zh": "每节点并发数（× {nodes} 个节点）"},
    "axis.tps": {"en": "tok/s", "zh": "tok/s"},
    "axis.seconds": {"en": "seconds", "zh": "秒"},
    "axis.percentile": {"en": "percentile", "zh": "百分位"},
    "axis.tpm": {"en": "tok/min", "zh": "tok/min"},
    "axis.score": {"en": "score (%)", "zh": "得分 (%)"},
    "series.latency": {"en": "avg latency", "zh": "平均时延"},
    "series.ttft": {"en": "avg TTFT", "zh": "平均 TTFT"},
    "series.pair": {"en": "in {input} / out {output}", "zh": "输入 {input} / 输出 {output}"},
    "series.slo": {"en": "SLO {figure} ≤ {limit}", "zh": "SLO {figure} ≤ {limit}"},
    "series.official": {"en": "official {official}", "zh": "官方 {official}"},
    "html.generated": {"en": "Generated by fleetbench {version} from run {run}.",
                       "zh": "由 fleetbench {version} 根据运行 {run} 生成。"},
    # --- spreadsheet
    "xl.summary": {"en": "Summary", "zh": "概要"},
    "xl.nodes": {"en": "Per-node results", "zh": "各节点结果"},
    "xl.percentiles": {"en": "Percentiles", "zh": "百分位"},
    "xl.sweep": {"en": "Sweep", "zh": "多工况"},
    "xl.verdicts": {"en": "Verdicts", "zh": "判定"},
    "xl.scores": {"en": "Eval scores", "zh": "精度得分"},
    "xl.requests": {"en": "Raw requests", "zh": "原始请求"},
    "xl.environment": {"en": "Environment", "zh": "测试环境"},
    "xl.states": {"en": "States", "zh": "判定状态"},
    "xl.validity": {"en": "Validity", "zh": "有效性"},
    "xl.failures": {"en": "Failures", "zh": "失败请求"},
    "xl.long_context": {"en": "Long context", "zh": "超长上下文"},
    "xl.goodput": {"en": "Goodput", "zh": "有效吞吐"},
    "xl.capacity": {"en": "Capacity", "zh": "容量"},
    "xl.cap_max": {"en": "Capacity found", "zh": "容量结果"},
    "xl.cap_probed": {"en": "Probed value", "zh": "探测值"},
    "xl.cap_what": {"en": "Searched", "zh": "搜索对象"},
    "xl.repeats": {"en": "Repeats", "zh": "重复运行"},
    "xl.figure": {"en": "Figure", "zh": "指标"},
    "xl.runs": {"en": "Runs", "zh": "运行次数"},
    "xl.mean": {"en": "Mean", "zh": "均值"},
    "xl.ci95": {"en": "95 % CI ±", "zh": "95% 置信区间 ±"},
    "xl.sd": {"en": "Standard deviation", "zh": "标准差"},
    "xl.min": {"en": "Min", "zh": "最小"},
    "xl.max": {"en": "Max", "zh": "最大"},
    "xl.spread": {"en": "Spread (max − min) / mean", "zh": "离散度 (最大 − 最小) / 均值"},
    "xl.flagged": {"en": "Spread > 5 % (1/0)", "zh": "离散度 > 5% (1/0)"},
    "xl.at_top": {"en": "At the range's max (1/0)", "zh": "达到搜索上限 (1/0)"},
    "xl.within": {"en": "Within SLO (1/0)", "zh": "满足 SLO (1/0)"},
    "xl.slo": {"en": "Per-request SLO", "zh": "单请求 SLO"},
    "xl.tpm_basis": {"en": "Which TPM", "zh": "TPM 口径"},
    "xl.hardware": {"en": "Hardware checks", "zh": "硬件检查"},
    "xl.case": {"en": "Case", "zh": "用例"},
    "xl.passed": {"en": "Passed (1/0)", "zh": "通过 (1/0)"},
    "xl.answered": {"en": "Answered (1/0)", "zh": "返回结果 (1/0)"},
    "xl.reason_case": {"en": "Case/step", "zh": "用例/步骤"},
    "xl.truncated": {"en": "truncated: {shown} of {total} requests shown (row cap {cap}); the store holds all",
                     "zh": "已截断：共 {total} 条请求，仅显示 {shown} 条（上限 {cap} 行）；完整数据见结果库"},
    "xl.no_requests": {"en": "raw requests not included", "zh": "未包含原始请求"},
    "xl.streams": {"en": "Concurrent streams (all nodes)", "zh": "并发总数（所有节点）"},
    "xl.row_kind": {"en": "Row", "zh": "行类型"},
    "xl.row_loop": {"en": "loop", "zh": "单轮"},
    "xl.row_avg": {"en": "average", "zh": "平均"},
    "req.case": {"en": "Case/step", "zh": "用例/步骤"},
    "req.point": {"en": "Point", "zh": "工况"},
    "req.idx": {"en": "Index", "zh": "序号"},
    "req.start": {"en": "Start (Unix s, controller clock)", "zh": "开始时间（Unix 秒，控制端时钟）"},
    "req.end": {"en": "End (Unix s, controller clock)", "zh": "结束时间（Unix 秒，控制端时钟）"},
    "req.success": {"en": "Success (1/0)", "zh": "成功 (1/0)"},
    "req.ttft": {"en": "TTFT (s)", "zh": "TTFT (s)"},
    "req.latency": {"en": "Latency (s)", "zh": "时延 (s)"},
    "req.tpot": {"en": "TPOT (s)", "zh": "TPOT (s)"},
    "req.input": {"en": "Input tokens", "zh": "输入 token"},
    "req.output": {"en": "Output tokens", "zh": "输出 token"},
    "req.offset": {"en": "Clock offset (s)", "zh": "时钟偏差 (s)"},
    "req.error": {"en": "Error", "zh": "错误"},
    "fig.stragglers": {"en": "Stragglers", "zh": "落后节点"},
    "basic.started": {"en": "Started (Unix s)", "zh": "开始时间（Unix 秒）"},
    "basic.finished": {"en": "Finished (Unix s)", "zh": "结束时间（Unix 秒）"},
}

# every figure's label, from the figure catalogue (fig.<name>; pct.<metric> for a percentile table's column)
TEXT.update({f.key: {lang: f.label(lang) for lang in LANGS} for f in (*FIGURES.values(), *METRICS.values())})


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unknown report language {lang!r}; use one of {', '.join(LANGS)}")
    return lang


def t(key: str, lang: str, **fields: object) -> str:
    """The text of `key` in `lang`, its `{fields}` filled in. KeyError on an unknown key (a test finds them)."""
    text = TEXT[key][check_lang(lang)]
    return text.format(**fields) if fields else text


def definition(name: str, lang: str) -> str:
    """A figure's definition: fleetbench.figures.DEFINITIONS in English, its translation in Chinese."""
    return DEFINITIONS_ZH[name] if check_lang(lang) == "zh" else DEFINITIONS[name]


def placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}
