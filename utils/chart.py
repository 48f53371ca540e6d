"""The panels of the cost-curve figure: the historical prices and the waterfall.

Each function draws on one matplotlib axis from plain rows (utils.curve) and
cited tables (datasets/); utils.curve.plot puts them together with the time
panel (utils.timeline).
"""

from __future__ import annotations

import math
from datetime import date

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
    from .counterfactual import fits
    shape = ModelShape.from_config(model_configs()[model])
    out = []
    for key, g in gpus().items():
        if not g.get("announced") or g["memory_gb"] <= 0 or not fits(shape, "float16", key, 0):
            continue                                  # a GPU that cannot hold it in 16 bits draws no point
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
                                             f"16-bit, batch-1 roofline, at announcement, gpus.csv $/h:\n"
                                             + ", ".join(h["key"] for h in hw) + " (by date)")
    today = date.today()
    path = [r for r in rows if r["on_chain"]]
    mine = path[-1] if path else None
    if mine is not None and not str(mine["model"]).startswith("offline:"):
        ax.scatter([today], [mine["level_usd"]], marker="*", s=160, facecolors="none",
                   edgecolors="tab:red", zorder=3, label=f"you, the end of your chain: {mine['configuration']}")
    elif mine is not None:
        ax.text(0.01, 0.01, "your offline model is a toy (millions of parameters): drawn on its own axis "
                "(right), not here", transform=ax.transAxes, fontsize=7, color="tab:red")
    refs = sorted(references or [], key=lambda r: r["usd_per_million"])
    values = [p["usd_per_million_tokens"] for p in historical_prices()] + [h["usd_per_million"] for h in hw] \
        + [r["usd_per_million"] for r in refs] + ([mine["level_usd"]] if mine is not None and
                                                  not str(mine["model"]).startswith("offline:") else [])
    low, high = math.log10(min(values)) - 0.4, math.log10(max(values)) + 0.3
    ax.set_yscale("log")
    ax.set_ylim(10 ** low, 10 ** high)
    at = spread([(math.log10(r["usd_per_million"]) - low) / (high - low) for r in refs], 0.085)
    for i, (ref, y) in enumerate(zip(refs, at)):
        ax.scatter([today], [ref["usd_per_million"]], marker="D", s=30, color="black", zorder=2,
                   facecolors="none" if ref["random_weights"] else "black",
                   label="GPU decode at batch 1 (published; hollow: the kit's run) at gpus.csv $/h, drawn at "
                         "today's date whatever year it was measured" if i == 0 else None)
        ax.annotate(ref["label"].replace(" on ", "\non ", 1), (today, ref["usd_per_million"]), xytext=(1.03, y),
                    textcoords="axes fraction",
                    ha="left", va="center", fontsize=6, arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5))
    ax.set_ylabel("$ per 1M tokens (log)")
    ax.set_title("Historical prices (cited), hardware alone (computed), GPUs at batch 1", fontsize=10, pad=12)
    ax.xaxis.set_major_locator(_years())


COLOURS = {"on the chain": "tab:green", "alternative": "yellowgreen", "same": "tab:olive", "noise": "tab:olive",
           "dearer": "tab:red"}


def short_status(row: dict) -> str:
    """The status under a bar, in the words of utils.chain.STATUSES, shortened to fit."""
    return {"on the chain": "on the chain", "same": "same config", "noise": "~noise, not kept",
            "dearer": "not kept"}.get(row["status"]) or (
        f"kept, alternative\nto {row['alternative_to']}" if row["alternative_to"] else "kept, off the chain")


def _years():
    """A tick per year, labelled by its year alone: dates that never crowd each other."""
    import matplotlib.dates as mdates
    locator = mdates.YearLocator()
    return locator


def legend_below(ax, legend_ax, **kwargs) -> None:
    """``ax``'s legend in ``legend_ax`` (an axis of its own below it, with no frame), so that long
    entries never run over another panel or its tick labels."""
    handles, labels = ax.get_legend_handles_labels()
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, loc="upper center", fontsize=6.5, frameon=False, **kwargs)


