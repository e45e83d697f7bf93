"""Is anything listening at the endpoint? Shared by the perf, eval and preflight job processes."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def check_endpoint(url: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds when nothing listens at the endpoint: evalscope's own connection
    test retries for as long as its total timeout (hours) before giving up."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConnectionError(f"endpoint {url} is not reachable from this node: {exc.strerror or exc}") from None
