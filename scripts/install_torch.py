"""Install PyTorch before the other requirements, choosing the right build.

* torch already importable (Colab, a GPU box you set up): keep it.
* an NVIDIA GPU (nvidia-smi answers): pip's default torch, a CUDA build.
* no GPU: the CPU build (about 200 MB instead of several GB), from PyTorch's
  CPU index when it is reachable; otherwise the tested version TESTED_CPU_TORCH
  from the machine's own package sources.

Standard library only: it runs before anything else is installed.
"""

import importlib.util
import shutil
import socket
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TESTED_CPU_TORCH = "torch==2.13.0"


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def has_nvidia_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def main() -> None:
    if importlib.util.find_spec("torch") is not None:
        print("torch is already installed: keeping it")
    elif has_nvidia_gpu():
        pip("torch>=2.4")
    elif reachable("download.pytorch.org"):
        pip("torch>=2.4", "--index-url", CPU_INDEX)
    else:
        pip(TESTED_CPU_TORCH)


if __name__ == "__main__":
    main()
