"""Impose a smaller GPU's limits on the CUDA GPU at hand, to rehearse its profile.

    LLMFLATION_EMULATE=t4 python -m utils.benchmark --profile t4 --random-weights

Its purpose is to prove that a profile's runs *fit and run* under that GPU's
rules before a class meets a real one. What is imposed, for the T4:

* memory: the process may allocate no more than the T4's usable memory
  (``torch.cuda.set_per_process_memory_fraction``), and the kit's fit checks
  use that figure;
* compute dtype: float16 (no native bf16 on sm75);
* attention: the sm75 rules. PyTorch's flash and cuDNN SDPA kernels are
  switched off, so SDPA chooses between the memory-efficient kernel and math,
  as it does on a T4; FlashAttention-2 is refused.

Speed is **not** emulated: timings come from the bigger GPU and are labelled
"emulated" wherever they are printed or stored, never as T4 figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .machine import bf16_native, described_gpu, sdpa_backends_for
from ..cli import UserError

ENV = "LLMFLATION_EMULATE"


@dataclass(frozen=True)
class Emulated:
    """The limits of one GPU to impose."""

    name: str
    compute_capability: tuple[int, int]
    usable_gb: float        # decimal GB a process can allocate on the real card
    source: str


# The T4's usable memory: torch reports 15,102 MiB (15.84 GB) in total on a Colab T4
# (torch.cuda.get_device_properties, github.com/mryab/efficient-dl-systems week01 seminar notebook); the
# kit plans with 15.0 GB, leaving the rest for the CUDA context and the allocator.
TARGETS = {
    "t4": Emulated("Tesla T4", (7, 5), 15.0,
                   "torch reports 15.84 GB total on a Colab T4 (mryab/efficient-dl-systems, week01); 15.0 GB "
                   "planned, the rest for the CUDA context; sm75 (NVIDIA's CUDA GPUs list): no bf16, no "
                   "FlashAttention-2"),
}


class EmulationError(UserError, RuntimeError):
    """Emulation asked for where it cannot be done."""


def requested() -> Emulated | None:
    """The emulation named by $LLMFLATION_EMULATE, or None. Unknown names are refused."""
    name = os.environ.get(ENV, "").strip().lower()
    if not name:
        return None
    if name not in TARGETS:
        raise EmulationError(f"{ENV}={name!r} is not a GPU the kit can emulate; known: {', '.join(TARGETS)}")
    return TARGETS[name]


def emulate(hw, target: Emulated, *, apply_limits: bool = True):
    """``hw`` (a real CUDA machine) as ``target`` would be, with its limits imposed on torch.

    Raises EmulationError on a CPU, or on a GPU smaller or older than the target
    (emulation only takes capabilities away).
    """
    if hw.device != "cuda":
        raise EmulationError(f"emulating a {target.name} needs a CUDA GPU to impose its limits on; "
                             f"this machine has none (unset {ENV})")
    if hw.vram_gb < target.usable_gb or tuple(hw.compute_capability) < target.compute_capability:
        raise EmulationError(f"this {hw.gpu_name} cannot emulate a {target.name}: emulation needs a "
                             f"GPU at least as large and as new")
    if apply_limits:
        impose(target, hw.vram_gb)
    cc = target.compute_capability
    return replace(hw, gpu_name=f"{target.name} (emulated on {hw.gpu_name})", compute_capability=cc,
                   vram_gb=target.usable_gb, free_vram_gb=min(hw.free_vram_gb or target.usable_gb,
                                                              target.usable_gb),
                   bf16=bf16_native(cc), sdpa_backends=sdpa_backends_for(cc),
                   flash_attn_usable=False, emulated=target.name, host_gpu=hw.gpu_name)


def described(target: Emulated):
    """A machine with ``target``'s limits, described rather than detected (no GPU needed): what
    the kit computes for that GPU (what fits, in which precision) on any machine."""
    return described_gpu(target.name, target.compute_capability, target.usable_gb)


def impose(target: Emulated, total_gb: float) -> None:
    """Cap this process's CUDA memory and switch off the SDPA kernels ``target`` lacks."""
    import torch

    torch.cuda.set_per_process_memory_fraction(min(1.0, target.usable_gb / total_gb))
    if target.compute_capability < (8, 0):
        torch.backends.cuda.enable_flash_sdp(False)
    if target.compute_capability < (9, 0):
        torch.backends.cuda.enable_cudnn_sdp(False)
