"""Load a model the one way the kit teaches: ``AutoModelForCausalLM.from_pretrained``.

Hub models and the offline models go through the same call, with
``BitsAndBytesConfig`` for 8/4-bit, ``attn_implementation`` for the attention
kernel, safetensors only, ``trust_remote_code=False`` and a pinned revision.
The predicted memory is checked *before* anything is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import attention
from .hardware import Hardware, available_gb, detect_hardware
from ..memory import BYTES_16, HEADROOM_GB, MemoryEstimate, ModelShape, check_fits, check_precision, predict_memory
from .profiles import ModelRef
from .refs import (OFFLINE_DIR, REAL, ModelLoadError, as_ref, check_weights, hub_errors, local_path,  # noqa: F401
                   model_config)                                     # ModelLoadError, model_config re-exported
from ..quiet import quiet_transformers
from ..quality import check_finite_logits


@dataclass
class Loaded:
    """A loaded model with the facts a result record needs."""

    model: object
    tokenizer: object
    ref: ModelRef
    precision: str
    attn_implementation: str
    device: str
    predicted: MemoryEstimate
    load_seconds: float
    random_weights: bool = False
    kept_copy: Path | None = None      # the kept copy it was read from (utils.models.kept), if any

    def settings(self) -> dict:
        return dict(model=self.ref.id, revision=self.ref.revision, precision=self.precision,
                    attn_implementation=self.attn_implementation, device=self.device,
                    random_weights=self.random_weights,
                    predicted_weights_gb=round(self.predicted.weights_gb, 4))


def quantization_config(precision: str, compute_dtype: str):
    """The BitsAndBytesConfig for a precision name, or None for a plain float type."""
    import torch
    from transformers import BitsAndBytesConfig

    check_precision(precision)
    if precision in BYTES_16:
        return None
    if precision == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    kind, _, dq = precision.partition("-")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=kind,
                              bnb_4bit_use_double_quant=dq == "dq",
                              bnb_4bit_compute_dtype=getattr(torch, compute_dtype))


ATTENTION = attention.IMPLEMENTATIONS


def check_attention(attn: str, hw: Hardware) -> None:
    """Refuse an attention kernel this machine cannot run, before loading."""
    if attn not in ATTENTION:
        raise ModelLoadError(f"unknown attention implementation '{attn}'; choose one of {', '.join(ATTENTION)}")
    if attn == "flash_attention_2":
        if not hw.flash_attn_installed:
            raise ModelLoadError("flash_attention_2 needs the flash-attn package "
                                 "(pip install flash-attn; it compiles for a long time). Use 'sdpa'.")
        if not hw.flash_attn_usable:
            raise ModelLoadError("flash_attention_2 needs an Ampere or newer GPU (sm80+); "
                                 "this machine cannot run it. Use 'sdpa'.")


def random_checkpoint(config: dict, dtype: str, folder: Path, tokenizer_from: Path | None = None,
                      shard_gb: float = 2.0) -> Path:
    """Write a randomly initialised model of ``config``'s architecture to ``folder``.

    Used to measure speed and memory at real size without downloading weights;
    such results are labelled ``random_weights`` everywhere they are stored.

    The model is laid out on PyTorch's meta device (shapes only, no memory),
    then each tensor is drawn and written shard by shard as safetensors, so
    writing an 8B checkpoint needs about one shard of RAM, not 16 GB (a free
    Colab has 12.7 GB). Weights are N(0, initializer_range), norms 1, biases 0,
    as transformers initialises them; a tied output layer is not stored twice.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet_transformers()
    cfg = dict(config)
    cfg = AutoConfig.for_model(cfg.pop("model_type", "llama"), **{k: v for k, v in cfg.items()
                                                                 if not k.startswith("_")})
    torch_dtype = getattr(torch, dtype)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
    shapes = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    if getattr(cfg, "tie_word_embeddings", False):
        shapes.pop("lm_head.weight", None)
    del skeleton

    itemsize = torch.empty((), dtype=torch_dtype).element_size()
    nbytes = {name: itemsize * int(torch.Size(shape).numel()) for name, shape in shapes.items()}
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(nbytes.values())
    free = shutil.disk_usage(folder).free
    if total > free * 0.95:
        raise ModelLoadError(f"a random checkpoint of this model needs {total / 1e9:.1f} GB of disk "
                             f"in {folder}; {free / 1e9:.1f} GB are free")
    shards: list[list[str]] = [[]]
    for name in shapes:
        if shards[-1] and sum(nbytes[n] for n in shards[-1]) + nbytes[name] > shard_gb * 1e9:
            shards.append([])
        shards[-1].append(name)

    generator = torch.Generator("cuda" if torch.cuda.is_available() else "cpu").manual_seed(0)
    std = getattr(cfg, "initializer_range", 0.02)
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        tensors = {name: _random_tensor(name, shapes[name], std, torch_dtype, generator)
                   for name in names}
        save_file(tensors, folder / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    cfg.save_pretrained(folder)
    if tokenizer_from is not None:
        from transformers import AutoTokenizer
        AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(folder)
    return folder


def _random_tensor(name: str, shape: tuple, std: float, dtype, generator):
    """One parameter as transformers would initialise it: norms 1, biases 0, else N(0, std).

    Drawn on the GPU where ``generator`` lives there (seconds for an 8B model
    instead of minutes on a CPU), then moved to the CPU to be written."""
    import torch
    module = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else name
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=dtype)
    if "norm" in module:
        return torch.ones(shape, dtype=dtype)
    return torch.randn(shape, generator=generator, dtype=dtype,
                       device=generator.device).mul_(std).cpu()


