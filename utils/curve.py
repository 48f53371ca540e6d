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

from . import atomic, cli
from .chart import marked_noise
from .timeline import technique_of
from .data import gpu, gpu_key_for, gpus
from .measure import AGREE_PCT, Stat
from .memory import count
from .results import ResultsStore
from .chain import Chain, chain, coverage, select
from .steps import MODEL_CHOICES, configuration, describe, rate, run_of, spread, step_records

BASELINE, MOE = MODEL_CHOICES


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


def build(records: list[dict], price_per_hour: float) -> Chain:
    """The one chain every view reads (utils.chain), priced at ``price_per_hour``."""
    if not (isinstance(price_per_hour, (int, float)) and 0 < price_per_hour < float("inf")):
        raise ValueError(f"price per hour must be a positive number, got {price_per_hour!r}: a free "
                         f"run (Colab, Binder) is priced at what the same hardware costs to rent")
    return chain(records, price_per_hour, here_key=gpu_here(records))


def curve_rows(records: list[dict], price_per_hour: float) -> list[dict]:
    """One row per step of the chain (utils.chain), in workshop order, priced at ``price_per_hour``.

    ``usd_per_million`` is the step's own measured price (its run, as its notebook printed it);
    ``factor`` is how many times cheaper it is than the configuration it built on (``builds_on``),
    measured in the same run (``base_from`` says otherwise); ``level_usd`` is its place on the
    chain (the start's price over the factors down to it), which the waterfall and the time panel
    draw; ``status`` and ``status_words`` say, once for every view, whether it is the start, on
    the chain, kept as an alternative, or not kept and why. The larger baseline and a mixture of
    experts are model choices: their rows carry the swap (``swap_factor``, ``swap_verdict``,
    ``swap_quality``; utils.swap), both models from one run, and their level is the start's times
    the swap (the MoE's: the baseline's over its swap). Where the 16-bit target does not fit the
    GPU, a ``computed`` target row stands in for it, at another GPU's price, its ``basis`` stated
    (utils.counterfactual). Records from the newest profile and machine in the store are used.
    """
    from .swap import model_swap
    built = build(records, price_per_hour)
    links = built.links
    if not all(math.isfinite(k.usd) and k.usd > 0 for k in links):
        raise ValueError(f"${price_per_hour}/h gives a $/1M that is not a finite positive number; "
                         f"nothing was written")
    by_step = built.by_step
    start = built.path[0] if built.path else None
    swaps = {step: model_swap(by_step[step].record if step == BASELINE else by_step[step].partner,
                              by_step[step].partner if step == BASELINE else by_step[step].record,
                              price_per_hour) for step in MODEL_CHOICES if step in by_step}
    level = {k.step: k.level for k in links}
    if BASELINE in swaps and swaps[BASELINE] and start is not None:
        level[BASELINE] = start.level * swaps[BASELINE].factor
    if MOE in swaps and swaps[MOE] and BASELINE in level:
        level[MOE] = level[BASELINE] / swaps[MOE].factor
    rows = []
    for link in links:
        r = link.record
        choice = link.step in MODEL_CHOICES
        swap = swaps.get(link.step)
        rows.append(dict(step=link.step, configuration=describe(r["settings"], r["metrics"]),
                         tokens_per_s=round(link.tokens_per_s, 3), usd_per_million=link.usd,
                         level_usd=level[link.step],
                         price_per_hour=r["settings"]["price_per_hour"] if link.computed else price_per_hour,
                         builds_on=link.base, factor=link.factor,
                         base_tokens_per_s=rate(link.base_record) if link.base_record else None,
                         base_from=link.base_from if link.base else None,
                         partner_tokens_per_s=rate(link.partner) if link.partner else None,
                         base_source=source_of(link.base_record) if link.base_record else None,
                         base_differs_pct=_base_differs(link, by_step), base_note=link.base_note,
                         base_spread_pct=spread_pct(link.base_record) if link.base_record else None,
                         same_as_base=link.same_as_base, within_noise=link.within_noise, kept=link.kept,
                         established=link.established, status=link.status, status_words=link.status_words(),
                         alternative_to=link.alternative_to, on_chain=link.on_chain,
                         computed=link.computed, base_computed=link.on_computed,
                         basis=r["settings"].get("basis") if link.computed else "measured",
                         borrowed=link.borrowed,
                         vs_start=None if choice or start is None else start.level / link.level,
                         perplexity=r["metrics"].get("perplexity"),
                         exact_match=r["metrics"].get("exact_match"),
                         total_params=r["metrics"].get("total_params"),
                         active_params=r["metrics"].get("active_params"),
                         swap_factor=swap.factor if swap else None,
                         swap_verdict=swap.verdict if swap else None,
                         swap_quality=swap.quality if swap else None,
                         swap_as_good=swap.as_good if swap else None,
                         model=r["settings"].get("model"),
                         technique=technique_of(link.step, r["settings"]),
                         hardware=(r.get("hardware") or {}).get("gpu_name") or "CPU",
                         random_weights=bool(r["settings"].get("random_weights")),
                         spread_pct=spread_pct(r),
                         run=run_of(r), source=source_of(r), timestamp=r.get("timestamp")))
    return rows


