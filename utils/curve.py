"""The personal cost curve: measured steps, their $/1M tokens, beside the historical curve.

Each step's figure comes from the learner's *latest run* of it (its fastest
configuration in that run, end-to-end tokens/s at the standard request, prefill
included), never the best of all runs, priced with
$/1M = $/hour / (tokens/s * 3600) * 1e6. Each technique is measured on top of
the cheapest configuration before it (utils.steps), so the waterfall shows the
factor each technique contributed and how the kept ones multiply. The larger
baseline is a model choice, shown with its quality beside its cost
(utils.swap); the curve over time places each configuration at the date its
techniques became usable (utils.timeline).

    python -m utils.curve                    # from results/my_results.jsonl
    python -m utils.curve --price 0.35 --out results/
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from . import cli
from .cost import cost_per_million
from .chart import marked_noise, standing
from .timeline import technique_of
from .data import gpu, gpu_key_for, gpus
from .measure import AGREE_PCT, Stat
from .memory import count
from .results import ResultsStore
from .steps import (MODEL_CHOICES, MODEL_STEPS, TECHNIQUE_START, chain, coverage, describe, latest_runs,
                    rate, run_of, spread, step_records)

BASELINE, MOE = MODEL_STEPS[:2]


def gpu_here(records: list[dict]) -> str | None:
    """The gpus.csv row of the machine the newest step records ran on (the emulated GPU under
    emulation), or of their profile's GPU when they ran on a CPU for a GPU profile (a
    rehearsal); None when it is unknown."""
    steps = step_records(records)
    if not steps:
        return None
    newest = steps[-1]
    hw = newest.get("hardware") or {}
    name = hw.get("emulated") or hw.get("gpu_name")
    try:
        if name:
            return gpu_key_for(name, hw.get("vram_gb"))
        from .models.profiles import load_profile
        profile = load_profile(newest["settings"].get("profile"))
        return profile.gpu_price_key if profile.device == "cuda" else "cpu-laptop"
    except Exception:      # noqa: BLE001 - an unknown GPU or profile: no computed start
        return None


def source_of(record: dict) -> str:
    """Which run a step comes from, in words: notebook (or benchmark) and when."""
    settings = record.get("settings") or {}
    what = settings.get("notebook") or ("computed" if settings.get("computed") else record.get("kind") or "?")
    when = (record.get("timestamp") or "")[:16].replace("T", " ")
    return f"{what}, {when}" if when else what


def curve_rows(records: list[dict], price_per_hour: float) -> list[dict]:
    """One row per step, in workshop order, priced at ``price_per_hour``.

    Each step comes from the learner's latest run of it (utils.steps: never the best of all
    runs; ``run`` and ``source`` say which). ``factor`` is how many times cheaper the step is
    than the configuration it was built on (``builds_on``; empty for a start),
    ``same_as_base`` whether its configuration is the one it built on (SDPA, already
    transformers' default: the factor is then noise), ``within_noise`` whether the two
    measurements' repeat ranges overlap, ``kept`` whether it was measurably cheaper (later
    steps build only on kept steps), ``vs_start`` how many times cheaper than the start of the
    techniques (the target). The larger baseline is a model choice, not a technique: its row
    carries the swap to the target (``swap_factor``, ``swap_verdict``, ``swap_quality``;
    utils.swap) and builds on nothing; a mixture of experts' row (notebook 09) carries its swap
    from the baseline, with its total and active parameters. Where the 16-bit target does not fit the GPU, a
    ``computed`` target row stands in for it, at another GPU's price, its ``basis`` stated
    (utils.counterfactual). Records from the newest profile and machine in the store are used.
    """
    if not (isinstance(price_per_hour, (int, float)) and 0 < price_per_hour < float("inf")):
        raise ValueError(f"price per hour must be a positive number, got {price_per_hour!r}: a free "
                         f"run (Colab, Binder) is priced at what the same hardware costs to rent")
    from .counterfactual import sixteen_bit_start
    from .swap import model_swap
    runs = latest_runs(records)
    latest = {step: max(rs, key=rate) for step, rs in runs.items()}
    here = gpu_here(records)
    start = sixteen_bit_start(latest, here, price_per_hour) if here else None
    links = chain(records, start=start)
    price = {link.step: link.record["settings"]["price_per_hour"] if link.computed else price_per_hour
             for link in links}
    usd = {link.step: cost_per_million(price[link.step], link.tokens_per_s) for link in links}
    if not all(math.isfinite(v) and v > 0 for v in usd.values()):
        raise ValueError(f"${price_per_hour}/h gives a $/1M that is not a finite positive number; "
                         f"nothing was written")
    start_usd = usd.get(TECHNIQUE_START) or next((usd[k.step] for k in links if k.step not in MODEL_CHOICES), None)
    swaps = {BASELINE: model_swap(latest.get(BASELINE), step_records(records), price_per_hour),
             MOE: model_swap(latest.get(BASELINE), step_records(records), price_per_hour, steps=(MOE,))}
    rows = []
    for link in links:
        r = link.record
        is_baseline = link.step in MODEL_CHOICES
        swap = swaps.get(link.step)
        rows.append(dict(step=link.step, configuration=describe(r["settings"], r["metrics"]),
                         tokens_per_s=round(link.tokens_per_s, 3), usd_per_million=usd[link.step],
                         price_per_hour=price[link.step],
                         builds_on=link.base, factor=usd[link.base] / usd[link.step] if link.base else None,
                         same_as_base=link.same_as_base, within_noise=link.within_noise, kept=link.kept,
                         established=link.established, computed=link.computed,
                         base_computed=link.on_computed,
                         basis=r["settings"].get("basis") if link.computed else "measured",
                         vs_start=None if is_baseline or start_usd is None else start_usd / usd[link.step],
                         perplexity=r["metrics"].get("perplexity"),
                         exact_match=r["metrics"].get("exact_match"),
                         total_params=r["metrics"].get("total_params"),
                         active_params=r["metrics"].get("active_params"),
                         swap_factor=swap.factor if is_baseline and swap else None,
                         swap_verdict=swap.verdict if is_baseline and swap else None,
                         swap_quality=swap.quality if is_baseline and swap else None,
                         swap_as_good=swap.as_good if is_baseline and swap else None,
                         model=r["settings"].get("model"),
                         technique=technique_of(link.step, r["settings"]),
                         hardware=(r.get("hardware") or {}).get("gpu_name") or "CPU",
                         random_weights=bool(r["settings"].get("random_weights")),
                         spread_pct=spread_pct(r),
                         run=run_of(r), source=source_of(r), timestamp=r.get("timestamp")))
    on_chain = {r["step"] for r in compounding(rows)}
    for row in rows:
        row["on_chain"] = row["step"] in on_chain
    return rows


def spread_pct(record: dict) -> float | None:
    """How far a record's repeats disagree, (max - min) / median of its end-to-end tokens/s in
    percent (None for a computed record or one without repeats)."""
    median = rate(record)
    if median is None or record["settings"].get("computed"):
        return None
    low, high = spread(record)
    return None if low is None or high is None else Stat(median, low, high, 0).spread_pct


def unsteady(row: dict) -> bool:
    """Whether a step's repeats disagreed beyond :data:`utils.measure.AGREE_PCT` (a busy machine)."""
    return row.get("spread_pct") is not None and row["spread_pct"] > AGREE_PCT


