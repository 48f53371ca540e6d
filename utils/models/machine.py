"""What a machine is and what its GPU offers: the :class:`Hardware` record the kit passes around,
and the rules a compute capability decides (native bf16, the SDPA backends).

Pure description, no detection: :mod:`utils.models.hardware` detects the machine at hand and
:mod:`utils.models.emulate` describes a smaller GPU; both build on this.
"""

from __future__ import annotations

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
    ram_gb: float = 0.0                          # the machine's RAM, or the container's limit if lower
    free_ram_gb: float | None = None             # available when detected (None: take ram_gb)
    free_disk_gb: float = 0.0
    cpu_count: int = 1                           # CPUs this process may use (affinity and cgroup quota)
    cpu_quota: float | None = None               # cgroup CPU quota in CPUs (Binder: about 1), if any
    host_cpus: int | None = None                 # cores the machine has, when a limit hides some
    host_ram_gb: float | None = None             # the machine's RAM, when a container limit is lower
    bf16: bool = False                           # native bf16 (sm80+), not emulation
    sdpa_backends: list[str] = field(default_factory=lambda: ["math"])
    flash_attn_installed: bool = False
    flash_attn_usable: bool = False              # package present *and* sm80+
    emulated: str | None = None                  # e.g. "Tesla T4": limits imposed (utils.models.emulate)
    host_gpu: str | None = None                  # the GPU that really ran, when emulating
    live: bool = False                           # detected on this machine (not described or mocked)

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
            head = f"CPU only ({self.cpu_text()})"
        ram = f"RAM {self.ram_gb:.1f} GB"
        if self.host_ram_gb:
            ram += f" (container limit; the host has {self.host_ram_gb:.1f} GB)"
        return (f"{head}; {ram}; free disk {self.free_disk_gb:.1f} GB; "
                f"compute dtype {self.compute_dtype}; SDPA backends {', '.join(self.sdpa_backends)}; "
                f"flash-attn {'usable' if self.flash_attn_usable else 'installed but unusable here' if self.flash_attn_installed else 'not installed'}")

    def cpu_text(self) -> str:
        """"2 cores", or "1 of 16 cores usable: cgroup quota 1 CPU" in a container."""
        if not self.host_cpus:
            return f"{self.cpu_count} cores"
        quota = f"cgroup quota {self.cpu_quota:g} CPU" if self.cpu_quota else "CPU affinity"
        return f"{self.cpu_count} of {self.host_cpus} cores usable: {quota}"


def described_gpu(name: str, compute_capability: tuple[int, int], vram_gb: float) -> Hardware:
    """A GPU described rather than detected (no GPU needed): what its compute capability decides
    (native bf16, the SDPA backends), for computing what fits there and in which precision."""
    cc = tuple(compute_capability)
    return Hardware(device="cuda", gpu_name=name, compute_capability=cc, vram_gb=vram_gb,
                    bf16=bf16_native(cc), sdpa_backends=sdpa_backends_for(cc))


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
