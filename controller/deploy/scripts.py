"""The files and shell scripts `ctl deploy` puts on a node, rendered from the package's templates/.

Every script is a file in templates/ (one source; deploy/fleetbench-agent.service links to the unit).
Shell templates take `{{name}}` values (shell-quoted here, never in the template), blocks
`{{if NAME}}` / `{{if not NAME}}` … `{{else}}` … `{{end}}` on lines of their own, and `{{# …}}` comment
lines that stay out of the output. The systemd unit is a plain unit file: rendering sets the node's
ExecStart and paths by directive and drops what a user unit cannot have.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from .layout import SYSTEM_USER, UNIT_NAME, Layout, as_user, runs_as_other_user

TEMPLATES = Path(__file__).parent / "templates"
STOP_TIMEOUT_S = 30.0
_VALUE = re.compile(r"\{\{(\w+)\}\}")
_BLOCK = re.compile(r"\{\{(if not|if|else|end)(?: (\w+))?\}\}")


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(name: str, values: Mapping[str, str], flags: Mapping[str, bool] | None = None) -> str:
    """templates/NAME with its blocks decided by `flags` and its `{{name}}`s replaced; a name missing is a bug."""
    flags = flags or {}
    out: list[str] = []
    keep: list[bool] = []  # one entry per open block: whether its current branch is kept
    for line in template(name).splitlines(keepends=True):
        block = _BLOCK.fullmatch(line.strip())
        if block:
            word, flag = block.groups()
            if word in ("if", "if not"):
                keep.append(bool(flags[flag]) == (word == "if"))
            elif word == "else":
                keep[-1] = not keep[-1]
            else:
                keep.pop()
            continue
        if line.startswith("{{#") or not all(keep):
            continue
        out.append(_VALUE.sub(lambda m: values[m.group(1)], line))
    if keep:
        raise ValueError(f"templates/{name}: an {{{{if}}}} without {{{{end}}}}")
    return "".join(out)


def values(layout: Layout) -> dict[str, str]:
    """The layout's paths, shell-quoted, for the templates."""
    q = shlex.quote
    return {"dir": q(layout.dir), "dir_text": layout.dir, "data_dir": q(layout.data_dir), "venv": q(layout.venv),
            "wheels": q(layout.wheels), "certs": q(layout.certs), "unit_path": q(layout.unit_path),
            "systemctl": layout.systemctl, "unit": UNIT_NAME, "system_user": q(layout.user or SYSTEM_USER)}


def _flags(layout: Layout, mode: str | None = None) -> dict[str, bool]:
    mode = mode or layout.mode
    return {"process": mode == "process", "user_unit": mode == "systemd-user"}


def render_run_script(argv: list[str]) -> str:
    return render("run-agent.sh", {"argv": " ".join(shlex.quote(a) for a in argv)})


def render_supervisor(layout: Layout) -> str:
    """A restart loop for nodes without systemd; SIGTERM to it stops the agent and then itself."""
    return render("supervise.sh", values(layout))


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "/._-:=,+@" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Directives of templates/fleetbench-agent.service that only a system unit has (a user unit runs as its user
# and cannot set up the file-system namespace).
SYSTEM_ONLY = ("After", "Wants", "User", "Group", "ProtectSystem", "ProtectHome", "ReadWritePaths", "PrivateTmp")


def render_unit(layout: Layout, argv: list[str]) -> str:
    """templates/fleetbench-agent.service with this node's command line and paths (system or user unit)."""
    system = layout.mode == "systemd-system"
    exec_start = " \\\n    ".join(
        [_systemd_quote(argv[0]) + " " + argv[1]]
        + [f"{_systemd_quote(a)} {_systemd_quote(b)}" for a, b in zip(argv[2::2], argv[3::2], strict=True)])
    read = [b for a, b in zip(argv[2::2], argv[3::2], strict=True) if a == "--allow-path"]
    in_home = any(p == q or p.startswith(q + "/") for p in (layout.dir, layout.data_dir, *read)
                  for q in ("/home", "/root", "/run/user"))
    user = layout.user or SYSTEM_USER
    node = {"ExecStart": exec_start, "ReadWritePaths": _systemd_quote(layout.data_dir),
            "ProtectHome": "read-only" if in_home else "yes", "User": user, "Group": user,
            "WantedBy": "multi-user.target" if system else "default.target"}
    lines: list[str] = []
    continued = False
    for line in template("fleetbench-agent.service").splitlines():
        if continued:  # the template's own continuation lines: replaced with the directive's value
            continued = line.endswith("\\")
            continue
        if line.startswith("#"):
            continue
        continued = line.endswith("\\")
        key = line.partition("=")[0] if "=" in line and not line.startswith("[") else ""
        if not system and key in SYSTEM_ONLY:
            continue
        lines.append(f"{key}={node[key]}" if key in node else line)
    return "# Written by `ctl deploy` (fleetbench); see deploy/README.md.\n" + "\n".join(lines) + "\n"


def service_files(layout: Layout, argv: list[str]) -> dict[str, str]:
    """Every file `ctl deploy` writes besides the wheel and certificates: path -> text."""
    run_argv = as_user(layout, argv) if layout.mode == "process" and runs_as_other_user(layout) else argv
    files = {f"{layout.dir}/run-agent.sh": render_run_script(run_argv)}
    if layout.mode == "process":
        files[f"{layout.dir}/supervise.sh"] = render_supervisor(layout)
    else:
        files[layout.unit_path] = render_unit(layout, argv)
    return files


PROBE = render("probe.sh", {})


def running_script(layout: Layout, mode: str) -> str:
    """Prints running or stopped; `mode` is the one the node was deployed in (its manifest's)."""
    return render("running.sh", values(layout), _flags(layout, mode))


def stop_script(layout: Layout, mode: str) -> str:
    """Stop the agent (and its supervisor); waits until the processes are gone."""
    return render("stop.sh", {**values(layout), "steps": str(int(STOP_TIMEOUT_S / 0.2))}, _flags(layout, mode))


def start_script(layout: Layout, restart: bool) -> str:
    return render("start.sh", {**values(layout), "verb": "restart" if restart else "start"}, _flags(layout))


def install_script(layout: Layout, python: str, deps: str, wheel_name: str, system_site: bool) -> str:
    """Create the venv (once) and install the wheel; with `--python` the venv also sees that Python's packages."""
    q = shlex.quote
    wheel = f"{layout.wheels}/{wheel_name}"
    return render("install.sh", {**values(layout), "python": q(python), "wheel": q(wheel),
                                 "agent_wheel": q(wheel + "[agent]")},  # the agent's dependencies: the extra
                  {"system_site": system_site, "deps_wheels": deps == "wheels", "deps_index": deps == "index"})


def remove_script(layout: Layout, purge_data: bool) -> str:
    """Remove what deploy wrote; the data dir stays unless purge_data (also when it lies inside DIR)."""
    return render("remove.sh", values(layout), {**_flags(layout), "purge_data": purge_data})


def system_user_script(layout: Layout) -> str:
    return render("system-user.sh", values(layout))
