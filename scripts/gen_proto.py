"""Regenerate the Python gRPC stubs from proto/ (run: python scripts/gen_proto.py).

`--check` regenerates into a temporary folder and fails if the checked-in
stubs differ, so CI catches a .proto edited without regenerating.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT  # fleetbench/v1/agent_pb2.py: importable as fleetbench.v1, never as `proto`
PROTOS = sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out: Path) -> None:
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root) for p in (root / "fleetbench").rglob("*") if p.name.endswith(GENERATED_SUFFIXES)
    )


def main() -> int:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            fresh = generated_files(Path(tmp))
            stale = [
                str(p)
                for p in fresh
                if not (OUT_DIR / p).exists() or not filecmp.cmp(Path(tmp) / p, OUT_DIR / p, shallow=False)
            ]
            extra = [str(p) for p in generated_files(OUT_DIR) if p not in fresh]
        if stale or extra:
            print(f"generated stubs are out of date: {stale + extra}; run python scripts/gen_proto.py")
            return 1
        print("generated stubs match proto/")
        return 0
    generate(OUT_DIR)
    print("regenerated:", ", ".join(str(p) for p in generated_files(OUT_DIR)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
