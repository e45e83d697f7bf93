"""`ctl certs init`: a fleet CA, the controller's client certificate and one server
certificate per node (with the node's names and addresses), for mutual TLS.

Keys are EC P-256, certificates valid for `days` (default 825). Private keys are written
0600. The agent runs with --tls-cert node-NAME.pem --tls-key node-NAME.key --tls-ca ca.pem;
the fleet file names ca.pem, controller.pem and controller.key under `tls:`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetbench.errors import SecurityError


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(name: str = "fleetbench fleet CA", days: int = 3650) -> Issued:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def issue(ca: Issued, common_name: str, names: list[str], server: bool, days: int = 825,
          not_before: dt.datetime | None = None) -> Issued:
    """A leaf certificate signed by `ca`: server (agent) or client (controller)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise SecurityError("the CA key is not an EC key made by `ctl certs init`")
    key = _key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def _write(path: Path, data: bytes, private: bool) -> None:
    """Atomically, and a key never readable by others even for an instant: created 0600 (whatever the umask)
    under a temporary name, then renamed over the target."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        os.fchmod(fd, 0o600 if private else 0o644)  # the umask may have narrowed (or, at 000, not) the mode
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def init_fleet_certs(out: Path, nodes: dict[str, list[str]], force: bool = False) -> list[Path]:
    """CA + controller client cert + a server cert per node (names/addresses in its SAN)."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)  # the folder holds the CA key: nobody else lists or enters it, whatever the umask
    if (out / "ca.pem").exists() and not force:
        raise SecurityError(f"{out / 'ca.pem'} exists: a new CA would orphan every certificate it signed "
                            "(pass --force to replace it)")
    ca = make_ca()
    written = []
    for stem, issued in [("ca", ca), ("controller", issue(ca, "fleetbench controller", [], server=False))] + [
        (f"node-{name}", issue(ca, name, [name, *addrs], server=True)) for name, addrs in nodes.items()
    ]:
        _write(out / f"{stem}.pem", issued.cert_pem, private=False)
        _write(out / f"{stem}.key", issued.key_pem, private=True)
        written += [out / f"{stem}.pem", out / f"{stem}.key"]
    return written
