"""Class mode: merge many learners' results files into one table and one chart.

    python -m utils.classroom path/to/*.jsonl --out results/class

Each file is one learner (named after the file). Files from different hardware
mix freely: each learner's steps are priced at the default $/hour of the
hardware recorded in their file. A file that cannot be read is skipped with a
message naming it; the others are still merged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .curve import curve_rows, write_csv
from .data import gpu, gpu_key_for
from .results import CorruptResultsError, ResultsStore


def price_for(records: list[dict]) -> tuple[float, str]:
    """The default $/hour for the hardware in a learner's records (their last record wins)."""
    hw = next((r.get("hardware") for r in reversed(records) if r.get("hardware")), None) or {}
    key = gpu_key_for(hw.get("gpu_name"), hw.get("vram_gb"))   # KeyError names an unknown GPU
    return gpu(key)["price_per_hour_usd"], key


def merge(paths: list[str | Path], log=print) -> list[dict]:
    """One row per learner and step; unreadable files are skipped with a message."""
    rows = []
    for path in sorted(Path(p) for p in paths):
        try:
            records = ResultsStore(path).records()
            price, key = price_for(records)
        except (CorruptResultsError, OSError, UnicodeDecodeError, KeyError) as err:
            log(f"skipped {path}: {err}")
            continue
        learner_rows = curve_rows(records, price)
        if not learner_rows:
            log(f"skipped {path}: no cost measurements in it")
            continue
        for row in learner_rows:
            rows.append(dict(learner=path.stem, gpu=key, price_per_hour=price, **row))
    return rows


def plot_class(rows: list[dict], path: Path) -> Path:
    """Each learner's compounding chain as a line (hollow markers: steps tried but not built on)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .curve import compounding
    from .steps import STEP_ORDER
    steps = [s for s in STEP_ORDER if any(r["step"] == s for r in rows)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for learner in sorted({r["learner"] for r in rows}):
        mine = [r for r in rows if r["learner"] == learner]
        chain = compounding(mine)
        total = chain[0]["usd_per_million"] / chain[-1]["usd_per_million"]
        line, = ax.plot([steps.index(r["step"]) for r in chain], [r["usd_per_million"] for r in chain],
                        marker="o", label=f"{learner} ({mine[0]['gpu']}): {total:.3g}x")
        others = [r for r in mine if r not in chain]
        ax.scatter([steps.index(r["step"]) for r in others], [r["usd_per_million"] for r in others],
                   facecolors="none", edgecolors=line.get_color())
    ax.set_xticks(range(len(steps)), steps)
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log)")
    ax.set_title("The class's cost curves: each line is the chain a learner kept\n"
                 "(hollow: steps tried but not built on; legend: total factor)")
    ax.tick_params(axis="x", rotation=20)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Merge a class's results files.")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", default="results/class")
    args = parser.parse_args(argv)
    rows = merge(args.files)
    if not rows:
        print("no readable results files")
        return 1
    out = Path(args.out)
    csv_path = write_csv(rows, out / "class_costs.csv")
    png_path = plot_class(rows, out / "class_costs.png")
    print(f"merged {len({r['learner'] for r in rows})} learners: {csv_path}, {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