def checkpoint_dtype(config: dict) -> str:
    """The dtype a model's hub checkpoint is stored in (config ``dtype``/``torch_dtype``; bf16 if
    unsaid). Random checkpoints use it too, so every precision loads from the same file, as
    from a download: bitsandbytes quantizes it on load, a T4 casts it to fp16."""
    stored = config.get("dtype") or config.get("torch_dtype") or "bfloat16"
    return stored if stored in BYTES_16 else "bfloat16"


_RANDOM_CHECKPOINTS: dict[str, Path] = {}   # model id and config digest -> folder
_TEMP_DIRS: list[tempfile.TemporaryDirectory] = []
ENV_RANDOM_CACHE = "LLMFLATION_RANDOM_CACHE"


def random_source(ref: ModelRef, config: dict, local: Path | None) -> Path:
    """A random-weight checkpoint of ``ref``'s architecture, written once.

    A 7B model takes a minute or more to draw and write, and the benchmark loads
    the same architecture a dozen times (each precision, each attention
    kernel), so the checkpoint is kept: in a temporary folder until the process
    exits, or, with $LLMFLATION_RANDOM_CACHE set, in that folder for later
    processes too (each notebook runs in its own kernel).
    """
    import hashlib
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    key = f"{ref.id}-{digest}"              # a reduced and a full-size config are different models
    if key in _RANDOM_CHECKPOINTS and (_RANDOM_CHECKPOINTS[key] / "config.json").is_file():
        return _RANDOM_CHECKPOINTS[key]
    cache = os.environ.get(ENV_RANDOM_CACHE)
    if cache:
        folder = Path(cache).expanduser() / f"{ref.folder_name}-{digest}"
        done = folder / ".complete"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="llmflation-random-")
        _TEMP_DIRS.append(tmp)
        folder, done = Path(tmp.name), None
    if done is None or not done.is_file():
        has_tokenizer = local is not None and (local / "tokenizer_config.json").is_file()
        if done is not None and folder.exists():
            shutil.rmtree(folder)            # a half-written checkpoint from an interrupted run
        random_checkpoint(config, checkpoint_dtype(config), folder,
                          tokenizer_from=local if has_tokenizer else OFFLINE_DIR / "tokenizer")
        if done is not None:
            done.write_text("ok\n")
    _RANDOM_CHECKPOINTS[key] = folder
    return folder


def needs_finite_check(compute: str, random_weights: bool) -> bool:
    """Whether loading ends with a finite-logits check: when computing in fp16 (a T4), which
    can overflow a bf16-trained model; bf16 and fp32 have fp32's range. Not otherwise: the
    forward pass repacks bitsandbytes' CPU constants (notebook 02 measures the footprint at
    rest), and random weights have nothing to check."""
    return compute == "float16" and not random_weights


