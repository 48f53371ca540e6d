"""Prepare the wheels a CUDA machine *without a package index* needs to run the kit.

    python scripts/offline_wheels.py                    # bitsandbytes for CUDA 13.0, Python 3.12
    python scripts/offline_wheels.py --cuda 12.8 --python 3.11 --out .whl
    python scripts/offline_wheels.py --with transformers==5.23.0 accelerate

On the machine without an index, one line installs them beside its own torch:

    python3 -m pip install --no-index --no-deps .whl/*.whl

bitsandbytes' wheel (about 43 MB) carries one native library per CUDA, ROCm and
XPU runtime; only the one matching the target's torch (``torch.version.cuda``
there: "13.0" -> libbitsandbytes_cuda130.so) and the CPU library are kept, so
the trimmed wheel is a few MB. Its RECORD is rewritten with the new hashes, so
pip installs it as any other wheel. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]
NATIVE = re.compile(r"^bitsandbytes/libbitsandbytes_(\w+?)\.(so|dll|dylib)$")


def runtime_tag(cuda: str) -> str:
    """'13.0' -> 'cuda130', the suffix of bitsandbytes' native library for that CUDA runtime."""
    if not re.fullmatch(r"\d{2}\.\d", cuda):
        raise ValueError(f"--cuda must look like 12.8 or 13.0 (torch.version.cuda), got {cuda!r}")
    return "cuda" + cuda.replace(".", "")


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def trim_bitsandbytes(wheel: Path, cuda: str, out: Path) -> Path:
    """Write ``wheel`` to ``out`` keeping only the CPU library and the one for ``cuda``.

    Raises ValueError when the wheel has no library for that runtime (the wheel
    would install but fail on the GPU), naming the runtimes it does have.
    """
    keep = {"cpu", runtime_tag(cuda)}
    with zipfile.ZipFile(wheel) as src:
        names = src.namelist()
        runtimes = sorted(m.group(1) for n in names if (m := NATIVE.match(n)))
        if runtime_tag(cuda) not in runtimes:
            raise ValueError(f"{wheel.name} has no library for CUDA {cuda}; it has: {', '.join(runtimes)}")
        kept = [n for n in names if not ((m := NATIVE.match(n)) and m.group(1) not in keep)]
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        rows = []
        target = out / wheel.name
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
            for name in kept:
                if name == record_name:
                    continue
                data = src.read(name)
                dst.writestr(src.getinfo(name), data)
                rows.append([name, _hash(data), str(len(data))])
            rows.append([record_name, "", ""])
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            dst.writestr(record_name, buf.getvalue())
    return target


def download(specs: list[str], python: str, dest: Path) -> list[Path]:
    """pip download of binary wheels for a Linux x86-64 CPython ``python`` (no dependencies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
           "-d", str(dest), *[a for p in PLATFORMS for a in ("--platform", p)], *specs]
    print("+", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)
    return sorted(dest.glob("*.whl"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", default="13.0", help="torch.version.cuda on the target machine")
    parser.add_argument("--python", default="3.12", help="the target's Python version")
    parser.add_argument("--bitsandbytes", default="bitsandbytes>=0.45", help="pip spec")
    parser.add_argument("--with", dest="extra", nargs="*", default=[],
                        help="more pip specs to fetch as they are (e.g. transformers==5.23.0)")
    parser.add_argument("--out", default=".whl", help="folder for the wheels (default .whl)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runtime_tag(args.cuda)  # fail before downloading
    with tempfile.TemporaryDirectory() as tmp:
        for wheel in download([args.bitsandbytes, *args.extra], args.python, Path(tmp)):
            if wheel.name.startswith("bitsandbytes-"):
                made = trim_bitsandbytes(wheel, args.cuda, out)
                print(f"{made}: {wheel.stat().st_size / 1e6:.1f} MB -> {made.stat().st_size / 1e6:.1f} MB "
                      f"(kept the CPU and CUDA {args.cuda} libraries)")
            else:
                made = out / wheel.name
                made.write_bytes(wheel.read_bytes())
                print(f"{made}: {made.stat().st_size / 1e6:.1f} MB")
    print(f"install there with: python3 -m pip install --no-index --no-deps {out}/*.whl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