def _base_differs(link, by_step) -> float | None:
    """How far (percent) the base measured in the step's run is from the base's own record of the
    same configuration (another run), when both exist: a large gap says the machine state differed
    between the runs (the factor is still the within-run ratio)."""
    base = by_step.get(link.base)
    if base is None or link.base_record is None or link.base_record is base.record or base.computed \
            or configuration(link.base_record) != configuration(base.record):
        return None
    return abs(rate(link.base_record) - rate(base.record)) / rate(base.record) * 100


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
    """The path (utils.chain): the start and the techniques on the chain, in order. The product
    of their factors is how many times cheaper the path's end is than the start. The model
    choices are not on it."""
    return [r for r in rows if r["on_chain"]]


def techniques_count(rows: list[dict]) -> int:
    """How many techniques were measured: every step but the model choices and the start."""
    return sum(1 for r in rows if r["step"] not in MODEL_CHOICES and r["builds_on"] is not None)


def totals(rows: list[dict]) -> dict:
    """The techniques' total (from the start to the path's end), the swap beside it, and the
    same-capability total: techniques x swap, only when the target is shown as good as the
    baseline (utils.swap); otherwise None, and the reason."""
    path = compounding(rows)
    techniques = path[0]["level_usd"] / path[-1]["level_usd"] if path else None
    baseline = next((r for r in rows if r["step"] == BASELINE), None)
    swap = baseline["swap_factor"] if baseline else None
    out = dict(techniques=techniques, start=path[0]["step"] if path else None,
               end=path[-1]["step"] if path else None, swap=swap,
               swap_verdict=baseline["swap_verdict"] if baseline else None, same_capability=None)
    if swap is None:
        out["why_not"] = "no larger baseline measured (notebook 06)" if baseline is None else \
            "the baseline has no target measured beside it in one run at its precision"
    elif not baseline["swap_as_good"]:
        out["why_not"] = (f"the target is worse than the baseline, so the swap's {swap:.3g}x buys a "
                          f"model of lower quality, not equal capability"
                          if baseline["swap_verdict"].endswith("worse") else
                          f"the target was not shown to be as good as the baseline (utils.swap's margins), "
                          f"so the swap's {swap:.3g}x is not counted as equal capability")
    elif techniques:
        out["same_capability"] = techniques * swap
    return out