def compounding(rows: list[dict]) -> list[dict]:
    """The chain of techniques behind the cheapest kept step, from the target (their start).

    The product of their factors is how many times cheaper the cheapest step is than the
    start. The larger baseline and a mixture of experts are not on it: they are model choices."""
    techniques = [r for r in rows if r["step"] not in MODEL_CHOICES]
    if not techniques:
        return []
    by_step = {r["step"]: r for r in techniques}
    established = [r for r in techniques if r["established"]]
    path = [min(established, key=lambda r: r["usd_per_million"])]
    while path[0]["builds_on"] in by_step:
        path.insert(0, by_step[path[0]["builds_on"]])
    return path


def totals(rows: list[dict]) -> dict:
    """The techniques' total (from their start to the cheapest kept step), the swap beside it,
    and the same-capability total: techniques x swap, only when the target is as good as the
    baseline within noise (utils.swap); otherwise None, and the reason."""
    path = compounding(rows)
    techniques = path[0]["usd_per_million"] / path[-1]["usd_per_million"] if path else None
    baseline = next((r for r in rows if r["step"] == BASELINE), None)
    swap = baseline["swap_factor"] if baseline else None
    out = dict(techniques=techniques, start=path[0]["step"] if path else None,
               end=path[-1]["step"] if path else None, swap=swap,
               swap_verdict=baseline["swap_verdict"] if baseline else None, same_capability=None)
    if swap is None:
        out["why_not"] = "no larger baseline measured (notebook 06)" if baseline is None else \
            "the baseline has no target measured beside it at its precision"
    elif not baseline["swap_as_good"]:
        out["why_not"] = (f"the target is worse than the baseline, so the swap's {swap:.3g}x buys a "
                          f"model of lower quality, not equal capability"
                          if baseline["swap_verdict"].endswith("worse") else
                          f"the target was not shown to be as good as the baseline within noise, so "
                          f"the swap's {swap:.3g}x is not counted as equal capability")
    elif techniques:
        out["same_capability"] = techniques * swap
    return out


