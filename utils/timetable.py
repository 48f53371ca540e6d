"""The instructor's timetable, derived from figures the kit measured or computed.

    python -m utils.timetable                       # print it
    python -m utils.timetable --write               # rewrite docs/timetable.md
    python -m utils.timetable --download-mb-s 100   # your room's download rate

Every minute in it comes from one of these, and the page names which:

* **run time on a CPU** (offline profile): measured, the wall time of each solved notebook
  run top to bottom (``datasets/reference/offline-cpu_notebooks.json``, written by
  ``python scripts/make_exercises.py --execute``, with the machine it ran on);
* **downloads** on a GPU profile: computed, the models each notebook loads
  (:mod:`utils.downloads`: parameters x 2 bytes) at a download rate that is an
  **assumption** (:data:`ASSUMED_DOWNLOAD_MB_S`, or yours with ``--download-mb-s``);
* **GPU run time**: the only GPU figures are the rehearsal of the t4 profile under a T4's
  limits on an H100 (``datasets/reference/t4-emulated-on-h100_notebooks.jsonl``: H100 speed,
  short runs), a *lower bound* for a T4, never a T4 time;
* **talk and exercise minutes**: the plan's choices (:data:`PLAN`), not measurements.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from . import cli

REPO = Path(__file__).resolve().parent.parent
CPU_TIMINGS = REPO / "datasets" / "reference" / "offline-cpu_notebooks.json"
GPU_REHEARSAL = "t4-emulated-on-h100_notebooks"
PAGE = REPO / "docs" / "timetable.md"
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


def cpu_timings() -> dict:
    """The measured CPU run of every solved notebook, with the machine and date."""
    return json.loads(CPU_TIMINGS.read_text(encoding="utf-8"))


def gpu_rehearsal() -> dict[str, float]:
    """Seconds per notebook of the last successful run under T4 limits on an H100 (lower bounds)."""
    from .reference import records
    out = {}
    for r in records(GPU_REHEARSAL):
        if r["ok"]:
            out[r["notebook"]] = r["seconds"]
    return out


def downloads(profile_name: str) -> tuple[dict[str, float], float]:
    """GB each notebook of the plan downloads on ``profile_name`` in a fresh runtime, and the GB of the
    distinct models (one runtime, or a kept cache); computed by :mod:`utils.downloads`."""
    from .downloads import sizes, totals
    from .profiles import get_profile
    profile = get_profile(profile_name)
    per = sizes(profile)
    return {nb: sum(per.get(nb[:2], {}).values()) for nb in PLAN}, totals(per)[1]


def kept(profile_name: str = "t4") -> tuple[str, float, dict]:
    """With the target's copy kept on Drive (:mod:`utils.kept`): the precision it is kept in on a
    T4 (the one that fits there), the copy's GB, and per notebook of the plan what it downloads
    and moves to or from Drive in a fresh runtime; computed by :mod:`utils.downloads`."""
    from .downloads import Transfer, with_kept_copy
    from .preflight import kept_copy_gb
    from .emulate import TARGETS, described
    from .profiles import get_profile
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
    from .cost import roofline_tokens_per_s
    from .data import gpu
    from .refs import model_config
    from .memory import ModelShape
    from .profiles import get_profile
    from .reference import records
    from .rehearsal import short_runs
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
    """The core track on Colab T4s with the class's shared copies (utils.class_copy), per notebook: its
    talk, exercises, what it moves in its fresh runtime (hub downloads, class copies), the minutes that
    takes at ``download_mb_s``, the wait left after the talk (each notebook's first cell starts its
    downloads, learners run it as the talk begins), and its T4 run (estimate)."""
    from .class_copy import transfers
    from .emulate import TARGETS, described
    from .profiles import get_profile
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
        raise ValueError(f"download rate must be a positive number of MB/s, got {download_mb_s!r}")
    return download_mb_s


def build(download_mb_s: float = ASSUMED_DOWNLOAD_MB_S) -> str:
    """The timetable page (Markdown)."""
    check_rate(download_mb_s)
    cpu, gpu = cpu_timings(), gpu_rehearsal()
    t4, total_once = downloads("t4")
    missing = set(PLAN) - set(cpu["seconds"])
    if missing:
        raise ValueError(f"{CPU_TIMINGS.name} has no run time for {', '.join(sorted(missing))}: "
                         f"run python scripts/make_exercises.py --execute")
    dl_min = {nb: download_minutes(gb, download_mb_s) for nb, gb in t4.items()}
    kept_precision, copy_gb, on_drive = kept()
    drive_min = {nb: download_minutes(t.total_gb, download_mb_s) for nb, t in on_drive.items()}
    lines = [
        "# Timetable: a 3-hour class, derived from the kit's figures",
        "",
        "Generated by `python -m utils.timetable --write`; do not edit by hand. Where each figure comes from:",
        "",
        f"- **CPU run**: measured, each solved notebook run top to bottom on the offline profile "
        f"({cpu['machine']}; {cpu['date'][:10]}; `{CPU_TIMINGS.relative_to(REPO)}`).",
        f"- **T4 downloads**: computed from the models' configs (parameters x 2 bytes: bitsandbytes quantizes "
        f"the 16-bit checkpoint on load), per notebook in a fresh Colab runtime, at **{download_mb_s:g} MB/s, an "
        f"assumption**: read your rate off a download's progress bar and run "
        f"`python -m utils.timetable --download-mb-s <yours>`.",
        f"- **T4, target kept on Drive**: the notebooks that load the target pass `keep=True`, so with Drive "
        f"mounted the first saves it in {kept_precision} ({copy_gb:.1f} GB: its predicted weight memory, which a "
        f"saved copy matches) and later runtimes read that copy instead of downloading (`utils/kept.py`). Drive is "
        f"assumed as fast as the hub, {download_mb_s:g} MB/s; loading a kept copy prints the rate it really got.",
        "- **GPU run, lower bound**: the t4 profile's notebooks under a T4's limits *on an H100*, short runs "
        f"(`datasets/reference/{GPU_REHEARSAL}.md`). A T4 is slower; no notebook has been timed on a real T4 yet.",
        "- **Talk and exercises**: the plan's choices (`utils/timetable.py`, `PLAN`), yours to change.",
        "",
        "## Per notebook",
        "",
        f"| notebook | talk min | exercises min | CPU run (measured) | T4 download, fresh runtime | "
        f"at {download_mb_s:g} MB/s | T4 with the target kept on Drive: download + Drive | at {download_mb_s:g} MB/s "
        f"| GPU run, lower bound |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for nb, (talk, ex) in PLAN.items():
        g = f"{gpu[nb]:.0f} s" if nb in gpu else "not rehearsed"
        t = on_drive[nb]
        lines.append(f"| {nb} | {talk} | {ex} | {cpu['seconds'][nb]:.0f} s | {t4[nb]:.1f} GB | {dl_min[nb]} min | "
                     f"{t.download_gb:.1f} + {t.drive_gb:.1f} GB{' (writes the copy)' if t.writes_copy else ''} | "
                     f"{drive_min[nb]} min | {g} |")
    total_fresh = sum(t4.values())
    talk = sum(t for t, _ in PLAN.values())
    exercises = sum(e for _, e in PLAN.values())
    cpu_run = sum(minutes(s) for nb, s in cpu["seconds"].items() if nb in PLAN)
    teaching = talk + exercises + BREAK_MIN
    cpu_total = teaching + cpu_run
    once_min = download_minutes(total_once, download_mb_s)
    fresh_min = download_minutes(total_fresh, download_mb_s)
    drive_dl, drive_moved = (sum(t.download_gb for t in on_drive.values()), sum(t.drive_gb for t in on_drive.values()))
    kept_min = download_minutes(drive_dl + drive_moved, download_mb_s)
    gpu_min = minutes(sum(gpu.values()))
    a100_per, a100_once = downloads("a100-80")
    a100_fresh = sum(a100_per.values())
    lines += class_section() + [
        "",
        "## The 3-hour plan, every notebook",
        "",
        f"- talk {talk} min + exercises {exercises} min + one break {BREAK_MIN} min = "
        f"{teaching} min of teaching.",
        f"- **CPU room (offline profile, Binder or laptops):** + {cpu_run} min of notebook runs (measured, each "
        f"notebook rounded up to a minute) = **{cpu_total} min** of {SESSION_MIN}: "
        f"{fits(cpu_total, {nb: minutes(s) for nb, s in cpu['seconds'].items()})}.",
        f"- **Colab T4 room:** each notebook runs in a fresh runtime, so every learner downloads "
        f"{total_fresh:.1f} GB ({fresh_min} min at {download_mb_s:g} MB/s). With the target kept on Drive (each "
        f"learner needs {copy_gb:.1f} GB free there) it is {drive_dl:.1f} GB of downloads and {drive_moved:.1f} GB "
        f"to and from Drive ({kept_min} min). Where the hub cache persists (a local Jupyter, one VM) it is "
        f"{total_once:.1f} GB ({once_min} min). With the GPU runs' lower bound ({gpu_min} min, H100 speed) on top: "
        + gpu_room(teaching, {"fresh runtimes": (fresh_min, dl_min), "the target kept on Drive": (kept_min, drive_min),
                              "a kept cache": (once_min, {})}, gpu_min) + ".",
        f"- **A100 / H100 room** (profile a100-80): {a100_fresh:.1f} GB in fresh runtimes, {a100_once:.1f} GB "
        f"with a kept cache ({download_minutes(a100_once, download_mb_s)} min); no full-length run of this profile "
        f"has been timed yet.",
        "",
        "Clock (CPU room): " + clock(),
    ]
    return "\n".join(lines) + "\n"


def class_section(download_mb_s: float = CLASS_RATE_MB_S) -> list[str]:
    """The page's section on the core track for a Colab T4 class (:func:`class_plan`)."""
    from .class_copy import predicted_gb
    from .emulate import TARGETS, described
    from .preflight import shared_models
    from .profiles import get_profile
    plan, (_, how) = class_plan(download_mb_s), t4_estimate()
    t4 = TARGETS["t4"]
    shared = shared_models(get_profile(CLASS_PROFILE), described(t4))
    folder_gb = sum(predicted_gb(ref, precision, described(t4)) for _, ref, precision in shared)
    total = class_total(plan)
    slack = SESSION_MIN - total
    lines = [
        "",
        f"## The 3-hour Colab T4 class: the core track",
        "",
        "The mission's path, each notebook with one exercise; notebooks 08 and 09 and the other exercises are "
        "optional modules or a second session (`utils/timetable.py`, `CORE`). It runs as one class:",
        "",
        f"- **The class's copies, prepared once.** Before class, on a Colab T4, the instructor runs "
        f"`python -m utils.class_copy share <folder>`: {', '.join(f'{r.id} in {p}' for _, r, p in shared)}, "
        f"{folder_gb:.1f} GB in the kit's kept-copy format with its manifest (computed: the predicted weight memory; "
        f"the instructor's Drive needs that much, and a free Google account has 15 GB). Learners add the shared folder "
        f"to their Drive as `MyDrive/llmflation-class`; `python -m utils.class_copy check` or the preflight says "
        f"whether their runtime can use it. Every notebook except 02 reads it instead of the hub; 02 downloads the "
        f"16-bit checkpoints it quantizes.",
        "- **The wait behind the talk.** Each notebook's first cell starts its downloads in the background; learners "
        "run it as the instructor starts the notebook's talk, and only what is still coming when the talk ends is a "
        "wait (the cell that loads the model shows it as a progress bar).",
        f"- **Downloads and class copies at {download_mb_s:g} MB/s**, an assumption: half the rate the page's other "
        f"plans assume (hub rates on Colab are reported from about 1 to 55 MB/s); the class copies are read at the "
        f"same rate.",
        f"- **T4 run, an estimate** (no notebook has been timed on a real T4 yet): {how}.",
        f"- **Memory:** the kit plans with {t4.usable_gb:.1f} GB of a T4 (emulation, preflight and the t4 profile): "
        f"{t4.source}.",
        "",
        f"| notebook | talk min | exercises | moves in its runtime | at {download_mb_s:g} MB/s | wait after the talk "
        f"| T4 run, estimate | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for nb, row in plan.items():
        moved = " + ".join(part for part in (f"{row['hub_gb']:.1f} GB from the hub" if row["hub_gb"] else "",
                                             f"{row['class_gb']:.1f} GB class copy" if row["class_gb"] else "")
                           if part) or "nothing"
        which = ", ".join(str(e) for e in row["which"])
        lines.append(f"| {nb} | {row['talk']} | {row['exercises']} min (exercise {which}) | {moved} | "
                     f"{row['transfer_min']} min | {row['wait_min']} min | {row['run_min']} min | {row['total']} |")
    cuts = late_cuts(plan)
    lines += [
        "",
        f"**{total - BREAK_MIN} min of notebooks + a {BREAK_MIN}-min break = {total} min of {SESSION_MIN}: "
        + (f"{slack} min to spare.**" if slack >= 0 else f"{-slack} min over.**")
        + f" The plan keeps at least {SLACK_MIN} (tests/test_timetable.py fails when it does not).",
        "",
        "When the class runs late, cut in this order: " + "; ".join(f"{what} ({m} min)" for what, m in cuts) + ".",
    ]
    return lines


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


HEADER_TABLE = re.compile(r"\| hardware \| estimated time \|\n\|---\|---\|\n(?:\|[^\n]*\|\n?)+")


def header_table(notebook: str, download_mb_s: float = ASSUMED_DOWNLOAD_MB_S) -> str:
    """The "estimated time" table of one notebook's header, from the same figures as the timetable
    page: the plan's talk and exercise minutes, the measured CPU run, the computed downloads at the
    assumed rate, and the T4-limits rehearsal as a lower bound."""
    if notebook not in PLAN:
        raise ValueError(f"{notebook} is not in the timetable's plan ({', '.join(PLAN)})")
    check_rate(download_mb_s)
    talk, ex = PLAN[notebook]
    cpu, gpu = cpu_timings()["seconds"], gpu_rehearsal()
    t4, a100 = downloads("t4")[0][notebook], downloads("a100-80")[0][notebook]

    def fetch(gb: float) -> str:
        if not gb:
            return "nothing to download"
        return f"{download_minutes(gb, download_mb_s)} min to download {gb:.1f} GB in a fresh runtime"

    run = f"at least {minutes(gpu[notebook])} min to run" if notebook in gpu else "run not timed yet"
    on_drive = kept()[2][notebook]
    if on_drive.drive_gb:
        parts = ([f"{on_drive.download_gb:.1f} GB downloaded"] if on_drive.download_gb else []) + [
            f"{on_drive.drive_gb:.1f} GB {'written to' if on_drive.writes_copy else 'read from'} Drive"]
        t4_fetch = (f"{fetch(t4)}, or {download_minutes(on_drive.total_gb, download_mb_s)} "
                    f"min with the target kept on Drive ({', '.join(parts)})")
    else:
        t4_fetch = fetch(t4)
    return "\n".join([
        "| hardware | estimated time |",
        "|---|---|",
        f"| CPU (offline profile) | {talk + ex + minutes(cpu[notebook])} min: {talk} talk, {ex} exercises, "
        f"{minutes(cpu[notebook])} min to run (measured) |",
        f"| Colab T4 | {talk + ex} min of talk and exercises, plus {t4_fetch}; {run} (a T4's limits on an H100) |",
        f"| A100 / H100 | {talk + ex} min of talk and exercises, plus {fetch(a100)}; run not timed yet |",
        "",
        f"*Downloads and Drive at {download_mb_s:g} MB/s, an assumption; every figure comes from "
        f"[the timetable](../docs/timetable.md).*",
    ]) + "\n"


def with_header_table(markdown: str, notebook: str) -> str:
    """A notebook's header cell with its estimated-time table (and the note under it) regenerated."""
    note = re.compile(r"\n\*Downloads (?:and Drive )?at [^\n]*\*\n")
    markdown = note.sub("", markdown, count=1)
    if not HEADER_TABLE.search(markdown):
        raise ValueError(f"{notebook}: the header cell has no estimated-time table to regenerate")
    return HEADER_TABLE.sub(lambda _: header_table(notebook), markdown, count=1)


def write(page: str | None = None) -> Path:
    """Write the timetable page (``build()``'s, unless given); returns its path."""
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(build() if page is None else page, encoding="utf-8")
    return PAGE


@cli.command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The instructor's timetable, from measured and computed figures.")
    parser.add_argument("--download-mb-s", type=float, default=ASSUMED_DOWNLOAD_MB_S,
                        help=f"your download rate in MB/s (default {ASSUMED_DOWNLOAD_MB_S:g}, an assumption)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {PAGE.relative_to(REPO)}")
    args = parser.parse_args(argv)
    try:
        page = build(args.download_mb_s)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return cli.USER_ERROR_STATUS
    if args.write:
        print(f"wrote {write(page).relative_to(REPO)}")
    else:
        print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
