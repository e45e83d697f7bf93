"""The package layout: every Python folder is listed in pyproject, stubs are not a top-level `proto`."""

import importlib
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
ROOTS = {"fleetbench": ROOT / "fleetbench", "fleetbench.agent": ROOT / "agent",
         "fleetbench.controller": ROOT / "controller"}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for name, folder in ROOTS.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == listed, f"pyproject packages differ: missing {found - listed}, stale {listed - found}"


def test_generated_stubs_are_not_a_top_level_proto_package():
    spec = importlib.util.find_spec("proto")
    assert spec is None or ROOT not in Path(spec.origin or "").parents
    assert not (ROOT / "proto" / "__init__.py").exists()
    from fleetbench.v1 import agent_pb2

    assert agent_pb2.DESCRIPTOR.package == "fleetbench.v1"


def test_every_console_script_resolves_to_a_callable():
    """`ctl` is fleetbench.controller.cli:main (a package since the CLI was split per command group)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ctl"] == "fleetbench.controller.cli:main"
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


# The agent's packages (fleetbench[agent]) and what they pull in; the plain controller must not need them.
AGENT_ONLY = ("evalscope", "grpc_health", "aiohttp", "tokenizers", "pynvml", "transformers", "modelscope", "torch")

_WITHOUT_AGENT = f"""
import sys
for name in {AGENT_ONLY!r}:
    sys.modules[name] = None  # import raises ImportError, find_spec answers None: as if not installed
import importlib, pkgutil
import fleetbench.controller as ctl
for m in pkgutil.walk_packages(ctl.__path__, "fleetbench.controller."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
from fleetbench.controller.cli import main
sys.argv = ["ctl", *sys.argv[1:]]
main()
"""


def _ctl_without_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _WITHOUT_AGENT, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_the_controller_runs_without_the_agents_packages():
    """`pip install fleetbench` (an operator's laptop, no evalscope): every controller module imports, `ctl` works."""
    proc = _ctl_without_agent("plan", "check", "examples/plans/seed-000.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_without_the_agent_says_what_to_install():
    proc = _ctl_without_agent("demo", "--workdir", "/nonexistent/never-created")
    assert proc.returncode == 2
    assert "fleetbench[agent]" in proc.stderr and "evalscope" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_base_install_is_the_controller_and_the_agent_an_extra():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0].lower() for dep in meta["dependencies"]}
    agent = {re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0].lower() for dep in meta["optional-dependencies"]["agent"]}
    assert not names & {"evalscope", "grpcio-health-checking", "nvidia-ml-py", "aiohttp", "tokenizers"}
    assert {"evalscope", "grpcio-health-checking"} <= agent
    assert "fleetbench[agent]" in meta["optional-dependencies"]["dev"]


def test_stubs_run_with_the_stated_grpcio_and_protobuf_floors():
    """The stubs carry no runtime version guard, and pyproject's floors are the generator's (grpcio-tools 1.62.3)."""
    stubs = ROOT / "fleetbench" / "v1"
    pb2, grpc_stub = (stubs / "agent_pb2.py").read_text(), (stubs / "agent_pb2_grpc.py").read_text()
    assert "ValidateProtobufRuntimeVersion" not in pb2 and "GRPC_GENERATED_VERSION" not in grpc_stub
    assert "_registered_method" not in grpc_stub  # a keyword grpcio < 1.63 does not take
    gencode = re.search(r"^# Protobuf Python Version: (\S+)$", pb2, re.M)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert gencode and f"protobuf>={gencode.group(1)}" in deps
    tools = re.search(r'^GRPC_TOOLS_VERSION = "(\d+)\.(\d+)\.\d+"', (ROOT / "scripts" / "gen_proto.py").read_text(),
                      re.M)
    assert tools and f"grpcio>={tools.group(1)}.{tools.group(2)}" in deps
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"grpcio=={tools.group(1)}.{tools.group(2)}.0" in ci and f"protobuf=={gencode.group(1)}" in ci
