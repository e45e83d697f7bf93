"""OS (/etc/os-release), kernel (uname), container runtimes, Python and evalscope versions.

evalscope is never imported here: its version comes from the installed
distribution's metadata, so the agent stays light.
"""

from __future__ import annotations

import platform
import re
import shlex
from importlib import metadata

from fleetbench.inventory import OsRelease, RuntimeVersion

from ._common import NotAvailable, read_text, remaining, run_tool


def parse_os_release(text: str) -> OsRelease | NotAvailable:
    vals: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
            value = parts[0] if parts else ""
        except ValueError:
            value = raw.strip().strip("\"'")
        vals[key.strip()] = value
    pretty = vals.get("PRETTY_NAME") or " ".join(x for x in (vals.get("NAME", ""), vals.get("VERSION", "")) if x)
    if not pretty:
        return NotAvailable("os-release has no PRETTY_NAME or NAME")
    return OsRelease(pretty_name=pretty, id=vals.get("ID", ""), version_id=vals.get("VERSION_ID", ""))


def parse_uname(text: str) -> str | NotAvailable:
    """The kernel release from `uname -a` ("Linux host 6.8.0-45-generic #45 SMP …") or `uname -r`."""
    parts = text.split()
    if len(parts) >= 3 and parts[0] == "Linux":
        return parts[2]
    if len(parts) == 1 and re.match(r"^\d+\.\d+", parts[0]):
        return parts[0]
    return NotAvailable("uname output not understood")


_RT_VERSION = re.compile(r"(?:version|Version:?)\s+v?(\d+(?:\.\d+)+[\w.+~-]*)")


def parse_runtime_version(name: str, text: str) -> RuntimeVersion | NotAvailable:
    """`docker --version` ("Docker version 20.10.5, build 55c4c88"), `containerd --version`
    ("containerd github.com/containerd/containerd v1.7.2 0cae528…"), `podman --version` ("podman version 4.9.3")."""
    m = _RT_VERSION.search(text)
    if m is None:
        m = re.search(r"\bv(\d+(?:\.\d+)+[\w.+~-]*)", text)
    if m is None:
        return NotAvailable(f"{name} --version not understood")
    return RuntimeVersion(name=name, version=m.group(1).rstrip(","))


def collect_os() -> OsRelease | NotAvailable:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        raw = read_text(path)
        if isinstance(raw, str):
            return parse_os_release(raw)
    return NotAvailable("no /etc/os-release")


def collect_kernel() -> str | NotAvailable:
    release = platform.uname().release
    return release or NotAvailable("uname gave no release")


def collect_runtimes(deadline: float | None = None) -> tuple[RuntimeVersion, ...] | NotAvailable:
    found: list[RuntimeVersion] = []
    reasons: list[str] = []
    for name in ("docker", "containerd", "podman"):
        out = run_tool([name, "--version"], timeout=remaining(deadline, 3.0))
        if out.error is not None:
            reasons.append(out.error.reason)
            continue
        rv = parse_runtime_version(name, out.stdout)
        if isinstance(rv, NotAvailable):
            reasons.append(rv.reason)
        else:
            found.append(rv)
    if not found:
        return NotAvailable("; ".join(reasons) or "no container runtime found")
    return tuple(found)


def python_version() -> str:
    return platform.python_version()


def evalscope_version() -> str | NotAvailable:
    try:
        return metadata.version("evalscope")
    except metadata.PackageNotFoundError:
        return NotAvailable("evalscope is not installed")
    except Exception as exc:
        return NotAvailable(f"evalscope metadata unreadable: {exc}")
