"""What each notebook downloads, computed once, and downloads that show their progress.

A download's size is computed from the model's config: parameters x 2 bytes,
the 16-bit safetensors the hub stores. bitsandbytes quantizes *on load*, so an
NF4 run downloads the full 16-bit checkpoint too. Every size the notebooks, the
preflight and the instructor's timetable state comes from :func:`download_gb`.

A first download of a 7-8B model takes minutes; a cell that sits silent that
long gets interrupted. :func:`fetch` therefore downloads with the hub's
progress bars switched on (they are off everywhere else, see utils.quiet) and
says beforehand how much is coming.

On Colab each notebook runs in a fresh runtime, so each downloads its models again. Its first
cell (:func:`utils.session.start`) therefore starts them in the background
(:func:`start_background`: one thread, the models in order, the hub's own resume for an
interrupted file), so they come in while the instructor introduces the notebook; the cell that
loads a model waits for it with a progress bar (:func:`wait`), or loads it at once when it is
already there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from .. import cli
from ..memory import GB, ModelShape
from .profiles import ModelRef, Profile
from .refs import local_path, model_config

# The profile models each notebook loads (00 and 07 load none).
NOTEBOOK_ROLES = {
    "01": ("target",), "02": ("target", "small"), "03": ("target",), "04": ("target", "draft"),
    "05": ("target",), "06": ("target", "baseline"), "08": ("target",), "09": ("target", "baseline", "moe"),
}
WEIGHT_FILES = ["*.safetensors", "*.json", "*.txt", "*.model", "*.tiktoken"]   # never pickles


def is_hub(ref: ModelRef) -> bool:
    """Whether ``ref`` comes from the hub (not the offline models, not a local folder)."""
    return local_path(ref) is None


def download_gb(ref: ModelRef) -> float:
    """Decimal GB of 16-bit safetensors for ``ref`` (0 for an offline model or a local
    folder): parameters from the config x 2 bytes."""
    if not is_hub(ref):
        return 0.0
    return ModelShape.from_config(model_config(ref)).params * 2 / GB


def notebook_models(notebook: str, profile: Profile) -> list[ModelRef]:
    """The models ``notebook`` ("04", or "04 speculative decoding") loads on ``profile`` (a role the
    profile leaves out, such as a mixture of experts, loads nothing)."""
    refs = (getattr(profile, role, None) for role in NOTEBOOK_ROLES.get(notebook[:2], ()))
    return [r for r in refs if r is not None]


def local_snapshot(ref: ModelRef) -> str | None:
    """The hub cache's folder of ``ref``'s weights, or None when they are not all there
    (no network used)."""
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(ref.id, revision=ref.revision, allow_patterns=WEIGHT_FILES,
                                 local_files_only=True)
    except Exception:  # noqa: BLE001 - any miss (not cached, partial) means "will download"
        return None


def cached(ref: ModelRef) -> bool:
    """Whether the hub cache already holds ``ref``'s weights (no network used)."""
    return local_snapshot(ref) is not None


def plan(notebook: str, profile: Profile) -> list[str]:
    """One line per model ``notebook`` downloads on ``profile``: size, and whether cached."""
    lines = []
    for ref in notebook_models(notebook, profile):
        if not is_hub(ref):
            continue
        state = "already in the cache" if cached(ref) else "not in the cache yet"
        lines.append(f"{ref.id}: {download_gb(ref):.1f} GB of 16-bit safetensors "
                     f"(parameters x 2 bytes; NF4 and int8 quantize on load), {state}")
    return lines


def snapshot(ref: ModelRef) -> str:
    """Download ``ref``'s weights (safetensors, configs, tokenizer files) into the hub cache, resuming
    an interrupted file; the local folder."""
    from huggingface_hub import snapshot_download
    return snapshot_download(ref.id, revision=ref.revision, allow_patterns=WEIGHT_FILES)


def cache_folder(ref: ModelRef) -> Path:
    """The hub cache's folder of ``ref`` (its files arrive in ``blobs/``)."""
    from huggingface_hub.constants import HF_HUB_CACHE
    from huggingface_hub.file_download import repo_folder_name
    return Path(HF_HUB_CACHE) / repo_folder_name(repo_id=ref.id, repo_type="model")


