"""The chain of workshop steps: which measured configuration each technique builds on.

Techniques compound only when each is measured *on top of* the best
configuration found so far, so every step names the steps it may build on and
takes the cheapest of them that the learner measured (highest end-to-end
tokens/s at the standard request):

=================  ==========================================================
step               builds on
=================  ==========================================================
larger baseline    nothing: the reference point
target             larger baseline (a smaller model instead of a larger one)
+ 8-bit, + 4-bit   target (the same model, quantized)
+ attention        the cheapest of target, + 8-bit, + 4-bit
+ speculative      the cheapest of target, + 8-bit, + 4-bit, + attention
+ batching         the same as + speculative: transformers' assisted
                   generation runs one sequence at a time, so speculative
                   decoding and batching are alternatives, not a stack
+ continuous       the same, or + batching: the same requests served by
  batching         transformers' continuous batching (paged KV cache)
=================  ==========================================================

A step's factor is ``cost(base) / cost(step)`` from median tokens/s. A
technique is *kept* when its configuration differs from its base's and it is
measurably cheaper: faster, with repeat ranges that do not overlap (otherwise
the gain may be noise). Later steps build only on kept steps and on the two
models themselves (the baseline and the target are what the techniques are
applied to, so they are always built on). Because every factor is taken
against the configuration it was built on, the factors along a chain multiply:
``cost(first) / cost(step) = factor(step) * factor(base) * ...``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

STEP_ORDER = ["larger baseline", "target", "+ 8-bit", "+ 4-bit", "+ attention",
              "+ speculative", "+ batching", "+ continuous batching"]

MODEL_STEPS = ("larger baseline", "target")      # models, not techniques: always built on
_PRECISION_STEPS = ("target", "+ 8-bit", "+ 4-bit")
BUILDS_ON: dict[str, tuple[str, ...]] = {
    "larger baseline": (),
    "target": ("larger baseline",),
    "+ 8-bit": ("target",),
    "+ 4-bit": ("target",),
    "+ attention": _PRECISION_STEPS,
    "+ speculative": _PRECISION_STEPS + ("+ attention",),
    "+ batching": _PRECISION_STEPS + ("+ attention",),
    "+ continuous batching": _PRECISION_STEPS + ("+ attention", "+ batching"),
}


def rate(record: dict) -> float | None:
    """End-to-end tokens/s (median) of a record, or None when it has none."""
    value = ((record.get("metrics") or {}).get("e2e_tok_s") or {}).get("median")
    return value if isinstance(value, (int, float)) and value > 0 else None


def spread(record: dict) -> tuple[float, float]:
    """(lowest, highest) end-to-end tokens/s over a record's repeats (the median twice if absent)."""
    stat = (record.get("metrics") or {}).get("e2e_tok_s") or {}
    return stat.get("low", rate(record)), stat.get("high", rate(record))


def within_noise(a: dict, b: dict) -> bool:
    """Whether two records' repeat ranges overlap: then their difference is not established."""
    from .measure import Stat
    (a_low, a_high), (b_low, b_high) = spread(a), spread(b)
    return Stat(rate(a), a_low, a_high, 0).overlaps(Stat(rate(b), b_low, b_high, 0))


def group_of(record: dict) -> tuple:
    """Records compare only within one profile on one machine, real and random weights apart."""
    settings = record.get("settings") or {}
    return (settings.get("profile"), (record.get("hardware") or {}).get("gpu_name"),
            bool(settings.get("random_weights")))


def workload_of(record: dict) -> tuple:
    """The request a record timed: (prompt tokens, new tokens); batch is a technique, not a workload."""
    m = record.get("metrics") or {}
    return m.get("prompt_tokens"), m.get("new_tokens")


def configuration(record: dict) -> tuple:
    """What was run, without when or where: two records with the same tuple ran the same thing."""
    s, m = record.get("settings") or {}, record.get("metrics") or {}
    return (s.get("model"), s.get("precision"), s.get("attn_implementation") or "sdpa",
            s.get("draft_length"), m.get("batch", 1), s.get("cache_implementation"))


@dataclass(frozen=True)
class Link:
    """One measured step of the chain: its best record, the step it builds on (None: a start),
    and whether that best record is the very configuration it built on (a re-measurement)."""

    step: str
    record: dict
    base: str | None
    same_as_base: bool = False
    within_noise: bool = False
    kept: bool | None = None      # None for a start

    @property
    def established(self) -> bool:
        """Whether later steps may build on it: a start, a model, or a kept technique."""
        return self.base is None or self.step in MODEL_STEPS or bool(self.kept)

    @property
    def tokens_per_s(self) -> float:
        return rate(self.record)


