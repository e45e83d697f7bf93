"""Mutual TLS between ctl and an agent: the right certificate is accepted; a wrong CA, no client
certificate, an expired one and plaintext are refused with a one-line error (exit 2)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbench.controller.certs import init_fleet_certs, issue, make_ca
from fleetbench.controller.localfleet import free_port, wait_for_port

pytestmark = pytest.mark.integration
CTL = [sys.executable, "-m", "fleetbench.controller"]


@pytest.fixture(scope="module")
def tls_agent(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    certs = d / "certs"
    proc = subprocess.run([*CTL, "certs", "init", "--node", "n1=127.0.0.1,localhost", "--out", str(certs)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (certs / "node-n1.key").stat().st_mode & 0o777 == 0o600
    port = free_port()
    agent = subprocess.Popen([sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"127.0.0.1:{port}",
                              "--data-dir", str(d / "data"), "--tls-cert", str(certs / "node-n1.pem"),
                              "--tls-key", str(certs / "node-n1.key"), "--tls-ca", str(certs / "ca.pem")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 30, agent)
    yield d, certs, port
    agent.terminate()
    agent.wait(timeout=15)


def ping(d: Path, port: int, tls: str | None) -> subprocess.CompletedProcess[str]:
    fleet = d / f"fleet-{abs(hash(tls))}.yaml"
    fleet.write_text(f"nodes:\n  n1: '127.0.0.1:{port}'\n" + (tls or ""))
    return subprocess.run([*CTL, "ping", "--nodes", "n1", "--fleet", str(fleet), "--json"], capture_output=True,
                          text=True, timeout=60)


def write(dirpath: Path, stem: str, issued) -> None:
    (dirpath / f"{stem}.pem").write_bytes(issued.cert_pem)
    (dirpath / f"{stem}.key").write_bytes(issued.key_pem)


def test_good_client_certificate_is_accepted(tls_agent):
    d, certs, port = tls_agent
    proc = ping(d, port, f"tls: {{ca: {certs}/ca.pem, cert: {certs}/controller.pem, key: {certs}/controller.key}}\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"agent_version"' in proc.stdout


@pytest.mark.parametrize("case", ["wrong_ca", "no_client_cert", "expired", "plaintext"])
def test_bad_clients_are_refused(tls_agent, tmp_path, case):
    d, certs, port = tls_agent
    if case == "wrong_ca":
        other = make_ca("another fleet")
        write(tmp_path, "other", issue(other, "intruder", [], server=False))
        tls = f"tls: {{ca: {certs}/ca.pem, cert: {tmp_path}/other.pem, key: {tmp_path}/other.key}}\n"
    elif case == "no_client_cert":
        # a CA to check the agent with, but a certificate the agent cannot verify as a client: a self-made one
        write(tmp_path, "self", make_ca("self-signed"))
        tls = f"tls: {{ca: {certs}/ca.pem, cert: {tmp_path}/self.pem, key: {tmp_path}/self.key}}\n"
    elif case == "expired":
        from fleetbench.controller.certs import Issued

        ca = Issued((certs / "ca.pem").read_bytes(), (certs / "ca.key").read_bytes())
        old = issue(ca, "old controller", [], server=False, days=1,
                    not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
        write(tmp_path, "old", old)
        tls = f"tls: {{ca: {certs}/ca.pem, cert: {tmp_path}/old.pem, key: {tmp_path}/old.key}}\n"
    else:
        tls = None
    proc = ping(d, port, tls)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert '"error"' in proc.stdout
    assert ("requires mutual TLS" if case == "plaintext" else "TLS connection refused") in proc.stdout


def test_agent_refuses_plaintext_on_a_public_address(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fleetbench.agent", "serve", "--listen", f"0.0.0.0:{free_port()}",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0" in proc.stderr and "Traceback" not in proc.stderr


def test_certs_init_does_not_overwrite_a_ca(tmp_path):
    init_fleet_certs(tmp_path, {"n1": ["127.0.0.1"]})
    proc = subprocess.run([*CTL, "certs", "init", "--node", "n1=127.0.0.1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "exists" in proc.stderr
