"""The personal cost curve: measured steps, their $/1M tokens, beside the historical curve.

Each step's figure is the best configuration the learner measured for it
(highest end-to-end tokens/s at the standard request, prefill included),
priced with $/1M = $/hour / (tokens/s * 3600) * 1e6. Each step is measured on
top of the cheapest configuration before it (utils.steps), so the waterfall
shows the factor each technique contributed and how the kept ones multiply.

    python -m utils.curve                    # from results/my_results.jsonl
    python -m utils.curve --price 0.35 --out results/
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from datetime import date, timedelta
from pathlib import Path

from . import cli
from .cost import cost_per_million
from .data import gpu, historical_prices
from .results import CorruptResultsError, ResultsStore
from .steps import chain, coverage


def describe(settings: dict, metrics: dict) -> str:
    parts = [settings.get("model", "?"), settings.get("precision", "")]
    if settings.get("attn_implementation"):
        parts.append(settings["attn_implementation"])
    if settings.get("draft_length"):
        parts.append(f"draft x{settings['draft_length']}")
    if metrics.get("batch", 1) != 1:
        parts.append(f"batch {metrics['batch']}")
    if settings.get("random_weights"):
        parts.append("RANDOM WEIGHTS")
    return ", ".join(p for p in parts if p)


def curve_rows(records: list[dict], price_per_hour: float) -> list[dict]:
    """One row per measured step, in workshop order, priced at ``price_per_hour``.

    ``factor`` is how many times cheaper the step is than the configuration it
    was built on (``builds_on``; empty for a start), ``same_as_base`` whether
    its best configuration is the one it built on (e.g. SDPA, already
    transformers' default: the factor is then noise), ``within_noise`` whether
    the two measurements' repeat ranges overlap, ``kept`` whether it was
    measurably cheaper (none of the above; later steps build only on kept
    steps), and ``vs_first`` how many times cheaper than the first step. Records from
    the newest profile and machine in the store are used (see utils.steps).
    """
    if not (isinstance(price_per_hour, (int, float)) and 0 < price_per_hour < float("inf")):
        raise ValueError(f"price per hour must be a positive number, got {price_per_hour!r}: a free "
                         f"run (Colab, Binder) is priced at what the same hardware costs to rent")
    links = chain(records)
    usd = {link.step: cost_per_million(price_per_hour, link.tokens_per_s) for link in links}
    if not all(math.isfinite(v) and v > 0 for v in usd.values()):
        raise ValueError(f"${price_per_hour}/h gives a $/1M that is not a finite positive number; "
                         f"nothing was written")
    first = usd[links[0].step] if links else None
    rows = []
    for link in links:
        r = link.record
        factor = usd[link.base] / usd[link.step] if link.base else None
        rows.append(dict(step=link.step, configuration=describe(r["settings"], r["metrics"]),
                         tokens_per_s=round(link.tokens_per_s, 3), usd_per_million=usd[link.step],
                         builds_on=link.base, factor=factor, same_as_base=link.same_as_base,
                         within_noise=link.within_noise, kept=link.kept,
                         established=link.established,
                         vs_first=first / usd[link.step],
                         perplexity=r["metrics"].get("perplexity"),
                         hardware=(r.get("hardware") or {}).get("gpu_name") or "CPU",
                         random_weights=bool(r["settings"].get("random_weights")),
                         timestamp=r.get("timestamp")))
    return rows


def compounding(rows: list[dict]) -> list[dict]:
    """The chain behind the cheapest kept step, from its start: the techniques that compounded.

    The product of their factors is how many times cheaper the cheapest step is
    than the start of its chain.
    """
    if not rows:
        return []
    by_step = {r["step"]: r for r in rows}
    established = [r for r in rows if r["established"]]
    path = [min(established, key=lambda r: r["usd_per_million"])]
    while path[0]["builds_on"]:
        path.insert(0, by_step[path[0]["builds_on"]])
    return path


def marked_noise(row: dict) -> bool:
    """Whether a row is shown with the ``~`` noise mark (a same-configuration row says so instead)."""
    return bool(row["within_noise"]) and not row["same_as_base"]


def standing(row: dict) -> str:
    """What happens to a step after it: "" (kept, or a start), "not kept", or, for a model step
    that is not cheaper, that the techniques still build on it (the target is what they apply to)."""
    if row["builds_on"] is None or row["kept"]:
        return ""
    return "model: built on" if row["established"] else "not kept"


def format_row(row: dict) -> str:
    """One printable line: price, factor against the step built on, configuration."""
    if row["builds_on"] is None:
        against = "start"
    elif row["same_as_base"]:
        against = f"same configuration as {row['builds_on']}"
    else:
        against = (f"{row['factor']:5.2f}x vs {row['builds_on']}"
                   + (" ~noise" if marked_noise(row) else "")
                   + (f" ({standing(row)})" if standing(row) else ""))
    return (f"{row['step']:<16} {row['tokens_per_s']:>9.1f} tok/s  ${row['usd_per_million']:>10.4f}/1M  "
            f"{against:<36} {row['configuration']}")


def summary(rows: list[dict], records: list[dict] | None = None) -> str:
    """The table a learner reads: one line per step, then the chain that compounded and,
    given the ``records`` the rows came from, what was left out of the curve and why."""
    path = compounding(rows)
    lines = [format_row(r) for r in rows]
    if len(path) > 1:
        factors = " x ".join(f"{r['factor']:.2f} ({r['step']})" for r in path[1:])
        lines.append(f"compounding from {path[0]['step']} to {path[-1]['step']}: {factors} "
                     f"= {path[0]['usd_per_million'] / path[-1]['usd_per_million']:.3g}x cheaper")
    if any(marked_noise(r) for r in rows):
        lines.append("~noise: the repeats of the two configurations overlap, so the difference is not "
                     "established and later steps did not build on it (more repeats, or a quieter "
                     "machine, would settle it)")
    if records is not None:
        lines += left_out(coverage(records))
    return "\n".join(lines)


def _records(n: int) -> str:
    return f"{n} record" + ("" if n == 1 else "s")


def left_out(cov: dict) -> list[str]:
    """Plain-words reasons for the step records that are not on the curve."""
    lines = []
    if cov["other_group"]:
        profile, gpu_name, random_weights = cov["group"]
        lines.append(f"left out: {_records(cov['other_group'])} from another profile, machine or "
                     f"weights (the curve shows the newest: profile {profile}, {gpu_name or 'CPU'}, "
                     f"{'random' if random_weights else 'real'} weights)")
    if cov["other_request"]:
        prompt, new = cov["workload"]
        lines.append(f"left out: {_records(cov['other_request'])} timed on another request than the "
                     f"standard {prompt}-token prompt and {new} new tokens (prices compare like with like)")
    return lines


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def modelled(source: str) -> bool:
    """Whether a historical series is a model (a line drawn at a chosen rate), not cited prices."""
    return source.strip().lower().startswith("modelled")


def plot_history(ax, rows: list[dict], references: list[dict] | None = None) -> None:
    """The historical $/1M-token series on a log axis (cited points solid, the modelled series
    dashed and labelled so), the learner's steps as stars dated today, and ``references``
    (:func:`utils.reference.priced`: GPU decode at batch 1, priced at gpus.csv) as diamonds."""
    series: dict[str, list] = {}
    kinds: dict[str, bool] = {}
    for p in historical_prices():
        series.setdefault(p["series"], []).append((date.fromisoformat(p["date"]), p["usd_per_million_tokens"]))
        kinds[p["series"]] = modelled(p["source"])
    for i, (name, pts) in enumerate(series.items()):
        pts.sort()
        ax.plot([d for d, _ in pts], [v for _, v in pts], marker="o" if not kinds[name] else None,
                linestyle="--" if kinds[name] else "-", linewidth=1.2 if kinds[name] else 2.5 - 0.5 * i,
                color="0.3" if kinds[name] else None, zorder=2.5 if kinds[name] else 2,
                label=f"{name} ({'modelled, not cited prices' if kinds[name] else 'cited'})")
    today = date.today()
    for row in rows:
        ax.scatter([today], [row["usd_per_million"]], marker="*", s=140, zorder=3,
                   label=f"you: {row['step']}")
    refs = sorted(references or [], key=lambda r: r["usd_per_million"])
    for i, (ref, at) in enumerate(zip(refs, spread([math.log10(r["usd_per_million"]) for r in refs], 0.12))):
        ax.scatter([today], [ref["usd_per_million"]], marker="D", s=30, color="black", zorder=2,
                   facecolors="none" if ref["random_weights"] else "black",
                   label="GPU decode at batch 1 (published; hollow: the kit's run) at gpus.csv $/h" if i == 0 else None)
        ax.annotate(ref["label"], (today, ref["usd_per_million"]), xytext=(today - timedelta(days=120), 10 ** at),
                    ha="right", va="center", fontsize=6, arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5))
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log)")
    ax.set_title("Historical prices vs your measured steps (stars, dated today)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)


def spread(ys: list[float], gap: float) -> list[float]:
    """Label positions for sorted values ``ys``: each at least ``gap`` above the one before, the
    group centred on the values (so close points get readable labels)."""
    out: list[float] = []
    for y in ys:
        out.append(max(y, out[-1] + gap) if out else y)
    shift = (sum(ys) - sum(out)) / len(out) if out else 0.0
    return [y + shift for y in out]


BASIS = ("Not like for like. Historical points: API list prices (input and output averaged; margin, idle capacity "
         "and many users' traffic included) of the cheapest model at a fixed capability (a16z: MMLU >= 42). "
         "Stars: {model} on your machine, fully busy, output tokens only, at ${price}/h; its capability is its own, "
         "not the historical tier's.")


def plot_waterfall(ax, rows: list[dict]) -> None:
    """Each step as a bar from the cost it built on to its own cost (log axis, so factors add up
    as lengths), then the total of the chain that compounded."""
    usd = {r["step"]: r["usd_per_million"] for r in rows}
    steps = [r["step"] for r in rows]
    path = compounding(rows)
    for i, r in enumerate(rows):
        cost = r["usd_per_million"]
        if r["builds_on"] is None:                      # a start: its level, no bar
            ax.hlines(cost, i - 0.4, i + 0.4, colors="tab:gray", linewidth=4)
            ax.annotate(f"start\n${cost:.3g}", (i, cost), ha="center", va="bottom", fontsize=8)
            continue
        ax.hlines(usd[r["builds_on"]], steps.index(r["builds_on"]), i, colors="0.6",
                  linestyles=":", linewidth=1)
        low, high = sorted([usd[r["builds_on"]], cost])
        colour = ("tab:green" if r["kept"] else "tab:gray" if r["established"] else
                  "tab:olive" if r["same_as_base"] or r["within_noise"] else "tab:red")
        label = ("same\nconfig" if r["same_as_base"] else
                 f"{r['factor']:.2g}x" + ("~" if marked_noise(r) else "")
                 + (f"\n{standing(r)}" if standing(r) else ""))
        ax.bar(i, high - low, bottom=low, color=colour, hatch="//" if r["random_weights"] else None,
               edgecolor="black", linewidth=0.5)
        ax.annotate(label, (i, high), ha="center", va="bottom", fontsize=8)
    total = path[0]["usd_per_million"] / path[-1]["usd_per_million"]
    ax.bar(len(rows), path[0]["usd_per_million"] - path[-1]["usd_per_million"],
           bottom=path[-1]["usd_per_million"], color="tab:blue", edgecolor="black", linewidth=0.5)
    ax.annotate(f"{total:.3g}x", (len(rows), path[0]["usd_per_million"]), ha="center", va="bottom",
                fontsize=9, weight="bold")
    if any(marked_noise(r) for r in rows):
        ax.text(0.01, 0.01, "~ within the spread of the repeats: not established (a technique: not kept)",
                fontsize=7,
                transform=ax.transAxes)
    ax.set_xticks(range(len(rows) + 1), steps + ["total"])
    ax.set_ylim(min(usd.values()) / 1.5, max(usd.values()) * 1.8)
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log)")
    product = " x ".join(f"{r['factor']:.2g}" for r in path[1:]) or "1"
    ax.set_title(f"What each technique contributed (vs the step it built on)\n"
                 f"compounding: {product} = {total:.3g}x cheaper", fontsize=10)


def plot(rows: list[dict], path: Path, price_per_hour: float,
         title: str = "Your LLMflation cost curve") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .reference import priced

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 7.5), gridspec_kw=dict(width_ratios=[3, 2]))
    plot_history(left, rows, priced())
    plot_waterfall(right, rows)
    models = sorted({r["configuration"].split(",")[0] for r in rows})
    fig.text(0.5, 0.035, BASIS.format(model=" / ".join(models), price=price_per_hour),
             ha="center", fontsize=8, wrap=True)
    if any(r["random_weights"] for r in rows):
        fig.text(0.5, 0.01, "Hatched bars: RANDOM WEIGHTS (speed and memory are real, quality is not)",
                 ha="center", fontsize=9, color="tab:red")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_curve(store: ResultsStore, out_dir: Path, price_per_hour: float,
                skip_corrupt: bool = False, log=None) -> tuple[Path, Path]:
    """From a results store, write ``cost_curve.csv`` and ``cost_curve.png`` into ``out_dir``.

    A corrupt line raises CorruptResultsError naming it, unless ``skip_corrupt``
    (then it is left out with a warning); the store itself is never changed.
    ``log``, if given, receives the :func:`summary` of the curve."""
    records = store.records(skip_corrupt=skip_corrupt)
    rows = curve_rows(records, price_per_hour)
    if not rows:
        raise ValueError(f"{store.path} holds no benchmark measurements yet; run a notebook or "
                         f"python -m utils.benchmark first")
    paths = (write_csv(rows, out_dir / "cost_curve.csv"),
             plot(rows, out_dir / "cost_curve.png", price_per_hour))
    if log is not None:
        log(summary(rows, records))
    return paths


@cli.command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write your cost curve (CSV and PNG).")
    parser.add_argument("--results", help="results file (default: results/my_results.jsonl)")
    parser.add_argument("--price", type=float, help="your $/hour (default: the profile GPU's)")
    parser.add_argument("--gpu", default=None, help="GPU key in datasets/gpus.csv for the default price")
    parser.add_argument("--out", default=None, help="output folder (default: beside the results)")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="leave unreadable lines out (with a warning) instead of stopping")
    args = parser.parse_args(argv)
    store = ResultsStore(args.results)
    if args.price is None or args.price == 0:
        from .profiles import load_profile
        key = args.gpu or load_profile().gpu_price_key
        free = args.price == 0
        args.price = gpu(key)["price_per_hour_usd"]
        print(f"price: ${args.price}/h (default for {key}; pass --price for yours)" if not free else
              f"price: free to you, not free to run: priced at ${args.price}/h, what {key} costs to rent "
              f"(pass --price for another rental price)")
    try:
        csv_path, png_path = write_curve(store, Path(args.out) if args.out else store.path.parent,
                                         args.price, skip_corrupt=args.skip_corrupt, log=print)
    except (CorruptResultsError, ValueError) as err:
        print(f"no cost curve written: {err}", file=sys.stderr)
        return 1
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