def step_records(records: list[dict], group: tuple | None = None) -> list[dict]:
    """The records that can be cost-curve steps, from one group (default: the newest record's)."""
    steps = [r for r in records if r.get("step") in STEP_ORDER and rate(r)]
    if steps and group is None:
        group = group_of(steps[-1])
    return [r for r in steps if group_of(r) == group]


def standard_workload(records: list[dict]) -> tuple | None:
    """The request most step records were timed on; prices compare like with like."""
    counts = Counter(workload_of(r) for r in records)
    return counts.most_common(1)[0][0] if counts else None


def best_per_step(records: list[dict], group: tuple | None = None) -> dict[str, dict]:
    """For each step, its fastest record at the standard workload within one group."""
    mine = step_records(records, group)
    workload = standard_workload(mine)
    best: dict[str, dict] = {}
    for r in mine:
        if workload_of(r) == workload and (r["step"] not in best or rate(r) > rate(best[r["step"]])):
            best[r["step"]] = r
    return best


def coverage(records: list[dict], group: tuple | None = None) -> dict:
    """How many step records the curve uses, and how many it leaves out and why."""
    all_steps = [r for r in records if r.get("step") in STEP_ORDER and rate(r)]
    mine = step_records(records, group)
    workload = standard_workload(mine)
    used = sum(workload_of(r) == workload for r in mine)
    return dict(group=group_of(mine[-1]) if mine else group, workload=workload, used=used,
                other_group=len(all_steps) - len(mine), other_request=len(mine) - used)


def cheapest(best: dict[str, dict], candidates: tuple[str, ...]) -> str | None:
    """The measured candidate step with the highest tokens/s, or None if none was measured."""
    measured = [s for s in candidates if s in best]
    return max(measured, key=lambda s: rate(best[s])) if measured else None


def chain(records: list[dict], group: tuple | None = None) -> list[Link]:
    """The measured steps in workshop order, each linked to the step it builds on.

    A record that says which step it was built on (``settings["builds_on"]``)
    keeps that link when the step was measured; otherwise the cheapest allowed
    earlier step is taken, as :func:`base_for` would have chosen it. A step
    that is not kept (dearer, within the noise, or the same configuration as
    its base: SDPA is already transformers' default) is not built on: later
    steps link past it.
    """
    best = best_per_step(records, group)
    links: dict[str, Link] = {}
    for step in STEP_ORDER:
        if step not in best:
            continue
        named = (best[step].get("settings") or {}).get("builds_on")
        while named in links and not links[named].established:
            named = links[named].base
        base = named if named in links and named in BUILDS_ON[step] else \
            cheapest(best, _candidates(step, links))
        same = base is not None and configuration(best[step]) == configuration(best[base])
        noise = base is not None and within_noise(best[step], best[base])
        kept = None if base is None else rate(best[step]) > rate(best[base]) and not same and not noise
        links[step] = Link(step, best[step], base, same, noise, kept)
    return list(links.values())


def _candidates(step: str, links: dict[str, Link]) -> tuple[str, ...]:
    """Measured steps ``step`` may build on: starts, models and kept techniques."""
    return tuple(s for s in BUILDS_ON[step] if s in links and links[s].established)


def base_for(step: str, records: list[dict], group: tuple) -> dict | None:
    """The record a new ``step`` should build on: the cheapest measured step it may follow."""
    if step not in BUILDS_ON:
        raise ValueError(f"unknown step {step!r}; steps are {', '.join(STEP_ORDER)}")
    links = {link.step: link for link in chain(records, group)}
    name = cheapest({s: link.record for s, link in links.items()}, _candidates(step, links))
    return links[name].record if name else None


def build_on(step: str, records: list[dict], group: tuple, default_precision: str) -> dict:
    """The settings a new ``step`` runs with: precision and attention of the record it builds on
    (:func:`base_for`), or ``default_precision`` and SDPA when nothing before it was measured.
    ``builds_on`` names that step (None for the default), to be stored with the new records."""
    record = base_for(step, records, group)
    if record is None:
        return dict(precision=default_precision, attn_implementation="sdpa", builds_on=None,
                    tokens_per_s=None)
    settings = record["settings"]
    return dict(precision=settings["precision"],
                attn_implementation=settings.get("attn_implementation") or "sdpa",
                builds_on=record["step"], tokens_per_s=rate(record))
