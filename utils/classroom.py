"""Class mode: merge many learners' results files into one table and one chart.

    python -m utils.classroom path/to/*.jsonl --out results/class

Each learner is identified by the id their results store records (and named by
$LLMFLATION_LEARNER when they set it), else by the file's path. Files from
different hardware mix freely: each learner's steps are priced at the default
$/hour of the hardware recorded in their file. Every file or line left out is
named with its reason; the others are still merged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from collections import Counter

from . import atomic, cli, timeline
from .curve import compounding, coverage_of, csv_into, curve_rows, left_out
from .data import gpu, gpu_key_for
from .results import NOT_JSON_LINES, ResultsStore, learner_id


def price_for(records: list[dict]) -> tuple[float, str]:
    """The default $/hour for the hardware in a learner's records (their last record wins)."""
    hw = next((r.get("hardware") for r in reversed(records) if r.get("hardware")), None) or {}
    key = gpu_key_for(hw.get("gpu_name"), hw.get("vram_gb"))   # KeyError names an unknown GPU
    return gpu(key)["price_per_hour_usd"], key


def learner_of(records: list[dict], fallback: str) -> tuple[str, str]:
    """(identity, label) of a file's learner: the id recorded in the store (utils.results) and
    the name they set, else the file's path (as given, so ``a/me`` and ``b/me`` stay two)."""
    mine = next((r["learner"] for r in reversed(records) if learner_id(r) is not None), None)
    if mine is None:
        return f"file:{fallback}", fallback
    return f"id:{mine['id']}", mine.get("name") or fallback


def _labels(paths: list[Path]) -> dict[Path, str]:
    """Each path without its suffix, relative to the folder all of them share."""
    import os
    if not paths:
        return {}
    common = Path(os.path.commonpath([p.resolve().parent for p in paths]))
    return {p: str(p.resolve().with_suffix("").relative_to(common)) for p in paths}


def merge(paths: list[str | Path], log=print) -> list[dict]:
    """One row per learner and step, and a message naming every file or line left out and why.

    Bad lines are left out and the rest of the file is kept; a file that is missing, holds no
    cost measurements or was recorded on an unknown GPU is left out. Files that carry the
    same recorded learner id are one learner's; two learners whose files share a name stay two.
    Each row carries its learner's decline per year (utils.timeline)."""
    first: dict[Path, Path] = {}
    for path in map(Path, paths):                                   # a file named twice is read once
        if path.resolve() in first:
            log(f"{path} is {first[path.resolve()]} given again: read once")
        else:
            first[path.resolve()] = path
    paths = sorted(first.values())
    labels = _labels([p for p in paths if p.is_file()])
    learners: dict[str, dict] = {}
    for path in paths:
        if not path.is_file():
            log(f"left out {path}: no such file" if not path.exists() else f"left out {path}: not a file")
            continue
        try:
            records, problems = ResultsStore(path).read()
        except (OSError, UnicodeDecodeError) as err:
            log(f"left out {path}: {err}")
            continue
        for problem in problems:
            log(f"left out of the merge: {problem}")
        if not records and any(p.endswith(NOT_JSON_LINES) for p in problems):
            continue
        identity, label = learner_of(records, labels[path])
        entry = learners.setdefault(identity, dict(label=label, paths=[], records=[]))
        if entry["paths"]:
            log(f"{path} carries the same learner id as {entry['paths'][0]}: merged as one learner")
        entry["paths"].append(path)
        entry["records"] += records
    counts = Counter(e["label"] for e in learners.values())
    rows = []
    for identity, entry in learners.items():
        first = entry["paths"][0]
        label = entry["label"] if counts[entry["label"]] == 1 else f"{entry['label']} ({labels[first]})"
        try:
            price, key = price_for(entry["records"])
        except KeyError as err:
            log(f"left out {first}: {err.args[0]}")
            continue
        learner_rows = curve_rows(entry["records"], price)
        if not learner_rows:
            log(f"left out {first}: no cost measurements in it")
            continue
        for line in left_out(coverage_of(entry["records"])):
            log(f"{label}: {line}")
        rate = timeline.of(learner_rows)[2]
        rows += [dict(learner=label, gpu=key, learner_price_per_hour=price, decline_per_year=rate.per_year,
                      rate_words=rate.words(), **row) for row in learner_rows]
    return rows


