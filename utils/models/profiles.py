"""Profiles: which models and settings suit this hardware, kept as data in profiles.toml."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .hardware import Hardware
from ..cli import UserError

PROFILES_FILE = Path(__file__).with_name("profiles.toml")
ENV_PROFILE = "LLMFLATION_PROFILE"
ENV_EXTRA_FILE = "LLMFLATION_PROFILES_FILE"
REQUIRED = ("description", "device", "target", "draft", "baseline", "precisions",
            "attention", "prompt_tokens", "new_tokens", "warmup", "repeats",
            "batch_sizes", "draft_lengths", "gpu_price_key")


OPTIONAL = ("min_vram_gb", "step_budget_s")
# A mixture of experts for notebook 09, a model that fits the GPU in 16 bits for notebook 02 where the
# target fits only quantized, and a real pretrained model where the profile's own models are the kit's
# small trained ones (the offline profile: SmolLM2-135M-Instruct, utils/tools/real_model.py). A profile
# may have none of them.
OPTIONAL_MODELS = ("moe", "small", "real")
ROLES = ("target", "draft", "baseline") + OPTIONAL_MODELS
MODEL_KEYS = ("id", "revision")


class ProfileError(UserError, ValueError):
    """A profile that does not exist or is malformed."""


@dataclass(frozen=True)
class ModelRef:
    id: str
    revision: str = "main"

    @property
    def is_offline(self) -> bool:
        return self.id.startswith("offline:")

    @property
    def folder_name(self) -> str:
        """The id as one folder name ("Qwen--Qwen3-8B", "offline-target")."""
        return self.id.replace("/", "--").replace(":", "-")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    device: str
    target: ModelRef
    draft: ModelRef
    baseline: ModelRef
    precisions: list[str]
    attention: list[str]
    prompt_tokens: list[int]
    new_tokens: int
    warmup: int
    repeats: int
    batch_sizes: list[int]
    draft_lengths: list[int]
    gpu_price_key: str
    min_vram_gb: float | None = None
    extra: dict = field(default_factory=dict)
    moe: ModelRef | None = None
    small: ModelRef | None = None
    real: ModelRef | None = None


def _read_tables(with_sources: bool = False):
    """Every profile table by name (and, ``with_sources``, the file each one came from)."""
    tables = tomllib.loads(PROFILES_FILE.read_text(encoding="utf-8"))
    sources = dict.fromkeys(tables, PROFILES_FILE)
    extra = os.environ.get(ENV_EXTRA_FILE)
    if extra:
        path = Path(extra).expanduser()
        if not path.is_file():
            raise ProfileError(f"{ENV_EXTRA_FILE}={extra} does not name a file")
        try:
            added = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ProfileError(f"{path} is not valid TOML: {err}") from None
        tables.update(added)
        sources.update(dict.fromkeys(added, path))
    return (tables, sources) if with_sources else tables


def profile_names() -> list[str]:
    return sorted(_read_tables())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value, low: int) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) and v >= low for v in value)


def problems(table: dict) -> list[str]:
    """Everything wrong with one profile table, all at once (empty when it is sound):
    missing and unknown keys, types, ranges, and names the kit does not know."""
    from ..attention import IMPLEMENTATIONS
    from ..data import gpus
    from ..memory import PRECISIONS

    out = [f"missing {k}" for k in REQUIRED if k not in table]
    known_keys = REQUIRED + OPTIONAL + OPTIONAL_MODELS
    out += [f"unknown key {k!r} (known: {', '.join(known_keys)})" for k in table if k not in known_keys]

    def check(key, ok: bool, expected: str):
        if key in table and not ok:
            out.append(f"{key} = {table[key]!r}: expected {expected}")

    check("description", isinstance(table.get("description"), str), "a string")
    check("device", table.get("device") in ("cpu", "cuda"), '"cpu" or "cuda"')
    for role in ("target", "draft", "baseline") + tuple(r for r in OPTIONAL_MODELS if r in table):
        ref = table.get(role)
        if isinstance(ref, dict):
            out += [f"{role}: unknown key {k!r} (a model table has {', '.join(MODEL_KEYS)})"
                    for k in ref if k not in MODEL_KEYS]
            ok = isinstance(ref.get("id"), str) and bool(ref["id"]) and isinstance(ref.get("revision", ""), str)
        else:
            ok = isinstance(ref, str) and bool(ref)
        check(role, ok, 'a model id, or { id = "...", revision = "..." }')
    for key, names in (("precisions", PRECISIONS), ("attention", IMPLEMENTATIONS)):
        value = table.get(key)
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            check(key, False, f'a list of names such as ["{names[0]}"], not {type(value).__name__}')
        else:
            out += [f"{key}: unknown name {v!r} (known: {', '.join(names)})" for v in value if v not in names]
    check("prompt_tokens", _int_list(table.get("prompt_tokens"), 2), "a list of whole numbers >= 2")
    check("new_tokens", _is_int(table.get("new_tokens")) and table["new_tokens"] >= 2,
          "a whole number >= 2 (one token is prefill, the rest decode)")
    check("warmup", _is_int(table.get("warmup")) and table["warmup"] >= 1,
          "a whole number >= 1 (a cold first run is slower than the rest)")
    check("repeats", _is_int(table.get("repeats")) and table["repeats"] >= 1, "a whole number >= 1")
    check("batch_sizes", _int_list(table.get("batch_sizes"), 1), "a list of whole numbers >= 1")
    check("draft_lengths", _int_list(table.get("draft_lengths"), 1), "a list of whole numbers >= 1")
    known_gpus = gpus()
    check("gpu_price_key", table.get("gpu_price_key") in known_gpus,
          f"a key of datasets/gpus.csv ({', '.join(known_gpus)})")
    for key in OPTIONAL:
        value = table.get(key)
        check(key, isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value) and value >= 0, "a number >= 0")
    return out


def _build(name: str, table: dict, source: Path | None = None) -> Profile:
    found = problems(table)
    if found:
        raise ProfileError(f"profile '{name}' in {source or PROFILES_FILE} is not usable:\n  - "
                           + "\n  - ".join(found))
    known = {k: table[k] for k in REQUIRED} | {k: table[k] for k in OPTIONAL_MODELS if k in table}
    for role in ("target", "draft", "baseline") + tuple(r for r in OPTIONAL_MODELS if r in known):
        ref = known[role]
        known[role] = ModelRef(ref) if isinstance(ref, str) else ModelRef(**ref)
    extra = {k: v for k, v in table.items() if k in OPTIONAL and k != "min_vram_gb"}
    return Profile(name=name, min_vram_gb=table.get("min_vram_gb"), extra=extra, **known)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error listing the valid names otherwise."""
    tables, sources = _read_tables(with_sources=True)
    if not isinstance(name, str) or name not in tables:
        raise ProfileError(f"unknown profile '{name}'. Valid profiles: {', '.join(sorted(tables))}. "
                           f"Add your own via {ENV_EXTRA_FILE}.")
    if not isinstance(tables[name], dict):
        raise ProfileError(f"'{name}' in {sources[name]} is not a table: write it as [{name}]")
    return _build(name, tables[name], sources[name])


def auto_profile_name(hw: Hardware) -> str:
    """The profile that fits ``hw``: by VRAM on a GPU, 'offline' on a CPU."""
    if hw.device != "cuda":
        return "offline"
    tables = _read_tables()
    fitting = [(t["min_vram_gb"], n) for n, t in tables.items()
               if t.get("device") == "cuda" and "min_vram_gb" in t
               and (hw.vram_gb or 0) >= t["min_vram_gb"]]
    return max(fitting)[1]


def load_profile(name: str | None = None, hw: Hardware | None = None) -> Profile:
    """Choose a profile: the argument, else $LLMFLATION_PROFILE, else from the hardware."""
    from . import rehearsal
    name = name or os.environ.get(ENV_PROFILE)
    if not name:
        if hw is None:
            from .hardware import detect_hardware
            hw = detect_hardware()
        name = auto_profile_name(hw)
    profile = get_profile(name)
    return rehearsal.adjust(profile)
