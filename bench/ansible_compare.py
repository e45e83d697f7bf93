"""Fact gathering over 50 hosts: `ctl inventory` over 50 agents vs Ansible's `setup` module over SSH.

Both sides are the real programs, as an operator runs them, each started as a fresh command:

- fleetbench: 50 real agent processes (`python -m fleetbench.agent serve`), agent i listening on
  127.0.0.i; `ctl inventory --nodes h01,...,h50 --fleet fleet.yaml --json` (a new controller
  process: start-up, 50 gRPC GetInventory calls at once, the drift check and the stored snapshot).
- Ansible: real OpenSSH servers (/usr/sbin/sshd; 4 daemons, as one listens on at most 16
  addresses) on 127.0.0.1 ... 127.0.0.50, one port: each host is its own TCP destination, SSH
  connection and ControlMaster socket, as with 50 machines; `ansible all -i inventory -m setup -f 50`
  (ansible-core from PyPI, `pip install -e .[bench]`), key auth as root, host key checking off.
  Measured cold (no ControlMaster connection yet: what a first run costs) and warm (ControlPersist
  masters still up from the previous run), with Ansible's defaults and with `pipelining` on.

Everything runs on this one machine, so both sides also pay for the "hosts'" work (the agents'
collectors; sshd, a shell and Python running the setup module per host). Target (issue 8): ctl
inventory ≥ 20× faster than Ansible at 50 hosts.

Run: .venv/bin/python bench/ansible_compare.py [--hosts 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleetbench.controller.localfleet import free_port

SSHD = "/usr/sbin/sshd"


def host_ip(i: int) -> str:
    return f"127.0.0.{i + 1}"


def ansible_bin() -> Path | None:
    exe = Path(sys.executable).parent / "ansible"
    return exe if exe.exists() else (Path(found) if (found := shutil.which("ansible")) else None)


MAX_LISTEN = 16  # OpenSSH's MAX_LISTEN_SOCKS: one sshd listens on at most 16 addresses


def start_sshd(work: Path, n: int) -> tuple[list[subprocess.Popen[bytes]], int, Path]:
    """ceil(n / 16) sshd processes on one port, together listening on 127.0.0.1 ... 127.0.0.n."""
    d = work / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory sshd insists on
    port = free_port()
    procs = []
    for k, first in enumerate(range(0, n, MAX_LISTEN)):
        listen = "\n".join(f"ListenAddress {host_ip(i)}:{port}" for i in range(first, min(n, first + MAX_LISTEN)))
        (d / f"sshd_config{k}").write_text(f"""{listen}
HostKey {d}/host_key
PidFile {d}/sshd{k}.pid
AuthorizedKeysFile {d}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
MaxStartups 500:30:1000
MaxSessions 100
LogLevel ERROR
Subsystem sftp internal-sftp
""")
        log = work / f"sshd{k}.log"
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / f"sshd_config{k}")], stdout=subprocess.DEVNULL,
                                stderr=log.open("wb"))
        procs.append(proc)
        try:
            wait_for_port_at(host_ip(first), port, 10, proc)
        except RuntimeError:
            raise RuntimeError(f"sshd did not start: {log.read_text()[-1000:]}") from None
    return procs, port, d / "client_key"


def ansible_env(work: Path, key: Path, pipelining: bool) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PRIVATE_KEY_FILE": str(key),
        "ANSIBLE_REMOTE_USER": "root",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
        "ANSIBLE_SSH_COMMON_ARGS": "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
        "ANSIBLE_REMOTE_TMP": str(work / "ansible-remote"),
        "ANSIBLE_PIPELINING": "True" if pipelining else "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }


def run_ansible(exe: Path, inventory: Path, env: dict[str, str], forks: int) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "all", "-i", str(inventory), "-m", "setup", "-f", str(forks), "-o"],
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    took = time.perf_counter() - t0
    ok = sum(1 for line in proc.stdout.splitlines() if " | SUCCESS " in line)
    return took, ok, proc.stdout[-2000:] + proc.stderr[-2000:]


def close_masters(cp_dir: Path) -> None:
    """Stop the ControlPersist masters this bench's Ansible runs left (by their control socket)."""
    if not cp_dir.exists():
        return
    for sock in cp_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, check=False)


