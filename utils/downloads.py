"""What each notebook downloads, computed once, and downloads that show their progress.

A download's size is computed from the model's config: parameters x 2 bytes,
the 16-bit safetensors the hub stores. bitsandbytes quantizes *on load*, so an
NF4 run downloads the full 16-bit checkpoint too. Every size the notebooks, the
preflight and the instructor's timetable state comes from :func:`download_gb`.

A first download of a 7-8B model takes minutes; a cell that sits silent that
long gets interrupted. :func:`fetch` therefore downloads with the hub's
progress bars switched on (they are off everywhere else, see utils.quiet) and
says beforehand how much is coming.
"""

from __future__ import annotations

from .memory import GB, ModelShape
from .profiles import ModelRef, Profile

# The profile models each notebook loads (00 and 07 load none).
NOTEBOOK_ROLES = {
    "01": ("target",), "02": ("target",), "03": ("target",), "04": ("target", "draft"),
    "05": ("target",), "06": ("target", "baseline"), "08": ("target",),
}
WEIGHT_FILES = ["*.safetensors", "*.json", "*.txt", "*.model", "*.tiktoken"]   # never pickles


def is_hub(ref: ModelRef) -> bool:
    """Whether ``ref`` comes from the hub (not the offline models, not a local folder)."""
    from .loading import local_path
    return local_path(ref) is None


def download_gb(ref: ModelRef) -> float:
    """Decimal GB of 16-bit safetensors for ``ref`` (0 for an offline model or a local
    folder): parameters from the config x 2 bytes."""
    if not is_hub(ref):
        return 0.0
    from .loading import model_config
    return ModelShape.from_config(model_config(ref)).params * 2 / GB


def notebook_models(notebook: str, profile: Profile) -> list[ModelRef]:
    """The models ``notebook`` ("04", or "04 speculative decoding") loads on ``profile``."""
    return [getattr(profile, role) for role in NOTEBOOK_ROLES.get(notebook[:2], ())]


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
        state = "already in the cache" if cached(ref) else "downloads on first load"
        lines.append(f"{ref.id}: {download_gb(ref):.1f} GB of 16-bit safetensors "
                     f"(parameters x 2 bytes; NF4 and int8 quantize on load), {state}")
    return lines


def fetch(ref: ModelRef, log=print) -> str | None:
    """Download ``ref``'s weights with progress bars, once; return the local folder.

    None for a local or offline model (nothing to fetch). Only safetensors, configs and
    tokenizer files are fetched: the kit never loads pickle checkpoints."""
    if not is_hub(ref):
        return None
    local = local_snapshot(ref)
    if local is not None:
        return local
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    log(f"downloading {ref.id}: {download_gb(ref):.1f} GB (parameters x 2 bytes); progress below. "
        f"It is cached for the notebooks after this one in the same runtime.")
    enable_progress_bars()
    try:
        return snapshot_download(ref.id, revision=ref.revision, allow_patterns=WEIGHT_FILES)
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

if __name__ == "__main__":
    import argparse

    from .profiles import get_profile
    parser = argparse.ArgumentParser(description="What each notebook downloads on a profile (computed).")
    parser.add_argument("--profile", default="t4")
    for line in table(get_profile(parser.parse_args().profile)):
        print(line)
