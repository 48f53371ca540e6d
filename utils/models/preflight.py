"""Preflight: before any download, say what will fit and what will fail, and why.

    python -m utils.models.preflight            # paste its output into a bug report

Checks: hardware, the chosen profile, each model's predicted memory at each of
the profile's precisions against VRAM (GPU) or RAM (CPU), the kept and class copies, disk space for the
download (weights as stored on the hub, 16-bit), hub reachability and whether
an HF token is set (its value is never read out), attention kernels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import rehearsal
from .. import cli
from .downloads import KEPT_ROLE, download_gb, is_hub
from .hardware import Hardware, detect_hardware, has_internet
from .resident import room_gb
from .refs import ModelLoadError, check_weights, local_path, model_config, real_config
from ..memory import BYTES_16, ModelShape, ModelTooLargeError, UnsupportedArchitecture, check_fits, predict_memory
from .profiles import ROLES, ModelRef, Profile, load_profile
from ..results import ResultsPathError, ResultsStore, check_writable


# A model that fits nowhere, cannot be had or is of an unknown kind: memory_checks says why, once;
# the checks that follow leave it out.
UNFIT = (ModelTooLargeError, ModelLoadError, UnsupportedArchitecture)


@dataclass(frozen=True)
class Check:
    """One preflight finding. A failed check warns; a *blocking* one means the main job cannot run."""

    name: str
    ok: bool
    message: str
    blocking: bool = False

    def __str__(self) -> str:
        return (f"[{'ok' if self.ok else '!!'}] {self.name}: {self.message}"
                + (" (this blocks the run)" if self.blocking else ""))


def candidate_precisions(profile: Profile, hw: Hardware, role: str = "target") -> list[str]:
    """The precisions a profile model may run in, by preference: the compute dtype, then the
    profile's precisions (target) or NF4 (draft and baseline)."""
    extra = profile.precisions if role == "target" else ["nf4"]
    return list(dict.fromkeys([hw.compute_dtype, *extra]))


def memory_checks(profile: Profile, hw: Hardware, context: int = 2048,
                  free_disk_gb: float | None = None) -> list[Check]:
    """What fits on ``hw`` (this machine, or the GPU a profile describes) and whether each hub
    model's download fits on the disk: ``free_disk_gb``, this machine's free disk as the hardware
    line states it (a described GPU has no disk of its own; its field is 0), by default ``hw``'s."""
    checks = []
    disk = hw.free_disk_gb if free_disk_gb is None else free_disk_gb
    available = room_gb(hw)
    where = "GPU" if hw.device == "cuda" else "RAM"
    room = "free on the GPU" if hw.live or hw.device != "cuda" else f"of the {hw.gpu_name} this profile describes"
    for role in ROLES:
        ref = getattr(profile, role, None)
        if ref is None:                   # a profile without a mixture of experts or a small model
            continue
        try:
            shape = ModelShape.from_config(model_config(ref))
            folder = local_path(ref)
            if folder is not None and rehearsal.mode() is None:     # random weights need none
                check_weights(folder)
        except (ModelLoadError, UnsupportedArchitecture) as err:
            checks.append(Check(f"{role} {ref.id}", False, str(err), blocking=True))
            continue
        fits_somewhere = False
        for precision in candidate_precisions(profile, hw, role):
            est = predict_memory(shape, precision, context=context, compute_dtype=hw.compute_dtype)
            try:
                check_fits(est, available, where=where, name=ref.id)
                checks.append(Check(f"{role} {ref.id} {precision}", True,
                                    f"{est.total_gb:.2f} GB predicted, fits in the {available:.1f} GB "
                                    f"{room if where == 'GPU' else 'of RAM free'}"))
                fits_somewhere = True
            except ModelTooLargeError as err:
                checks.append(Check(f"{role} {ref.id} {precision}", False, str(err)))
        if role == "target" and not fits_somewhere:
            checks.append(Check("target fits", False, f"{ref.id} fits in none of the profile's "
                                f"precisions here; choose a smaller profile", blocking=True))
        if is_hub(ref):
            download = download_gb(ref)
            ok = download < disk
            checks.append(Check(f"{role} download", ok,
                                f"~{download:.1f} GB of 16-bit safetensors; {disk:.1f} GB free disk"
                                + ("" if ok else ". Free disk space or choose a smaller profile.")))
    return checks


