"""Hardware detection: what this machine can run, measured rather than assumed.

``detect_hardware()`` returns a :class:`Hardware` record that the profiles,
the preflight and every stored result use. Nothing here downloads anything or
waits on the network for more than the short timeout of :func:`has_internet`.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import socket
from pathlib import Path

from .machine import GB, SDPA_MIN_CC, Hardware, bf16_native, sdpa_backends_for  # noqa: F401 - re-exported


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def ram_gb() -> float:
    """The machine's physical RAM in GB (see :func:`cgroup_limits` for a container's share)."""
    try:
        import psutil
        return psutil.virtual_memory().total / GB
    except ImportError:  # pragma: no cover - psutil is a requirement
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB


def _cgroup_dirs(root: Path, proc_cgroup: Path, controller: str) -> list[Path]:
    """The cgroup folders whose limits apply to this process for ``controller``, innermost
    first (a parent's limit binds too). cgroup v2 lists ``0::/path``; v1 ``N:cpu,cpuacct:/path``
    under a per-controller mount. Where the path is not visible (a namespaced container sees
    its own cgroup as the mount's root), the mount's root is what applies."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    dirs: list[Path] = []
    for line in lines:
        try:
            _, controllers, path = line.split(":", 2)
        except ValueError:
            continue
        if controllers == "":                                   # v2, unified
            mount = root if (root / "cgroup.controllers").exists() else root / "unified"
        elif controller in controllers.split(","):              # v1
            mount = next((root / name for name in (controllers, controller)
                          if (root / name).is_dir()), root / controller)
        else:
            continue
        here = mount / path.lstrip("/")
        while here != mount:
            dirs.append(here)
            here = here.parent
        dirs.append(mount)
    return [d for d in dirs if d.is_dir()]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_limits(root: str | Path = "/sys/fs/cgroup",
                  proc_cgroup: str | Path = "/proc/self/cgroup") -> dict:
    """The container's CPU quota (in CPUs) and memory limit (in GB); None where there is none.

    Binder and Kubernetes pods see the host's cores and RAM through ``os.cpu_count()`` and
    psutil, but get about one CPU and 2 GB: torch would start one thread per host core and
    the preflight would say a model fits that the kernel then gets killed for. Reads cgroup
    v2 (``cpu.max``, ``memory.max``) and v1 (``cpu.cfs_quota_us``/``cpu.cfs_period_us``,
    ``memory.limit_in_bytes``), taking the tightest limit on the path."""
    root, proc_cgroup = Path(root), Path(proc_cgroup)
    cpu = mem = None
    for d in _cgroup_dirs(root, proc_cgroup, "cpu"):
        quota = None
        if (v2 := _read(d / "cpu.max")) is not None:
            q, _, period = v2.partition(" ")
            if q != "max" and period:
                quota = int(q) / int(period)
        elif (q := _read(d / "cpu.cfs_quota_us")) is not None and int(q) > 0:
            quota = int(q) / int(_read(d / "cpu.cfs_period_us") or 100_000)
        if quota is not None:
            cpu = quota if cpu is None else min(cpu, quota)
    free = None
    for d in _cgroup_dirs(root, proc_cgroup, "memory"):
        raw = _read(d / "memory.max") or _read(d / "memory.limit_in_bytes")
        if raw and raw != "max" and int(raw) < 2**60:           # v1 writes "no limit" as ~2**63
            limit = int(raw) / GB
            used = _read(d / "memory.current") or _read(d / "memory.usage_in_bytes")
            left = limit - int(used) / GB if used else limit
            mem = limit if mem is None else min(mem, limit)
            free = left if free is None else min(free, left)
    return {"cpu_quota": cpu, "memory_gb": mem, "memory_free_gb": free}


def free_ram_gb(limits: dict | None = None) -> float:
    """RAM a new model may take now, in GB: what the OS reports available, and within a
    container what its limit leaves (the Jupyter server and the kernel already use some)."""
    import psutil
    free = psutil.virtual_memory().available / GB
    limits = cgroup_limits() if limits is None else limits
    if limits.get("memory_free_gb") is not None:
        free = min(free, limits["memory_free_gb"])
    return free


def usable_cpus(cpu_quota: float | None) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:                                      # macOS, Windows
        n = os.cpu_count() or 1
    if cpu_quota is not None:
        n = min(n, max(1, math.floor(cpu_quota)))
    return max(1, n)


def configure_threads(hw: Hardware) -> str:
    """Give torch one thread per usable CPU and say so.

    PyTorch starts one thread per visible core; in a pod with a 1-CPU quota its threads then
    wait on each other (measured on the offline target: 20-24 tok/s on default threads,
    88-98 tok/s with one). Lowers the count, never raises one a user chose."""
    import torch
    before = torch.get_num_threads()
    if before > hw.cpu_count:
        torch.set_num_threads(hw.cpu_count)
        return f"{hw.cpu_count} (lowered from {before}: {hw.cpu_text()})"
    return f"{before} ({hw.cpu_text()})"


def free_disk_gb(path: str = ".") -> float:
    return shutil.disk_usage(path).free / GB


def has_internet(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    """True if a TCP connection to the hub opens within ``timeout`` seconds.

    Honours ``HF_HUB_OFFLINE=1`` (answers False without trying).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def detect_hardware(disk_path: str = ".") -> Hardware:
    """Describe this machine. Never raises for a missing GPU: it reports ``device="cpu"``.

    With $LLMFLATION_EMULATE set (utils.models.emulate), a bigger GPU is described as
    the emulated one and its limits are imposed on this process.
    """
    import torch

    from . import emulate

    target = emulate.requested()
    limits = cgroup_limits()
    host_ram, host_cpus = ram_gb(), os.cpu_count() or 1
    cpus = usable_cpus(limits["cpu_quota"])
    ram = min(host_ram, limits["memory_gb"] or host_ram)
    common = dict(ram_gb=ram, host_ram_gb=host_ram if ram < host_ram else None,
                  free_ram_gb=free_ram_gb(limits),
                  cpu_count=cpus, cpu_quota=limits["cpu_quota"],
                  host_cpus=host_cpus if cpus < host_cpus else None,
                  free_disk_gb=free_disk_gb(disk_path), flash_attn_installed=flash_attn_installed(),
                  live=True)
    if not torch.cuda.is_available():
        hw = Hardware(device="cpu", sdpa_backends=sdpa_backends_for(None), **common)
        return emulate.emulate(hw, target) if target else hw
    props = torch.cuda.get_device_properties(0)
    cc = (props.major, props.minor)
    free, _ = torch.cuda.mem_get_info()
    hw = Hardware(
        device="cuda", gpu_name=props.name, compute_capability=cc,
        vram_gb=props.total_memory / GB, free_vram_gb=free / GB, bf16=bf16_native(cc),
        sdpa_backends=sdpa_backends_for(cc),
        flash_attn_usable=common["flash_attn_installed"] and cc >= (8, 0), **common)
    return emulate.emulate(hw, target) if target else hw


def available_gb(hw: Hardware) -> float:
    """Memory a new model may use now, in GB: free GPU memory (live, and within an emulated
    GPU's cap), or on a CPU the RAM available now (live, within a container's limit; a
    described machine without that figure: its RAM). The one-runtime class adds the models it keeps
    between lessons: :func:`utils.models.resident.room_gb`."""
    if hw.device != "cuda":
        if hw.free_ram_gb is None:
            return hw.ram_gb
        return min(hw.ram_gb, free_ram_gb() if hw.live else hw.free_ram_gb)
    import torch
    if not hw.live or not torch.cuda.is_available():   # a described (mocked) GPU: its own figures
        return hw.free_vram_gb if hw.free_vram_gb is not None else hw.vram_gb
    free = torch.cuda.mem_get_info()[0] / GB
    if hw.emulated:
        free = min(free, hw.vram_gb - torch.cuda.memory_reserved() / GB)
    return free


def synchronize(device: str) -> None:
    """Wait for queued GPU work before a clock is read (no-op on CPU)."""
    if device == "cuda":
        import torch
        torch.cuda.synchronize()
