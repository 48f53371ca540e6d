"""The instructor's tool: prepare the class's quantized models once, and check them from a learner's runtime.

    python -m utils.tools.class_copy share <folder>            # on the class's kind of GPU (a Colab T4)
    python -m utils.tools.class_copy check [<folder>]          # in a learner's runtime: which copies it can use

Without a shared copy every learner's runtime downloads each model's 16-bit checkpoint in every
notebook and bitsandbytes quantizes it again (:mod:`utils.tools.timetable` counts it). ``share`` loads
each quantized model the notebooks read on the profile (the target, the larger baseline and the
mixture of experts, at the precision that fits the GPU) and saves it, as loaded, to ``<folder>``
in the kit's kept-copy format with its manifest (:mod:`utils.models.kept`). Share that folder with the
learners; on Colab each adds it to their Drive as ``MyDrive/llmflation-class`` (or points
``$LLMFLATION_CLASS_DIR`` at it), and every notebook except 02 (which teaches quantizing) reads
it instead of the hub. A copy is made with one bitsandbytes version and compute dtype; a learner's
runtime with another refuses it with the reason and downloads as before, so prepare it on the
class's kind of GPU and Colab image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli
from ..models import kept
from ..memory import check_precision
from ..models.preflight import class_copies, shared_models
from ..models.profiles import Profile


def check(folder: Path | None, profile: Profile, hw, precision: str | None = None, log=print) -> bool:
    """Say, one line per shared model, whether this runtime can use the class's copy in ``folder``
    (the class folder this runtime sees when None); True when every one can."""
    folder = folder if folder is not None else kept.class_root()
    if folder is None:
        log(f"no class folder here: add the instructor's shared folder to your Drive as "
            f"MyDrive/{kept.CLASS_FOLDER} (with a models/ folder in it), or set ${kept.ENV_CLASS}")
        return False
    ok = True
    for role, ref, chosen, copy, why in class_copies(folder, profile, hw, precision):
        if copy is not None:
            log(f"[ok] {role}: {kept.describe(copy)}")
        else:
            ok = False
            log(f"[!!] {role}: {ref.id} at {chosen}: " + (why or f"no copy in {folder}")
                + " - this runtime downloads its 16-bit checkpoint instead")
    return ok


def share(folder: Path, profile: Profile, hw, precision: str | None = None, log=print) -> bool:
    """Load each model of :func:`utils.models.preflight.shared_models` and keep it in ``folder`` (a copy already there that
    matches is loaded, which checks it reads back); then :func:`check` the folder."""
    from ..models.loading import free, load_model
    planned = shared_models(profile, hw, precision)
    if not planned:
        log(f"nothing to share on profile {profile.name} here: every model fits in 16 bits, so a copy "
            f"would be the download again")
        return False
    need = sum(kept.copy_gb(ref, p, hw) for _, ref, p in planned)
    log(f"sharing {len(planned)} model(s), about {need:.1f} GB, in {folder}")
    for role, ref, chosen in planned:
        log(f"{role}: {ref.id} at {chosen}")
        free(load_model(ref, chosen, hw=hw, keep=folder, shared=False, log=log))
    return check(folder, profile, hw, precision, log=log)


def transfers(profile: Profile, hw) -> dict[str, "Transfer"]:
    """Per notebook ("01", ...), the GB it moves in a fresh runtime when the class shares its copies:
    read from the class folder (each shared model, at its copy's size), downloaded from the hub
    (notebook 02's 16-bit checkpoints, which it quantizes itself, and every model not shared).
    Computed, as the timetable counts it."""
    from ..models.downloads import EVERY_PRECISION, NOTEBOOK_ROLES, Transfer, download_gb
    shared = {role: (ref, precision) for role, ref, precision in shared_models(profile, hw)}
    out = {}
    for nb, roles in NOTEBOOK_ROLES.items():
        hub = drive = 0.0
        for role in roles:
            ref = getattr(profile, role, None)
            if ref is None:
                continue
            if role in shared and nb not in EVERY_PRECISION:
                drive += kept.copy_gb(*shared[role], hw)
            else:
                hub += download_gb(ref)
        out[nb] = Transfer(hub, drive)
    return out


def moves(profile: Profile, hw, notebooks, once: bool = False) -> dict[str, tuple[float, float]]:
    """Per notebook of ``notebooks`` (stems, in the order they run), the GB (from the hub, from the class
    copies) it moves: in a fresh runtime each (:func:`transfers`), or with ``once`` in one runtime, where a
    model already downloaded or read by an earlier lesson is not moved again."""
    from ..models.downloads import EVERY_PRECISION, NOTEBOOK_ROLES, download_gb
    shared = {role: (ref, precision) for role, ref, precision in shared_models(profile, hw)}
    seen, out = set(), {}
    for nb in notebooks:
        hub = drive = 0.0
        for role in NOTEBOOK_ROLES.get(nb[:2], ()):
            ref = getattr(profile, role, None)
            if ref is None:
                continue
            from_copy = role in shared and nb[:2] not in EVERY_PRECISION
            what = ("class", ref.id, shared[role][1]) if from_copy else ("hub", ref.id)
            if once and what in seen:
                continue
            seen.add(what)
            if from_copy:
                drive += kept.copy_gb(*shared[role], hw)
            else:
                hub += download_gb(ref)
        out[nb] = (hub, drive)
    return out


@cli.command
def main(argv=None) -> int:
    from ..models.hardware import detect_hardware
    from ..models.profiles import load_profile
    parser = argparse.ArgumentParser(description="Prepare the class's quantized models once, or check "
                                                 "which of them this runtime can use.")
    parser.add_argument("action", choices=("share", "check"))
    parser.add_argument("folder", nargs="?", type=Path,
                        help=f"the class folder (check: default the one this runtime sees, ${kept.ENV_CLASS} "
                             f"or MyDrive/{kept.CLASS_FOLDER}/models)")
    parser.add_argument("--profile", default=None, help="default: the one chosen for this hardware")
    parser.add_argument("--precision", default=None, help="one quantized precision for every model "
                                                          "(default: the one that fits this GPU)")
    args = parser.parse_args(argv)
    if args.action == "share" and args.folder is None:
        parser.error("share needs the folder to write the copies to")
    if args.precision is not None:
        try:
            check_precision(args.precision)
        except ValueError as err:
            parser.error(str(err))
    hw = detect_hardware()
    profile = load_profile(args.profile, hw)
    act = share if args.action == "share" else check
    return 0 if act(args.folder, profile, hw, args.precision) else 1


if __name__ == "__main__":
    sys.exit(main())