def waterfall(ax, rows: list[dict], path: list[dict], totals: dict) -> None:
    """The model swap (purple, apart), then each technique as a bar from its base's level on the chain
    to its own (log axis: factors add up as lengths; utils.chain), coloured by its one status:
    green on the chain, yellow-green kept but an alternative, olive within the noise or the same
    configuration, red dearer. Then the path's total and, when the target is shown as good as the
    baseline, the same-capability total. Tick labels alternate in height so long names never overlap."""
    level = {r["step"]: r["level_usd"] for r in rows}
    steps = [r["step"] for r in rows]
    last_model = max((i for i, r in enumerate(rows) if r["step"] in MODEL_CHOICES), default=None)
    for i, r in enumerate(rows):
        cost = r["level_usd"]
        if r["step"] in MODEL_CHOICES:
            to = "target" if r["step"] == BASELINE else "this MoE,\nfrom the baseline"
            ax.hlines(cost, i - 0.4, i + 0.4, colors="tab:purple", linewidth=4)
            note = (f"model swap to {to}:\n{r['swap_factor']:.3g}x, " + r["swap_verdict"].replace(", ", ",\n")
                    if r.get("swap_factor") else "model choice")
            others = [o["level_usd"] for o in rows if o["step"] in MODEL_CHOICES and o is not r]
            above = all(cost >= o for o in others)          # the higher label above, the lower below
            ax.annotate(f"${cost:.3g}\n{note}", (i, cost), xytext=(0, 4 if above else -4),
                        textcoords="offset points", ha="center", va="bottom" if above else "top", fontsize=7,
                        color="tab:purple")
            if i == last_model:
                ax.axvline(i + 0.5, color="0.5", linewidth=0.8)
            continue
        if r["builds_on"] is None:                      # a start: its level, no bar
            colour = "tab:purple" if r["computed"] else "tab:gray"
            ax.hlines(cost, i - 0.4, i + 0.4, colors=colour, linewidth=4)
            ax.annotate(("computed 16-bit start\n" if r["computed"] else
                         "start\n" if r["on_chain"] else "own start, off the chain\n") + f"${cost:.3g}",
                        (i, cost), ha="center", va="bottom", fontsize=8)
            continue
        ax.hlines(level[r["builds_on"]], steps.index(r["builds_on"]), i, colors="0.6",
                  linestyles=":", linewidth=1)
        low, high = sorted([level[r["builds_on"]], cost])
        ax.bar(i, high - low, bottom=low, color=COLOURS.get(r["status"], "yellowgreen"),
               hatch="//" if r["random_weights"] else None, edgecolor="black", linewidth=0.5)
        label = "same\nconfig" if r["same_as_base"] else f"{r['factor']:.3g}x\n{short_status(r)}"
        ax.annotate(label, (i, high), ha="center", va="bottom", fontsize=7)
    labels = [f"{r['step']}\n[{r['source'].split(',')[0].split(' ')[0]}]" for r in rows]   # the run it is from
    if path:
        at = len(rows)
        ax.bar(at, path[0]["level_usd"] - path[-1]["level_usd"],
               bottom=path[-1]["level_usd"], color="tab:blue", edgecolor="black", linewidth=0.5)
        ax.annotate(f"{totals['techniques']:.3g}x", (at, path[0]["level_usd"]), ha="center",
                    va="bottom", fontsize=9, weight="bold")
        labels.append("techniques")
    if totals.get("same_capability") and BASELINE in level and path:
        at = len(labels)
        ax.bar(at, level[BASELINE] - path[-1]["level_usd"], bottom=path[-1]["level_usd"],
               color="tab:cyan", edgecolor="black", linewidth=0.5)
        ax.annotate(f"{totals['same_capability']:.3g}x", (at, level[BASELINE]), ha="center", va="bottom",
                    fontsize=9, weight="bold")
        labels.append("same capability")
    ax.set_xticks(range(len(labels)), labels)
    for i, tick in enumerate(ax.xaxis.get_major_ticks()):
        tick.set_pad(26 if i % 2 else 4)
    ax.set_ylim(min(level.values()) / 1.5, max(level.values()) * 4)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("$ per 1M tokens (log), on the chain")
    product = " x ".join(f"{r['factor']:.3g}" for r in path[1:]) or "1"
    total = f"{totals['techniques']:.3g}" if totals.get("techniques") else "1"
    ax.set_title(f"What each technique contributed: its factor against its base, both measured in its own run "
                 f"(the notebook under each name); the model swaps apart\n"
                 f"on the chain (green): {product} = {total}x cheaper"
                 + ("" if totals.get("same_capability") else
                    "; same capability: not claimed" if totals.get("swap") else ""), fontsize=10)


def overlapping_labels(fig, pad: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of visible texts of ``fig`` (titles, labels, ticks, annotations, legend entries) whose
    rendered extents overlap by more than ``pad`` pixels each way, as drawn by matplotlib's renderer;
    and texts that run into another panel (named "panel: <its title>") or off the figure."""
    from matplotlib.text import Text
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for tick in axis.get_major_ticks()
             + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    drawn = [t for ax in fig.axes if ax.axison for axis in (ax.xaxis, ax.yaxis) if axis.get_visible()
             for tick in axis._update_ticks() for t in (tick.label1, tick.label2)]   # ticks in view only
    texts = [t for t in fig.findobj(Text) if id(t) not in ticks] + drawn
    boxes, boxes_out = [], []
    for text in texts:
        if not text.get_visible() or not text.get_text().strip() or text.figure is None:
            continue
        box = Text.get_window_extent(text, renderer)        # the text alone, not an annotation's arrow
        if box.width > 0 and box.height > 0:
            boxes.append((text.get_text(), box))
            home = text.axes
            for ax in fig.axes:
                if ax is not home and ax.axison and home is not None and _cross(box, ax.bbox, pad):
                    boxes_out.append((text.get_text(), f"panel: {ax.get_title()}"))
            if box.x0 < -pad or box.y0 < -pad or box.x1 > fig.bbox.x1 + pad or box.y1 > fig.bbox.y1 + pad:
                boxes_out.append((text.get_text(), "off the figure"))
    out = boxes_out
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            if _cross(box_a, box_b, pad):
                out.append((a, b))
    return out


def _cross(a, b, pad: float) -> bool:
    """Whether two boxes overlap by more than ``pad`` pixels each way."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > pad and min(a.y1, b.y1) - max(a.y0, b.y0) > pad
