"""The chain of workshop steps: which measured configuration each technique builds on.

Techniques compound only when each is measured *on top of* the best
configuration found so far, so every step names the steps it may build on and
takes the cheapest of them that the learner measured (highest end-to-end
tokens/s at the standard request):

=================  ==========================================================
step               builds on
=================  ==========================================================
larger baseline    nothing: a model choice, compared with the target apart
                   from the techniques (utils.swap), never a technique
mixture of experts nothing: the other model choice (notebook 09), compared with
                   the larger baseline like the target
target             nothing: the start of the techniques (the target model
                   unquantized; where that does not fit the GPU, a computed
                   16-bit run on another GPU, utils.counterfactual)
+ 8-bit, + 4-bit   target (the same model, quantized)
+ attention        the cheapest of target, + 8-bit, + 4-bit
+ speculative      the cheapest of target, + 8-bit, + 4-bit, + attention
+ compile          the same: a static KV cache that transformers compiles
                   with torch.compile (where it applies), one sequence
+ batching         the same as + speculative: transformers' assisted
                   generation runs one sequence at a time, so speculative
                   decoding and batching are alternatives, not a stack
+ continuous       the same, or + batching: the same requests served by
  batching         transformers' continuous batching (paged KV cache)
=================  ==========================================================

**Like for like.** Each step is priced from the learner's *latest run* of it:
the run (a notebook session or a benchmark run, ``record["run"]``) of the
newest record for that step, and within that run the step's fastest
configuration (a run that tried several attention kernels or batch sizes
offers its best one). Earlier runs are never consulted, so a slower rerun moves
the curve up: the curve is never the best of all runs. Records written before
run ids existed are each their own run.

A step's factor is ``cost(base) / cost(step)`` from median tokens/s. A
technique is *kept* when its configuration differs from its base's and it is
measurably cheaper: faster, with repeat ranges that do not overlap (otherwise
the gain may be noise). Later steps build only on kept steps and on the target
(the model the techniques are applied to, always built on). Because every
factor is taken against the configuration it was built on, the factors along a
chain multiply: ``cost(target) / cost(step) = factor(step) * factor(base) * ...``.

A record of step ``target`` measured in 8 or 4 bits (notebook 01 on a T4,
where the 16-bit model does not fit) is that precision's step: it is the
quantized model, and the 16-bit start is then computed (utils.counterfactual).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .memory import FOUR_BIT

STEP_ORDER = ["larger baseline", "mixture of experts", "target", "+ 8-bit", "+ 4-bit", "+ attention",
              "+ speculative", "+ compile", "+ batching", "+ continuous batching"]

MODEL_STEPS = ("larger baseline", "mixture of experts", "target")      # models, not techniques
MODEL_CHOICES = MODEL_STEPS[:2]       # other models, shown beside the techniques, never on their chain
TECHNIQUE_START = "target"
QUANTIZED_STEPS = ("+ 8-bit", "+ 4-bit")
_PRECISION_STEPS = (TECHNIQUE_START,) + QUANTIZED_STEPS
BUILDS_ON: dict[str, tuple[str, ...]] = {
    "larger baseline": (),
    "mixture of experts": (),
    "target": (),
    "+ 8-bit": ("target",),
    "+ 4-bit": ("target",),
    "+ attention": _PRECISION_STEPS,
    "+ speculative": _PRECISION_STEPS + ("+ attention",),
    "+ compile": _PRECISION_STEPS + ("+ attention",),
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


def describe(settings: dict, metrics: dict) -> str:
    """A configuration in words: model, precision, attention, draft, batch, cache."""
    parts = [settings.get("model", "?"), settings.get("precision", "")]
    if settings.get("attn_implementation"):
        parts.append(settings["attn_implementation"])
    if settings.get("draft_length"):
        parts.append(f"draft x{settings['draft_length']}")
    if settings.get("cache_implementation"):
        compiled = settings.get("compiled")
        parts.append(f"{settings['cache_implementation']} cache"
                     + ("" if compiled is None else ", compiled" if compiled else ", not compiled"))
    if metrics.get("batch", 1) != 1:
        parts.append(f"batch {metrics['batch']}")
    if settings.get("random_weights"):
        parts.append("RANDOM WEIGHTS")
    return ", ".join(p for p in parts if p)


def run_of(record: dict) -> str:
    """The run that measured a record: its run id, or (older records) its own timestamp."""
    return record.get("run") or f"record at {record.get('timestamp')}"


def curve_step(record: dict) -> str | None:
    """The cost-curve step a record belongs to: its ``step``, except that the target measured
    in 8 or 4 bits (where 16-bit does not fit) is the quantized step it really is."""
    step = record.get("step")
    if step == TECHNIQUE_START:
        precision = (record.get("settings") or {}).get("precision")
        if precision == "int8":
            return "+ 8-bit"
        if precision in FOUR_BIT:
            return "+ 4-bit"
    return step if step in STEP_ORDER else None


@dataclass(frozen=True)
class Link:
    """One step of the chain: its record, the step it builds on (None: a start), and whether
    that record is the very configuration it built on (a re-measurement). ``computed``: the
    record is not a measurement but a stated computation (utils.counterfactual)."""

    step: str
    record: dict
    base: str | None
    same_as_base: bool = False
    within_noise: bool = False
    kept: bool | None = None      # None for a start
    computed: bool = False
    on_computed: bool = False     # built on a computed start: the first thing measured here

    @property
    def established(self) -> bool:
        """Whether later steps may build on it: a start, a model, a kept technique, or the
        measured step on a computed start (the quantized model that runs on this GPU)."""
        return self.base is None or self.step in MODEL_STEPS or bool(self.kept) or self.on_computed

    @property
    def tokens_per_s(self) -> float:
        return rate(self.record)


def step_records(records: list[dict], group: tuple | None = None) -> list[dict]:
    """The records that can be cost-curve steps, from one group (default: the newest record's)."""
    steps = [r for r in records if curve_step(r) and rate(r)]
    if steps and group is None:
        group = group_of(steps[-1])
    return [r for r in steps if group_of(r) == group]


def standard_workload(records: list[dict]) -> tuple | None:
    """The request most step records were timed on; prices compare like with like."""
    counts = Counter(workload_of(r) for r in records)
    return counts.most_common(1)[0][0] if counts else None


def latest_runs(records: list[dict], group: tuple | None = None) -> dict[str, list[dict]]:
    """For each step, the records of its latest run at the standard workload within one group
    (oldest first): the only records the curve prices that step from."""
    mine = step_records(records, group)
    workload = standard_workload(mine)
    by_step: dict[str, list[dict]] = {}
    for r in mine:
        if workload_of(r) == workload:
            by_step.setdefault(curve_step(r), []).append(r)
    return {step: [r for r in rs if run_of(r) == run_of(rs[-1])] for step, rs in by_step.items()}


def latest_per_step(records: list[dict], group: tuple | None = None) -> dict[str, dict]:
    """For each step, its fastest configuration in the latest run that measured it."""
    return {step: max(rs, key=rate) for step, rs in latest_runs(records, group).items()}


def coverage(records: list[dict], group: tuple | None = None) -> dict:
    """How many step records the curve uses, and how many it leaves out and why."""
    all_steps = [r for r in records if curve_step(r) and rate(r)]
    mine = step_records(records, group)
    workload = standard_workload(mine)
    standard = sum(workload_of(r) == workload for r in mine)
    used = sum(len(rs) for rs in latest_runs(records, group).values())
    return dict(group=group_of(mine[-1]) if mine else group, workload=workload, used=used,
                other_group=len(all_steps) - len(mine), other_request=len(mine) - standard,
                earlier_runs=standard - used)


def cheapest(best: dict[str, dict], candidates: tuple[str, ...]) -> str | None:
    """The candidate step with the highest tokens/s, or None if none was measured."""
    measured = [s for s in candidates if s in best]
    return max(measured, key=lambda s: rate(best[s])) if measured else None


def chain(records: list[dict], group: tuple | None = None, start: dict | None = None) -> list[Link]:
    """The steps in workshop order, each linked to the step it builds on.

    ``start``, a computed ``target`` record (utils.counterfactual), stands in for the target
    when none was measured: the quantized steps then build on it, and nothing else does (a
    configuration that was never run cannot be built on). A record that says which step it
    was built on (``settings["builds_on"]``) keeps that link when that step is measured;
    otherwise the cheapest allowed earlier step is taken, as :func:`base_for` would have
    chosen it. A step that is not kept (dearer, within the noise, or the same configuration
    as its base: SDPA is already transformers' default) is not built on: later steps link
    past it.
    """
    best = latest_per_step(records, group)
    computed = TECHNIQUE_START not in best and start is not None
    if computed:
        best = {TECHNIQUE_START: start, **best}
    links: dict[str, Link] = {}
    for step in STEP_ORDER:
        if step not in best:
            continue
        if step == TECHNIQUE_START and computed:
            links[step] = Link(step, best[step], None, computed=True)
            continue
        named = (best[step].get("settings") or {}).get("builds_on")
        while named in links and not links[named].established:
            named = links[named].base
        allowed = _candidates(step, links)
        base = named if named in allowed else cheapest(best, allowed)
        same = base is not None and configuration(best[step]) == configuration(best[base])
        on_computed = base is not None and links[base].computed
        noise = base is not None and not on_computed and within_noise(best[step], best[base])
        kept = None if base is None else rate(best[step]) > rate(best[base]) and not same and not noise
        links[step] = Link(step, best[step], base, same, noise, kept, on_computed=on_computed)
    return list(links.values())


def _candidates(step: str, links: dict[str, Link]) -> tuple[str, ...]:
    """Steps ``step`` may build on: measured starts and kept techniques; a computed start
    only for the quantized steps (the same model, which is what it stands in for)."""
    return tuple(s for s in BUILDS_ON[step] if s in links and links[s].established
                 and (not links[s].computed or step in QUANTIZED_STEPS))


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
                builds_on=curve_step(record), tokens_per_s=rate(record))
