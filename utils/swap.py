"""The model choice, apart from the techniques: the larger baseline against the target.

Swapping the larger model for the smaller target makes tokens cheaper, but it
is a change of *model*, not a technique applied to one, and the historical
curve compares the cheapest model at a *fixed capability*. So the cost curve
shows the swap beside its measured quality difference, and multiplies its
factor into a "same capability" total only when the target is at least as
good as the baseline within noise, by this stated rule:

* **perplexity** on the same held-out tokens: the target's extra cross-entropy
  per token (paired over the very same tokens, utils.quality.paired_gap) is at
  most :data:`Z` standard errors above zero;
* **exact match** on the same questions: the baseline's lead is at most
  :data:`Z` standard errors of the difference of two proportions,
  ``sqrt(p1(1-p1)/n + p2(1-p2)/n)``.

Both must hold. Without a paired perplexity (another tokenizer, or older
records) or with random weights, the quality is "not compared" and the swap is
never multiplied in. The pair is taken from one run where possible (notebook
06 and the benchmark measure both models, the same request, the same
precision), else the target's latest record at the baseline's precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .steps import curve_step, rate, run_of

Z = 2.0     # standard errors: the stated noise band (about 95% for a normal error)
TARGET_STEPS = ("target", "+ 8-bit", "+ 4-bit")


@dataclass(frozen=True)
class Swap:
    """Baseline -> target: the cost factor (same $/hour, same request) and the quality beside it."""

    baseline: dict
    target: dict
    factor: float                  # cost(baseline) / cost(target)
    standing: str                  # "as good", "worse" or "not established" (see the rule)
    quality: str                   # the quality difference in words, with its figures
    same_run: bool

    @property
    def as_good(self) -> bool:
        """Whether the target is at least as good as the baseline within noise: only then does
        the swap count toward a same-capability total."""
        return self.standing == "as good"

    @property
    def verdict(self) -> str:
        cost = "cheaper" if self.factor > 1 else "dearer"
        return {"as good": f"{cost} and as good within noise", "worse": f"{cost} and worse"}.get(
            self.standing, f"{cost}, quality not established")


def partner(baseline: dict, records: list[dict], steps: tuple[str, ...] = TARGET_STEPS) -> tuple[dict | None, bool]:
    """The record of ``steps`` (the target's, or the mixture of experts') to compare ``baseline``
    with: from the same run and request (True), else the newest such record (False); the target
    at the baseline's precision (its own precisions are techniques), a mixture of experts at the
    precision it runs in (bitsandbytes leaves its experts in 16 bits anyway)."""
    model, precision = baseline["settings"].get("model"), baseline["settings"].get("precision")
    same_request = [r for r in records if curve_step(r) in steps and rate(r)
                    and r["settings"].get("model") != model
                    and (steps != TARGET_STEPS or r["settings"].get("precision") == precision)
                    and (r["metrics"].get("batch") or 1) == 1
                    and (r["metrics"].get("prompt_tokens"), r["metrics"].get("new_tokens"))
                    == (baseline["metrics"].get("prompt_tokens"), baseline["metrics"].get("new_tokens"))
                    and (r.get("hardware") or {}).get("gpu_name") == (baseline.get("hardware") or {}).get("gpu_name")
                    and bool(r["settings"].get("random_weights")) == bool(baseline["settings"].get("random_weights"))]
    together = [r for r in same_request if run_of(r) == run_of(baseline)]
    if together:
        return together[-1], True
    return (same_request[-1], False) if same_request else (None, False)


def _gap(baseline: dict, target: dict) -> dict | None:
    for record in (baseline, target):
        gap = record["metrics"].get("quality_gap")
        if isinstance(gap, dict) and all(isinstance(gap.get(k), (int, float)) for k in ("nll", "se")):
            return gap
    return None


def judge(baseline: dict, target: dict) -> tuple[str, str]:
    """("as good", "worse" or "not established"; the difference in words) by the stated rule."""
    if baseline["settings"].get("random_weights") or target["settings"].get("random_weights"):
        return "not established", "not compared (random weights: quality means nothing)"
    tm, bm = target["metrics"], baseline["metrics"]
    parts, ok, worse_any = [], True, False
    gap = _gap(baseline, target)
    if tm.get("perplexity") and bm.get("perplexity"):
        text = f"perplexity {tm['perplexity']:.2f} vs {bm['perplexity']:.2f}"
        if gap is None:
            ok = False
            parts.append(f"{text} (no paired noise estimate: not established)")
        else:
            z = gap["nll"] / gap["se"] if gap["se"] > 0 else math.copysign(math.inf, gap["nll"] or 1)
            worse = gap["nll"] > Z * gap["se"]
            worse_any |= worse
            parts.append(f"{text} ({math.exp(gap['nll']) - 1:+.1%} per token, "
                         f"{abs(z):.1f} paired standard errors {'worse' if z > 0 else 'better'}: "
                         f"{'worse' if worse else 'within noise' if z > 0 else 'better'})")
    else:
        ok = False
        parts.append("perplexity not measured for both")
    n = tm.get("exact_match_items") or bm.get("exact_match_items")
    if isinstance(tm.get("exact_match"), (int, float)) and isinstance(bm.get("exact_match"), (int, float)) and n:
        pt, pb = tm["exact_match"], bm["exact_match"]
        se = math.sqrt(pt * (1 - pt) / n + pb * (1 - pb) / n)
        behind = pb - pt > Z * se if se > 0 else pb > pt
        worse_any |= behind
        parts.append(f"exact match {pt:.0%} vs {pb:.0%} of {n} ({'worse' if behind else 'within noise' if pb > pt else 'not behind'})")
    else:
        ok = False
        parts.append("exact match not measured for both")
    standing = "worse" if worse_any else "as good" if ok else "not established"
    return standing, "; ".join(parts)


def model_swap(baseline: dict | None, records: list[dict], price_per_hour: float,
               steps: tuple[str, ...] = TARGET_STEPS) -> Swap | None:
    """The swap from ``baseline`` (the curve's larger-baseline record) to the target (or, with
    ``steps=("mixture of experts",)``, to the mixture of experts), or None."""
    if baseline is None:
        return None
    target, same_run = partner(baseline, records, steps)
    if target is None:
        return None
    standing, words = judge(baseline, target)
    from .cost import cost_per_million
    factor = cost_per_million(price_per_hour, rate(baseline)) / cost_per_million(price_per_hour, rate(target))
    return Swap(baseline, target, factor, standing, words, same_run)
