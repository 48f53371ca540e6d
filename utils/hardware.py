"""Hardware detection: what this machine can run, measured rather than assumed.

``detect_hardware()`` returns a :class:`Hardware` record that the profiles,
the preflight and every stored result use. Nothing here downloads anything or
waits on the network for more than the short timeout of :func:`has_internet`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from dataclasses import asdict, dataclass, field

GB = 1e9   # decimal gigabytes everywhere, as vendors and the hub quote sizes

# SDPA backends by minimum compute capability (PyTorch's own dispatch rules):
# flash needs sm80+, cuDNN attention is enabled by default on sm90 (Hopper),
# the memory-efficient kernel runs on sm50+ and math everywhere.
SDPA_MIN_CC = {"math": (0, 0), "efficient": (5, 0), "flash": (8, 0), "cudnn": (9, 0)}


@dataclass
class Hardware:
    """What the kit needs to know about the machine it runs on."""

    device: str                                  # "cuda" or "cpu"
    gpu_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    vram_gb: float | None = None                 # total, decimal GB
    free_vram_gb: float | None = None            # free when detected (torch.cuda.mem_get_info)
    ram_gb: float = 0.0
    free_disk_gb: float = 0.0
    cpu_count: int = 1
    bf16: bool = False                           # native bf16 (sm80+), not emulation
    sdpa_backends: list[str] = field(default_factory=lambda: ["math"])
    flash_attn_installed: bool = False
    flash_attn_usable: bool = False              # package present *and* sm80+
    emulated: str | None = None                  # e.g. "Tesla T4": limits imposed (utils.emulate)
    host_gpu: str | None = None                  # the GPU that really ran, when emulating

    @property
    def compute_dtype(self) -> str:
        """The 16-bit type to compute in: bf16 on sm80+, fp16 on older GPUs, fp32 on CPU."""
        if self.device == "cpu":
            return "float32"
        return "bfloat16" if self.bf16 else "float16"

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.compute_capability is not None:
            d["compute_capability"] = list(self.compute_capability)
        return d

    def summary(self) -> str:
        if self.device == "cuda":
            cc = ".".join(map(str, self.compute_capability or (0, 0)))
            free = f", {self.free_vram_gb:.1f} GB free" if self.free_vram_gb is not None else ""
            head = f"GPU {self.gpu_name} (sm{cc.replace('.', '')}, {self.vram_gb:.1f} GB VRAM{free})"
            if self.emulated:
                head += " [EMULATED: limits imposed, timings are the host GPU's]"
        else:
            head = f"CPU only ({self.cpu_count} cores)"
        return (f"{head}; RAM {self.ram_gb:.1f} GB; free disk {self.free_disk_gb:.1f} GB; "
                f"compute dtype {self.compute_dtype}; SDPA backends {', '.join(self.sdpa_backends)}; "
                f"flash-attn {'usable' if self.flash_attn_usable else 'installed but unusable here' if self.flash_attn_installed else 'not installed'}")


def bf16_native(cc: tuple[int, int] | None) -> bool:
    """Native bf16 is an Ampere (sm80) feature.

    ``torch.cuda.is_bf16_supported()`` answers True on a T4 because bf16 can be
    emulated there, slowly; the kit decides by compute capability instead.
    """
    return cc is not None and cc >= (8, 0)


def sdpa_backends_for(cc: tuple[int, int] | None) -> list[str]:
    """The SDPA backends PyTorch can dispatch to on this device."""
    if cc is None:  # CPU: the reference math kernel and a fused CPU flash kernel
        return ["math", "flash"]
    return [name for name, need in SDPA_MIN_CC.items() if cc >= need]


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def ram_gb() -> float:
    try:
        import psutil
        return psutil.virtual_memory().total / GB
    except ImportError:  # pragma: no cover - psutil is a requirement
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB


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

    With $LLMFLATION_EMULATE set (utils.emulate), a bigger GPU is described as
    the emulated one and its limits are imposed on this process.
    """
    import torch

    from . import emulate

    target = emulate.requested()
    common = dict(ram_gb=ram_gb(), free_disk_gb=free_disk_gb(disk_path),
                  cpu_count=os.cpu_count() or 1, flash_attn_installed=flash_attn_installed())
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
    GPU's cap), or the machine's RAM on a CPU."""
    if hw.device != "cuda":
        return hw.ram_gb
    import torch
    if not torch.cuda.is_available():      # a described (mocked) GPU: its figures as detected
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
