"""`ctl deploy` / `ctl undeploy`: install, start, verify and remove the agent on nodes over SSH (asyncssh).

Split by concern: `wheel` (the fleetbench wheel to carry: --wheels DIR or built from the checkout),
`layout` (where things go on a node and what to do there: pure), `scripts` (the unit, supervisor and shell
scripts, rendered from the package-data `templates/`), `remote` (one node over SSH: probe, compare the
manifest's fingerprint, install, start, verify with Ping; never raises) and `fanout` (all nodes at once,
the exit code). Layout on the node: docs/deploy.md. The names below are the package's interface.
"""

from __future__ import annotations

from .fanout import deploy_all, exit_code, undeploy_all
from .layout import (
    MANIFEST,
    SYSTEM_USER,
    UNIT_NAME,
    Layout,
    Probe,
    agent_argv,
    as_user,
    choose_mode,
    confinement_args,
    decide,
    fingerprint,
    install_mode,
    listen_address,
    local_certs,
    make_layout,
    parse_probe,
    remote_path,
    runs_as_other_user,
)
from .remote import OK_ACTIONS, VERIFY_TIMEOUT_S, NodeResult, Options, deploy_node, undeploy_node
from .scripts import (
    PROBE,
    STOP_TIMEOUT_S,
    TEMPLATES,
    install_script,
    remove_script,
    render_run_script,
    render_supervisor,
    render_unit,
    running_script,
    service_files,
    start_script,
    stop_script,
    system_user_script,
)
from .wheel import Wheel, build_wheel, default_source, find_wheel, prepare_wheel, wheel_content_sha256, wheel_version

__all__ = [
    "MANIFEST",
    "OK_ACTIONS",
    "PROBE",
    "STOP_TIMEOUT_S",
    "SYSTEM_USER",
    "TEMPLATES",
    "UNIT_NAME",
    "VERIFY_TIMEOUT_S",
    "Layout",
    "NodeResult",
    "Options",
    "Probe",
    "Wheel",
    "agent_argv",
    "as_user",
    "build_wheel",
    "choose_mode",
    "confinement_args",
    "decide",
    "default_source",
    "deploy_all",
    "deploy_node",
    "exit_code",
    "find_wheel",
    "fingerprint",
    "install_mode",
    "install_script",
    "listen_address",
    "local_certs",
    "make_layout",
    "parse_probe",
    "prepare_wheel",
    "remote_path",
    "remove_script",
    "render_run_script",
    "render_supervisor",
    "render_unit",
    "running_script",
    "runs_as_other_user",
    "service_files",
    "start_script",
    "stop_script",
    "system_user_script",
    "undeploy_all",
    "undeploy_node",
    "wheel_content_sha256",
    "wheel_version",
]
