"""Install PyTorch before the other requirements, choosing the right build.

* torch already importable (Colab, a GPU box you set up): keep it.
* an NVIDIA GPU (nvidia-smi answers): pip's default torch, a CUDA build.
* no GPU: the CPU build (about 200 MB instead of several GB), from PyTorch's
  CPU index when it is reachable; otherwise from the machine's own package sources.

The version is the tested set's (constraints.txt, scripts/lock.py) where it applies to
this Python, else the newest the lower bound allows.

Standard library only: it runs before anything else is installed.
"""

import importlib.util
import shutil
import socket
import subprocess
import sys

import lock  # noqa: E402 - beside this script, standard library only

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


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
        pip(lock.torch_requirement())
    elif reachable("download.pytorch.org"):
        pip(lock.torch_requirement(), "--index-url", CPU_INDEX)
    else:
        pip(lock.torch_requirement())


if __name__ == "__main__":
    main()