def start_agents(work: Path, n: int) -> tuple[list[subprocess.Popen[bytes]], Path]:
    port = free_port()
    procs = []
    lines = ["nodes:"]
    for i in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"{host_ip(i)}:{port}",
             "--data-dir", str(work / "agents" / f"h{i + 1:02d}")],
            stdout=subprocess.DEVNULL, stderr=(work / f"agent-{i}.log").open("wb")))
        lines.append(f'  h{i + 1:02d}: {{address: "{host_ip(i)}:{port}"}}')
    fleet = work / "fleet.yaml"
    fleet.write_text("\n".join(lines) + "\n")
    deadline = time.time() + 300
    for i, p in enumerate(procs):
        wait_for_port_at(host_ip(i), port, max(1.0, deadline - time.time()), p)
    return procs, fleet


def wait_for_port_at(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} for {host}:{port} exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def run_ctl_inventory(work: Path, fleet: Path, n: int) -> tuple[float, int, str]:
    names = ",".join(f"h{i + 1:02d}" for i in range(n))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fleetbench.controller", "inventory", "--nodes", names,
                           "--fleet", str(fleet), "--db", str(work / "ctl.sqlite"), "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    took = time.perf_counter() - t0
    try:
        nodes = json.loads(proc.stdout)["nodes"]
        ok = sum(1 for v in nodes.values() if "inventory" in v)
    except (ValueError, KeyError):
        ok = 0
    return took, ok, proc.stderr[-2000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each variant (median reported)")
    args = ap.parse_args()
    n = args.hosts
    exe = ansible_bin()
    if exe is None:
        print("SKIP: ansible-core is not installed (pip install -e '.[bench]'); only ctl inventory would run")
        return
    if not Path(SSHD).exists():
        print(f"SKIP: no OpenSSH server at {SSHD}")
        return
    work = Path(tempfile.mkdtemp(prefix="fb-ansible-"))
    sshds: list[subprocess.Popen[bytes]] = []
    agents = None
    results: dict[str, list[float]] = {}
    try:
        sshds, port, key = start_sshd(work, n)
        inventory = work / "inventory.ini"
        inventory.write_text("[all]\n" + "".join(
            f"h{i + 1:02d} ansible_host={host_ip(i)} ansible_port={port}\n" for i in range(n)))
        version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        print(f"{version}; OpenSSH sshd on {n} loopback addresses; {os.cpu_count()} CPUs", flush=True)
        for pipelining in (False, True):
            env = ansible_env(work, key, pipelining)
            label = "pipelining" if pipelining else "defaults"
            for r in range(args.runs):
                close_masters(work / "cp")
                took, ok, tail = run_ansible(exe, inventory, env, n)
                print(f"ansible setup ({label}, cold): {took:.2f} s, {ok}/{n} hosts", flush=True)
                if ok != n:
                    print(tail)
                results.setdefault(f"ansible {label} cold", []).append(took)
                took, ok, tail = run_ansible(exe, inventory, env, n)
                print(f"ansible setup ({label}, warm ControlMaster): {took:.2f} s, {ok}/{n} hosts", flush=True)
                results.setdefault(f"ansible {label} warm", []).append(took)
                del r
        close_masters(work / "cp")

        t0 = time.perf_counter()
        agents, fleet = start_agents(work, n)
        print(f"{n} agents started in {time.perf_counter() - t0:.1f} s", flush=True)
        run_ctl_inventory(work, fleet, n)  # first call: each agent's first inventory (imports its collectors)
        for _ in range(args.runs):
            took, ok, tail = run_ctl_inventory(work, fleet, n)
            print(f"ctl inventory: {took:.2f} s, {ok}/{n} nodes", flush=True)
            if ok != n:
                print(tail)
            results.setdefault("ctl inventory", []).append(took)
    finally:
        close_masters(work / "cp")
        for p in agents or []:
            p.send_signal(signal.SIGTERM)
        for p in agents or []:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for p in sshds:
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    ctl = statistics.median(results["ctl inventory"])
    print()
    print(f"| {n} hosts | median of {args.runs} | ctl inventory is × faster | target ≥ 20× |")
    print("| --- | ---: | ---: | --- |")
    print(f"| ctl inventory ({n} agents, gRPC) | {ctl:.2f} s | | |")
    for name, times in results.items():
        if name == "ctl inventory":
            continue
        med = statistics.median(times)
        print(f"| {name} | {med:.2f} s | {med / ctl:.1f}× | {'met' if med / ctl >= 20 else 'missed'} |")


if __name__ == "__main__":
    main()