def format_row(row: dict) -> str:
    """One printable line: its own price, its factor against its base in the same run, its status
    and place on the chain, its configuration and run."""
    if row["step"] in MODEL_CHOICES:
        against = row["status_words"] + (f" (below); chain ${row['level_usd']:.4f}" if row["swap_factor"] else "")
    elif row["builds_on"] is None:
        against = row["status_words"]
    else:
        against = (f"{row['factor']:.3g}x vs {row['builds_on']}"
                   + (" (computed)" if row["base_computed"] else "")
                   + ("" if row["base_from"] == "same run" else f" (base from {row['base_from']})")
                   + f": {row['status_words']}; chain ${row['level_usd']:.4f}")
    return (f"{row['step']:<22} {row['tokens_per_s']:>9.1f} tok/s  ${row['usd_per_million']:>9.4f}/1M  "
            f"{against}  | {row['configuration']}  [{row['source']}]"
            + (f" !unsteady: repeats {row['spread_pct']:.0f}% apart" if unsteady(row) else ""))


RULE = ("each step: your latest run of it (the notebook and time in brackets), never the best of all runs, and "
        "its own $/1M in that run; its factor: against the configuration it built on, measured again in that same "
        "run; the start: notebook 01's latest run; 'chain': the start's $/1M over the factors down to the step (a "
        "model choice: the start's times its swap; the mixture of experts: the baseline's over its swap). Compare steps by their factors: their own prices come from "
        "different runs")


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
        lines.append(f"model swap, larger baseline -> target: {t['swap']:.3g}x {baseline['swap_verdict']} "
                     f"(the {baseline['source'].split(',')[0]} run: target {baseline['partner_tokens_per_s']:.1f} vs "
                     f"baseline {baseline['tokens_per_s']:.1f} tok/s): {baseline['swap_quality']}")
    moe = next((r for r in rows if r["step"] == MOE and r["swap_factor"] is not None), None)
    if moe is not None:
        sizes = (f" ({count(moe['total_params'])} total, {count(moe['active_params'])} active parameters)"
                 if moe["total_params"] and moe["active_params"] else "")
        lines.append(f"model swap, larger baseline -> mixture of experts{sizes}: "
                     f"{moe['swap_factor']:.3g}x {moe['swap_verdict']} (the {moe['source'].split(',')[0]} run: MoE "
                     f"{moe['tokens_per_s']:.1f} vs baseline {moe['partner_tokens_per_s']:.1f} tok/s): {moe['swap_quality']}")
    for r in rows:
        if r["borrowed"]:
            lines.append(f"{r['step']}: {r['borrowed']}")
        if r["base_from"] and r["base_from"] != "same run" and not r["base_note"]:
            lines.append(f"{r['step']}: its latest run did not measure its base again, so its factor is "
                         + ("from the latest run of it that did" if r["base_from"] == "an earlier run" else
                            f"against {r['builds_on']}'s own record ({r['base_source']}): across runs"))
        if r["base_note"]:
            lines.append(f"{r['step']}: {r['base_note']} ({r['base_source']}): across runs")
        if r["base_differs_pct"] is not None and r["base_differs_pct"] > AGREE_PCT:
            lines.append(f"{r['step']}: its run measured its base at {r['base_tokens_per_s']:.1f} tok/s, "
                         f"{r['base_differs_pct']:.0f}% from {r['builds_on']}'s own run (the machine's load, or a "
                         f"noisy measurement in either run); the factor is the ratio within its own run")
    if len(path) > 1:
        factors = " x ".join(f"{r['factor']:.3g} ({r['step']})" for r in path[1:])
        shaky_path = [r["step"] for r in path[1:] if unsteady(r) or unsteady(dict(spread_pct=r["base_spread_pct"]))]
        lines.append(f"techniques from {path[0]['step']} to {path[-1]['step']}: {factors} "
                     f"= {t['techniques']:.3g}x cheaper"
                     + (f" (uncertain: {', '.join(shaky_path)}: its measurement or its base's is !unsteady)"
                        if shaky_path else ""))
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
    lines.append(rate_line(rows))
    if records is not None:
        lines += left_out(coverage_of(records))
    return "\n".join(lines)