def load_model(model: str | ModelRef, precision: str | None = None, *,
               attn_implementation: str = "sdpa", hw: Hardware | None = None,
               random_weights: bool | None = None, context: int = 2048,
               trust_remote_code: bool = False, keep: bool | Path = False, shared: bool = True,
               log=print) -> Loaded:
    """Load ``model`` at ``precision`` with ``attn_implementation``; see the module doc.

    ``precision`` defaults to the hardware's compute dtype (bf16 on sm80+, fp16
    on older GPUs, fp32 on CPU). Raises :class:`ModelTooLargeError` before any
    download when the predicted memory does not fit, and :class:`ModelLoadError`
    with advice for a missing directory, no internet, a gated model or an
    unavailable attention kernel.

    ``keep=True`` uses a kept copy (:mod:`utils.models.kept`: on Colab, on Drive) where copies are kept
    and one saves a download (a hub model in 8 or 4 bits): a matching copy from an earlier
    runtime is read instead of the hub, and without one the model is saved after loading.
    ``keep=<folder>`` keeps the copy in that folder, whatever the model (how ``python -m
    utils.tools.class_copy share`` prepares a class's copies). ``shared=True`` (the default) reads the
    class's copy (:func:`utils.models.kept.class_root`) of a quantized model when there is one and no
    kept copy of the learner's own; notebook 02, which quantizes in the learner's runtime, passes
    False.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import kept, rehearsal, resident

    quiet_transformers()
    hw = hw or detect_hardware()
    ref = as_ref(model)
    if random_weights is None:
        random_weights = rehearsal.mode() is not None
    precision = check_precision(precision or hw.compute_dtype)
    compute = kept.compute_of(hw, precision)
    check_attention(attn_implementation, hw)
    attention.register()

    config = model_config(ref)
    estimate = predict_memory(ModelShape.from_config(config), precision,
                              context=context, compute_dtype=compute)
    if keep is True:                   # the one-runtime class: already in memory since an earlier lesson?
        again = resident.reuse(ref, precision, attn_implementation, random_weights, log=log)
        if again is not None:
            return again
    if resident.enabled():
        resident.make_room(estimate.total_gb + HEADROOM_GB, lambda: available_gb(hw), log=log)
    check_fits(estimate, available_gb(hw),
               where="GPU's free memory" if hw.device == "cuda" else "machine's RAM", name=ref.id)

    source = local_path(ref)
    if ref.id == REAL:                 # converted at install: named with its rebuild when damaged
        from .real import check
        check()
    keep_in = None
    if isinstance(keep, (str, Path)) and not random_weights:
        keep_in = Path(keep)
    elif keep is True and not random_weights and kept.worth_keeping(ref, precision):
        keep_in = kept.root()
    copy = kept.find(keep_in, ref, precision, compute, log=log)
    if copy is None and shared and not random_weights:
        copy = kept.class_copy(ref, precision, compute, log=log)
    snapshot = None
    if copy is not None:               # quantized already: its config.json says how
        log(f"loading {kept.describe(copy)}")
        read_from = time.perf_counter()
        source = kept.staged(copy, log=log)
    elif random_weights:
        source = random_source(ref, config, source)
    elif source is not None:
        check_weights(source)
    else:                              # a hub model: download once, with progress shown
        from .downloads import fetch
        with hub_errors(ref):
            snapshot = fetch(ref, log=log)
    kwargs = dict(
        revision=None if source is not None else ref.revision,
        dtype=getattr(torch, precision if precision in BYTES_16 else compute),
        attn_implementation=attn_implementation, use_safetensors=True,
        trust_remote_code=trust_remote_code, device_map=hw.device)
    if copy is None:     # a kept copy's config.json has its own (passing None would drop it)
        kwargs["quantization_config"] = quantization_config(precision, compute)
    start = time.perf_counter()
    with hub_errors(ref):
        tokenizer = AutoTokenizer.from_pretrained(
            source or ref.id, revision=kwargs["revision"], trust_remote_code=trust_remote_code)
        loaded = AutoModelForCausalLM.from_pretrained(source or ref.id, **kwargs)
    loaded.eval()
    seconds = time.perf_counter() - start
    if copy is not None:                # the rate a kept copy really came in at (the timetable assumes one)
        took = time.perf_counter() - read_from
        log(f"read and loaded the copy in {took:.1f} s ({copy.gb * 1e3 / took:.0f} MB/s)")
    if keep_in is not None and copy is None:     # before any forward pass (see utils.models.kept)
        kept.save(loaded, tokenizer, keep_in, ref, precision, compute,
                  commit=Path(snapshot).name if snapshot else None, log=log)
    if needs_finite_check(compute, random_weights):
        check_finite_logits(loaded, tokenizer, hw.device, f"{ref.id} at {precision} (computing in fp16)")
    result = Loaded(model=loaded, tokenizer=tokenizer, ref=ref, precision=precision,
                    attn_implementation=attn_implementation, device=hw.device, predicted=estimate,
                    load_seconds=seconds, random_weights=random_weights,
                    kept_copy=copy.path if copy is not None else None)
    if keep is True:
        resident.hold(result)
    return result


def free(loaded: Loaded | None) -> None:
    """Drop a model and return its memory (GPU caches included); in the one-runtime class a
    model loaded with ``keep=True`` stays in memory for the next lesson (:mod:`utils.models.resident`)."""
    from .resident import holds, release_memory
    if loaded is not None:
        if holds(loaded.model):
            print(f"{loaded.ref.id} in {loaded.precision} stays in memory for the next lesson (one runtime); "
                  f"it is freed when another model needs the room")
        loaded.model = None
    release_memory()