def arrived_bytes(ref: ModelRef) -> int:
    """Bytes of ``ref`` in the hub cache so far, files in progress included."""
    blobs = cache_folder(ref) / "blobs"
    return sum(f.stat().st_size for f in blobs.iterdir() if f.is_file()) if blobs.is_dir() else 0


@dataclass
class Job:
    """One model downloading in the background."""

    ref: ModelRef
    expected_bytes: int
    done: threading.Event = field(default_factory=threading.Event)
    path: str | None = None
    error: BaseException | None = None
    download: Callable[[ModelRef], str] | None = None


_JOBS: dict[str, Job] = {}          # by model id: this runtime's background downloads


def start_background(refs: list[ModelRef], download: Callable[[ModelRef], str] | None = None,
                     log=print) -> list[ModelRef]:
    """Start downloading the hub models of ``refs`` that are neither cached nor started yet, one
    after the other in a background thread (one queue for the runtime, in the order asked, unless
    :func:`hurry` moves a model ahead); returns those queued. A failure is kept and raised by
    :func:`wait` in the cell that needs the model."""
    download = download or snapshot
    todo = [r for r in dict.fromkeys(refs) if is_hub(r) and r.id not in _JOBS and not cached(r)]
    if not todo:
        return []
    with _LOCK:
        for r in todo:
            job = Job(r, int(download_gb(r) * GB))
            job.download = download
            _JOBS[r.id] = job
            _QUEUE.append(job)
        if not _WORKER["running"]:
            _WORKER["running"] = True
            threading.Thread(target=_work, name="llmflation-downloads", daemon=True).start()
    log(f"started in the background: {', '.join(f'{r.id} ({download_gb(r):.1f} GB)' for r in todo)}; "
        f"the cell that loads a model waits for it with a progress bar")
    return todo


def hurry(refs: list[ModelRef]) -> list[ModelRef]:
    """Move the queued, not yet started downloads of ``refs`` to the front of the queue (a lesson
    resumed after a lost runtime needs its own models before the earlier lessons'); those moved."""
    with _LOCK:
        ahead = [job for job in _QUEUE if job.ref.id in {r.id for r in refs}]
        for job in ahead:
            _QUEUE.remove(job)
        _QUEUE[:0] = ahead
    return [job.ref for job in ahead]


_QUEUE: list[Job] = []              # queued, not started yet, next first
_LOCK = threading.Lock()
_WORKER = {"running": False}


def _work() -> None:
    """The runtime's one download thread: the queue's first job, then the next, until none is left."""
    while True:
        with _LOCK:
            if not _QUEUE:
                _WORKER["running"] = False
                return
            job = _QUEUE.pop(0)
        try:
            job.path = job.download(job.ref)
        except BaseException as err:  # noqa: BLE001 - kept for the cell that waits for it
            job.error = err
        finally:
            job.done.set()


def wait(ref: ModelRef, log=print, poll_s: float = 0.5) -> str | None:
    """The local folder of ``ref`` once its background download is done (None when none was
    started), with a progress bar meanwhile; its error if it failed (the next load starts again,
    and the hub resumes the files it had)."""
    job = _JOBS.get(ref.id)
    if job is None:
        return None
    if not job.done.is_set():
        from tqdm.auto import tqdm
        log(f"waiting for {ref.id}, downloading in the background since this notebook started")
        with tqdm(total=job.expected_bytes, unit="B", unit_scale=True, desc=ref.id) as bar:
            while not job.done.wait(poll_s):
                bar.update(max(0, min(arrived_bytes(ref), bar.total) - bar.n))
            bar.update(max(0, bar.total - bar.n) if job.error is None else 0)
    if job.error is not None:
        del _JOBS[ref.id]
        raise job.error
    return job.path