def rate_line(rows: list[dict]) -> str:
    """Your rate per year beside the posts' and a16z's, all by the one method (utils.cost.rate_per_year)."""
    from . import timeline
    from .chart import modelled
    from .data import historical_prices
    drawn = {p["series"] for p in historical_prices() if modelled(p["source"])}
    return (f"your rate per year: {timeline.of(rows)[2].words()}; beside: "
            + "; ".join(f"{name}{' (modelled, not prices)' if name in drawn else ''} {rate.words()}"
                        for name, rate in historical_rates().items()))


def historical_rates() -> dict[str, "Rate"]:
    """Each historical series' rate per year, by the one method."""
    from .cost import rate_per_year
    from .data import historical_prices
    series: dict[str, list] = {}
    for p in historical_prices():
        series.setdefault(p["series"], []).append((p["date"], p["usd_per_million_tokens"]))
    return {name: rate_per_year(pts) for name, pts in series.items()}


def coverage_of(records: list[dict]) -> dict:
    """What the curve of ``records`` uses and leaves out (utils.chain.coverage)."""
    return coverage(select(records), chain(records))


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
    """``rows`` as a CSV table at ``path``, replaced whole or not at all (utils.atomic)."""
    with atomic.writing(path, newline="") as f:
        csv_into(rows, f)
    return path


def csv_into(rows: list[dict], f) -> None:
    """``rows`` as a CSV table (a header of the first row's keys) into the open text file ``f``."""
    writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
    writer.writeheader()
    writer.writerows(rows)


REFERENCE = "h100_qwen3-8b"      # the kit's own GPU run that the reference chain is built from


def reference_chain(name: str = REFERENCE) -> dict:
    """What a GPU shows, as a chain: the same code (:func:`curve_rows`, utils.timeline) on the kit's
    own GPU run in ``datasets/reference/`` (utils.reference.curve_records), priced at that GPU's
    default $/hour in gpus.csv, with its label: the GPU, the date, random weights."""
    from . import timeline
    from .reference import curve_records
    from .models.rehearsal import LABEL
    records = curve_records(name)
    hw = records[-1].get("hardware") or {}
    key = gpu_key_for(hw.get("gpu_name"), hw.get("vram_gb"))
    price = gpu(key)["price_per_hour_usd"]
    rows = curve_rows(records, price)
    _, stairs, rate = timeline.of(rows)
    model = records[-1]["settings"].get("model")
    label = f"the kit's {key} run ({model}, {records[-1]['timestamp'][:10]}, {LABEL}) at ${price}/h"
    return dict(name=name, rows=rows, stairs=stairs, rate=rate, label=label, gpu_key=key, price=price,
                totals=totals(rows))


class NothingToDrawError(cli.UserError, ValueError):
    """Step records whose chain has no start (a larger baseline alone): no curve can be drawn."""


def drawable(rows: list[dict]) -> None:
    """Raise :class:`NothingToDrawError`, in one plain line, when ``rows`` have no chain to draw:
    the curve starts at the target (or the first technique measured), and the model choices are
    priced beside it, never on their own; their waterfall and time panel would be empty."""
    if compounding(rows):
        return
    steps = ", ".join(r["step"] for r in rows)
    why = ("a model choice, priced beside the chain the target starts" if all(
        r["step"] in MODEL_CHOICES for r in rows) else "and none of it starts a chain")
    raise NothingToDrawError(
        f"nothing to draw yet: the newest profile and machine in the results have only {steps} measured, "
        f"{why}; nothing was written. Measure the target (notebook 01, or python -m utils.benchmark "
        f"--steps precision), then draw the curve again")


DPI = 100