def context_checks(profile: Profile) -> list[Check]:
    """Whether the profile's longest request (its longest prompt_tokens + new_tokens) fits each model's
    context (``max_position_embeddings``, or ``n_positions`` for GPT-2-shaped configs): past it a model
    with learned positions fails mid-step, and one with rotary positions is timed on a length it was
    never trained for. One line per model that does not fit, or one that all do."""
    from .refs import context_limit
    longest, new = max(profile.prompt_tokens), profile.new_tokens
    checks, limits, unstated = [], [], 0
    for role in ROLES:
        ref = getattr(profile, role, None)
        if ref is None:
            continue
        try:
            limit = context_limit(model_config(ref))
        except ModelLoadError:
            continue                                # memory_checks says why
        if limit is None:                           # the kit's table of hub configs may leave it out:
            unstated += 1                           # utils.measure checks the loaded config then
            continue
        limits.append((limit, ref.id))
        if longest + new > limit:
            checks.append(Check(f"{role} context", False,
                                f"profile '{profile.name}' asks for prompts of up to {longest} tokens + {new} new "
                                f"= {longest + new}, but {ref.id} reads at most {limit} tokens; set its "
                                f"prompt_tokens to at most {max(limit - new, 0)}"))
    if not checks and limits:
        limit, name = min(limits)
        checks.append(Check("context", True, f"prompts of up to {longest} tokens + {new} new fit each model's "
                                             f"stated context (the shortest: {limit} tokens, {name})"
                            + (f"; {unstated} model(s) checked when they load" if unstated else "")))
    return checks


def described_gpu(profile: Profile) -> Hardware | None:
    """The GPU a GPU profile is made for, described (no GPU needed): the emulated limits the kit
    knows (a T4's usable memory) or the profile's row of gpus.csv. None for a CPU profile."""
    if profile.device != "cuda":
        return None
    from . import emulate
    from ..data import gpu
    from .machine import described_gpu as described
    key = profile.gpu_price_key
    if key.lower() in emulate.TARGETS:
        return emulate.described(emulate.TARGETS[key.lower()])
    row = gpu(key)
    return described(row["name"], tuple(int(x) for x in row["compute_capability"].split(".")), row["memory_gb"])


def _first_fitting(shape: ModelShape, candidates: list[str], hw: Hardware, context: int) -> str | None:
    available = room_gb(hw)
    for precision in candidates:
        try:
            check_fits(predict_memory(shape, precision, context=context,
                                      compute_dtype=hw.compute_dtype), available)
            return precision
        except ModelTooLargeError:
            continue
    return None


def fitting_precision(profile: Profile, hw: Hardware, context: int = 2048, role: str = "target") -> str:
    """The precision to run a profile model in: the compute dtype if it fits, else the first
    of the profile's precisions that does for the target (NF4 for the draft and baseline).
    On a T4, fp16 Qwen3-8B does not fit: NF4 it is. A GPU profile on a machine without its GPU
    (a rehearsal on a CPU) takes the quantized precision its real model needs on the GPU the
    profile describes, so it rehearses the same path (a T4's 8B in NF4), if that fits here too.
    Raises ModelTooLargeError if none fits."""
    ref = getattr(profile, role)
    shape = ModelShape.from_config(model_config(ref))
    candidates = candidate_precisions(profile, hw, role)
    gpu_hw = described_gpu(profile) if hw.device != "cuda" else None
    if gpu_hw is not None:
        there = _first_fitting(ModelShape.from_config(real_config(ref)),
                               candidate_precisions(profile, gpu_hw, role), gpu_hw, context)
        if there is not None and there not in BYTES_16:
            candidates = [there]
    precision = _first_fitting(shape, candidates, hw, context)
    if precision is None:
        raise ModelTooLargeError(f"{ref.id} fits in none of {candidates} on this machine; "
                                 f"choose a smaller profile")
    return precision


def pair_check(profile: Profile) -> list[Check]:
    """Whether the draft can propose tokens to the target (notebook 04, the benchmark's speculative
    step): the same vocabulary size from the configs, and, where both models are folders on this
    machine, the same tokenizer entry by entry (utils.speculative.check_pair, as the benchmark
    checks it). Nothing is downloaded: a hub pair's tokenizers are compared when they load."""
    from ..speculative import PairError, check_pair
    try:
        target, draft = model_config(profile.target), model_config(profile.draft)
        tokenizers = None
        folders = local_path(profile.target), local_path(profile.draft)
        if all(folders):
            from transformers import AutoTokenizer
            tokenizers = [AutoTokenizer.from_pretrained(f) for f in folders]
        check_pair(target, draft, *(tokenizers or ()))
    except ModelLoadError:
        return []                                   # memory_checks says why
    except PairError as err:
        return [Check("draft pairs with target", False, f"{profile.draft.id} for {profile.target.id}: {err}; "
                                                         f"notebook 04 and the speculative step will refuse it")]
    how = "same tokenizer" if tokenizers else "same vocabulary size (tokenizers compared when they load)"
    return [Check("draft pairs with target", True, f"{profile.draft.id} for {profile.target.id}: {how}")]


