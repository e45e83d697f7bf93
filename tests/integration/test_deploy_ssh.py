"""`ctl deploy` / `ctl undeploy` against real OpenSSH: two sshd on loopback ports are two "nodes" with their own
install dirs. n1 is reached directly with mutual TLS, n2 in tunnel mode (its agent listens on 127.0.0.1 only and
ctl reaches it through an asyncssh port forward). Deploying twice changes nothing; --upgrade replaces a running
version; undeploy leaves no process and no file but the data dir.

The nodes' venvs are made from this test's Python with its packages visible (`deploy.python`), and fleetbench is
installed into them from the wheel built from this checkout (--no-deps): installing evalscope per node from an
index would take minutes and needs a network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetbench.controller.localfleet import free_port, wait_for_port
from fleetbench.endpoint.tokenizer import ensure_demo_tokenizer

pytestmark = pytest.mark.integration
SSHD = "/usr/sbin/sshd"
CTL = [sys.executable, "-m", "fleetbench.controller"]
REPO = Path(__file__).parents[2]

if not Path(SSHD).exists() or not shutil.which("ssh-keygen"):
    pytest.skip("OpenSSH server (/usr/sbin/sshd) and ssh-keygen are needed: apt-get install openssh-server",
                allow_module_level=True)


def start_sshd(d: Path, name: str, port: int, authorized: Path, host_key: Path) -> subprocess.Popen[bytes]:
    root = "PermitRootLogin prohibit-password\n" if os.geteuid() == 0 else ""
    cfg = d / f"sshd_{name}.conf"
    cfg.write_text(f"""ListenAddress 127.0.0.1:{port}
