"""Where a model is and what it is, before anything is loaded: the offline models' folder, a local
folder or a hub id, its ``config.json``, and the errors that say what to do when it cannot be had.

Everything that needs a model's whereabouts (downloads, kept copies, preflight, loading) asks here,
so none of them has to import the loader.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..data import REPO, model_configs
from .profiles import ModelRef
from ..cli import UserError

OFFLINE_DIR = REPO / "models" / "offline"
REAL = "offline:real"           # SmolLM2-135M-Instruct, converted at install (utils/tools/real_model.py)


class ModelLoadError(UserError, RuntimeError):
    """A model that cannot be loaded, with what to do about it."""


def as_ref(model: str | ModelRef) -> ModelRef:
    return model if isinstance(model, ModelRef) else ModelRef(model, "local" if model.startswith("offline:") else "main")


def local_path(ref: ModelRef) -> Path | None:
    """The directory of an offline or local model, None for a hub id."""
    if ref.is_offline:
        path = OFFLINE_DIR / ref.id.split(":", 1)[1]
    elif os.path.isdir(os.path.expanduser(ref.id)) or ref.id.startswith((".", "/", "~")):
        path = Path(ref.id).expanduser()
    else:
        return None
    if not (path / "config.json").is_file():
        hint = ("" if not ref.is_offline else
                " Build the real model (make install does) with: python -m utils.tools.real_model"
                if ref.id == REAL else " Rebuild the offline models with: python -m utils.tools.build_offline_models")
        pickles = pickle_files(path) if path.is_dir() else []
        if pickles:
            hint += (f" It holds only a pickle checkpoint ({', '.join(pickles)}), which the kit would refuse anyway: "
                     f"{PICKLE_WHY}")
        raise ModelLoadError(f"model directory {path} is missing or has no config.json.{hint}")
    return path


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
PICKLE_WHY = ("the kit loads safetensors only: unpickling a file can run any code it contains. Convert it once "
              "where you trust the file (load it with transformers, then save_pretrained(folder, "
              "safe_serialization=True)), or use a model published as safetensors.")


def pickle_files(path: Path) -> list[str]:
    """The names of the pickle checkpoints in folder ``path`` (files the kit never loads)."""
    return sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)


def check_weights(path: Path) -> None:
    """Refuse a model folder the kit will not load, before loading: one with no safetensors
    weights, saying so, and why a pickle checkpoint (``pytorch_model.bin``) is refused."""
    if any(path.glob("*.safetensors")):
        return
    pickles = pickle_files(path)
    if pickles:
        raise ModelLoadError(
            f"model folder {path} holds only a pickle checkpoint ({', '.join(pickles)}). The "
            f"{PICKLE_WHY[4:]}")
    raise ModelLoadError(f"model folder {path} has a config.json but no *.safetensors weights; "
                         f"copy the whole model folder, or give a hub id instead")


def model_config(ref: ModelRef) -> dict:
    """config.json as a dict: local file, the shipped table, or (last) a small hub download.
    Under the reduced rehearsal (utils.models.rehearsal) the same architecture, shrunk."""
    from . import rehearsal
    config = real_config(ref)
    return rehearsal.reduced_config(config) if rehearsal.mode() == "reduced" else config


def real_config(ref: ModelRef) -> dict:
    """config.json of the real model, never shrunk (sizes for computations about it)."""
    path = local_path(ref)
    if path is not None:
        return json.loads((path / "config.json").read_text())
    known = model_configs()
    if ref.id in known:
        return known[ref.id]
    from transformers import AutoConfig
    with hub_errors(ref):
        return AutoConfig.from_pretrained(ref.id, revision=ref.revision,
                                          trust_remote_code=False).to_dict()


class hub_errors:
    """Context manager turning hub/network exceptions into a ModelLoadError that says what to do."""

    def __init__(self, ref: ModelRef):
        self.ref = ref

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (ModelLoadError, MemoryError)):
            return False
        from huggingface_hub import errors as hf
        name = f"'{self.ref.id}' (revision {self.ref.revision})"
        if isinstance(exc, hf.GatedRepoError):
            msg = (f"{name} is gated: accept its license on huggingface.co, then set the HF_TOKEN "
                   f"environment variable (or run `hf auth login`). Tokens are never stored by the kit.")
        elif isinstance(exc, hf.RepositoryNotFoundError):
            msg = f"{name} was not found on the hub (or is private): check the model id in the profile."
        elif isinstance(exc, hf.RevisionNotFoundError):
            msg = f"{name}: that revision does not exist; check the pinned revision in the profile."
        elif isinstance(exc, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled, ConnectionError, TimeoutError)) \
                or "offline" in str(exc).lower() or "connect" in str(exc).lower():
            msg = (f"{name} is not in the local cache and the hub cannot be reached (no internet?). "
                   f"Use the offline profile: LLMFLATION_PROFILE=offline.")
        else:
            return False
        raise ModelLoadError(msg) from exc


def context_limit(config) -> int | None:
    """The most tokens a model reads, from its config (a transformers config or config.json as a
    dict): ``max_position_embeddings``, or ``n_positions`` in GPT-2-shaped configs; None when it
    states neither."""
    if hasattr(config, "get_text_config"):         # a multimodal config keeps the text model's inside
        config = config.get_text_config()
    get = config.get if isinstance(config, dict) else (lambda key: getattr(config, key, None))
    for key in ("max_position_embeddings", "n_positions"):
        value = get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