def network_checks(profile: Profile) -> list[Check]:
    refs = [r for r in (getattr(profile, role, None) for role in ROLES) if r]
    if all(r.is_offline for r in refs):
        return [Check("internet", True, "not needed: the offline profile uses the kit's own models")]
    def on_this_machine(ref: ModelRef) -> bool:
        try:
            return local_path(ref) is not None
        except ModelLoadError:                      # a folder that is not there: memory_checks says so
            return True
    if all(on_this_machine(r) for r in refs):
        return [Check("internet", True, "not needed: every model of this profile is a folder on this machine")]
    online = has_internet()
    checks = [Check("internet", online, "huggingface.co reachable" if online else
                    "the hub is unreachable: models already in your cache still load; "
                    "otherwise use LLMFLATION_PROFILE=offline")]
    token = bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    checks.append(Check("HF token", True, "set (not shown)" if token else
                        "not set: fine for the kit's ungated models; a gated model needs one"))
    return checks


def attention_checks(hw: Hardware) -> list[Check]:
    msg = f"SDPA backends here: {', '.join(hw.sdpa_backends)}"
    if hw.device == "cuda" and "flash" not in hw.sdpa_backends:
        msg += " (no SDPA flash kernel below sm80: the memory-efficient kernel runs instead)"
    fa2 = ("usable" if hw.flash_attn_usable else
           "installed, but needs an sm80+ GPU" if hw.flash_attn_installed else
           "not installed (optional: pip install flash-attn compiles for a long time)")
    return [Check("attention", True, msg), Check("FlashAttention-2", True, fa2)]


def kept_copy_gb(profile: Profile, hw) -> tuple[str, float]:
    """The precision ``profile``'s target is kept in on ``hw`` (the one that fits there, as
    notebook 01 loads it) and its copy's GB (:func:`utils.models.kept.copy_gb`)."""
    from . import kept
    precision = fitting_precision(profile, hw)
    return precision, kept.copy_gb(getattr(profile, KEPT_ROLE), precision, hw)


def kept_checks(profile: Profile, hw: Hardware) -> list[Check]:
    """Where model copies are kept (on Colab, Drive; utils.models.kept): whether the target's copy is there
    for this runtime, or that notebook 01 will save one and whether it has room. Nothing where
    copies are not kept or would save nothing (a local hub cache lasts; the offline models are on disk)."""
    from . import kept
    base, ref = kept.root(), profile.target
    try:
        precision, need = kept_copy_gb(profile, hw)
    except UNFIT:
        return []                                   # memory_checks says why
    if base is None or not kept.worth_keeping(ref, precision):
        return []
    said: list[str] = []
    # sizes and manifest only: hashing a 6 GB copy on Drive would cost notebook 00 a minute, and the
    # load checks the checksums anyway (a damaged copy is refused there and the hub used)
    found = kept.find(base, ref, precision, hw.compute_dtype, log=said.append, verify=False)
    if found is not None:
        return [Check("kept copy", True, f"{kept.describe(found)} for this runtime")]
    free = kept.free_gb(base)
    why = f" ({said[0]})" if said else ""
    if need + kept.MARGIN_GB > free:
        return [Check("kept copy", False, f"none yet{why}, and {base} has {free:.1f} GB free: the {precision} copy "
                                          f"of {ref.id} needs {need:.1f} GB, so every notebook downloads its "
                                          f"{download_gb(ref):.1f} GB again. Free some space to keep it.")]
    return [Check("kept copy", True, f"none yet{why}: notebook 01 saves {ref.id} in {precision} to {base} "
                                     f"({need:.1f} GB of the {free:.1f} GB free), for the notebooks after it")]


SHARED_ROLES = ("target", "baseline", "moe")        # the models the notebooks other than 02 read


def shared_models(profile: Profile, hw: Hardware, precision: str | None = None) -> list[tuple[str, ModelRef, str]]:
    """(role, model, precision) of each copy a class shares on ``profile`` with ``hw``
    (utils.tools.class_copy): the precision that fits there (as notebooks 01, 06 and 09 load it), or
    ``precision`` for all; a role that fits in 16 bits has nothing to share (its copy would be the
    download again), nor one that fits nowhere."""
    out = []
    for role in SHARED_ROLES:
        ref = getattr(profile, role, None)
        if ref is None:
            continue
        try:
            chosen = precision or fitting_precision(profile, hw, role=role)
        except UNFIT:
            continue                                # memory_checks says why
        if chosen not in BYTES_16:
            out.append((role, ref, chosen))
    return out


