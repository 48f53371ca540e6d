"""The historical ~1,000x taken apart, with your own factors placed inside it.

a16z's curve falls from $60 per 1M tokens (GPT-3, November 2021) to $0.06
(Llama 3.2 3B, November 2024) at a fixed capability (MMLU >= 42): 1,000x.
Four things multiply to that, and the kit can put a number on three of them:

1. **model size at equal capability**: GPT-3 has 175.0B parameters, Llama 3.2
   3B 3.21B (``datasets/historical_models.csv``); a decode step reads every
   weight once, so at the same precision the smaller model reads 175.0 / 3.21
   times fewer bytes per token;
2. **hardware**: bandwidth per GPU from A100 (announced 2020) to H100 SXM
   (2022), from ``datasets/gpus.csv``, *at an assumed equal price per
   GPU-hour* (the table's 2026 prices would give another figure: printed too);
3. **software techniques that arrived in the window**: the fall of a chain's
   cumulative cost (utils.timeline's staircase) from the window's first date to
   its last. Batching and the plain model were there in 2021, so they are in
   both ends and count for nothing here: GPT-3's 2021 price was already a
   batched price. Your own chain enters only when it was measured on a GPU with
   a hub model; a CPU or a toy model measures other factors, so then the kit's
   GPU reference chain (random weights, labelled) stands in (:func:`software`);
4. **utilisation and margin**: what the three leave, ``1000 / (1 x 2 x 3)``: a
   residual, not a measurement (how busy providers keep their GPUs across many
   users, their margin, competition). Below 1 it says the others over-explain.
"""

from __future__ import annotations

import csv
import math
from datetime import date

from .data import DATASETS, gpu, historical_prices

SERIES = "a16z LLMflation (MMLU>=42)"
HARDWARE = ("A100-40GB", "H100-SXM")      # the flagship of 2021 and of 2024 in gpus.csv


def historical_models() -> list[dict]:
    """The two models at the ends of a16z's curve, with parameter counts and sources."""
    with open(DATASETS / "historical_models.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["params_billion"] = float(r["params_billion"])
    return rows


def total() -> tuple[float, dict, dict]:
    """(a16z's total factor, its first point, its last point)."""
    pts = sorted((p for p in historical_prices() if p["series"] == SERIES), key=lambda p: p["date"])
    return pts[0]["usd_per_million_tokens"] / pts[-1]["usd_per_million_tokens"], pts[0], pts[-1]


def window() -> tuple[str, str]:
    """The first and last dates of a16z's curve: the window the 1,000x fell in."""
    _, first, last = total()
    return first["date"], last["date"]


def software(rows: list[dict], reference: dict | None = None) -> dict | None:
    """The software row: how much a chain's cumulative cost fell between :func:`window`'s dates.

    ``rows``: your curve (utils.curve.curve_rows); it is used when its start ran on a GPU with a hub
    model. Otherwise ``reference`` (utils.curve.reference_chain) stands in, labelled. None when
    neither has a chain."""
    from . import timeline
    start = next((r for r in rows if r.get("on_chain")), None)
    yours = start is not None and start["hardware"] != "CPU" and not str(start["model"]).startswith("offline:") \
        and not start["random_weights"]
    chosen = rows if yours else (reference or {}).get("rows")
    if not chosen:
        return None
    stairs = timeline.staircase(chosen)
    first, last = (date.fromisoformat(d[:10]) for d in window())
    at = lambda when: next((usd for w, usd, _ in reversed(stairs) if w <= when), stairs[0][1])  # noqa: E731
    factor = at(first) / at(last)
    what = "your chain" if yours else f"{reference['label']} (your figures are a CPU's or a toy model's)"
    dates = timeline.technique_dates()
    off = [f"{r['step'].lstrip('+ ')} {r['factor']:.3g}x" for r in chosen if r["status"] == "alternative"
           and r.get("factor") and first < timeline.date_of(r.get("technique"), dates) <= last]
    aside = (f"; kept off the chain, measured only without it: {', '.join(off)} (no measurement of them on top "
             f"of the chain's steps, so not counted)" if off else "")
    measured = {r.get("technique") for r in chosen}
    missing = [d["key"] for d in dates.values() if d["key"] not in measured and first < d["date"] <= last]
    aside += (f"; not measured on this chain at all: {', '.join(missing)}" if missing else "")
    return dict(factor=factor, how=f"{what}: its cumulative cost on {first} / on {last} (batching and the plain "
                                   f"model were there in 2021: they count in both){aside}",
                source="your results store" if yours else "datasets/reference/ (the kit's GPU run)",
                yours=yours)


def parts(techniques: dict | None) -> list[dict]:
    """The rows of the decomposition: name, factor, how it is obtained, where from. ``techniques``:
    the software row from :func:`software` (None: not given; the residual then holds it)."""
    whole, first, last = total()
    old, new = historical_models()
    size = old["params_billion"] / new["params_billion"]
    a, b = (gpu(k) for k in HARDWARE)
    hardware = b["bandwidth_gbs"] / a["bandwidth_gbs"]
    per_dollar = (b["bandwidth_gbs"] / b["price_per_hour_usd"]) / (a["bandwidth_gbs"] / a["price_per_hour_usd"])
    rows = [
        dict(part="total (cited)", factor=whole,
             how=f"${first['usd_per_million_tokens']:g} ({first['model']}, {first['date'][:7]}) / "
                 f"${last['usd_per_million_tokens']:g} ({last['model']}, {last['date'][:7]})",
             source=first["source"]),
        dict(part="model size at equal capability", factor=size,
             how=f"{old['params_billion']:g}B / {new['params_billion']:g}B parameters read per token",
             source=f"{old['source']}; {new['source']}"),
        dict(part="hardware", factor=hardware,
             how=f"{a['name']} {a['bandwidth_gbs']:,.0f} GB/s -> {b['name']} {b['bandwidth_gbs']:,.0f} GB/s, at an "
                 f"assumed equal $/GPU-hour (gpus.csv's 2026 prices give {per_dollar:.2f}x per dollar)",
             source="vendor datasheets, datasets/gpus.csv"),
        dict(part="software techniques, 2021-2024" + (" (yours)" if techniques and techniques["yours"] else
                                                      " (kit's GPU)" if techniques else ""),
             factor=techniques["factor"] if techniques else None,
             how=techniques["how"] if techniques else "not given: the rest below includes it",
             source=techniques["source"] if techniques else "-"),
    ]
    known = [r["factor"] for r in rows[1:] if r["factor"]]
    rest = ("utilisation and margin (the rest)" if techniques and techniques["yours"] else
            "utilisation, margin, unmeasured (rest)" if techniques else "techniques, utilisation, margin (rest)")
    residual = whole / math.prod(known)
    rows.append(dict(part=rest, factor=residual,
                     how="total / the rows above: a residual, not a measurement (utilisation, margin, and every "
                         "technique the chain did not measure)"
                         + ("; below 1: the rows above over-explain the total" if residual < 1 else ""),
                     source="computed"))
    return rows


def table(techniques: float | None) -> str:
    """The decomposition as text, one row per part."""
    lines = [f"{'part':<44} {'factor':>7}  how"]
    for r in parts(techniques):
        factor = "-" if r["factor"] is None else f"{r['factor']:,.0f}x" if r["factor"] >= 100 else \
            f"{r['factor']:.3g}x"
        lines.append(f"{r['part']:<44} {factor:>7}  {r['how']}")
    return "\n".join(lines)
