"""The package layout: every Python folder is listed in pyproject, stubs are not a top-level `proto`."""

import importlib
import importlib.util
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
