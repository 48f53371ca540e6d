"""Your LLMflation over time: each technique of your curve at the date it became usable.

Every technique has the date it became usable in open tooling, with its source
(``datasets/technique_dates.csv``): 8-bit and 4-bit weights, fused attention
(SDPA) or FlashAttention-2, assisted generation, a compiled static cache,
continuous batching with a paged cache. The target itself (the plain model)
and batching (a batch of sequences in one ``generate`` call) were in PyTorch and
transformers before 2021: they are placed at the historical curve's first
point, :func:`start_date`.

Each step of your curve is drawn at its technique's date, at the cost you
measured. The **cumulative cost available at a date** is the start's cost
divided by the factors of the techniques you *kept* (the waterfall's chain)
that were usable by then: each factor as you measured it, on top of the step it
built on, and applied from its own technique's date (factors assumed to
multiply, as the waterfall does). The last value is your cheapest kept step.
Your **decline per year** is the least-squares fit of log10(cost) on time over
that staircase at every date a step of yours has (``utils.cost.annual_decline``,
the fit the historical series get).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, timedelta

from .cost import annual_decline
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
    kept: bool                  # on the chain that compounded (the start included)
    computed: bool = False


def points(rows: list[dict]) -> list[Point]:
    """Each technique step of a curve (utils.curve.curve_rows) at its technique's date."""
    dates = technique_dates()
    return sorted((Point(date_of(r.get("technique"), dates), r["usd_per_million"], r["step"],
                         r["configuration"], bool(r.get("on_chain")), bool(r.get("computed")))
                   for r in rows if r["step"] not in MODEL_CHOICES),
                  key=lambda p: (p.when, -p.usd_per_million))


def staircase(rows: list[dict]) -> list[tuple[date, float, str]]:
    """(date, cumulative cost available by then, the kept steps that make it) at the start and at
    every date a step of the curve has; empty without a chain. The chain is the rows marked
    ``on_chain`` (utils.curve.compounding), in order."""
    path = [r for r in rows if r.get("on_chain")]
    if not path:
        return []
    dates = technique_dates()
    kept = [(date_of(r.get("technique"), dates), r["factor"], r["step"]) for r in path[1:]]
    whens = sorted({start_date()} | {date_of(r.get("technique"), dates) for r in rows
                                     if r["step"] not in MODEL_CHOICES})
    out = []
    for when in whens:
        used = [(f, s) for d, f, s in kept if d <= when]
        out.append((when, path[0]["usd_per_million"] / math.prod(f for f, _ in used),
                    " + ".join([path[0]["step"]] + [s.lstrip("+ ") for _, s in used])))
    return out


def decline_per_year(stairs: list[tuple[date, float, str]]) -> float | None:
    """Your decline per year: the least-squares fit over the staircase (None with one date)."""
    if len({when for when, _, _ in stairs}) < 2:
        return None
    return annual_decline([(when, usd) for when, usd, _ in stairs])


def endpoints(stairs: list[tuple[date, float, str]]) -> tuple[tuple[date, float], tuple[date, float]] | None:
    """((first date, its cost), (last date, its cost)) of a staircase, or None with fewer than two
    dates: the two points exercise 1 of notebook 07 fits."""
    if len(stairs) < 2:
        return None
    return (stairs[0][0], stairs[0][1]), (stairs[-1][0], stairs[-1][1])


def of(rows: list[dict]) -> tuple[list[Point], list, float | None]:
    """(points, staircase, decline per year) of a curve's rows (utils.curve.curve_rows)."""
    stairs = staircase(rows)
    return points(rows), stairs, decline_per_year(stairs)


def table(stairs: list[tuple[date, float, str]]) -> str:
    """The staircase as text: each date, what became usable, the cumulative cost, its chain."""
    dates = technique_dates()
    lines = [f"{'date':<11} {'became usable':<46} {'cumulative':>11}  kept techniques by then"]
    for when, usd, chain in stairs:
        new = [d["technique"] for d in dates.values() if d["date"] == when]
        what = "; ".join(new) if new else "before the curve: the plain model, batching"
        lines.append(f"{when.isoformat():<11} {what[:46]:<46} ${usd:>10.4f}  {chain}")
    return "\n".join(lines)


def plot(ax, pts: list[Point], stairs, decline: float | None, label: str) -> None:
    """The learner's steps on a time axis, the cumulative staircase, their fitted decline and the
    posts' 10x per year through the same start, on ``ax`` (log scale)."""
    for kept in (True, False):
        chosen = [p for p in pts if p.kept == kept]
        ax.scatter([p.when for p in chosen], [p.usd_per_million for p in chosen], s=28 if kept else 18,
                   facecolors="tab:green" if kept else "none", edgecolors="tab:green" if kept else "0.5",
                   zorder=3, label="your steps on the chain (the start included)" if kept else
                   "your steps not kept (dearer, or within noise)")
    for p in pts:
        ax.annotate(p.step + (" (computed)" if p.computed else ""), (p.when, p.usd_per_million), fontsize=6,
                    xytext=(3, 2), textcoords="offset points", color="0.35")
    if stairs:
        xs, ys = [w for w, _, _ in stairs], [u for _, u, _ in stairs]
        ax.step(xs, ys, where="post", color="tab:blue", linewidth=2, zorder=2,
                label="cumulative: your kept factors, each from its technique's date")
        span = max((xs[-1] - xs[0]).days / 365.25, 0.5)
        years = [xs[0], xs[0] + timedelta(days=365.25 * span)]
        ax.plot(years, [ys[0], ys[0] / 10 ** span], linestyle="--", color="0.3", linewidth=1,
                label="10x per year (the posts' rate), from your start")
        if decline:
            ax.plot(years, [ys[0], ys[0] / decline ** span], color="tab:blue", linestyle=":",
                    linewidth=1.5, label=f"your fit: {decline:.2g}x per year")
    for d in technique_dates().values():
        ax.axvline(d["date"], color="0.85", linewidth=0.8, zorder=1)
        ax.text(d["date"], 1.0, d["key"], transform=ax.get_xaxis_transform(), rotation=90,
                fontsize=6, color="0.45", ha="right", va="top")
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log)")
    ax.set_title(f"Your LLMflation over time: {label}", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
