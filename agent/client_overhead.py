"""Keep the load generator's own per-request work out of the latencies it measures.

evalscope opens its aiohttp session with `trust_env=True`. aiohttp then, for every request and
inside evalscope's TTFT clock, reads ~/.netrc and looks the endpoint up in the proxy environment,
each through a thread-pool hop (`run_in_executor`, `asyncio.to_thread`). At one stream that adds
about 0.6 ms to every TTFT; under load the hops queue on the default executor (a few threads)
and the error grows to tens of ms at 64 streams and over 100 ms at 256 (bench/fidelity.py,
docs/performance.md). The environment cannot change during a run, so resolving the proxy and
the netrc credentials once per session, when evalscope creates it, measures the same requests
through the same proxy with the same credentials, without the per-request hops.

Called in the job process only (it imports evalscope); `resolve_env_once` works on any aiohttp
ClientSession.
"""

from __future__ import annotations

import contextlib
from typing import Any

_INSTALLED: list[bool] = []


def resolve_env_once(session: Any, url: str) -> bool:
    """Fix `session`'s environment-derived proxy and netrc auth for `url` now and stop the
    per-request lookups. Returns False (and changes nothing) where this aiohttp lacks the
    session defaults it relies on or the session does not trust the environment."""
    from aiohttp.helpers import basicauth_from_netrc, get_env_proxy_for_url, netrc_from_env
    from yarl import URL

    needed = ("_trust_env", "_default_proxy", "_default_proxy_auth", "_default_auth")
    if not all(hasattr(session, name) for name in needed) or not session._trust_env:
        return False
    target = URL(url)
    if session._default_proxy is None:
        with contextlib.suppress(LookupError):
            session._default_proxy, session._default_proxy_auth = get_env_proxy_for_url(target)
    if session._default_auth is None and target.host and target.user is None:
        with contextlib.suppress(LookupError):
            session._default_auth = basicauth_from_netrc(netrc_from_env(), target.host)
    session._trust_env = False
    return True


def install() -> None:
    """Apply `resolve_env_once` to every HTTP client evalscope's perf benchmark creates (once per process)."""
    if _INSTALLED:
        return
    from evalscope.perf.core import http_client

    original_init = http_client.AioHttpClient.__init__

    def init(self: Any, args: Any, api_plugin: Any) -> None:
        original_init(self, args, api_plugin)
        resolve_env_once(self.client, self.url)

    http_client.AioHttpClient.__init__ = init  # type: ignore[method-assign]
    _INSTALLED.append(True)