DPI = 110


def class_figure(rows: list[dict]):
    """The class chart, drawn and not saved (:func:`write_class` saves it). One panel per hardware
    (a CPU's and a GPU's dollars never share an axis): each learner's chain (utils.chain's path) as
    a line, hollow markers the techniques tried off it. Last panel: each learner's LLMflation over
    time relative to their cost on the start date (utils.timeline's staircase divided by its first
    value), so learners on any hardware compare, with their rate per year."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .steps import MODEL_CHOICES, STEP_ORDER
    hardware = sorted({r["gpu"] for r in rows})
    fig, axes = plt.subplots(1, len(hardware) + 1, figsize=(6 * len(hardware) + 6, 5.5), squeeze=False)
    axes, over_time = axes[0][:-1], axes[0][-1]
    for ax, key in zip(axes, hardware):
        mine_hw = [r for r in rows if r["gpu"] == key]
        steps = [s for s in STEP_ORDER if any(r["step"] == s for r in mine_hw)]
        for learner in sorted({r["learner"] for r in mine_hw}):
            mine = [r for r in mine_hw if r["learner"] == learner]
            chain = compounding(mine)
            total = chain[0]["level_usd"] / chain[-1]["level_usd"] if chain else 1.0
            line, = ax.plot([steps.index(r["step"]) for r in chain], [r["level_usd"] for r in chain],
                            marker="o", label=f"{learner}: {total:.3g}x")
            others = [r for r in mine if r not in chain and r["step"] not in MODEL_CHOICES]
            ax.scatter([steps.index(r["step"]) for r in others], [r["level_usd"] for r in others],
                       facecolors="none", edgecolors=line.get_color())
            stairs = timeline.staircase(mine)
            if stairs:
                over_time.step([w for w, _, _ in stairs], [u / stairs[0][1] for _, u, _ in stairs], where="post",
                               color=line.get_color(), marker="o", markersize=3,
                               label=f"{learner} ({key}): {mine[0]['rate_words']}")
        ax.set_xticks(range(len(steps)), steps, rotation=35, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel(f"$ per 1M tokens on {key} (log), on the chain")
        ax.set_title(f"{key}: each line a learner's chain (legend: its total);\nhollow: steps off the chain",
                     fontsize=9)
        ax.legend(fontsize=7)
    for d in timeline.technique_dates().values():
        over_time.axvline(d["date"], color="0.9", linewidth=0.8, zorder=0)
    over_time.set_yscale("log")
    over_time.set_ylabel("cost relative to your start (log)")
    over_time.set_title("Each learner's LLMflation over time, relative to their start\n"
                        "(datasets/technique_dates.csv; rate per year: utils.cost.rate_per_year)", fontsize=9)
    over_time.tick_params(axis="x", rotation=30, labelsize=8)
    over_time.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_class(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """``class_costs.csv`` and ``class_costs.png`` in ``out``, as one pair: both rendered under
    temporary names and both replaced only when both were written (utils.atomic), so a failure
    leaves the previous pair as it was."""
    fig = class_figure(rows)                  # drawn before anything is written
    return atomic.table_and_figure(out / "class_costs.csv", out / "class_costs.png", fig,
                                   lambda f: csv_into(rows, f), DPI)


@cli.command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Merge a class's results files.")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", default="results/class")
    args = parser.parse_args(argv)
    rows = merge(args.files)
    if not rows:
        print("no readable results files")
        return 1
    csv_path, png_path = write_class(rows, Path(args.out))
    print(f"merged {len({r['learner'] for r in rows})} learners: {csv_path}, {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
