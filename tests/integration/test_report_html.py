"""The HTML report in real headless Chromium (Debian's `chromium`), driven over the DevTools protocol:
it loads offline with no request but its own file, logs no console error or exception, every chart's SVG
has drawn marks with a non-zero laid-out size, and a full-page screenshot is saved for a person to look at
(/tmp/fleetbench-report.png, and the Chinese one at /tmp/fleetbench-report.zh.png).

The report is the fixed run of tests/support/report_sample.py (the `sample_report` fixture): a perf case, a
two-loop sweep, an eval case, a long-context case and a perf case whose every request failed, on two nodes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleetbench.controller.report.html import render_html

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = {"en": Path("/tmp/fleetbench-report.png"), "zh": Path("/tmp/fleetbench-report.zh.png")}

# measured in the page: every chart, and per chart its drawn marks with their laid-out boxes
PROBE = """
(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const marks = [...svg.querySelectorAll('rect, path, circle')].map(el => {
      const b = el.getBoundingClientRect();
      return {tag: el.tagName, w: b.width, h: b.height};
    });
    return {title: svg.querySelector('title').textContent, w: svg.getBoundingClientRect().width, marks};
  });
  return JSON.stringify({charts, tables: document.querySelectorAll('table').length,
                         height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth,
                         scripts: document.querySelectorAll('script').length});
})()
"""


class DevTools:
    """A minimal Chrome DevTools protocol client over aiohttp's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id, self.events = ws, 0, []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        await self.ws.send_json({"id": mid, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive(timeout=60)).data)
            if msg.get("id") == mid:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    async def wait_event(self, method: str) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            msg = json.loads((await self.ws.receive(timeout=60)).data)
            self.events.append(msg)
            if msg.get("method") == method:
                return msg


async def load_in_chromium(page: Path, shot: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Open `page`; return the probe's measurements, every console/log/exception event and every URL requested."""
    assert CHROMIUM
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
        "--no-first-run", "--user-data-dir=" + str(page.parent / "profile"), "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "chromium exited before its DevTools endpoint was up"
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(m.group(1)) if m else None
        async with aiohttp.ClientSession() as http:
            targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                dt = DevTools(ws)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    await dt.call(f"{domain}.enable")
                await dt.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                              mobile=False)
                await dt.call("Page.navigate", url=page.as_uri())
                await dt.wait_event("Page.loadEventFired")
                probe = json.loads((await dt.call("Runtime.evaluate", expression=PROBE,
                                                  returnByValue=True))["result"]["value"])
                img = await dt.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                    clip={"x": 0, "y": 0, "width": probe["width"],
                                          "height": min(probe["height"], 16000), "scale": 1})
                shot.write_bytes(base64.b64decode(img["data"]))
                problems = [e for e in dt.events if e.get("method") in ("Runtime.exceptionThrown",)
                            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in
                                ("error", "warning", "assert"))
                            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in
                                ("error", "warning"))]
                requested = [e["params"]["request"]["url"] for e in dt.events
                             if e.get("method") == "Network.requestWillBeSent"]
                return probe, problems, requested
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_report_opens_offline_without_errors_and_draws_its_charts(lang, tmp_path, sample_report):
    report = sample_report
    page = tmp_path / f"report.{lang}.html"
    page.write_text(render_html(report, lang), encoding="utf-8")
    probe, problems, requested = asyncio.run(load_in_chromium(page, SHOTS[lang]))

    assert problems == [], problems
    assert requested == [page.as_uri()]  # nothing fetched but the file itself: no CDN, no font, no image
    assert probe["scripts"] == 0
    # perf: TPM bars, output bars, TTFT and TPOT curves; sweep: throughput and latency; eval: scores against the
    # official one; long context: each node's TTFT (no throughput); a perf case with no successful request: none
    assert len(probe["charts"]) == 4 + 2 + 1 + 1
    for chart in probe["charts"]:
        assert chart["w"] > 300, chart["title"]
        drawn = [m for m in chart["marks"] if m["w"] > 0 and m["h"] > 0]
        assert drawn, f"nothing drawn in {chart['title']}"
        assert any(m["tag"] in ("path", "rect") and m["w"] > 5 for m in drawn), chart["title"]
    bars = next(ch for ch in probe["charts"] if "perf-6k-1k" in ch["title"] and ("TPM" in ch["title"]))
    # 3 bars (n1, n2, cluster) above the legend-free axis: their heights follow the TPM values
    heights = [m["h"] for m in bars["marks"] if m["tag"] == "rect"]
    tpm = [report.cases[0].node_figures["n1"].tpm_total, report.cases[0].node_figures["n2"].tpm_total,
           report.cases[0].cluster.tpm_total]
    assert len(heights) == 3
    assert heights[0] / heights[2] == pytest.approx(tpm[0] / tpm[2], rel=0.02)
    assert heights[1] / heights[2] == pytest.approx(tpm[1] / tpm[2], rel=0.02)
    assert probe["tables"] >= 20
    assert SHOTS[lang].stat().st_size > 50_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_html_report_prints_to_pdf(tmp_path, sample_report):
    """Printed (as a user saves it to PDF): Chromium lays it out on A4 pages without failing."""
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report, "en"), encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--print-to-pdf={pdf}", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert 5 <= pages <= 40, pages  # each case starts a page; a broken print style gives 1 or hundreds
