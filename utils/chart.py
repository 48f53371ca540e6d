"""The panels of the cost-curve figure: the historical prices and the waterfall.

Each function draws on one matplotlib axis from plain rows (utils.curve) and
cited tables (datasets/); utils.curve.plot puts them together with the time
panel (utils.timeline).
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from .cost import cost_per_million, roofline_tokens_per_s
from .data import gpus, historical_prices, model_configs
from .memory import ModelShape
from .steps import MODEL_CHOICES

BASELINE = MODEL_CHOICES[0]
WHAT_IF_MODEL = "Qwen/Qwen3-8B"    # the GPU profiles' target: the hardware what-ifs are computed for it

BASIS = ("Not like for like. Historical points: API list prices (input and output averaged; margin, idle capacity "
         "and many users' traffic included) of the cheapest model at a fixed capability (a16z: MMLU >= 42). "
         "Your figures: {model} on your machine, fully busy, output tokens only, at ${price}/h; its capability is "
         "its own, not the historical tier's.")


def marked_noise(row: dict) -> bool:
    """Whether a row is shown with the ``~`` noise mark (a same-configuration row says so instead)."""
    return bool(row["within_noise"]) and not row["same_as_base"]


def standing(row: dict) -> str:
    """What happens to a step after it: "" (kept, a start, or the first step measured on a
    computed start: later steps build on it) or "not kept"."""
    return "" if row["builds_on"] is None or row["established"] else "not kept"


def modelled(source: str) -> bool:
    """Whether a historical series is a model (a line drawn at a chosen rate), not cited prices."""
    return source.strip().lower().startswith("modelled")


def spread(ys: list[float], gap: float) -> list[float]:
    """Label positions for sorted values ``ys``: each at least ``gap`` above the one before, the
    group centred on the values (so close points get readable labels)."""
    out: list[float] = []
    for y in ys:
        out.append(max(y, out[-1] + gap) if out else y)
    shift = (sum(ys) - sum(out)) / len(out) if out else 0.0
    return [y + shift for y in out]


def hardware_what_ifs(model: str = WHAT_IF_MODEL) -> list[dict]:
    """COMPUTED, not measured: ``model`` in 16 bits at batch 1 on each GPU of gpus.csv that has
    an announcement date, at its bandwidth roofline and default $/hour, dated at its
    announcement. The best any of them can do one sequence at a time: hardware alone."""
    shape = ModelShape.from_config(model_configs()[model])
    out = []
    for key, g in gpus().items():
        if not g.get("announced") or g["memory_gb"] <= 0:
            continue
        tok_s = roofline_tokens_per_s(shape, "float16", g["bandwidth_gbs"])
        out.append(dict(key=key, when=date.fromisoformat(g["announced"]), tok_s=tok_s,
                        usd_per_million=cost_per_million(g["price_per_hour_usd"], tok_s)))
    return sorted(out, key=lambda r: r["when"])


def history(ax, rows: list[dict], references: list[dict] | None = None) -> None:
    """The historical $/1M-token series on a log axis (cited points solid, the modelled series
    dashed), the hardware what-ifs (computed), ``references`` (utils.reference.priced: GPU
    decode at batch 1 at gpus.csv prices) as diamonds, and the learner's cheapest configuration
    as a hollow star only when it is a hub model: the offline models are toys, drawn in the
    time panel on their own axis, never as if comparable."""
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
    hw = hardware_what_ifs()
    ax.plot([h["when"] for h in hw], [h["usd_per_million"] for h in hw], marker="s", color="tab:purple",
            linewidth=0.8, markersize=5, label=f"hardware alone (COMPUTED): {WHAT_IF_MODEL.split('/')[-1]} "
                                             f"16-bit, batch-1 roofline, at announcement, gpus.csv $/h")
    for h in hw:
        ax.annotate(h["key"], (h["when"], h["usd_per_million"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points", color="tab:purple")
    today = date.today()
    techniques = [r for r in rows if r["step"] not in MODEL_CHOICES]
    mine = min(techniques, key=lambda r: r["usd_per_million"]) if techniques else None
    if mine is not None and not str(mine["model"]).startswith("offline:"):
        ax.scatter([today], [mine["usd_per_million"]], marker="*", s=160, facecolors="none",
                   edgecolors="tab:red", zorder=3, label=f"you, cheapest: {mine['configuration']}")
    elif mine is not None:
        ax.text(0.01, 0.01, "your offline model is a toy (millions of parameters): drawn on its own axis "
                "(right), not here", transform=ax.transAxes, fontsize=7, color="tab:red")
    refs = sorted(references or [], key=lambda r: r["usd_per_million"])
    for i, (ref, at) in enumerate(zip(refs, spread([math.log10(r["usd_per_million"]) for r in refs], 0.12))):
        ax.scatter([today], [ref["usd_per_million"]], marker="D", s=30, color="black", zorder=2,
                   facecolors="none" if ref["random_weights"] else "black",
                   label="GPU decode at batch 1 (published; hollow: the kit's run) at gpus.csv $/h" if i == 0 else None)
        ax.annotate(ref["label"], (today, ref["usd_per_million"]), xytext=(today - timedelta(days=120), 10 ** at),
                    ha="right", va="center", fontsize=6, arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5))
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log)")
    ax.set_title("Historical prices (cited), hardware alone (computed), GPUs at batch 1", fontsize=10)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)


def waterfall(ax, rows: list[dict], path: list[dict], totals: dict) -> None:
    """The model swap (purple, apart), then each technique as a bar from the cost it built on to
    its own (log axis: factors add up as lengths), then the techniques' total and, when the target
    is as good as the baseline, the same-capability total. Tick labels alternate in height so
    long step names never overlap."""
    usd = {r["step"]: r["usd_per_million"] for r in rows}
    steps = [r["step"] for r in rows]
    last_model = max((i for i, r in enumerate(rows) if r["step"] in MODEL_CHOICES), default=None)
    for i, r in enumerate(rows):
        cost = r["usd_per_million"]
        if r["step"] in MODEL_CHOICES:
            to = "target" if r["step"] == BASELINE else "this MoE, from the baseline"
            ax.hlines(cost, i - 0.4, i + 0.4, colors="tab:purple", linewidth=4)
            note = (f"model swap to {to}:\n{r['swap_factor']:.2g}x, {r['swap_verdict']}"
                    if r.get("swap_factor") else "model choice")
            ax.annotate(f"${cost:.3g}\n{note}", (i, cost), ha="center", va="bottom", fontsize=7,
                        color="tab:purple")
            if i == last_model:
                ax.axvline(i + 0.5, color="0.5", linewidth=0.8)
            continue
        if r["builds_on"] is None:                      # a start: its level, no bar
            colour = "tab:purple" if r["computed"] else "tab:gray"
            ax.hlines(cost, i - 0.4, i + 0.4, colors=colour, linewidth=4)
            ax.annotate(("computed 16-bit start\n" if r["computed"] else "start\n") + f"${cost:.3g}",
                        (i, cost), ha="center", va="bottom", fontsize=8)
            continue
        ax.hlines(usd[r["builds_on"]], steps.index(r["builds_on"]), i, colors="0.6",
                  linestyles=":", linewidth=1)
        low, high = sorted([usd[r["builds_on"]], cost])
        colour = ("tab:green" if r["kept"] else "tab:olive" if r["same_as_base"] or r["within_noise"]
                  else "tab:red")
        label = ("same\nconfig" if r["same_as_base"] else
                 f"{r['factor']:.2g}x" + ("~" if marked_noise(r) else "")
                 + (f"\n{standing(r)}" if standing(r) else ""))
        ax.bar(i, high - low, bottom=low, color=colour, hatch="//" if r["random_weights"] else None,
               edgecolor="black", linewidth=0.5)
        ax.annotate(label, (i, high), ha="center", va="bottom", fontsize=8)
    labels = [f"{r['step']}\n[{r['source'].split(',')[0].split(' ')[0]}]" for r in rows]   # the run it is from
    if path:
        at = len(rows)
        ax.bar(at, path[0]["usd_per_million"] - path[-1]["usd_per_million"],
               bottom=path[-1]["usd_per_million"], color="tab:blue", edgecolor="black", linewidth=0.5)
        ax.annotate(f"{totals['techniques']:.3g}x", (at, path[0]["usd_per_million"]), ha="center",
                    va="bottom", fontsize=9, weight="bold")
        labels.append("techniques")
    if totals.get("same_capability") and BASELINE in usd and path:
        at = len(labels)
        ax.bar(at, usd[BASELINE] - path[-1]["usd_per_million"], bottom=path[-1]["usd_per_million"],
               color="tab:cyan", edgecolor="black", linewidth=0.5)
        ax.annotate(f"{totals['same_capability']:.3g}x", (at, usd[BASELINE]), ha="center", va="bottom",
                    fontsize=9, weight="bold")
        labels.append("same capability")
    if any(marked_noise(r) for r in rows):
        ax.text(0.01, 0.01, "~ within the spread of the repeats: not established (not kept)", fontsize=7,
                transform=ax.transAxes)
    ax.set_xticks(range(len(labels)), [("\n\n" if i % 2 else "") + s for i, s in enumerate(labels)])
    ax.set_ylim(min(usd.values()) / 1.5, max(usd.values()) * 2.5)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log)")
    product = " x ".join(f"{r['factor']:.3g}" for r in path[1:]) or "1"
    total = f"{totals['techniques']:.3g}" if totals.get("techniques") else "1"
    ax.set_title(f"What each technique contributed (vs the step it built on; [the notebook of your latest run]); "
                 f"the model swap apart\n"
                 f"techniques: {product} = {total}x cheaper"
                 + ("" if totals.get("same_capability") else
                    "; same capability: not claimed" if totals.get("swap") else ""), fontsize=10)
