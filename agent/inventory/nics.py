"""NICs from /sys/class/net (speed, driver, state) and InfiniBand/RoCE ports from /sys/class/infiniband."""

from __future__ import annotations

import contextlib
import os

from fleetbench.inventory import IbPort, NetInfo, Nic

from ._common import NotAvailable, clean, to_float, to_int


def parse_speed(text: str) -> int | None:
    """/sys/class/net/X/speed in Mb/s; -1 or garbage (link down, virtual) → None."""
    n = to_int(text.strip()) if text.strip().lstrip("-").isdigit() else None
    return n if n is not None and n > 0 else None


def parse_ib_rate(text: str) -> float | None:
    """/sys/class/infiniband/X/ports/N/rate, e.g. "200 Gb/sec (4X HDR)" → 200.0."""
    return to_float(text) if "gb/sec" in text.lower() else None


def parse_ib_state(text: str) -> str:
    """"4: ACTIVE" → "ACTIVE"."""
    return clean(text.split(":", 1)[-1])


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096).strip()
    except OSError:
        return ""


def collect(root: str = "/sys/class") -> NetInfo | NotAvailable:
    net = os.path.join(root, "net")
    try:
        names = sorted(os.listdir(net))
    except OSError as exc:
        return NotAvailable(f"{net}: {exc.strerror or exc}")
    nics: list[Nic] = []
    for name in names:
        base = os.path.join(net, name)
        if name == "lo" or not os.path.exists(os.path.join(base, "device")):
            continue  # loopback and virtual devices (bridges, veth, docker0) have no device link
        driver = ""
        with contextlib.suppress(OSError):
            driver = os.path.basename(os.readlink(os.path.join(base, "device", "driver")))
        nics.append(Nic(name=name, driver=driver, speed_mbps=parse_speed(_read(os.path.join(base, "speed"))),
                        state=_read(os.path.join(base, "operstate")), mac=_read(os.path.join(base, "address"))))
    ib_root = os.path.join(root, "infiniband")
    ports: list[IbPort] = []
    ib: tuple[IbPort, ...] | NotAvailable
    if not os.path.isdir(ib_root):
        ib = NotAvailable("no /sys/class/infiniband (no InfiniBand/RoCE device or driver)")
    else:
        for dev in sorted(os.listdir(ib_root)):
            pdir = os.path.join(ib_root, dev, "ports")
            try:
                port_names = sorted(os.listdir(pdir), key=lambda p: to_int(p) or 0)
            except OSError:
                continue
            for p in port_names:
                rate = _read(os.path.join(pdir, p, "rate"))
                ports.append(IbPort(device=dev, port=to_int(p) or 0, rate_gbps=parse_ib_rate(rate), rate=rate,
                                    state=parse_ib_state(_read(os.path.join(pdir, p, "state"))),
                                    link_layer=_read(os.path.join(pdir, p, "link_layer"))))
        ib = tuple(ports)
    return NetInfo(nics=tuple(nics), ib_ports=ib)
