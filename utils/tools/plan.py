"""The minutes a class takes, from the kit's measured and computed figures: the plan's choices
(talk and exercises per notebook, the Colab T4 core track), the measured CPU runs, the downloads
computed per notebook, the T4 run estimate, and whether a session holds it. utils.tools.timetable
writes them as the instructor's page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..cli import UserError

REPO = Path(__file__).resolve().parent.parent.parent
CPU_TIMINGS = REPO / "datasets" / "reference" / "offline-cpu_notebooks.json"
GPU_REHEARSAL = "t4-emulated-on-h100_notebooks"
SESSION_MIN = 180

# An assumption, not a measurement: what one Colab runtime or lab machine sustains from the hub.
# Read yours off a download's progress bar (notebook 01) and pass --download-mb-s.
ASSUMED_DOWNLOAD_MB_S = 50.0

# The plan's choices, in minutes per notebook: (talk, exercises). The instructor's to change.
PLAN = {
    "00_setup_preflight": (10, 8), "01_measuring_cost": (12, 8), "02_quantization": (12, 12),
    "03_attention_kernels": (10, 8), "04_speculative_decoding": (12, 10), "05_batching": (10, 8),
    "06_larger_baseline": (8, 6), "07_cost_curve": (10, 6), "08_serving": (8, 8),
    "09_mixture_of_experts": (10, 8),
}
BREAK_MIN = 10
BREAK_AFTER = "04_speculative_decoding"      # the break comes after this notebook (lesson, in the class)
# What a short session may leave out, first to last: mixture of experts and serving (the curve's story
# is complete without them), then the larger baseline.
OPTIONAL = ("09_mixture_of_experts", "08_serving", "06_larger_baseline")


# The 3-hour Colab T4 class: the core track. The mission's path (measure, quantize, attention, speculative
# decoding, batching, the larger baseline, the cost curve), each notebook with the one exercise it teaches
# there: (talk, exercises, the exercises). Notebooks 08 and 09 and the other exercises are optional modules
# or a second session. The plan's choices, the instructor's to change; the test holds them to the slack.
CORE = {
    "00_setup_preflight": (5, 2, (1,)), "01_measuring_cost": (7, 4, (1,)), "02_quantization": (10, 5, (1,)),
    "03_attention_kernels": (7, 4, (1,)), "04_speculative_decoding": (7, 4, (1,)), "05_batching": (6, 4, (1,)),
    "06_larger_baseline": (7, 3, (1,)), "07_cost_curve": (6, 4, (1,)),
}
CLASS_PROFILE = "t4"
# The class plans at half the assumed rate: hub rates on Colab are reported from ~1 MB/s with stalls
# (huggingface_hub#4528) to ~55 MB/s (huggingface_hub#4085).
CLASS_RATE_MB_S = 25.0
SLACK_MIN = 20
# When the class runs late, cut in this order: an exercise set as homework saves its minutes; a notebook
# shown from its stored solution (solutions/, outputs kept) saves its T4 run and its wait.
LATE_CUTS = (("06_larger_baseline", "exercise"), ("03_attention_kernels", "exercise"), ("05_batching", "exercise"),
             ("06_larger_baseline", "run"), ("03_attention_kernels", "run"))


class PlanError(UserError, ValueError):
    """A plan that cannot be computed as asked: a download rate that is no rate, or measured run
    times that miss a notebook of the plan."""


def cpu_timings() -> dict:
    """The measured CPU run of every solved notebook, with the machine and date."""
    return json.loads(CPU_TIMINGS.read_text(encoding="utf-8"))


def gpu_rehearsal() -> dict[str, float]:
    """Seconds per notebook of the last successful run under T4 limits on an H100 (lower bounds)."""
    from ..reference import records
    out = {}
    for r in records(GPU_REHEARSAL):
        if r["ok"]:
            out[r["notebook"]] = r["seconds"]
    return out


def gpu_peaks() -> dict[str, float]:
    """GB of GPU memory each notebook peaked at in the last successful run under a T4's limits on an H100
    (nvidia-smi, the CUDA context included)."""
    from ..reference import records
    return {r["notebook"]: r["peak_gb"] for r in records(GPU_REHEARSAL) if r["ok"]}


def downloads(profile_name: str) -> tuple[dict[str, float], float]:
    """GB each notebook of the plan downloads on ``profile_name`` in a fresh runtime, and the GB of the
    distinct models (one runtime, or a kept cache); computed by :mod:`utils.models.downloads`."""
    from ..models.downloads import sizes, totals
    from ..models.profiles import get_profile
    profile = get_profile(profile_name)
    per = sizes(profile)
    return {nb: sum(per.get(nb[:2], {}).values()) for nb in PLAN}, totals(per)[1]


def kept(profile_name: str = "t4") -> tuple[str, float, dict]:
    """With the target's copy kept on Drive (:mod:`utils.models.kept`): the precision it is kept in on a
    T4 (the one that fits there), the copy's GB, and per notebook of the plan what it downloads
    and moves to or from Drive in a fresh runtime; computed by :mod:`utils.models.downloads`."""
    from ..models.downloads import Transfer, with_kept_copy
    from ..models.preflight import kept_copy_gb
    from ..models.emulate import TARGETS, described
    from ..models.profiles import get_profile
    profile = get_profile(profile_name)
    precision, copy_gb = kept_copy_gb(profile, described(TARGETS["t4"]))
    per = with_kept_copy(profile, copy_gb)
    return precision, copy_gb, {nb: per.get(nb[:2], Transfer(0.0, 0.0)) for nb in PLAN}


def t4_estimate() -> tuple[dict[str, float], str]:
    """Seconds each notebook runs on a T4, an **estimate**, and how it was made: the rehearsal under a
    T4's limits on an H100 (short runs), scaled to the t4 profile's full runs (tokens per measurement,
    and notebook 04's draft lengths), with notebook 02's small 16-bit model added (its loads at its
    size against the target's), and slowed by the T4's roofline where that is slower than the H100's
    measured step (bitsandbytes NF4 at batch 1 is host-bound on the H100)."""
    from ..cost import roofline_tokens_per_s
    from ..data import gpu
    from ..models.refs import model_config
    from ..memory import ModelShape
    from ..models.profiles import get_profile
    from ..reference import records
    from ..models.rehearsal import short_runs
    full = get_profile(CLASS_PROFILE)
    short = short_runs(full)
    tokens = (full.warmup + full.repeats) * full.new_tokens / ((short.warmup + short.repeats) * short.new_tokens)
    drafts = len(full.draft_lengths) / len(short.draft_lengths)
    target = ModelShape.from_config(model_config(full.target))
    t4_step = 1 / roofline_tokens_per_s(target, "nf4", gpu("T4")["bandwidth_gbs"], compute_dtype="float16")
    h100 = next(r["metrics"]["decode_tok_s"]["median"] for r in records("h100_qwen3-8b")
                if r["step"] == "precision" and r["settings"]["precision"] == "nf4" and r["metrics"]["batch"] == 1)
    slower = max(1.0, t4_step * h100)
    small = (ModelShape.from_config(model_config(full.small)).params / target.params * 3 / len(full.precisions)
             if full.small is not None else 0.0)
    out = {}
    for nb, seconds in gpu_rehearsal().items():
        scale = tokens * slower * (drafts if nb.startswith("04") else 1) * (1 + small if nb.startswith("02") else 1)
        out[nb] = seconds * scale
    how = (f"the rehearsal under a T4's limits on an H100 (`datasets/reference/{GPU_REHEARSAL}.md`, short runs) x "
           f"{tokens:.2f} for the t4 profile's full runs ({full.warmup} + {full.repeats} runs of {full.new_tokens} "
           f"tokens against {short.warmup} + {short.repeats} of {short.new_tokens}, loading included, so an "
           f"overestimate there), x {drafts:g} more draft lengths in 04, + {small:.0%} in 02 for its small 16-bit "
           f"model, x {slower:.2f} for the T4's bandwidth (its NF4 roofline step for the 8B, {t4_step * 1e3:.0f} ms, "
           f"against the {1e3 / h100:.0f} ms the H100 measured: host-bound, and a Colab host is no faster, so this "
           f"factor is a floor: the sensitivity table's 1.5x and 2x are the plan's allowance for it)")
    return out, how


# Setup per runtime: what a fresh Colab runtime costs before a lesson can start. The install is measured
# (scripts/colab_setup.py from the package index, in a fresh environment holding Colab's preinstalled torch
# and transformers); connecting and mounting Drive are assumptions with their sources.
INSTALL = REPO / "datasets" / "reference" / "colab-setup-install.json"
ASSUMED_SETUP = {
    "connect": (1, "connecting to a T4 and cloning the kit (a --depth=1 clone): an assumption; Colab publishes no "
                   "allocation time and free T4s are not guaranteed (research.google.com/colaboratory/faq.html)"),
    "mount": (1, "mounting Drive and approving it: an assumption; a Colab maintainer expects a few seconds once "
                 "approved (googlecolab/colabtools#231) and drive.mount gives up after 120 s by default "
                 "(google.colab.drive, timeout_ms=120000)"),
}
# The sensitivity table: download rates (MB/s) against the T4 run at multiples of the estimate.
RATES_MB_S = (10, 15, 25, 50)
SLOWDOWNS = (1.0, 1.5, 2.0)
FREE_DRIVE_GB = (15, "a Google account's free storage, shared by Drive, Gmail and Photos (Google's stated allowance; "
                     "summarised at navishark.com/en/kb/p57egk; Google One sells more)")
COLAB_RAM_GB = 12.7          # a free Colab runtime's RAM (DESIGN.md: the class on free Colab)
HELD_AT = (15, 1.5)            # the cell the plan must keep SLACK_MIN in, one runtime (tests/test_timetable.py)
PATHS = {"each": "a runtime per notebook (each opened from its badge)",
         "one": f"one runtime (the generated class notebook, `class_t4`)"}


def install_measured() -> dict:
    """The measured install of scripts/colab_setup.py: what, how, seconds per try, on what machine."""
    return json.loads(INSTALL.read_text(encoding="utf-8"))


def setup_minutes() -> dict[str, int]:
    """Minutes each part of a fresh runtime's setup takes: connect (assumed), install (measured, the
    slower try), mount (assumed)."""
    install = minutes(max(install_measured()["seconds"]))
    return {"connect": ASSUMED_SETUP["connect"][0], "install": install, "mount": ASSUMED_SETUP["mount"][0]}


def class_plan(download_mb_s: float = CLASS_RATE_MB_S, slower: float = 1.0, path: str = "each") -> dict[str, dict]:
    """The core track on Colab T4s with the class's shared copies (utils.tools.class_copy), per notebook:
    its setup, talk, exercises, what it moves, the wait that leaves, and its T4 run (the estimate x
    ``slower``), on one of two :data:`PATHS`:

    * ``each``: every notebook opened from its badge: a fresh runtime, set up again (``setup_min``), its hub
      downloads started by its first cell as the talk begins (only what is left after the talk is a wait),
      the class copies it loads read when it loads them (a wait in full);
    * ``one``: the class notebook: one setup; every lesson's hub downloads start with the class, one after
      the other in lesson order; a model is downloaded or read from the class copies once (later loads
      reuse it, or read the runtime's local copy)."""
    from .class_copy import moves
    from ..models.emulate import TARGETS, described
    from ..models.profiles import get_profile
    check_rate(download_mb_s)
    if path not in PATHS:
        raise PlanError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    moved = moves(get_profile(CLASS_PROFILE), described(TARGETS["t4"]), CORE, once=path == "one")
    run, _ = t4_estimate()
    setup = sum(setup_minutes().values())
    plan, clock, queue_done = {}, 0.0, 0.0
    for i, (nb, (talk, ex, exercises)) in enumerate(CORE.items()):
        hub_gb, class_gb = moved[nb]
        setup_min = setup if path == "each" or i == 0 else 0
        clock += setup_min
        hub = hub_gb * 1e3 / download_mb_s / 60
        if path == "each":
            ready = clock + hub
        else:                     # one queue from the class's start
            queue_done = max(queue_done, clock if i == 0 else queue_done) + hub
            ready = queue_done
        wait = max(0, math.ceil(ready - (clock + talk) - 1e-9))
        read = download_minutes(class_gb, download_mb_s)
        gpu_min = minutes(run[nb] * slower) if nb in run else 0
        row = dict(talk=talk, exercises=ex, which=exercises, setup_min=setup_min, hub_gb=hub_gb, class_gb=class_gb,
                   transfer_min=download_minutes(hub_gb, download_mb_s), read_min=read, wait_min=wait,
                   run_min=gpu_min)
        row["total"] = setup_min + talk + ex + wait + read + gpu_min
        clock += row["total"] - setup_min
        plan[nb] = row
    return plan


def sensitivity(path: str) -> dict[tuple[float, float], int]:
    """The slack (minutes of :data:`SESSION_MIN` left) of the core track on ``path`` at each download rate
    of :data:`RATES_MB_S` and each T4 slowdown of :data:`SLOWDOWNS`."""
    return {(rate, slow): SESSION_MIN - class_total(class_plan(rate, slow, path))
            for rate in RATES_MB_S for slow in SLOWDOWNS}


def residency(profile_name: str = CLASS_PROFILE) -> list[dict]:
    """Lesson by lesson in one runtime on a T4, computed from the predicted memory (weights + KV cache
    at a 2,048-token context, + the kit's headroom) and the one-runtime rule of
    :mod:`utils.models.resident`: the models each lesson loads, the peak GPU memory it needs, and what
    stays resident after it. A model that does not fit beside the resident ones frees them first."""
    from ..memory import HEADROOM_GB, ModelShape, predict_memory
    from ..models.downloads import EVERY_PRECISION, NOTEBOOK_ROLES
    from ..models.emulate import TARGETS, described
    from ..models.preflight import fitting_precision
    from ..models.profiles import get_profile
    from ..models.refs import model_config
    profile, hw = get_profile(profile_name), described(TARGETS["t4"])
    usable = TARGETS["t4"].usable_gb

    def need(ref, precision) -> float:
        return predict_memory(ModelShape.from_config(model_config(ref)), precision, context=2048,
                              compute_dtype="float16").total_gb + HEADROOM_GB

    resident: dict[str, float] = {}
    out = []
    for nb in CORE:
        freed = list(resident) if nb[:2] in EVERY_PRECISION else []     # utils.models.resident.measures_alone
        resident = {} if freed else resident
        loads, peak = [], sum(resident.values())
        for role in NOTEBOOK_ROLES.get(nb[:2], ()):
            ref = getattr(profile, role, None)
            if ref is None:
                continue
            every = nb[:2] in EVERY_PRECISION
            precisions = (profile.precisions if role == "target" else ("float16", "int8", "nf4")) if every \
                else (fitting_precision(profile, hw, role=role),)
            for precision in precisions:
                name = f"{ref.id} {precision}"
                keep = role == "target" and not every
                gb = need(ref, precision)
                loads.append(name)
                if name in resident:
                    continue                      # reused
                while resident and sum(resident.values()) + gb > usable:
                    freed.append(next(iter(resident)))
                    del resident[next(iter(resident))]
                peak = max(peak, sum(resident.values()) + gb)      # 04's draft: beside the kept target
                if keep:
                    resident[name] = gb
        out.append(dict(notebook=nb, loads=loads, freed=freed, peak_gb=peak, resident=list(resident),
                        resident_gb=sum(resident.values()), usable_gb=usable))
    return out


def class_total(plan: dict[str, dict]) -> int:
    """Minutes the core track takes: its notebooks and the break."""
    return sum(row["total"] for row in plan.values()) + BREAK_MIN


def late_cuts(plan: dict[str, dict]) -> list[tuple[str, int]]:
    """What to cut, in order, when the class runs late, with the minutes each saves."""
    out = []
    for nb, what in LATE_CUTS:
        row = plan[nb]
        if what == "exercise":
            out.append((f"set {nb[:2]}'s exercise as homework", row["exercises"]))
        else:
            out.append((f"show {nb[:2]} from its stored solution instead of running it",
                        row["run_min"] + row["wait_min"] + row["read_min"]))
    return out


def cuts_needed(plan: dict[str, dict]) -> tuple[list[tuple[str, int]], int]:
    """The first cuts of :func:`late_cuts` that bring ``plan`` back to :data:`SLACK_MIN` minutes of slack,
    and the slack left after them (still short when every cut is not enough)."""
    slack, chosen = SESSION_MIN - class_total(plan), []
    for what, saved in late_cuts(plan):
        if slack >= SLACK_MIN:
            break
        chosen.append((what, saved))
        slack += saved
    return chosen, slack


def minutes(seconds: float) -> int:
    return math.ceil(seconds / 60)


def download_minutes(gb: float, download_mb_s: float) -> int:
    return minutes(gb * 1e3 / download_mb_s)


def check_rate(download_mb_s: float) -> float:
    """The download rate, refused unless it is a positive, finite number of MB/s."""
    if not (isinstance(download_mb_s, (int, float)) and 0 < download_mb_s < float("inf")):
        raise PlanError(f"download rate must be a positive number of MB/s, got {download_mb_s!r}")
    return download_mb_s


def gpu_room(teaching: int, transfer_min: dict[str, tuple[int, dict[str, int]]], gpu_min: int) -> str:
    """What a GPU room's session holds with each way of getting the models (name: minutes of
    transfers in all, and per notebook where a notebook's own transfers are known): over or under the
    session, and which notebooks to leave out (from the end of the sequence) when it is over."""
    return "; ".join(f"with {where} {fits(teaching + dl + gpu_min, per)}"
                     for where, (dl, per) in transfer_min.items())


def fits(total_min: int, extra: dict[str, int] | None = None) -> str:
    """Whether ``total_min`` fits the session, and which optional notebooks (from the end of the
    sequence) to leave out when it does not. A left-out notebook saves its talk and exercises and
    the minutes ``extra`` gives it in this room (its run, its downloads)."""
    over = total_min - SESSION_MIN
    if over <= 0:
        return f"the plan fits, {-over} min to spare"
    dropped, saved = [], 0
    for nb in OPTIONAL:
        if saved < over:
            dropped.append(nb[:2])
            saved += sum(PLAN[nb]) + (extra or {}).get(nb, 0)
    fix = (f"leave out notebook{'s' if len(dropped) > 1 else ''} {' and '.join(dropped)} (saves {saved} min)"
           if saved >= over else "too much for one session even without the optional notebooks: teach it "
           "over two sessions, or where the hub cache persists")
    return f"the plan is {over} min over: {fix}"


def clock() -> str:
    """Start and end of each notebook in the plan (talk + exercises + measured CPU run), with the break
    after notebook 04."""
    cpu = cpu_timings()["seconds"]
    t, out = 0, []

    def at(m: int) -> str:
        return f"{m // 60}:{m % 60:02d}"

    for nb, (talk, ex) in PLAN.items():
        start, t = t, t + talk + ex + minutes(cpu[nb])
        out.append(f"{nb[:2]} {at(start)}-{at(t)}")
        if nb == BREAK_AFTER:
            out.append(f"break {at(t)}-{at(t + BREAK_MIN)}")
            t += BREAK_MIN
    return ", ".join(out) + "."
