"""The inference engine behind an endpoint URL: vLLM or SGLang, asked over HTTP with a 2 s timeout."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fleetbench.inventory import EngineInfo

from ._common import NotAvailable

TIMEOUT_S = 2.0


def base_url(endpoint_url: str) -> str:
    """"http://127.0.0.1:8000/v1" → "http://127.0.0.1:8000"; a trailing /v1/completions too."""
    try:
        p = urllib.parse.urlsplit(endpoint_url.strip())
    except ValueError:
        return ""
    path = p.path.rstrip("/")
    idx = path.find("/v1")
    if idx >= 0:
        path = path[:idx]
    return urllib.parse.urlunsplit((p.scheme, p.netloc, path, "", "")).rstrip("/")


def _json(body: str | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def parse_engine(version_body: str | None, models_body: str | None, server_info_body: str | None = None,
                 endpoint: str = "") -> EngineInfo:
    """Decide the engine from what /version, /v1/models and /get_server_info answered.

    vLLM: /version → {"version": "0.8.5"}, models "owned_by": "vllm".
    SGLang: /get_server_info → {..., "version": "0.4.6"}, models "owned_by": "sglang".
    """
    models_doc = _json(models_body)
    models: list[str] = []
    owners: set[str] = set()
    if isinstance(models_doc, dict) and isinstance(models_doc.get("data"), list):
        for m in models_doc["data"]:
            if isinstance(m, dict):
                if isinstance(m.get("id"), str):
                    models.append(m["id"])
                if isinstance(m.get("owned_by"), str):
                    owners.add(m["owned_by"].lower())
    ver_doc = _json(version_body)
    info_doc = _json(server_info_body)
    version = ver_doc.get("version") if isinstance(ver_doc, dict) and isinstance(ver_doc.get("version"), str) else ""
    sg_version = (info_doc.get("version") if isinstance(info_doc, dict) and isinstance(info_doc.get("version"), str)
                  else "")
    named = ver_doc.get("engine") if isinstance(ver_doc, dict) and isinstance(ver_doc.get("engine"), str) else ""
    if named and named.lower() not in ("vllm", "sglang"):
        # an endpoint that says what it is (fleetbench's simulator: "fleetbench-sim") is not vLLM
        # just because it answers /version, as vLLM does
        return EngineInfo(name=named, version=version or "unknown", models=tuple(models), endpoint=endpoint)
    if "sglang" in owners or (sg_version and not version):
        return EngineInfo(name="sglang", version=sg_version or version or "unknown", models=tuple(models),
                          endpoint=endpoint)
    if "vllm" in owners or version:
        return EngineInfo(name="vllm", version=version or "unknown", models=tuple(models), endpoint=endpoint)
    return EngineInfo(name="unknown", version="unknown", models=tuple(models), endpoint=endpoint)


def _get(url: str, timeout: float) -> str | None:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the node's own endpoint: no proxy
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.read(1 << 20).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def probe(endpoint_url: str | None, timeout: float = TIMEOUT_S) -> EngineInfo | NotAvailable:
    if not endpoint_url:
        return NotAvailable("no endpoint URL given")
    base = base_url(endpoint_url)
    if not base.startswith(("http://", "https://")):
        return NotAvailable(f"endpoint URL {endpoint_url!r} is not http(s)")
    # One budget for all requests: a hung endpoint costs `timeout` seconds, not one timeout per URL.
    end = time.monotonic() + timeout

    def left() -> float:
        return end - time.monotonic()

    version = _get(base + "/version", timeout)
    models = _get(base + "/v1/models", left()) if left() > 0.05 else None
    info = _get(base + "/get_server_info", left()) if version is None and left() > 0.05 else None
    if models is None and version is None and info is None:
        return EngineInfo(name="unknown", version="unknown", models=(), endpoint=endpoint_url)
    return parse_engine(version, models, info, endpoint_url)
