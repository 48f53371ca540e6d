"""Profiles: which models and settings suit this hardware, kept as data in profiles.toml."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .hardware import Hardware

PROFILES_FILE = Path(__file__).with_name("profiles.toml")
ENV_PROFILE = "LLMFLATION_PROFILE"
ENV_EXTRA_FILE = "LLMFLATION_PROFILES_FILE"
REQUIRED = ("description", "device", "target", "draft", "baseline", "precisions",
            "attention", "prompt_tokens", "new_tokens", "warmup", "repeats",
            "batch_sizes", "draft_lengths", "gpu_price_key")


class ProfileError(ValueError):
    """A profile that does not exist or is malformed."""


@dataclass(frozen=True)
class ModelRef:
    id: str
    revision: str = "main"

    @property
    def is_offline(self) -> bool:
        return self.id.startswith("offline:")


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


def _read_tables() -> dict[str, dict]:
    tables = tomllib.loads(PROFILES_FILE.read_text(encoding="utf-8"))
    extra = os.environ.get(ENV_EXTRA_FILE)
    if extra:
        path = Path(extra).expanduser()
        if not path.is_file():
            raise ProfileError(f"{ENV_EXTRA_FILE}={extra} does not name a file")
        try:
            tables.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as err:
            raise ProfileError(f"{path} is not valid TOML: {err}") from None
    return tables


def profile_names() -> list[str]:
    return sorted(_read_tables())


def _build(name: str, table: dict) -> Profile:
    missing = [k for k in REQUIRED if k not in table]
    if missing:
        raise ProfileError(f"profile '{name}' lacks {', '.join(missing)}")
    known = {k: table[k] for k in REQUIRED}
    for role in ("target", "draft", "baseline"):
        ref = known[role]
        known[role] = ModelRef(ref) if isinstance(ref, str) else ModelRef(**ref)
    extra = {k: v for k, v in table.items() if k not in REQUIRED and k != "min_vram_gb"}
    return Profile(name=name, min_vram_gb=table.get("min_vram_gb"), extra=extra, **known)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error listing the valid names otherwise."""
    tables = _read_tables()
    if name not in tables:
        raise ProfileError(f"unknown profile '{name}'. Valid profiles: {', '.join(sorted(tables))}. "
                           f"Add your own via {ENV_EXTRA_FILE}.")
    return _build(name, tables[name])


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
