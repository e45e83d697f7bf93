"""The fleetbench wheel `ctl deploy` carries to the nodes: taken from --wheels DIR or built from the checkout."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fleetbench.errors import DeployError


@dataclass(frozen=True)
class Wheel:
    path: Path
    version: str
    sha256: str  # of the wheel's contents (names and bytes), not of the zip: rebuilding the same tree matches


def wheel_content_sha256(path: Path) -> str:
    """SHA-256 over the wheel's member names and bytes: equal for two builds of the same tree."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            h.update(name.encode() + b"\0" + hashlib.sha256(z.read(name)).digest())
    return h.hexdigest()


def wheel_version(path: Path) -> str:
    parts = path.name.split("-")
    if len(parts) < 5 or not path.name.endswith(".whl"):
        raise DeployError(f"{path.name} is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)")
    return parts[1]


def default_source() -> Path | None:
    """The checkout fleetbench runs from (an editable install), or None for an installed wheel."""
    import fleetbench

    root = Path(fleetbench.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "fleetbench"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def find_wheel(dirpath: Path) -> Path | None:
    found = sorted(dirpath.glob("fleetbench-*.whl"))
    return found[-1] if found else None


def build_wheel(source: Path, out: Path) -> Wheel:
    """`pip wheel --no-deps` of a clean copy of the checkout's packages (the tree itself is left alone)."""
    pyproject = source / "pyproject.toml"
    try:
        meta = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeployError(f"cannot read {pyproject}: {exc}") from None
    dirs = set(meta.get("tool", {}).get("setuptools", {}).get("package-dir", {}).values()) or {"fleetbench"}
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleetbench-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (source / name).is_file():
                shutil.copy2(source / name, src / name)
        for d in sorted(dirs):
            shutil.copytree(source / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                               "--disable-pip-version-check", "-w", str(out), str(src)],
                              capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        cause = build_failure(proc.stderr or proc.stdout)
        raise DeployError(f"building the fleetbench wheel from {source} failed: {cause}; put a built "
                          "fleetbench-*.whl into --wheels DIR instead")
    built = find_wheel(out)
    if built is None:
        raise DeployError(f"pip wheel made no fleetbench wheel in {out}")
    return Wheel(built, wheel_version(built), wheel_content_sha256(built))


def build_failure(output: str) -> str:
    """The line of pip's output that says why a build failed: its first `... error:` line from the backend
    (pip's own last line is only "hint: See above for details"), with a hint when it is the old-setuptools
    case (the SPDX `license` string needs setuptools >= 77)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    cause = next((ln for ln in lines if "error:" in ln and not ln.startswith(("error: subprocess", "×"))), None)
    cause = cause or next((ln for ln in reversed(lines) if not ln.startswith(("hint:", "note:"))), "")
    if "project.license" in output:
        cause += " (this environment's setuptools is older than 77: pip install -U 'setuptools>=77')"
    return cause


def prepare_wheel(wheels_dir: Path | None, source: Path | None, out: Path) -> Wheel:
    """A fleetbench wheel from --wheels DIR when it holds one, else built from the checkout."""
    if wheels_dir is not None:
        if not wheels_dir.is_dir():
            raise DeployError(f"--wheels {wheels_dir} is not a directory")
        found = find_wheel(wheels_dir)
        if found is not None and source is None:
            return Wheel(found, wheel_version(found), wheel_content_sha256(found))
    src = source or default_source()
    if src is None:
        raise DeployError("no fleetbench checkout to build the wheel from: pass --source DIR, or put a "
                          "fleetbench-*.whl into --wheels DIR")
    return build_wheel(src, out)
