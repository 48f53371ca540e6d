"""Quantized copies of a model kept between runtimes: on Colab, on the learner's Google Drive.

Each Colab notebook runs in a fresh runtime with an empty hub cache, so without help every
notebook downloads the model's 16-bit checkpoint again and bitsandbytes quantizes it again
on load. A kept copy is the model *as loaded*, saved once with ``save_pretrained``
(safetensors, the quantization settings in its ``config.json``); a later runtime reads that
smaller copy instead of downloading. Its size is the predicted weight memory
(:func:`utils.memory.predict_memory`), which the timetable uses.

Where copies live (:func:`root`): ``$LLMFLATION_KEEP_DIR`` if set (``off`` switches keeping
off), else ``MyDrive/llmflation-lab/models/`` on Colab with Drive mounted, else nowhere: a
local machine's hub cache already lasts.

**The class's copies** (:func:`class_root`, read only): an instructor prepares the quantized
models once, ``python -m utils.tools.class_copy share <folder>`` on the class's kind of GPU, and shares the
folder (on Drive: shared with the learners, who add it to their Drive as
``MyDrive/llmflation-class``; anywhere else: ``$LLMFLATION_CLASS_DIR``). Every notebook that
does not teach quantization then reads the class's copy instead of downloading the 16-bit
checkpoint (notebook 02 still quantizes in the learner's runtime). ``python -m utils.tools.class_copy check``
says, in a learner's runtime, which copies it can use; a copy that does not match is refused
with the reason, as a learner's own kept copy is.

A copy is reused only when its manifest (:data:`MANIFEST`) matches what is asked: model id,
revision, precision, compute dtype and the bitsandbytes version that packed it, with every
file at its recorded size and, since the manifest records one, its recorded sha256 (hashed once
per runtime: :func:`verify`). Anything else (a half-written folder, another bitsandbytes, a
damaged manifest, a file whose bytes changed) is said in one line and the model loads from the
hub as before; a copy is
written to a ``.partial`` folder and renamed only when complete, so an interrupted save never
passes for a copy. It is saved right after loading, before any forward pass: on a CPU with
AVX-512 BF16, bitsandbytes repacks 4-bit weights at the first forward and a copy saved after
that reads back wrong (the tests show it where the CPU repacks).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..memory import BYTES_16, GB, ModelShape, predict_memory
from .profiles import ModelRef
from .refs import model_config
from ..results import COLAB_DRIVE, drive_folder, in_colab_runtime
from ..versions import installed

ENV_KEEP = "LLMFLATION_KEEP_DIR"
ENV_CLASS = "LLMFLATION_CLASS_DIR"
CLASS_FOLDER = "llmflation-class"     # the instructor's shared folder, as learners add it to MyDrive
MANIFEST = "llmflation-kept.json"
FORMAT = 1
MARGIN_GB = 1.0           # left free on the keep folder's disk after a copy is written
SHARD = "2GB"             # shard size: a failed write of one file costs little


def root(in_colab: bool | None = None, drive: Path = COLAB_DRIVE) -> Path | None:
    """The folder kept copies live in, or None when copies are not kept (see the module doc)."""
    env = os.environ.get(ENV_KEEP, "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env).expanduser()
    folder = drive_folder(in_colab, drive)
    return folder / "models" if folder is not None else None


def class_root(in_colab: bool | None = None, drive: Path = COLAB_DRIVE) -> Path | None:
    """The folder of the class's shared copies (read only), or None: ``$LLMFLATION_CLASS_DIR``
    (``off``: none), else on Colab with Drive mounted ``MyDrive/llmflation-class/models`` when the
    instructor's shared folder has been added there."""
    env = os.environ.get(ENV_CLASS, "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env).expanduser()
    shared = drive / CLASS_FOLDER / "models"
    return shared if in_colab_runtime(in_colab) and shared.is_dir() else None


def class_copy(ref: ModelRef, precision: str, compute: str, log=print, verify: bool = True) -> Copy | None:
    """The class's copy of ``ref`` at ``precision`` when this runtime can use it (a quantized
    precision, a copy whose manifest and checksums match), saying in one line why one that is there
    is not (``verify``: see :func:`find`)."""
    if precision in BYTES_16:
        return None
    return find(class_root(), ref, precision, compute, log=log, kind="class copy", verify=verify)


def compute_of(hw, precision: str) -> str:
    """The compute dtype a load on ``hw`` uses for ``precision`` (utils.models.loading loads with it, and a
    copy's manifest must match it): a 16-bit precision computes in itself, a bitsandbytes one in the
    machine's compute dtype; never fp16 on a CPU (slow and lossy there), fp32 instead."""
    compute = precision if precision in BYTES_16 else hw.compute_dtype
    return "float32" if hw.device == "cpu" and compute == "float16" else compute


def copy_gb(ref: ModelRef, precision: str, hw) -> float:
    """The size of ``ref``'s copy at ``precision`` made on ``hw``: its predicted weight memory at the
    compute dtype the load uses (:func:`compute_of`), which a saved copy matches (tests/test_kept.py)."""
    shape = ModelShape.from_config(model_config(ref))
    return predict_memory(shape, precision, compute_dtype=compute_of(hw, precision)).weights_gb


def worth_keeping(ref: ModelRef, precision: str) -> bool:
    """Whether a kept copy saves anything: a hub model in a bitsandbytes precision (its copy is
    smaller than the 16-bit download and skips quantizing). A 16-bit copy is the download again;
    an offline or local model is on disk already."""
    from .downloads import is_hub
    return precision not in BYTES_16 and is_hub(ref)


def folder(base: Path, ref: ModelRef, precision: str) -> Path:
    """Where ``ref``'s copy at ``precision`` lives under ``base``."""
    return base / f"{ref.folder_name}--{precision}"


def wanted(ref: ModelRef, precision: str, compute: str) -> dict:
    """The manifest fields a copy must match to be reused (bitsandbytes packed its weights)."""
    return dict(format=FORMAT, model=ref.id, revision=ref.revision, precision=precision,
                compute_dtype=compute, bitsandbytes=installed("bitsandbytes"))


@dataclass(frozen=True)
class Copy:
    """A reusable kept copy: its folder and its manifest, read once (on Drive, each read of a
    file goes over the network)."""

    path: Path
    manifest: dict

    @property
    def gb(self) -> float:
        """The copy's size: its manifest's files."""
        return sum(self.manifest["files"].values()) / GB


def find(base: Path | None, ref: ModelRef, precision: str, compute: str, log=print,
         kind: str = "kept copy", verify: bool = True) -> Copy | None:
    """The kept copy of ``ref`` at ``precision`` under ``base`` when it can be reused, else None,
    saying in one line why a copy that is there is not used (``kind`` names it: a kept copy, the
    class copy). ``verify=False`` skips the checksums (:func:`mismatch`) and checks the manifest and
    sizes alone: for a report (preflight) that does not load the copy."""
    if base is None:
        return None
    path = folder(base, ref, precision)
    if not path.is_dir():
        return None
    where = f"the {kind} at {path}"
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = dict(manifest["files"])
        sums = manifest.get("sha256")
        if sums is not None and (not isinstance(sums, dict) or set(sums) != set(files)):
            raise ValueError("its checksums do not list its files")
    except (OSError, ValueError, KeyError, TypeError) as err:
        log(f"{where} is incomplete or damaged ({type(err).__name__}): not used"
            + ("; it is replaced when this model is kept again" if kind == "kept copy" else ""))
        return None
    differ = [f"{k} {manifest.get(k)!r} (now {v!r})" for k, v in wanted(ref, precision, compute).items()
              if manifest.get(k) != v]
    if differ:
        log(f"{where} was made with {', '.join(differ)}: not used")
        return None
    for name, size in files.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != size:
            log(f"{where} is incomplete ({name} is missing or has the wrong size): not used")
            return None
    copy = Copy(path, manifest)
    if not isinstance(manifest.get("sha256"), dict):
        # A copy from before checksums: used, with a note. Its sizes matched (which catches the
        # common damage, an interrupted write or copy), and refusing it would turn every copy
        # kept or shared with an older kit into a full download at once, a class's for every learner.
        log(f"{where} was made by an older kit and has no checksums: used unchecked (its sizes match); "
            + ("delete it to have it kept again with checksums" if kind == "kept copy" else
               "sharing it again adds them"))
        return copy
    if verify:
        bad = mismatch(copy)
        if bad is not None:
            log(f"{where} is damaged: {bad} does not match its checksum; not used"
                + ("; it is replaced when this model is kept again" if kind == "kept copy" else ""))
            return None
    return copy


def sha256_of(file: Path) -> str:
    """The sha256 of ``file``'s bytes, read in 8 MB blocks (about 0.7 GB/s on a 2-core Xeon with
    SHA-NI: a 6 GB copy takes some 9 s from a local disk, longer over Drive's network)."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path, names) -> dict[str, str]:
    """sha256 of each of ``names`` in ``folder``, as a copy's manifest records them."""
    return {name: sha256_of(folder / name) for name in names}


def _fingerprint(copy: Copy) -> str:
    """What a verified copy looked like: its recorded checksums and each file's size and mtime.
    A file written again since (a new save, a damaged sync) changes it, so it is hashed again."""
    stats = {name: [(st := (copy.path / name).stat()).st_mtime_ns, st.st_size]
             for name in sorted(copy.manifest["sha256"])}
    return hashlib.sha256(json.dumps([copy.manifest["sha256"], stats], sort_keys=True).encode()).hexdigest()


def _verified_marker(copy: Copy) -> Path:
    """Where this runtime remembers that ``copy`` was verified: on the local disk beside the staged
    copies (a class copy's folder is read only), one marker per copy's full path."""
    key = hashlib.sha256(str(copy.path.absolute()).encode()).hexdigest()[:16]
    return STAGE_DIR / ".verified" / f"{copy.path.name}-{key}"


def mismatch(copy: Copy) -> str | None:
    """The first file of ``copy`` whose bytes do not match its manifest's sha256, or None. Hashed once
    per runtime: a verified copy is remembered (:func:`_verified_marker`), so a class that loads it in
    several lessons, or notebook 03 once per attention kernel, reads it through once."""
    marker, seen = _verified_marker(copy), _fingerprint(copy)
    try:
        if marker.read_text(encoding="utf-8") == seen:
            return None
    except OSError:
        pass
    for name, digest in sorted(copy.manifest["sha256"].items()):
        if sha256_of(copy.path / name) != digest:
            return name
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(seen, encoding="utf-8")
    except OSError:                 # no local disk to remember it on: it is hashed again next time
        pass
    return None


REMOTE = COLAB_DRIVE.parent          # a network mount: every read of a file there goes over the network
STAGE_DIR = Path(tempfile.gettempdir()) / "llmflation-kept"


def staged(copy: Copy, log=print) -> Path:
    """A local copy of ``copy`` when it lives on a network mount (Drive), made once per runtime:
    notebook 03 loads the same model for each attention kernel, and each load would otherwise
    read it over the network again. The copy's own folder when it is local, or when the local
    disk has no room (saying so)."""
    if not copy.path.is_relative_to(REMOTE):
        return copy.path
    local = STAGE_DIR / copy.path.name
    done = local / ".staged"
    if done.is_file() and done.read_text(encoding="utf-8") == copy.manifest["saved"]:
        return local
    STAGE_DIR.mkdir(parents=True, exist_ok=True)
    free = free_gb(STAGE_DIR)
    if copy.gb + MARGIN_GB > free:
        log(f"reading the kept copy from {copy.path.parent} directly: the local disk has {free:.1f} GB "
            f"free and a local copy needs {copy.gb:.1f} GB")
        return copy.path
    shutil.rmtree(local, ignore_errors=True)
    shutil.copytree(copy.path, local)
    done.write_text(copy.manifest["saved"], encoding="utf-8")
    return local


def free_gb(base: Path) -> float:
    """GB free where ``base`` is (or would be created: its nearest existing parent)."""
    existing = next(p for p in (base, *base.parents) if p.exists())
    return shutil.disk_usage(existing).free / GB


def describe(copy: Copy) -> str:
    """One line for a reused copy: its size, the commit it was made from and when."""
    m = copy.manifest
    commit = str(m.get("commit") or "unknown")[:10]
    return (f"{m['model']} at {m['precision']}: the copy kept in {copy.path.parent} "
            f"({copy.gb:.1f} GB, commit {commit}, saved {m.get('saved', '?')[:10]}), no download")


def save(model, tokenizer, base: Path, ref: ModelRef, precision: str, compute: str,
         commit: str | None = None, log=print) -> Path | None:
    """Save a just-loaded model (before any forward pass) as ``ref``'s kept copy at ``precision``.

    Returns the copy's folder, or None when it was not written: too little free space (checked
    against the model's size first) or a write error. The loaded model is untouched either way."""
    from ..memory import measured_weight_bytes
    need = measured_weight_bytes(model) / GB
    try:
        base.mkdir(parents=True, exist_ok=True)
        free = free_gb(base)
    except OSError as err:
        log(f"not kept: {base} cannot be used ({err.strerror or err})")
        return None
    if need + MARGIN_GB > free:
        log(f"not kept: a copy of {ref.id} at {precision} needs {need:.1f} GB and {base} has "
            f"{free:.1f} GB free (keeping {MARGIN_GB:g} GB spare); the next runtime downloads it again")
        return None
    path = folder(base, ref, precision)
    partial = path.with_name(path.name + ".partial")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial, max_shard_size=SHARD)
        tokenizer.save_pretrained(partial)
        files = {p.name: p.stat().st_size for p in sorted(partial.iterdir()) if p.is_file()}
        # read back from the disk it was written to: what a later runtime reads is what is hashed
        manifest = dict(wanted(ref, precision, compute), commit=commit,
                        transformers=installed("transformers"),
                        saved=datetime.now(timezone.utc).isoformat(timespec="seconds"), files=files,
                        sha256=checksums(partial, files))
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        log(f"not kept: writing the copy to {base} failed ({err.strerror or err}); the model loaded "
            f"as usual and the next runtime downloads it again")
        return None
    log(f"kept a copy of {ref.id} at {precision} in {path} ({sum(files.values()) / GB:.1f} GB): "
        f"the next runtime reads it instead of downloading")
    return path