def format_row(row: dict) -> str:
    """One printable line: price, factor against the step built on, configuration, its run."""
    if row["step"] in MODEL_CHOICES:
        against = "model choice (below)"
    elif row["computed"]:
        against = "computed start (below)"
    elif row["builds_on"] is None:
        against = "start of the techniques"
    elif row["same_as_base"]:
        against = f"same configuration as {row['builds_on']}"
    else:
        against = (f"{row['factor']:5.2f}x vs {row['builds_on']}"
                   + (" (computed)" if row["base_computed"] else "")
                   + (" ~noise" if marked_noise(row) else "")
                   + (f" ({standing(row)})" if standing(row) else ""))
    return (f"{row['step']:<22} {row['tokens_per_s']:>9.1f} tok/s  ${row['usd_per_million']:>9.4f}/1M  "
            f"{against:<34} {row['configuration']}  [{row['source']}]"
            + (f" !unsteady: repeats {row['spread_pct']:.0f}% apart" if unsteady(row) else ""))


RULE = ("each step: your latest run of it (the notebook and time in brackets), its fastest "
        "configuration in that run; earlier runs are left out, never the best of all runs")


def summary(rows: list[dict], records: list[dict] | None = None) -> str:
    """The table a learner reads: the rule, one line per step, the computed start's basis, the
    model swap with its quality, the techniques' total and the same-capability total (or why
    there is none), then, given the ``records`` the rows came from, what was left out and why."""
    lines = [RULE] + [format_row(r) for r in rows]
    for r in rows:
        if r["computed"]:
            lines.append(f"computed start: {r['configuration']} on {r['hardware']}: {r['basis']}")
    t = totals(rows)
    path = compounding(rows)
    if t["swap"] is not None:
        baseline = next(r for r in rows if r["step"] == BASELINE)
        lines.append(f"model swap, larger baseline -> target: {t['swap']:.3g}x {baseline['swap_verdict']}: "
                     f"{baseline['swap_quality']}")
    moe = next((r for r in rows if r["step"] == MOE and r["swap_factor"] is not None), None)
    if moe is not None:
        sizes = (f" ({count(moe['total_params'])} total, {count(moe['active_params'])} active parameters)"
                 if moe["total_params"] and moe["active_params"] else "")
        lines.append(f"model swap, larger baseline -> mixture of experts{sizes}: "
                     f"{moe['swap_factor']:.3g}x {moe['swap_verdict']}: {moe['swap_quality']}")
    if len(path) > 1:
        factors = " x ".join(f"{r['factor']:.3g} ({r['step']})" for r in path[1:])
        shaky_path = [r["step"] for r in path if unsteady(r)]
        lines.append(f"techniques from {path[0]['step']} to {path[-1]['step']}: {factors} "
                     f"= {t['techniques']:.3g}x cheaper"
                     + (f" (uncertain: {', '.join(shaky_path)} !unsteady)" if shaky_path else ""))
    if t["same_capability"] is not None:
        lines.append(f"same capability: {t['techniques']:.3g}x (techniques) x {t['swap']:.3g}x (swap) "
                     f"= {t['same_capability']:.3g}x cheaper than the larger baseline")
    elif t["swap"] is not None or any(r["step"] == BASELINE for r in rows):
        lines.append(f"same capability: not claimed: {t['why_not']}")
    if any(marked_noise(r) for r in rows):
        lines.append("~noise: the repeats of the two configurations overlap, so the difference is not "
                     "established and later steps did not build on it (longer runs on a quieter "
                     "machine would settle it; more repeats only widen a min-max range)")
    shaky = [r["step"] for r in rows if unsteady(r)]
    if shaky:
        lines.append(f"!unsteady: {', '.join(shaky)}: the repeats of that measurement disagree by more than "
                     f"{AGREE_PCT}% ((max - min) / median), as on a busy machine; its price is uncertain: "
                     f"rerun that notebook on a quiet machine, and the curve takes the new run")
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
    if cov.get("earlier_runs"):
        lines.append(f"left out: {_records(cov['earlier_runs'])} from earlier runs of the same steps "
                     f"(each step is priced from your latest run of it)")
    return lines


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot(rows: list[dict], records: list[dict], path: Path, price_per_hour: float,
         title: str = "Your LLMflation cost curve") -> Path:
    """The cost-curve figure: the historical prices (with hardware what-ifs), your LLMflation over
    time, and the waterfall of what each technique contributed (utils.chart, utils.timeline)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import chart, timeline
    from .reference import priced

    fig = plt.figure(figsize=(15, 11))
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1])
    history, over_time, waterfall = (fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]),
                                     fig.add_subplot(grid[1, :]))
    chart.history(history, rows, priced())
    pts, stairs, decline = timeline.of(rows)
    model = next((r["model"] for r in rows if r["step"] not in MODEL_CHOICES), "?")
    timeline.plot(over_time, pts, stairs, decline, f"{model} at ${price_per_hour}/h")
    chart.waterfall(waterfall, rows, compounding(rows), totals(rows))
    fig.text(0.5, 0.035, chart.BASIS.format(model=model, price=price_per_hour), ha="center", fontsize=8,
             wrap=True)
    if any(r["random_weights"] for r in rows):
        fig.text(0.5, 0.01, "Hatched bars: RANDOM WEIGHTS (speed and memory are real, quality is not)",
                 ha="center", fontsize=9, color="tab:red")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
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
             plot(rows, records, out_dir / "cost_curve.png", price_per_hour))
    if log is not None:
        log(summary(rows, records))
    return paths


def plausible_prices() -> tuple[float, float]:
    """The range of $/GPU-hour a price is believed in: a tenth of the cheapest rental price the kit
    knows to ten times the dearest (datasets/gpus.csv)."""
    prices = [row["price_per_hour_usd"] for row in gpus().values() if row["price_per_hour_usd"] > 0]
    return min(prices) / 10, max(prices) * 10


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
        from .models.profiles import load_profile
        key = args.gpu or load_profile().gpu_price_key
        free = args.price == 0
        args.price = gpu(key)["price_per_hour_usd"]
        print(f"price: ${args.price}/h (default for {key}; pass --price for yours)" if not free else
              f"price: free to you, not free to run: priced at ${args.price}/h, what {key} costs to rent "
              f"(pass --price for another rental price)")
    low, high = plausible_prices()
    if args.price is not None and not low <= args.price <= high:
        print(f"WARNING: ${args.price:g}/h is outside the rental prices the kit knows, ${low:g} to ${high:g} "
              f"per GPU-hour (datasets/gpus.csv, a tenth of the cheapest to ten times the dearest): is it "
              f"a price per hour?", file=sys.stderr)
    try:
        csv_path, png_path = write_curve(store, Path(args.out) if args.out else store.path.parent,
                                         args.price, skip_corrupt=args.skip_corrupt, log=print)
    except cli.UserError:        # a corrupt file is a ValueError too, but the learner's to fix: status 2
        raise
    except ValueError as err:
        print(f"no cost curve written: {err}", file=sys.stderr)
        return 1
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
