"""The personal cost curve: measured steps, their $/1M tokens, beside the historical curve.

Each step's figure is the best configuration the learner measured for it
(highest end-to-end tokens/s, prefill included), priced with
$/1M = $/hour / (tokens/s * 3600) * 1e6.

    python -m utils.curve                    # from results/my_results.jsonl
    python -m utils.curve --price 0.35 --out results/
"""

from __future__ import annotations

import argparse
import csv
from datetime import date
from pathlib import Path

from .cost import cost_per_million
from .data import gpu, historical_prices
from .results import ResultsStore

STEP_ORDER = ["larger baseline", "target", "+ 8-bit", "+ 4-bit", "+ attention",
              "+ speculative", "+ batching"]


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
    """One row per measured step, in workshop order, with $/1M tokens and multipliers."""
    best: dict[str, dict] = {}
    for r in records:
        rate = (r.get("metrics", {}).get("e2e_tok_s") or {}).get("median")
        if r.get("step") in STEP_ORDER and rate:
            if r["step"] not in best or rate > best[r["step"]]["metrics"]["e2e_tok_s"]["median"]:
                best[r["step"]] = r
    rows, first, prev = [], None, None
    for step in STEP_ORDER:
        if step not in best:
            continue
        r = best[step]
        rate = r["metrics"]["e2e_tok_s"]["median"]
        usd = cost_per_million(price_per_hour, rate)
        first = first or usd
        rows.append(dict(step=step, configuration=describe(r["settings"], r["metrics"]),
                         tokens_per_s=round(rate, 3), usd_per_million=usd,
                         vs_previous=(prev / usd) if prev else 1.0, vs_first=first / usd,
                         perplexity=r["metrics"].get("perplexity"),
                         hardware=(r.get("hardware") or {}).get("gpu_name") or "CPU",
                         random_weights=bool(r["settings"].get("random_weights")),
                         timestamp=r.get("timestamp")))
        prev = usd
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot(rows: list[dict], path: Path, title: str = "Your LLMflation cost curve") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw=dict(width_ratios=[3, 2]))
    series: dict[str, list] = {}
    for p in historical_prices():
        series.setdefault(p["series"], []).append((date.fromisoformat(p["date"]), p["usd_per_million_tokens"]))
    styles = ["-", "--", ":"]
    for i, (name, pts) in enumerate(series.items()):
        pts.sort()
        left.plot([d for d, _ in pts], [v for _, v in pts], marker="o", linestyle=styles[i % 3],
                  linewidth=2.5 - 0.5 * i, label=f"{name} (cited)")
    today = date.today()
    for row in rows:
        left.scatter([today], [row["usd_per_million"]], marker="*", s=140, zorder=3,
                     label=f"you: {row['step']}")
    left.set_yscale("log")
    left.set_ylabel("$ per 1M tokens (log)")
    left.set_title("Historical prices vs your measured steps (stars, dated today)")
    left.legend(fontsize=7, loc="lower left", ncol=2)
    labels = [r["step"] for r in rows]
    right.bar(labels, [r["usd_per_million"] for r in rows],
              color=["tab:gray" if r["random_weights"] else "tab:blue" for r in rows])
    for i, r in enumerate(rows):
        right.annotate(f"{r['vs_first']:.2g}x", (i, r["usd_per_million"]), ha="center",
                       va="bottom", fontsize=8)
    right.set_yscale("log")
    right.set_title("$ per 1M tokens by step\n(factor: cheaper than the first step)")
    right.tick_params(axis="x", rotation=30, labelsize=8)
    if any(r["random_weights"] for r in rows):
        fig.text(0.5, 0.01, "Grey bars: RANDOM WEIGHTS (speed and memory are real, quality is not)",
                 ha="center", fontsize=9, color="tab:red")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_curve(store: ResultsStore, out_dir: Path, price_per_hour: float) -> tuple[Path, Path]:
    """From a results store, write ``cost_curve.csv`` and ``cost_curve.png`` into ``out_dir``."""
    rows = curve_rows(store.records(), price_per_hour)
    if not rows:
        raise ValueError(f"{store.path} holds no benchmark measurements yet; run a notebook or "
                         f"python -m utils.benchmark first")
    return write_csv(rows, out_dir / "cost_curve.csv"), plot(rows, out_dir / "cost_curve.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write your cost curve (CSV and PNG).")
    parser.add_argument("--results", help="results file (default: results/my_results.jsonl)")
    parser.add_argument("--price", type=float, help="your $/hour (default: the profile GPU's)")
    parser.add_argument("--gpu", default=None, help="GPU key in datasets/gpus.csv for the default price")
    parser.add_argument("--out", default=None, help="output folder (default: beside the results)")
    args = parser.parse_args(argv)
    store = ResultsStore(args.results)
    if args.price is None:
        from .profiles import load_profile
        key = args.gpu or load_profile().gpu_price_key
        args.price = gpu(key)["price_per_hour_usd"]
        print(f"price: ${args.price}/h (default for {key}; pass --price for yours)")
    csv_path, png_path = write_curve(store, Path(args.out) if args.out else store.path.parent, args.price)
    for row in curve_rows(store.records(), args.price):
        print(f"{row['step']:<16} ${row['usd_per_million']:>10.4f} / 1M tokens  "
              f"({row['vs_first']:.2f}x vs first)  {row['configuration']}")
    print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
