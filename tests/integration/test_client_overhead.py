"""evalscope's HTTP client must not do per-request thread-pool work inside its TTFT clock
(aiohttp with trust_env looks up ~/.netrc and the proxy environment for every request), yet must
still go through the environment's proxy and use netrc credentials."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from types import SimpleNamespace

import aiohttp
import pytest

from fleetbench.agent import client_overhead
from fleetbench.endpoint.config import EndpointConfig
from fleetbench.endpoint.testing import EndpointThread

pytestmark = pytest.mark.integration

BODY = json.dumps({"model": "demo", "prompt": "a b c", "max_tokens": 3, "stream": True, "ignore_eos": True})


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def _post_via_evalscope_client(url: str, patched: bool) -> tuple[int, int, aiohttp.ClientSession]:
    """(HTTP status, executor submissions during the requests, session) for evalscope's own client."""
    from evalscope.perf.core import http_client

    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    args = SimpleNamespace(url=url, headers={}, total_timeout=30, read_timeout=30, connect_timeout=30,
                           parallel=1, debug=False)
    original = http_client.AioHttpClient.__init__
    try:
        if patched:
            client_overhead._INSTALLED.clear()
            client_overhead.install()
        client = http_client.AioHttpClient(args, api_plugin=None)  # type: ignore[arg-type]
    finally:
        http_client.AioHttpClient.__init__ = original  # type: ignore[method-assign]
        client_overhead._INSTALLED.clear()
    async with client:
        before = executor.submitted
        for _ in range(3):
            async with client.client.post(url, data=BODY, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                status = resp.status
        return status, executor.submitted - before, client.client


@pytest.fixture
def endpoint():
    with EndpointThread(EndpointConfig(ttft_s=0.0, tpot_s=0.0)) as ep:
        yield ep


def test_unpatched_client_hops_to_the_thread_pool_for_every_request(endpoint, monkeypatch):
    monkeypatch.delenv("NETRC", raising=False)
    status, hops, _ = asyncio.run(_post_via_evalscope_client(endpoint.completions_url, patched=False))
    assert status == 200
    assert hops >= 3 * 2  # netrc + proxy lookup per request: the overhead the fix removes


def test_patched_client_does_no_per_request_thread_pool_work(endpoint, monkeypatch):
    monkeypatch.delenv("NETRC", raising=False)
    status, hops, session = asyncio.run(_post_via_evalscope_client(endpoint.completions_url, patched=True))
    assert status == 200
    assert hops == 0
    assert session.trust_env is False


def test_environment_proxy_is_still_used(endpoint, monkeypatch):
    # The proxy is the endpoint itself: a request for an unresolvable host succeeds only through it.
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{endpoint.port}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{endpoint.port}")
    before = len(endpoint.requests())
    status, hops, session = asyncio.run(
        _post_via_evalscope_client("http://fleetbench-proxied.invalid:9/v1/completions", patched=True))
    assert status == 200 and hops == 0
    assert str(session._default_proxy) == f"http://127.0.0.1:{endpoint.port}"
    assert len(endpoint.requests()) == before + 3


def test_netrc_credentials_are_still_used(endpoint, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    status, hops, session = asyncio.run(_post_via_evalscope_client(endpoint.completions_url, patched=True))
    assert status == 200 and hops == 0
    assert session._default_auth == aiohttp.BasicAuth("alice", "s3cret")


def test_a_session_that_does_not_trust_the_environment_is_left_alone():
    async def go() -> tuple[bool, bool]:
        async with aiohttp.ClientSession(trust_env=False) as s:
            return client_overhead.resolve_env_once(s, "http://127.0.0.1:1/v1"), s.trust_env

    assert asyncio.run(go()) == (False, False)
