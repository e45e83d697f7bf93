"""Disks, NICs (on a fake sysfs), OS, kernel, container runtimes and the engine probe."""

from __future__ import annotations

import http.server
import json
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbench.agent.inventory import disks, engine, nics, system
from fleetbench.agent.inventory._common import NotAvailable

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def test_lsblk_h200() -> None:
    d = disks.parse_lsblk_json((FIX / "nvidia-h200x8" / "lsblk.txt").read_text())
    assert not isinstance(d, NotAvailable)
    assert [x.name for x in d] == ["vda", "vdb"]  # zram0 (size 0) left out
    assert d[0].size_bytes == 274877906944 and d[0].transport == "virtio" and d[0].rotational is True


def test_lsblk_nvme_kind() -> None:
    d = disks.parse_lsblk_json('{"blockdevices": [{"name": "nvme0n1", "size": "3840755982336", "type": "disk",'
                               ' "model": "X", "rota": "0", "tran": "nvme"}]}')
    assert not isinstance(d, NotAvailable)
    assert d[0].kind == "NVMe" and d[0].size_bytes == 3840755982336 and d[0].rotational is False


def test_os_release_and_uname_h200() -> None:
    o = system.parse_os_release((FIX / "nvidia-h200x8" / "os-release.txt").read_text())
    assert isinstance(o, system.OsRelease)
    assert (o.pretty_name, o.id, o.version_id) == ("Ubuntu 24.04.3 LTS", "ubuntu", "24.04")
    assert system.parse_uname((FIX / "nvidia-h200x8" / "uname.txt").read_text()) == "6.18.44-fc-v657-gpu"
    assert system.parse_uname("5.15.0-164-generic\n") == "5.15.0-164-generic"
    assert isinstance(system.parse_uname("what"), NotAvailable)


def test_runtime_versions() -> None:
    # Seed 001 reports Docker 20.10.5; the strings are the tools' --version formats.
    assert system.parse_runtime_version("docker", "Docker version 20.10.5, build 55c4c88") == \
        system.RuntimeVersion(name="docker", version="20.10.5")
    assert system.parse_runtime_version("podman", "podman version 4.9.3").version == "4.9.3"  # type: ignore[union-attr]
    c = system.parse_runtime_version("containerd", "containerd github.com/containerd/containerd v1.7.2 0cae528")
    assert isinstance(c, system.RuntimeVersion) and c.version == "1.7.2"
    assert isinstance(system.parse_runtime_version("docker", "nonsense"), NotAvailable)


def test_evalscope_version_without_import() -> None:
    import subprocess
    import sys

    code = ("import sys; from fleetbench.agent.inventory import system; v = system.evalscope_version(); "
            "print(v); print('evalscope' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == "False"  # version from package metadata; evalscope itself never imported


def test_nics_fake_sysfs(tmp_path: Path) -> None:
    net = tmp_path / "net"
    (tmp_path / "drivers" / "mlx5_core").mkdir(parents=True)
    for name, speed in (("eth0", "100000"), ("eth1", "-1")):
        d = net / name
        (d / "device").mkdir(parents=True)
        (d / "device" / "driver").symlink_to(tmp_path / "drivers" / "mlx5_core")
        (d / "speed").write_text(speed + "\n")
        (d / "operstate").write_text("up\n")
    (net / "lo").mkdir(parents=True)
    (net / "docker0").mkdir(parents=True)  # virtual: no device link
    port = tmp_path / "infiniband" / "mlx5_0" / "ports" / "1"
    port.mkdir(parents=True)
    (port / "rate").write_text("400 Gb/sec (4X NDR)\n")
    (port / "state").write_text("4: ACTIVE\n")
    (port / "link_layer").write_text("InfiniBand\n")
    info = nics.collect(str(tmp_path))
    assert isinstance(info, nics.NetInfo)
    assert [n.name for n in info.nics] == ["eth0", "eth1"]
    assert info.nics[0].driver == "mlx5_core" and info.nics[0].speed_mbps == 100000
    assert info.nics[1].speed_mbps is None
    assert not isinstance(info.ib_ports, NotAvailable)
    assert info.ib_ports[0] == nics.IbPort(device="mlx5_0", port=1, rate_gbps=400.0, rate="400 Gb/sec (4X NDR)",
                                           state="ACTIVE", link_layer="InfiniBand")


def test_nics_without_infiniband(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    info = nics.collect(str(tmp_path))
    assert isinstance(info, nics.NetInfo) and isinstance(info.ib_ports, NotAvailable)


def test_base_url() -> None:
    assert engine.base_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"
    assert engine.base_url("http://h:30000/v1/completions") == "http://h:30000"
    assert engine.base_url("http://h:30000/") == "http://h:30000"


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: typing.ClassVar[dict[str, dict[str, object]]] = {}

    def do_GET(self) -> None:
        body = self.routes.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"routes": {}})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", handler
    finally:
        srv.shutdown()


def test_engine_vllm(server: tuple[str, type[_Handler]]) -> None:
    url, h = server
    h.routes = {"/version": {"version": "0.8.5.post1"},
                "/v1/models": {"object": "list", "data": [{"id": "DeepSeek-R1", "owned_by": "vllm"}]}}
    e = engine.probe(url)
    assert isinstance(e, engine.EngineInfo)
    assert (e.name, e.version, e.models) == ("vllm", "0.8.5.post1", ("DeepSeek-R1",))


def test_engine_sglang(server: tuple[str, type[_Handler]]) -> None:
    url, h = server
    h.routes = {"/get_server_info": {"version": "0.4.6.post1"},
                "/v1/models": {"object": "list", "data": [{"id": "m", "owned_by": "sglang"}]}}
    e = engine.probe(url)
    assert isinstance(e, engine.EngineInfo) and (e.name, e.version) == ("sglang", "0.4.6.post1")


def test_engine_that_names_itself_is_not_taken_for_vllm(server: tuple[str, type[_Handler]]) -> None:
    # found on the H100 run: fleetbench's simulator answers /version like vLLM and was reported as "vllm 0.1.0"
    url, h = server
    h.routes = {"/version": {"version": "0.1.0", "engine": "fleetbench-sim"},
                "/v1/models": {"object": "list", "data": [{"id": "demo", "owned_by": "fleetbench"}]}}
    e = engine.probe(url)
    assert isinstance(e, engine.EngineInfo) and (e.name, e.version) == ("fleetbench-sim", "0.1.0")


def test_engine_nothing_listening() -> None:
    e = engine.probe("http://127.0.0.1:9/v1", timeout=0.5)
    assert isinstance(e, engine.EngineInfo) and (e.name, e.version) == ("unknown", "unknown")
    assert isinstance(engine.probe(None), NotAvailable)
