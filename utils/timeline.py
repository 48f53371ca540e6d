"""Your LLMflation over time: each technique of your curve at the date it became usable.

Every technique has the date it became usable in open tooling, with its source
(``datasets/technique_dates.csv``): 8-bit and 4-bit weights, fused attention
(SDPA) or FlashAttention-2, assisted generation, a compiled static cache,
continuous batching with a paged cache. The target itself (the plain model)
and batching (a batch of sequences in one ``generate`` call) were in PyTorch and
transformers before 2021: they are placed at the historical curve's first
point, :func:`start_date`.

Each step of your curve is drawn at its technique's date, at its level on the
chain (utils.chain: the start's cost divided by the factors down to it, each
measured within one run). The **cumulative cost available at a date** is the
start's cost divided by the factors of the path's techniques (the waterfall's
chain) usable by then, each applied from its own technique's date. The last
value is the path's end. Your **decline per year** comes from the points where
that cost changes (a step off the path adds none), by the one method the kit
gives every series (``utils.cost.rate_per_year``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date

from .cost import Rate, rate_per_year
from .data import DATASETS, historical_prices
from .memory import FOUR_BIT
from .steps import MODEL_CHOICES

ATTENTION = {"sdpa": "sdpa", "sdpa_repeat_kv": "sdpa", "flash_attention_2": "flash_attention_2"}
STEP_TECHNIQUE = {"+ 8-bit": "int8", "+ 4-bit": "4-bit", "+ speculative": "assisted",
                  "+ compile": "static_compile", "+ continuous batching": "paged"}


def technique_dates() -> dict[str, dict]:
    """The dated techniques, keyed by technique, each with its source and address."""
    with open(DATASETS / "technique_dates.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {r["key"]: dict(r, date=date.fromisoformat(r["date"])) for r in rows}


def start_date() -> date:
    """Where the plain model and batching are placed: the historical curve's first point (a16z's
    and the posts' GPT-3 price, November 2021)."""
    return min(date.fromisoformat(p["date"]) for p in historical_prices())


def technique_of(step: str, settings: dict) -> str | None:
    """The dated technique a curve step adds (None: the plain model, batching, a baseline)."""
    if step == "+ attention":
        return ATTENTION.get(settings.get("attn_implementation"))
    if step == "target":           # a 4-bit target is the 4-bit step (utils.steps.curve_step)
        precision = settings.get("precision")
        return "int8" if precision == "int8" else "4-bit" if precision in FOUR_BIT else None
    return STEP_TECHNIQUE.get(step)


def date_of(technique: str | None, dates: dict[str, dict] | None = None) -> date:
    """When a technique became usable (the start date for None)."""
    dates = technique_dates() if dates is None else dates
    return dates[technique]["date"] if technique in dates else start_date()


@dataclass(frozen=True)
class Point:
    """One step of the learner's curve on the time axis."""

    when: date
    usd_per_million: float
    step: str
    label: str
    status: str                 # utils.chain's status: "start", "on the chain", "alternative", ...
    computed: bool = False

    @property
    def kept(self) -> bool:
        """On the path (the start included)."""
        return self.status in ("start", "computed start", "on the chain")


def points(rows: list[dict]) -> list[Point]:
    """Each technique step of a curve (utils.curve.curve_rows) at its technique's date."""
    dates = technique_dates()
    return sorted((Point(date_of(r.get("technique"), dates), r["level_usd"], r["step"],
                         r["configuration"], r["status"], bool(r.get("computed")))
                   for r in rows if r["step"] not in MODEL_CHOICES),
                  key=lambda p: (p.when, -p.usd_per_million))


def staircase(rows: list[dict]) -> list[tuple[date, float, str]]:
    """(date, cumulative cost available by then, the path's steps that make it) at the start and at
    every date where that cost changes: a step that is not on the path adds no point, nor does a
    technique dated at the start (it is in the start's point). Empty without a path. The path is
    the rows marked ``on_chain`` (utils.chain), in order; each factor is applied from its own
    technique's date."""
    path = [r for r in rows if r.get("on_chain")]
    if not path:
        return []
    dates = technique_dates()
    kept = [(max(date_of(r.get("technique"), dates), start_date()), r["factor"], r["step"]) for r in path[1:]]
    out: list[tuple[date, float, str]] = []
    for when in sorted({start_date()} | {d for d, _, _ in kept}):
        used = [(f, s) for d, f, s in kept if d <= when]
        usd = path[0]["level_usd"] / math.prod(f for f, _ in used)
        if not out or not math.isclose(usd, out[-1][1], rel_tol=1e-12):
            out.append((when, usd, " + ".join([path[0]["step"]] + [s.lstrip("+ ") for _, s in used])))
    return out


def decline_per_year(stairs: list[tuple[date, float, str]]) -> Rate:
    """Your decline per year over the staircase's points, by the one method (utils.cost.rate_per_year)."""
    return rate_per_year([(when, usd) for when, usd, _ in stairs])


def endpoints(stairs: list[tuple[date, float, str]]) -> tuple[tuple[date, float], tuple[date, float]] | None:
    """((first date, its cost), (last date, its cost)) of a staircase, or None with fewer than two
    points."""
    if len(stairs) < 2:
        return None
    return (stairs[0][0], stairs[0][1]), (stairs[-1][0], stairs[-1][1])


