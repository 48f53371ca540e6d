"""The chain of workshop steps: which measured configuration each technique builds on.

Techniques compound only when each is measured *on top of* the best
configuration found so far, so every step names the steps it may build on and
takes the cheapest of them that the learner measured:

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

How the steps are selected from the learner's runs, measured against their
bases within one run, and chained is utils.chain's job; this module names the
steps and what a record says about them.

A record of step ``target`` measured in 8 or 4 bits (notebook 01 on a T4,
where the 16-bit model does not fit) is that precision's step: it is the
quantized model, and the 16-bit start is then computed (utils.counterfactual).
"""

from __future__ import annotations

from collections import Counter

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
            s.get("draft_length"), m.get("batch") or 1, s.get("cache_implementation") or "dynamic")


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


