"""The model choice, apart from the techniques: the larger baseline against the target.

Swapping the larger model for the smaller target makes tokens cheaper, but it
is a change of *model*, not a technique applied to one, and the historical
curve compares the cheapest model at a *fixed capability*. So the cost curve
shows the swap beside its measured quality difference, and multiplies its
factor into a "same capability" total only when the target is shown to be as
good: a **non-inferiority** test, by this stated rule:

* **perplexity** on the same held-out tokens: the target's extra cross-entropy
  per token (paired over the very same tokens, utils.quality.paired_gap), plus
  :data:`Z` standard errors, stays within :data:`MARGIN_PERPLEXITY` (at most
  that much higher perplexity per token);
* **exact match** on the same questions: the baseline's lead, plus :data:`Z`
  standard errors of the difference of two proportions
  (``sqrt(p1(1-p1)/n + p2(1-p2)/n)``), stays within :data:`MARGIN_EXACT`.

Both must hold for "as good". A difference beyond :data:`Z` standard errors the
other way is "worse"; anything between is "not established", and the words say
how wide the bound was (40 questions cannot bound a 5-point difference).
Without a paired perplexity (another tokenizer, older records) or with random
weights, the quality is "not compared" and the swap is never multiplied in.
The pair always comes from one run (utils.chain: notebook 06, 09 or a benchmark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .steps import rate

Z = 2.0                   # standard errors: the stated noise band (about 95% for a normal error)
MARGIN_PERPLEXITY = 0.05  # "as good": at most 5% higher perplexity per token, bound included
MARGIN_EXACT = 0.05       # "as good": at most 5 points lower exact match, bound included


@dataclass(frozen=True)
class Swap:
    """Baseline -> target: the cost factor (same $/hour, same request) and the quality beside it."""

    baseline: dict
    target: dict
    factor: float                  # cost(baseline) / cost(target)
    standing: str                  # "as good", "worse" or "not established" (see the rule)
    quality: str                   # the quality difference in words, with its figures

    @property
    def as_good(self) -> bool:
        """Whether the target is at least as good as the baseline within noise: only then does
        the swap count toward a same-capability total."""
        return self.standing == "as good"

    @property
    def verdict(self) -> str:
        cost = "cheaper" if self.factor > 1 else "dearer"
        return {"as good": f"{cost} and as good (within the stated margins)", "worse": f"{cost} and worse"}.get(
            self.standing, f"{cost}, quality not established")


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
    parts, good, worse_any = [], [], False
    gap = _gap(baseline, target)
    if tm.get("perplexity") and bm.get("perplexity"):
        text = f"perplexity {tm['perplexity']:.2f} vs {bm['perplexity']:.2f}"
        if gap is None:
            good.append(False)
            parts.append(f"{text} (no paired noise estimate: not established)")
        else:
            worse = gap["nll"] > Z * gap["se"]
            bound = math.exp(gap["nll"] + Z * gap["se"]) - 1
            fine = bound <= MARGIN_PERPLEXITY
            worse_any |= worse
            good.append(fine)
            room = math.log1p(MARGIN_PERPLEXITY) - gap["nll"]
            tokens = gap.get("tokens")
            need = (f"; about {math.ceil(tokens * (Z * gap['se'] / room) ** 2):,} tokens would be needed"
                    if not (worse or fine) and room > 0 and isinstance(tokens, (int, float)) else "")
            parts.append(f"{text} ({math.exp(gap['nll']) - 1:+.1%} per token, at most {bound:+.1%} with "
                         f"{Z:g} paired standard errors: "
                         + ("worse" if worse else f"within the {MARGIN_PERPLEXITY:.0%} margin" if fine else
                            f"not shown within the {MARGIN_PERPLEXITY:.0%} margin{need}") + ")")
    else:
        good.append(False)
        parts.append("perplexity not measured for both")
    n = tm.get("exact_match_items") or bm.get("exact_match_items")
    if isinstance(tm.get("exact_match"), (int, float)) and isinstance(bm.get("exact_match"), (int, float)) and n:
        pt, pb = tm["exact_match"], bm["exact_match"]
        variance = pt * (1 - pt) + pb * (1 - pb)
        se = math.sqrt(variance / n)        # unpaired: the records keep no per-question answers
        lead = pb - pt
        worse = lead > Z * se if se > 0 else lead > 0
        fine = lead + Z * se <= MARGIN_EXACT
        worse_any |= worse
        good.append(fine)
        if worse or fine:
            words = "worse" if worse else f"within the {MARGIN_EXACT * 100:.0f}-point margin"
        else:
            room = MARGIN_EXACT - lead
            need = f"; about {math.ceil(Z ** 2 * variance / room ** 2):,} questions would be needed" if room > 0 else ""
            words = (f"not shown within the {MARGIN_EXACT * 100:.0f}-point margin: the baseline's lead "
                     f"{lead * 100:.1f} points plus {Z:g} standard errors ({Z * se * 100:.1f} points on {n} questions) "
                     f"is {(lead + Z * se) * 100:.1f}{need}")
        parts.append(f"exact match {pt:.1%} vs {pb:.1%} of {n} ({words})")
    else:
        good.append(False)
        parts.append("exact match not measured for both")
    standing = "worse" if worse_any else "as good" if all(good) else "not established"
    return standing, "; ".join(parts)


def rule() -> str:
    """The swap's rule in words, from the constants it is applied with."""
    return (f"as good: the target's extra perplexity per token plus {Z:g} paired standard errors is at most "
            f"{MARGIN_PERPLEXITY:.0%}, and the baseline's exact-match lead plus {Z:g} standard errors of the "
            f"difference is at most {MARGIN_EXACT * 100:.0f} points; worse: either beyond {Z:g} standard errors "
            f"the other way; otherwise not established")


def model_swap(baseline: dict | None, target: dict | None, price_per_hour: float) -> Swap | None:
    """The swap from ``baseline`` to ``target`` (the target, or a mixture of experts), two records of
    one run (utils.chain), or None without both."""
    if baseline is None or target is None:
        return None
    standing, words = judge(baseline, target)
    from .cost import cost_per_million
    factor = cost_per_million(price_per_hour, rate(baseline)) / cost_per_million(price_per_hour, rate(target))
    return Swap(baseline, target, factor, standing, words)
