"""Attention kernels: which ones this GPU can run, how to force one, and which one ran.

* ``sdpa_repeat_kv``: an attention implementation the kit registers with
  transformers. Qwen3 and Llama-3 use grouped-query attention; for those,
  transformers calls PyTorch's SDPA with ``enable_gqa=True`` when no mask is
  needed, and the memory-efficient kernel (the fused kernel of a T4, sm75)
  refuses that flag, so plain ``sdpa`` silently runs the unfused *math* kernel
  there. ``sdpa_repeat_kv`` repeats the key/value heads first (as eager
  attention does) and then calls SDPA without the flag, so the
  memory-efficient kernel can run. Measured on an H100 under T4 limits: see
  ``datasets/reference/``.
* :func:`force_sdpa` forces one SDPA backend, refusing those the GPU (or the
  emulated GPU) lacks: ``torch.nn.attention.sdpa_kernel`` would otherwise
  re-enable a backend that emulation had switched off.
* :func:`attention_kernel` names the kernel family that ran from profiler names.
"""

from __future__ import annotations

import contextlib
import types

REPEAT_KV = "sdpa_repeat_kv"
# the attn_implementation names the kit loads with (profiles are checked against them)
IMPLEMENTATIONS = ("eager", "sdpa", REPEAT_KV, "flash_attention_2")

# SDPA backend (torch.nn.attention.SDPBackend member) -> name in Hardware.sdpa_backends
BACKEND_NAMES = {"FLASH_ATTENTION": "flash", "EFFICIENT_ATTENTION": "efficient",
                 "CUDNN_ATTENTION": "cudnn", "MATH": "math"}


def sdpa_repeat_kv_forward(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention with the key/value heads repeated beforehand (no enable_gqa)."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    # the same module without its group count, so transformers does not regroup the heads
    plain = types.SimpleNamespace(is_causal=getattr(module, "is_causal", True),
                                  layer_idx=getattr(module, "layer_idx", None), training=False)
    return sdpa_attention_forward(plain, query, key, value, attention_mask, **kwargs)


def register() -> None:
    """Make ``attn_implementation="sdpa_repeat_kv"`` loadable (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if REPEAT_KV not in AttentionInterface._global_mapping:
        AttentionInterface.register(REPEAT_KV, sdpa_repeat_kv_forward)
        AttentionMaskInterface.register(REPEAT_KV, sdpa_mask)


class BackendUnavailable(RuntimeError):
    """A forced SDPA backend this GPU (or the emulated GPU) does not have."""


@contextlib.contextmanager
def force_sdpa(backend: str, hw):
    """Run the block with only SDPA ``backend`` (e.g. "EFFICIENT_ATTENTION") allowed.

    Raises :class:`BackendUnavailable` if ``hw`` lacks it (a T4 has no flash or
    cuDNN attention, emulated or real). PyTorch itself raises RuntimeError ("No
    available kernel") when the inputs do not suit it, e.g. enable_gqa with the
    memory-efficient kernel.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if BACKEND_NAMES[backend] not in hw.sdpa_backends:
        where = (f"GPU (sm{''.join(map(str, hw.compute_capability))})" if hw.device == "cuda"
                 else "CPU")
        raise BackendUnavailable(f"the {BACKEND_NAMES[backend]} SDPA kernel does not exist on this "
                                 f"{where}; it has {', '.join(hw.sdpa_backends)}")
    import warnings
    with warnings.catch_warnings(), sdpa_kernel([getattr(SDPBackend, backend)]):
        # PyTorch warns once per reason a kernel was not used before raising "No available
        # kernel"; the RuntimeError already says the backend cannot run these inputs.
        warnings.filterwarnings("ignore", message=".*(kernel not used because|runtime disabled|"
                                                  "fused kernels require|Flash attention|cuDNN attention).*")
        yield


# Which attention kernel ran, from CUDA kernel (and aten operator) names. Checked in
# order: the first family with a matching name wins. tests/data/ holds names recorded on
# GPUs, and tests check this table against them.
KERNEL_FAMILIES = (
    # cuDNN first: its kernel names contain "flash" too (cudnn_..._sm90_flash_fprop_...)
    ("cuDNN SDPA", ("_scaled_dot_product_cudnn_attention", "_cudnn_attention_forward",
                    "cudnn_generated_fort_native_sdpa")),
    # PyTorch's own copy of FlashAttention-2 lives in the pytorch_flash namespace
    ("SDPA flash", ("_scaled_dot_product_flash_attention", "pytorch_flash::")),
    # the flash-attn package: its op and its kernels in the flash namespace
    ("flash-attn (FlashAttention-2 package)", ("flash_attn::", "_flash_attn_forward", "void flash::flash_fwd")),
    ("SDPA memory-efficient", ("_scaled_dot_product_efficient_attention", "_efficient_attention_forward",
                               "fmha_cutlassf")),
    ("SDPA math", ("_scaled_dot_product_attention_math",)),
)


def attention_kernel(names: list[str]) -> str:
    """The attention kernel family that ran, from profiler names: 'SDPA flash',
    'SDPA memory-efficient', 'cuDNN SDPA', 'flash-attn (FlashAttention-2 package)', 'SDPA math',
    or 'eager (matmul + softmax)' when only a softmax between matmuls ran."""
    lowered = [n.lower() for n in names]
    for family, needles in KERNEL_FAMILIES:
        if any(needle.lower() in n for n in lowered for needle in needles):
            return family
    if any("softmax" in n for n in lowered):
        return "eager (matmul + softmax)"
    return "unknown"
