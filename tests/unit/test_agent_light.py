"""The agent process stays light: evalscope (and transformers) load only in the job's child process."""

import subprocess
import sys


def test_agent_modules_do_not_import_evalscope():
    code = ("import sys; import fleetbench.agent.cli, fleetbench.agent.server, fleetbench.agent.jobs, "
            "fleetbench.agent.service; "
            "heavy = [m for m in ('evalscope', 'transformers', 'torch', 'pandas') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