def class_copies(base: Path, profile: Profile, hw: Hardware, precision: str | None = None,
                 verify: bool = True) -> list[tuple]:
    """For each model a class shares (:func:`shared_models`): (role, model, precision, the usable copy
    in ``base`` or None, why a copy that is there is not usable or None). ``verify``: check each copy's
    checksums too (utils.models.kept.find), as ``class_copy check`` does."""
    from . import kept
    out = []
    for role, ref, chosen in shared_models(profile, hw, precision):
        said: list[str] = []
        found = kept.find(base, ref, chosen, kept.compute_of(hw, chosen), log=said.append, kind="class copy",
                          verify=verify)
        out.append((role, ref, chosen, found, said[0] if said else None))
    return out


def class_checks(profile: Profile, hw: Hardware) -> list[Check]:
    """Whether this runtime sees the class's shared copies (utils.tools.class_copy) and can use each;
    nothing where no class folder is set up (the notebooks download from the hub as usual)."""
    from . import kept
    base = kept.class_root()
    if base is None:
        return []
    return [Check(f"class copy ({role})", found is not None,
                  f"{kept.describe(found)} for this runtime" if found is not None else
                  (why or f"{ref.id} at {precision} is not in {base}")
                  + f": this runtime downloads its {download_gb(ref):.1f} GB instead")
            for role, ref, precision, found, why in class_copies(base, profile, hw, verify=False)]   # as kept_checks


def to_download(notebook: str, profile: Profile, hw: Hardware) -> list[ModelRef]:
    """The hub models ``notebook`` ("04", or "04 speculative decoding") will download on ``profile``:
    each model it loads, less those a kept copy or the class's copy already serves at the precision
    that fits (notebook 02 quantizes the target's 16-bit checkpoint itself, so it always downloads
    it, and its 16-bit model) and those that fit nowhere (memory_checks says why). Cached models are left to
    :func:`utils.models.downloads.start_background`, which skips them."""
    from . import kept
    from .downloads import EVERY_PRECISION, NOTEBOOK_ROLES
    out = []
    for role in NOTEBOOK_ROLES.get(notebook[:2], ()):
        ref = getattr(profile, role, None)
        if ref is None or not is_hub(ref):
            continue
        if notebook[:2] not in EVERY_PRECISION:      # 02 quantizes each of its models itself
            try:
                precision = fitting_precision(profile, hw, role=role)
            except UNFIT:
                continue
            compute, quiet = kept.compute_of(hw, precision), (lambda message: None)
            mine = kept.root() if role == KEPT_ROLE and kept.worth_keeping(ref, precision) else None
            # sizes alone (no hashing): a copy found damaged when it loads is downloaded then
            if (kept.find(mine, ref, precision, compute, log=quiet, verify=False)
                    or kept.class_copy(ref, precision, compute, log=quiet, verify=False)):
                continue
        out.append(ref)
    return out


def results_check(path: Path) -> Check:
    """Whether the results file can take records and be read back: checked before any measurement."""
    try:
        check_writable(path)
        records, problems = ResultsStore(path).read()
    except (ResultsPathError, OSError) as err:
        return Check("results", False, str(err), blocking=True)
    if problems:
        return Check("results", False, f"{path}: {len(problems)} unreadable line(s), left out of the curve "
                                       f"and never changed (first: {problems[0].removeprefix(f'{path}, ')})")
    return Check("results", True, f"{path} ({len(records)} records)")


def preflight(profile: Profile | None = None, hw: Hardware | None = None,
              results: Path | None = None) -> list[Check]:
    """Every check, in order; ``results`` (a results file path) adds the check of that path."""
    hw = hw or detect_hardware()
    profile = profile or load_profile(hw=hw)
    checks = [Check("hardware", True, hw.summary()),
              Check("profile", True, f"{profile.name}: {profile.description}")]
    if results is not None:
        checks.append(results_check(Path(results)))
    fits_on = hw
    if profile.device == "cuda" and hw.device != "cuda":
        checks.append(Check("GPU", False, f"profile '{profile.name}' needs a CUDA GPU and none was "
                                          f"detected. Use LLMFLATION_PROFILE=offline (or cpu with internet).",
                            blocking=True))
        fits_on = described_gpu(profile)     # what fits is judged on the GPU it describes, not this RAM
    return (checks
            # the download lands on this machine's disk, the one the hardware line states
            + memory_checks(profile, fits_on, free_disk_gb=hw.free_disk_gb) + context_checks(profile)
            + pair_check(profile) + kept_checks(profile, hw) + class_checks(profile, hw)
            + network_checks(profile)
            + attention_checks(hw))


@cli.command
def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile")
    parser.add_argument("--results", help="results file (default: results/my_results.jsonl)")
    args = parser.parse_args(argv)
    hw = detect_hardware()
    checks = preflight(load_profile(args.profile, hw), hw, results=ResultsStore(args.results).path)
    for check in checks:
        print(check)
    blocking = [c.name for c in checks if c.blocking]
    if blocking:
        print(f"preflight: {', '.join(blocking)} block(s) the run (see above)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