def fetch(ref: ModelRef, log=print) -> str | None:
    """Download ``ref``'s weights with progress bars, once; return the local folder (waiting for its
    background download when one was started).

    None for a local or offline model (nothing to fetch). Only safetensors, configs and
    tokenizer files are fetched: the kit never loads pickle checkpoints."""
    if not is_hub(ref):
        return None
    if ref.id in _JOBS:
        return wait(ref, log=log)
    local = local_snapshot(ref)
    if local is not None:
        return local
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    log(f"downloading {ref.id}: {download_gb(ref):.1f} GB (parameters x 2 bytes); progress below. "
        f"It is cached for the notebooks after this one in the same runtime.")
    enable_progress_bars()
    try:
        return snapshot(ref)
    finally:
        disable_progress_bars()


def sizes(profile: Profile) -> dict[str, dict[str, float]]:
    """Per notebook ("01", ...), the GB of each hub model it downloads on ``profile`` (computed)."""
    return {nb: {r.id: download_gb(r) for r in notebook_models(nb, profile) if is_hub(r)}
            for nb in NOTEBOOK_ROLES}


def totals(per: dict[str, dict[str, float]]) -> tuple[float, float]:
    """From a profile's :func:`sizes`: GB a learner downloads when every notebook runs in a fresh
    runtime (Colab), and with one runtime or a kept cache (each model once)."""
    distinct = {i: g for models in per.values() for i, g in models.items()}
    return sum(sum(m.values()) for m in per.values()), sum(distinct.values())


# Kept copies (utils.models.kept: on Colab, on Drive). The notebooks that load the target pass keep=True,
# so the first of them saves it in the precision that fits and every later runtime reads that copy.
# Notebook 02 loads every precision, so its runtime downloads the 16-bit checkpoint and does not
# use the copy (no keep=True there: reading it would add to the download, not replace it).
KEPT_ROLE = "target"
EVERY_PRECISION = ("02",)


class Transfer(NamedTuple):
    """What one notebook moves in a fresh runtime with the target's copy kept on Drive."""

    download_gb: float          # from the hub
    drive_gb: float             # to Drive (writes_copy) or from it
    writes_copy: bool = False

    @property
    def total_gb(self) -> float:
        """Everything it moves: the downloads and the Drive traffic."""
        return self.download_gb + self.drive_gb


def with_kept_copy(profile: Profile, copy_gb: float) -> dict[str, Transfer]:
    """Per notebook, the GB it downloads from the hub and the GB it moves to or from Drive when
    each notebook runs in a fresh runtime and the target's ``copy_gb`` copy is kept on Drive:
    the first notebook that loads the target downloads it and writes the copy, notebook 02
    downloads it, every other one reads the copy (once: utils.models.kept.staged)."""
    out, written = {}, False
    target = getattr(profile, KEPT_ROLE)
    for nb, roles in NOTEBOOK_ROLES.items():
        others = sum(download_gb(getattr(profile, r)) for r in roles
                     if r != KEPT_ROLE and getattr(profile, r, None) is not None)
        if KEPT_ROLE not in roles or not is_hub(target):
            out[nb] = Transfer(others, 0.0)
        elif nb in EVERY_PRECISION:
            out[nb] = Transfer(others + download_gb(target), 0.0)
        elif not written:
            out[nb] = Transfer(others + download_gb(target), copy_gb, writes_copy=True)
            written = True
        else:
            out[nb] = Transfer(others, copy_gb)
    return out


def table(profile: Profile) -> list[str]:
    """Per notebook, the models it loads on ``profile`` and their downloads (computed), with
    what a learner downloads in total when every notebook runs in a fresh runtime (Colab)
    against one runtime or a kept cache."""
    per = sizes(profile)
    rows = [f"{nb}  {', '.join(f'{i} {g:.1f} GB' for i, g in models.items()) or 'nothing to download'}"
            for nb, models in per.items()]
    fresh, once = totals(per)
    rows.append(f"total: {fresh:.1f} GB when each notebook runs in a fresh runtime (Colab); "
                f"{once:.1f} GB with one runtime or a kept hub cache")
    return rows


@cli.command
def main(argv=None) -> int:
    import argparse

    from .profiles import get_profile
    parser = argparse.ArgumentParser(description="What each notebook downloads on a profile (computed).")
    parser.add_argument("--profile", default="t4")
    for line in table(get_profile(parser.parse_args(argv).profile)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