def plot(rows: list[dict], records: list[dict], path: Path, price_per_hour: float,
         title: str = "Your LLMflation cost curve", keep_open: bool = False) -> Path:
    """The cost-curve figure (:func:`figure`) saved as ``path``, replaced whole or not at all
    (utils.atomic); with ``keep_open`` the figure is returned, still open, instead of the path."""
    fig = figure(rows, price_per_hour, title)
    import matplotlib.pyplot as plt       # after figure(), which chose the Agg backend
    try:
        with atomic.replacing(path) as (temp,):
            fig.savefig(temp, dpi=DPI)
    except BaseException:
        plt.close(fig)
        raise
    if keep_open:
        return fig
    plt.close(fig)
    return path


def figure(rows: list[dict], price_per_hour: float, title: str = "Your LLMflation cost curve"):
    """The cost-curve figure, drawn and not saved: the historical prices (with hardware what-ifs),
    your LLMflation over time, and the waterfall of what each technique contributed (utils.chart,
    utils.timeline). Rows with no chain raise :class:`NothingToDrawError` before anything is drawn."""
    drawable(rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import chart, timeline
    from .reference import priced

    fig = plt.figure(figsize=(16, 14))
    grid = fig.add_gridspec(3, 2, height_ratios=[1, 0.38, 1.05], width_ratios=[1, 1], wspace=0.55)
    history, over_time, waterfall = (fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]),
                                     fig.add_subplot(grid[2, :]))
    chart.history(history, rows, priced())
    pts, stairs, decline = timeline.of(rows)
    model = next((r["model"] for r in rows if r["step"] not in MODEL_CHOICES), "?")
    timeline.plot(over_time, pts, stairs, decline, f"{model} at ${price_per_hour}/h", reference_chain())
    chart.legend_below(history, fig.add_subplot(grid[1, 0]), ncol=1)
    chart.legend_below(over_time, fig.add_subplot(grid[1, 1]), ncol=1)
    chart.waterfall(waterfall, rows, compounding(rows), totals(rows))
    fig.text(0.5, 0.025, chart.BASIS.format(model=model, price=price_per_hour), ha="center", fontsize=8,
             wrap=True)
    if any(r["random_weights"] for r in rows):
        fig.text(0.5, 0.01, "Hatched bars: RANDOM WEIGHTS (speed and memory are real, quality is not)",
                 ha="center", fontsize=9, color="tab:red")
    fig.suptitle(title)
    fig.subplots_adjust(left=0.06, right=0.86, top=0.94, bottom=0.12, hspace=0.3)
    return fig


def write_curve(store: ResultsStore, out_dir: Path, price_per_hour: float,
                skip_corrupt: bool = False, log=None) -> tuple[Path, Path]:
    """From a results store, write ``cost_curve.csv`` and ``cost_curve.png`` into ``out_dir``.

    A corrupt line raises CorruptResultsError naming it, unless ``skip_corrupt``
    (then it is left out with a warning); the store itself is never changed.
    ``log``, if given, receives the :func:`summary` of the curve.

    The two are one pair: both are rendered under temporary names and both replaced only when
    both were written (utils.atomic), so a failure (a full disk, :class:`NothingToDrawError`)
    leaves the previous pair as it was, never a new table beside an old figure."""
    records = store.records(skip_corrupt=skip_corrupt)
    rows = curve_rows(records, price_per_hour)
    if not rows:
        raise ValueError(f"{store.path} holds no benchmark measurements yet; run a notebook or "
                         f"python -m utils.benchmark first")
    fig = figure(rows, price_per_hour)        # drawn before anything is written
    paths = atomic.table_and_figure(out_dir / "cost_curve.csv", out_dir / "cost_curve.png", fig,
                                    lambda f: csv_into(rows, f), DPI)
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
    except cli.UserError:        # a corrupt file, nothing to draw, a full disk: the learner's to fix, status 2
        raise
    except ValueError as err:    # the old pair, if any, is left as it was (write_curve)
        print(f"no cost curve written: {err}", file=sys.stderr)
        return 1
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
