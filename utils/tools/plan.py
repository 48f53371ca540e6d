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
           f"against the {1e3 / h100:.0f} ms the H100 measured: host-bound, and a Colab host is no faster)")
    return out, how


def class_plan(download_mb_s: float = CLASS_RATE_MB_S) -> dict[str, dict]:
    """The core track on Colab T4s with the class's shared copies (utils.tools.class_copy), per notebook: its
    talk, exercises, what it moves in its fresh runtime (hub downloads, class copies), the minutes that
    takes at ``download_mb_s``, the wait left after the talk (each notebook's first cell starts its
    downloads, learners run it as the talk begins), and its T4 run (estimate)."""
    from .class_copy import transfers
    from ..models.emulate import TARGETS, described
    from ..models.profiles import get_profile
    check_rate(download_mb_s)
    moved = transfers(get_profile(CLASS_PROFILE), described(TARGETS["t4"]))
    run, _ = t4_estimate()
    plan = {}
    for nb, (talk, ex, exercises) in CORE.items():
        t = moved.get(nb[:2])
        gb = t.total_gb if t is not None else 0.0
        transfer = download_minutes(gb, download_mb_s)
        wait = max(0, transfer - talk)
        gpu_min = minutes(run[nb]) if nb in run else 0
        plan[nb] = dict(talk=talk, exercises=ex, which=exercises, hub_gb=t.download_gb if t else 0.0,
                        class_gb=t.drive_gb if t else 0.0, transfer_min=transfer, wait_min=wait, run_min=gpu_min,
                        total=talk + ex + wait + gpu_min)
    return plan


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
            out.append((f"show {nb[:2]} from its stored solution instead of running it", row["run_min"] + row["wait_min"]))
    return out


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
        if nb.startswith("04"):
            out.append(f"break {at(t)}-{at(t + BREAK_MIN)}")
            t += BREAK_MIN
    return ", ".join(out) + "."