def of(rows: list[dict]) -> tuple[list[Point], list, Rate]:
    """(points, staircase, decline per year) of a curve's rows (utils.curve.curve_rows)."""
    stairs = staircase(rows)
    return points(rows), stairs, decline_per_year(stairs)


def table(stairs: list[tuple[date, float, str]]) -> str:
    """The staircase as text: each date where the cumulative cost changes, that cost, the chain by
    then, and what became usable that day (in full, last)."""
    dates = technique_dates()
    lines = [f"{'date':<11} {'cumulative':>11}  {'the chain by then':<34} became usable"]
    for when, usd, chain in stairs:
        new = [d["technique"] for d in dates.values() if d["date"] == when]
        what = "; ".join(new) if new else "before the curve: the plain model, batching"
        lines.append(f"{when.isoformat():<11} ${usd:>10.4f}  {chain:<34} {what}")
    return "\n".join(lines)


def plot(ax, pts: list[Point], stairs, rate: Rate, label: str, reference: dict | None = None) -> None:
    """The learner's steps on a time axis (filled: on the path; hollow green: kept, an alternative;
    hollow grey: not kept), the cumulative staircase, its rate per year and the posts' 10x per year
    through the same start, on ``ax`` (log scale). ``reference`` (utils.curve.reference_chain): the
    same chain built from the kit's own GPU run, drawn from the learner's cost on the start date (its
    factors over time; another machine's and model's prices never share this axis), with its label. Step names sit in a
    column right of the axes, spread so that none overlaps another, each tied to its point."""
    from .chain import STATUSES
    last = max(d["date"] for d in technique_dates().values())
    groups = [("on the path", [p for p in pts if p.kept], dict(facecolors="tab:green", edgecolors="tab:green", s=30),
               f"your steps {STATUSES['on the chain']} (the start included)"),
              ("alternative", [p for p in pts if p.status == "alternative"],
               dict(facecolors="none", edgecolors="tab:green", s=30), f"your steps {STATUSES['alternative']}"),
              ("not kept", [p for p in pts if not p.kept and p.status != "alternative"],
               dict(facecolors="none", edgecolors="0.5", s=18), "your steps not kept (dearer, within noise, "
                                                                "or the same configuration)")]
    for _, chosen, style, text in groups:
        if chosen:
            ax.scatter([p.when for p in chosen], [p.usd_per_million for p in chosen], zorder=3, label=text, **style)
    values = [p.usd_per_million for p in pts]
    if stairs:
        xs, ys = [w for w, _, _ in stairs] + [last], [u for _, u, _ in stairs] + [stairs[-1][1]]
        ax.step(xs, ys, where="post", color="tab:blue", linewidth=2, zorder=2,
                label=f"cumulative: your path's factors, each from its technique's date;\n{rate.words()}")
        span = (last - xs[0]).days / 365.25
        ax.plot([xs[0], last], [ys[0], ys[0] / 10 ** span], linestyle="--", color="0.3", linewidth=1,
                label="10x per year (the posts' rate), from your cost on the start date")
        values += [ys[0], ys[0] / 10 ** span]
        if rate.per_year:
            ax.plot([xs[0], last], [ys[0], ys[0] / rate.per_year ** span], color="tab:blue", linestyle=":",
                    linewidth=1.5, label=f"your rate: {rate.words()}")
    if reference and reference["stairs"]:
        ref = reference["stairs"]
        scale = stairs[0][1] / ref[0][1] if stairs else 1.0     # its factors from your start, never its prices
        ax.step([w for w, _, _ in ref] + [last], [u * scale for _, u, _ in ref] + [ref[-1][1] * scale], where="post",
                color="tab:orange", linewidth=1.5, zorder=2,
                label=f"{reference['label']}, drawn from your cost on the start date (its factors, not its prices):"
                      f"\n{reference['rate'].words()}")
        values += [u * scale for _, u, _ in ref]
    for d in technique_dates().values():
        ax.axvline(d["date"], color="0.88", linewidth=0.8, zorder=1)
    ax.set_yscale("log")
    low, high = math.log10(min(values)) - 0.3, math.log10(max(values)) + 0.3
    ax.set_ylim(10 ** low, 10 ** high)
    from .chart import spread
    ordered = sorted(pts, key=lambda p: p.usd_per_million)
    at = spread([(math.log10(p.usd_per_million) - low) / (high - low) for p in ordered], 0.07)
    for p, y in zip(ordered, at):
        ax.annotate(p.step + (" (computed)" if p.computed else ""), (p.when, p.usd_per_million),
                    xytext=(1.02, y), textcoords="axes fraction", fontsize=6.5, color="0.3", va="center",
                    arrowprops=dict(arrowstyle="-", color="0.75", lw=0.5))
    ax.set_ylabel("$ per 1M tokens (log)")
    ax.set_title(f"Your LLMflation over time: {label}", fontsize=10)
    from .chart import _years
    ax.xaxis.set_major_locator(_years())
    ax.tick_params(axis="x", labelsize=8)
