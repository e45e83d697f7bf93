"""bench/fidelity.py --preview-client-fix: put this folder on PYTHONPATH of the agent's job processes so
evalscope's HTTP client resolves the proxy environment and netrc once (fleetbench.agent.client_overhead)
before the job process's own hooks are hooked up to do it. Bench only."""

import os

if os.environ.get("FLEETBENCH_PREVIEW_CLIENT_FIX") == "1":
    try:
        from fleetbench.agent import client_overhead

        client_overhead.install()
    except ImportError:  # a process without evalscope: nothing to patch
        pass
