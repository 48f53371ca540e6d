"""Inside bitsandbytes: what it stores for a weight, and how LLM.int8 multiplies, on real tensors.

Notebook 02 loads whole models with ``BitsAndBytesConfig``; this module opens one layer
and runs bitsandbytes' own functions on it, so the mechanics behind the measured
footprints and perplexities can be seen:

* :func:`stored_bits`: the bits per weight a 4-bit quantization state really keeps (the
  packed codes plus every scale, double quantization included);
* :func:`four_bit_error`: how far NF4 or FP4 puts a tensor from its 16-bit values;
* :func:`int8_decomposition`: LLM.int8's product of an activation with a weight: the
  activation's *outlier feature columns* (any value above the threshold) are multiplied in
  16 bits, the rest in int8 with one scale per row of each matrix, and both errors are
  taken against the full-precision product;
* :func:`layer_input` and :func:`checkpoint_tensor` fetch a real pair: the input a layer of
  a loaded model receives on the held-out text, and that layer's weight as the checkpoint
  stores it (read from its safetensors files, not from the quantized copy in memory).

Everything runs on the CPU, where bitsandbytes has these kernels too, so the figures are
the same on every machine for the same model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


def stored_bits(packed, state) -> float:
    """Bits per weight of a 4-bit tensor: the packed codes plus every scale bitsandbytes keeps.

    ``packed, state = bitsandbytes.functional.quantize_4bit(w, ...)``. With double quantization
    the absmax values are themselves quantized (``state.state2`` holds their scales and
    ``state.offset`` one fp32 number), and those count too."""
    codes = packed.numel() * packed.element_size() * 2     # two 4-bit codes per stored byte
    total = packed.numel() * packed.element_size() * 8
    while state is not None:
        total += state.absmax.numel() * state.absmax.element_size() * 8
        offset = getattr(state, "offset", None)
        total += 0 if offset is None else offset.numel() * offset.element_size() * 8
        state = state.state2 if getattr(state, "nested", False) else None
    return total / codes


def four_bit_error(w, quant_type: str, blocksize: int = 64) -> float:
    """Mean absolute error of ``w`` after a 4-bit round trip, as a fraction of its mean magnitude."""
    import bitsandbytes.functional as bnbf
    w = w.float().flatten().cpu()
    packed, state = bnbf.quantize_4bit(w, blocksize=blocksize, quant_type=quant_type)
    back = bnbf.dequantize_4bit(packed, state).flatten()[: w.numel()]
    return float((back - w).abs().mean() / w.abs().mean())


def middle_down_projection(model) -> str:
    """The module name of the MLP down projection in the model's middle layer: the layer whose
    inputs LLM.int8's paper found to carry outlier features. One rule for every model."""
    names = [n for n, _ in model.named_modules() if n.endswith("mlp.down_proj")]
    if not names:
        raise ValueError("this model has no mlp.down_proj layers (not a Llama/Qwen-style model)")
    return names[len(names) // 2]


def layer_input(model, tokenizer, text: str, name: str, *, tokens: int = 256, device: str = "cpu"):
    """The input that module ``name`` receives for the first ``tokens`` tokens of ``text``:
    a (tokens, in_features) float32 tensor on the CPU, captured by a forward hook."""
    import torch
    module = dict(model.named_modules()).get(name)
    if module is None:
        raise ValueError(f"the model has no module named {name!r}")
    captured = []
    handle = module.register_forward_hook(lambda mod, args, out: captured.append(args[0].detach()))
    try:
        ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :tokens].to(device)
        with torch.inference_mode():
            model(ids)
    finally:
        handle.remove()
    return captured[0].reshape(-1, captured[0].shape[-1]).float().cpu()


def checkpoint_tensor(model, name: str, *, revision: str | None = None):
    """Tensor ``name`` as the model's safetensors checkpoint stores it (16-bit for the hub
    models), read alone from its shard: a quantized model in memory no longer holds it.

    The checkpoint is the folder the model was loaded from (offline and random-weight models)
    or the hub cache the download went to; nothing is downloaded here."""
    from safetensors import safe_open
    source = model.name_or_path
    folder = Path(source) if Path(source).is_dir() else None

    def file(filename: str) -> Path | None:
        if folder is not None:
            path = folder / filename
            return path if path.is_file() else None
        from huggingface_hub import try_to_load_from_cache
        path = try_to_load_from_cache(source, filename, revision=revision)
        return Path(path) if isinstance(path, str) else None

    index = file("model.safetensors.index.json")
    shard = json.loads(index.read_text())["weight_map"].get(name) if index else "model.safetensors"
    path = file(shard) if shard else None
    if path is None:
        raise FileNotFoundError(f"{name} is not in the checkpoint files of {source} (looked for "
                                f"{shard or 'it in model.safetensors.index.json'})")
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor(name)


@dataclass(frozen=True)
class Int8Product:
    """LLM.int8's product of one activation with one weight, against full precision."""

    threshold: float
    outlier_columns: tuple[int, ...]    # activation feature columns multiplied in 16 bits
    in_features: int
    largest_outlier: float              # the largest |activation| in those columns
    largest_other: float                # the largest |activation| everywhere else
    error_int8: float                   # relative error, every column in int8
    error_decomposed: float             # relative error, outlier columns in 16 bits

    @property
    def sixteen_bit_share(self) -> float:
        """Share of the multiply-adds done in 16 bits."""
        return len(self.outlier_columns) / self.in_features


def _int8_product(x16, w16, threshold: float):
    """bitsandbytes' int8 path: vector-wise quantization of both matrices (one absmax scale per
    row), an int8 matmul with int32 accumulation, dequantization; the outlier columns it holds
    back (zeroed in the int8 copy) are multiplied in 16 bits and added."""
    import bitsandbytes.functional as bnbf
    xq, x_scale, columns = bnbf.int8_vectorwise_quant(x16, threshold=threshold)
    wq, w_scale, _ = bnbf.int8_vectorwise_quant(w16)
    out = bnbf.int8_mm_dequant(bnbf.int8_linear_matmul(xq, wq), x_scale, w_scale).float()
    if columns is not None and columns.numel():
        out = out + (x16[:, columns].float() @ w16[:, columns].float().T)
    return out, (columns.tolist() if columns is not None else [])


def int8_decomposition(x, w, threshold: float) -> Int8Product:
    """Multiply activation ``x`` (tokens x in) by weight ``w`` (out x in) the LLM.int8 way and
    every column in int8, and compare both with the float32 product of the 16-bit values."""
    if threshold <= 0:
        raise ValueError(f"the outlier threshold must be positive, got {threshold}")
    if x.shape[-1] != w.shape[-1]:
        raise ValueError(f"activation has {x.shape[-1]} features, weight expects {w.shape[-1]}")
    x16, w16 = x.cpu().half(), w.cpu().half()
    exact = x16.float() @ w16.float().T

    def relative(out) -> float:
        return float((out - exact).norm() / exact.norm())

    all_int8, _ = _int8_product(x16, w16, 0.0)
    decomposed, columns = _int8_product(x16, w16, threshold)
    magnitude = x16.float().abs().amax(dim=0)
    rest = magnitude.clone()
    rest[columns] = 0
    return Int8Product(threshold=threshold, outlier_columns=tuple(columns), in_features=x.shape[-1],
                       largest_outlier=float(magnitude[columns].max()) if columns else 0.0,
                       largest_other=float(rest.max()), error_int8=relative(all_int8),
                       error_decomposed=relative(decomposed))