HostKey {host_key}
PidFile {d}/sshd_{name}.pid
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
{root}UsePAM no
StrictModes no
AllowTcpForwarding yes
LogLevel ERROR
Subsystem sftp internal-sftp
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # the privilege-separation directory sshd insists on as root
    log = (d / f"sshd_{name}.log").open("wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for_port(port, 15, proc)
    except Exception:
        pytest.fail(f"sshd did not start: {(d / f'sshd_{name}.log').read_text()[-2000:]}")
    return proc


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose command line contains `text` (the process table)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and int(entry.name) != os.getpid():
            found.append((int(entry.name), cmd.strip()))
    return found


def listening_on(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (from /proc/net/tcp{,6}), as IPv4 text."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                # each 32-bit word is in host (little-endian) byte order
                raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, len(addr), 8))
                ip = ipaddress.ip_address(raw)
                mapped = getattr(ip, "ipv4_mapped", None)
                out.add(str(mapped or ip))
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    d = tmp_path_factory.mktemp("deploy")
    keys = d / "keys"
    keys.mkdir()
    for k in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", str(keys / k)], check=True)
    shutil.copy(keys / "user_key.pub", keys / "authorized_keys")
    host_pub = (keys / "host_key.pub").read_text().split()[:2]
    ssh_ports = {"n1": free_port(), "n2": free_port()}
    (keys / "known_hosts").write_text("".join(f"[127.0.0.1]:{p} {' '.join(host_pub)}\n" for p in ssh_ports.values()))
    sshds = [start_sshd(d, n, p, keys / "authorized_keys", keys / "host_key") for n, p in ssh_ports.items()]
    certs = d / "certs"
    subprocess.run([*CTL, "certs", "init", "--node", "n1=127.0.0.1,localhost", "--node", "n2=127.0.0.1",
                    "--out", str(certs)], check=True, capture_output=True, timeout=60)
    agent_ports = {"n1": free_port(), "n2": free_port()}
    ep_port = free_port()
    endpoint = subprocess.Popen([sys.executable, "-m", "fleetbench.endpoint", "--host", "127.0.0.1", "--port",
                                 str(ep_port), "--model", "demo", "--ttft-ms", "20", "--tpot-ms", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    user = "root" if os.geteuid() == 0 else os.environ.get("USER") or subprocess.check_output(["id", "-un"],
                                                                                             text=True).strip()
    nodes = d / "nodes"
    ssh = "{{user: {u}, port: {p}, key: keys/user_key, known_hosts: keys/known_hosts}}"
    fleet_file = d / "fleet.yaml"
    # the tests' tokenizers are in pytest's temp folder; as root the agent would run as `fleetbench`, which cannot
    # enter pytest's 0700 temp folder or this checkout's venv: these nodes keep the SSH user
    confine = f", allow_paths: [{d.parent}]" + (", user: root" if os.geteuid() == 0 else "")
    fleet_file.write_text(f"""tls: {{ca: certs/ca.pem, cert: certs/controller.pem, key: certs/controller.key}}
nodes:
  n1:
    address: 127.0.0.1:{agent_ports['n1']}
    endpoint: http://127.0.0.1:{ep_port}/v1/completions
    ssh: {ssh.format(u=user, p=ssh_ports['n1'])}
    deploy: {{dir: {nodes}/n1, python: {sys.executable}{confine}}}
  n2:
    address: 127.0.0.1:{agent_ports['n2']}
    endpoint: http://127.0.0.1:{ep_port}/v1/completions
    connect: ssh
    ssh: {ssh.format(u=user, p=ssh_ports['n2'])}
    deploy: {{dir: {nodes}/n2, data_dir: {nodes}/n2-data, python: {sys.executable}, service: process{confine}}}
""")
    wait_for_port(ep_port, 30, endpoint)
    yield {"dir": d, "fleet": fleet_file, "nodes": nodes, "agent_ports": agent_ports, "ssh_ports": ssh_ports}
    # whatever a failed test left running under this test's folders (only processes this module started)
    for pid, _cmd in processes_mentioning(str(nodes)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for p in [*sshds, endpoint]:
        p.terminate()
        p.wait(timeout=15)


def ctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def deploy(f, *extra: str, nodes: str = "n1,n2") -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    proc = ctl("deploy", "--nodes", nodes, "--fleet", str(f["fleet"]), "--json", *extra)
    assert "Traceback" not in proc.stderr, proc.stderr
    try:
        rows = {r["node"]: r for r in json.loads(proc.stdout)}
    except ValueError:
        pytest.fail(f"ctl deploy printed no JSON (exit {proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return proc, rows


def pids(node_dir: Path) -> tuple[int, int]:
    return int((node_dir / "supervisor.pid").read_text()), int((node_dir / "agent.pid").read_text())


def test_deploy_installs_starts_and_verifies_both_nodes(fleet):
    proc, rows = deploy(fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {n: r["action"] for n, r in rows.items()} == {"n1": "installed", "n2": "installed"}
    assert {r["mode"] for r in rows.values()} == {"process"}  # no systemd runs in this container
    assert all(r["version"] == "0.1.0" for r in rows.values())
    n1, n2 = fleet["nodes"] / "n1", fleet["nodes"] / "n2"
    m1 = json.loads((n1 / "deployed.json").read_text())
    assert m1["listen"] == f"0.0.0.0:{fleet['agent_ports']['n1']}" and m1["deps"] == "python"
    assert m1["data_dir"] == str(n1 / "data")
    m2 = json.loads((n2 / "deployed.json").read_text())
    assert m2["listen"] == f"127.0.0.1:{fleet['agent_ports']['n2']}" and m2["data_dir"] == str(fleet["nodes"] /
                                                                                              "n2-data")
    # certificates installed, the key private; the agent runs from the node's own venv with them
    assert (n1 / "certs" / "node.pem").read_bytes() == (fleet["dir"] / "certs" / "node-n1.pem").read_bytes()
    assert (n1 / "certs" / "node.key").stat().st_mode & 0o777 == 0o600
    agent_cmd = (Path("/proc") / str(pids(n1)[1]) / "cmdline").read_bytes().split(b"\0")
    assert agent_cmd[1].decode() == f"{n1}/venv/bin/fleetbench-agent" and b"--tls-ca" in agent_cmd
    # fleetbench inside the node's venv is the wheel's copy, not this checkout
    where = subprocess.run([f"{n1}/venv/bin/python", "-c", "import fleetbench; print(fleetbench.__file__)"],
                           capture_output=True, text=True, check=True, cwd=n1).stdout
    assert where.startswith(f"{n1}/venv/lib/")
    # tunnel mode: n2's agent listens on loopback only
    assert listening_on(fleet["agent_ports"]["n2"]) == {"127.0.0.1"}
    ping = ctl("ping", "--nodes", "n1,n2", "--fleet", str(fleet["fleet"]), "--json")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    by_node = {r["node"]: r for r in json.loads(ping.stdout)}
    assert by_node["n1"]["address"] == f"127.0.0.1:{fleet['agent_ports']['n1']}"
    assert by_node["n2"]["address"].startswith("127.0.0.1:")  # the local end of the SSH forward
    assert by_node["n2"]["address"] != f"127.0.0.1:{fleet['agent_ports']['n2']}"
    assert by_node["n2"]["agent_version"] == "0.1.0"


def test_second_deploy_changes_nothing(fleet):
    n1, n2 = fleet["nodes"] / "n1", fleet["nodes"] / "n2"
    before = {n: (pids(d), (d / "deployed.json").read_bytes(), (d / "venv").stat().st_mtime_ns)
              for n, d in (("n1", n1), ("n2", n2))}
    proc, rows = deploy(fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {n: r["action"] for n, r in rows.items()} == {"n1": "unchanged", "n2": "unchanged"}
    assert all(r["changes"] == [] for r in rows.values())
    after = {n: (pids(d), (d / "deployed.json").read_bytes(), (d / "venv").stat().st_mtime_ns)
             for n, d in (("n1", n1), ("n2", n2))}
    assert after == before


def test_new_version_needs_upgrade_and_upgrade_restarts(fleet, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for d in ("fleetbench", "agent", "controller"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"', 1))
    init = src / "fleetbench" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.1.1"'))
    n1 = fleet["nodes"] / "n1"
    old_pids, old_manifest = pids(n1), (n1 / "deployed.json").read_bytes()

    proc, rows = deploy(fleet, "--source", str(src), nodes="n1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert rows["n1"]["action"] == "outdated" and "--upgrade" in rows["n1"]["detail"]
    assert pids(n1) == old_pids and (n1 / "deployed.json").read_bytes() == old_manifest

    proc, rows = deploy(fleet, "--source", str(src), "--upgrade", nodes="n1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rows["n1"]["action"] == "upgraded" and rows["n1"]["version"] == "0.1.1"
    assert "stopped the old agent" in rows["n1"]["changes"]
    new_pids = pids(n1)
    assert new_pids[0] != old_pids[0] and new_pids[1] != old_pids[1]
    assert not any(pid in old_pids for pid, _ in processes_mentioning(str(n1)))
    assert json.loads((n1 / "deployed.json").read_text())["version"] == "0.1.1"


def test_run_reaches_the_tunnel_mode_node(fleet, tmp_path):
    tok = ensure_demo_tokenizer(tmp_path / "tok")
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""name: tunnel check
model: demo
endpoint: {{url: http://127.0.0.1:8000/v1/completions, api: openai, api_key: EMPTY}}
tokenizer: {tok}
cases:
  - id: perf-tunnel
    type: perf
    parallel: 2
    number: 6
    input_tokens: 32
    output_tokens: 8
    extra_args: {{ignore_eos: true}}
    expect:
      success_rate: {{min: 1.0}}
""")
    db = tmp_path / "store.sqlite"
    proc = ctl("run", "--nodes", "n2", "--fleet", str(fleet["fleet"]), "--plan", str(plan), "--db", str(db),
               "--out", str(tmp_path / "out"), "--quiet", timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    con = sqlite3.connect(db)
    (n,) = con.execute("SELECT count(*) FROM requests WHERE node = 'n2' AND success = 1").fetchone()
    assert n == 6
    # the job ran on the node: its records are in the node's data dir
    assert any((fleet["nodes"] / "n2-data").rglob("*")), "the agent's data dir holds the job"


def wait_for(check, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(0.2)
    pytest.fail(f"not within {timeout} s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_supervisor_restarts_a_crashed_agent_and_deploy_starts_a_stopped_one(fleet):
    n2 = fleet["nodes"] / "n2"
    sup, agent = pids(n2)
    os.kill(agent, signal.SIGKILL)  # a crash: the supervisor starts a new agent 5 s later

    def restarted() -> int | None:
        text = (n2 / "agent.pid").read_text().strip() if (n2 / "agent.pid").exists() else ""
        return int(text) if text.isdigit() and int(text) != agent and alive(int(text)) else None

    new_agent = wait_for(restarted)
    assert pids(n2)[0] == sup
    wait_for(lambda: listening_on(fleet["agent_ports"]["n2"]) or None)
    os.kill(sup, signal.SIGTERM)  # what undeploy does: the supervisor stops the agent, then itself
    wait_for(lambda: (not alive(sup) and not alive(new_agent)) or None)
    assert not (n2 / "supervisor.pid").exists()
    proc, rows = deploy(fleet, nodes="n2")
    assert proc.returncode == 0 and rows["n2"]["action"] == "started", proc.stdout + proc.stderr
    assert rows["n2"]["changes"] == ["started"] and alive(pids(n2)[0])


def test_undeploy_stops_and_removes_but_keeps_data(fleet):
    nodes = fleet["nodes"]
    assert processes_mentioning(str(nodes / "n1")) and processes_mentioning(str(nodes / "n2"))
    proc = ctl("undeploy", "--nodes", "n1,n2", "--fleet", str(fleet["fleet"]), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["node"]: r for r in json.loads(proc.stdout)}
    assert {n: r["action"] for n, r in rows.items()} == {"n1": "removed", "n2": "removed"}
    time.sleep(0.2)
    assert processes_mentioning(str(nodes / "n1")) == [] and processes_mentioning(str(nodes / "n2")) == []
    assert sorted(p.name for p in (nodes / "n1").iterdir()) == ["data"]  # the data dir inside DIR is kept
    assert not (nodes / "n2").exists()
    assert (nodes / "n2-data").is_dir() and any((nodes / "n2-data").iterdir())
    again = ctl("undeploy", "--nodes", "n2", "--fleet", str(fleet["fleet"]), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)[0]["action"] == "absent"


def test_unknown_host_key_and_wrong_key_are_refused(fleet, tmp_path):
    """Host keys are checked (an empty known_hosts refuses the node) and the SSH error is one line."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    for extra, message in ((["--known-hosts", str(empty)], "host key not verifiable"),
                           (["--ssh-key", str(other_key)], "permission denied")):
        proc, rows = deploy(fleet, *extra, nodes="n1")
        assert proc.returncode == 2 and rows["n1"]["action"] == "failed", proc.stdout + proc.stderr
        assert message in rows["n1"]["detail"] and "error: n1: ssh " in proc.stderr
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(fleet["fleet"].read_text().replace("keys/known_hosts", str(empty)).replace(
        "keys/", str(fleet["dir"] / "keys") + "/").replace("certs/", str(fleet["dir"] / "certs") + "/"))
    ping = ctl("ping", "--nodes", "n2", "--fleet", str(fleet_file))
    assert ping.returncode == 2 and "Traceback" not in ping.stderr
    assert ping.stderr.strip().splitlines() == [ping.stderr.strip()] and "n2: ssh" in ping.stderr
