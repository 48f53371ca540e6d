"""One selection of records, one chain of steps: what every view of the cost curve reads.

**Selection.** The step records of one group (profile, machine, real or random
weights: utils.steps.group_of) at the standard request, by run (a notebook
session or a benchmark run, ``record["run"]``). Each step is taken from one run:

* the **target** (the start of the techniques) from the latest run of its own
  notebook (01) or of a benchmark: a notebook that re-measures the target for
  its own comparison (02, 06, 09) never moves the start;
* the **larger baseline** from the latest run of notebook 06 (or a benchmark)
  that measured it beside the target, the **mixture of experts** from the
  latest run of notebook 09 that measured it beside the baseline: each swap is
  the ratio of two measurements of one run;
* each **technique** from its latest run, never the best of all runs.

Where the owning notebook has not run, the latest run that has the step stands
in, and the link says so (``borrowed``).

**Like for like, within one run.** A technique's factor is the ratio of two
measurements of the *same run*: the step (its run's fastest configuration other
than the base) and the configuration it builds on, measured again in that run
(each technique notebook measures its base: 02 the 16-bit target, 03 the default
SDPA, 04 the target without a draft, 05 batch 1, 08 the static batch). Where the
latest run did not measure its base, the latest run of the step that did is used
(``base_from``: "an earlier run"); where none did, the base's own record from
another run, said in words ("another run"), never silently.

**The chain.** Each step builds on the cheapest established step it may follow
(utils.steps.BUILDS_ON), or on the one its records name (``builds_on``) while
that one is established. Its ``level`` is the start's $/1M divided by the
factors down to it, so the factors along a chain multiply exactly to the levels
the views draw. The **path** is the chain from the start to the cheapest
established level; every link gets one ``status`` in words that every view
prints the same way (:data:`STATUSES`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .cost import cost_per_million
from .steps import (BUILDS_ON, MODEL_CHOICES, QUANTIZED_STEPS, STEP_ORDER, TECHNIQUE_START,
                    configuration, curve_step, group_of, rate, run_of, standard_workload, within_noise,
                    workload_of)

BASELINE, MOE = MODEL_CHOICES
# the notebooks whose run owns a step (a benchmark or GPU-check run owns every step it holds)
OWNERS = {TECHNIQUE_START: ("01 measuring cost",), BASELINE: ("06 larger baseline",),
          MOE: ("09 mixture of experts",)}
WHOLE_RUNS = ("benchmark", "gpu_check")
# what a model choice is compared with, in its own run
PARTNER = {BASELINE: (TECHNIQUE_START,) + QUANTIZED_STEPS, MOE: (BASELINE,)}

STATUSES = {
    "start": "the start of the techniques",
    "computed start": "computed start (no measurement: see its basis)",
    "model choice": "a model choice, apart from the techniques",
    "on the chain": "on the chain",
    "alternative": "kept, not on the chain",
    "same": "not kept: the same configuration as its base",
    "noise": "not kept: within the noise",
    "dearer": "not kept: dearer",
}


@dataclass(frozen=True)
class Selection:
    """The records the curve may use: one group, one request, by run (oldest run first)."""

    group: tuple | None
    workload: tuple | None
    runs: dict[str, list[dict]]
    other_group: int = 0
    other_request: int = 0

    def runs_with(self, steps: tuple[str, ...]) -> list[str]:
        """The runs holding a measurement of any of ``steps`` (a base measured again does not
        count), oldest first."""
        return [run for run, rs in self.runs.items() if _of(rs, steps)]


def select(records: list[dict], group: tuple | None = None) -> Selection:
    """The step records of ``group`` (default: the newest step record's) at their standard request."""
    steps = [r for r in records if curve_step(r) and rate(r)]
    if steps and group is None:
        group = group_of(steps[-1])
    mine = [r for r in steps if group_of(r) == group]
    workload = standard_workload(mine)
    runs: dict[str, list[dict]] = {}
    for r in mine:
        if workload_of(r) == workload:
            run = run_of(r)
            runs[run] = runs.pop(run, []) + [r]        # a run is as new as its newest record
    return Selection(group, workload, runs, other_group=len(steps) - len(mine),
                     other_request=sum(workload_of(r) != workload for r in mine))


def owns(record: dict, step: str) -> bool:
    """Whether ``record``'s run is ``step``'s own: its notebook's, or a benchmark's."""
    notebook = (record.get("settings") or {}).get("notebook")
    return record.get("kind") in WHOLE_RUNS or notebook in OWNERS.get(step, (notebook,))


def _of(records: list[dict], steps: tuple[str, ...]) -> list[dict]:
    """The measurements of ``steps`` among ``records``: never a record that only measured its
    step's base again (``settings["measures_base"]``, notebooks 04 and 08), nor a quantized target
    that a notebook measured for its own comparison (06 or 09 on a T4): that is the 4-bit step only
    where the target's own notebook (01) or a benchmark measured it."""
    return [r for r in records if curve_step(r) in steps and not (r.get("settings") or {}).get("measures_base")
            and (r.get("step") != TECHNIQUE_START or curve_step(r) == TECHNIQUE_START or owns(r, TECHNIQUE_START))]


def _source(record: dict) -> str:
    settings = record.get("settings") or {}
    return settings.get("notebook") or record.get("kind") or "?"


@dataclass(frozen=True)
class Link:
    """One step of the chain. ``record``: the step's measurement; ``base_record``: the configuration
    it builds on, measured in the same run (``base_from`` says where it came from otherwise);
    ``factor`` = base $/1M / step $/1M; ``level``: the start's $/1M over the factors down to here."""

    step: str
    record: dict
    usd: float
    level: float
    base: str | None = None
    base_record: dict | None = None
    base_usd: float | None = None
    factor: float | None = None
    base_from: str = "same run"         # "same run", "an earlier run" or "another run"
    same_as_base: bool = False
    within_noise: bool = False
    kept: bool | None = None            # None for a start or a model choice
    computed: bool = False
    on_computed: bool = False           # built on a computed start
    borrowed: str | None = None         # why a start or model choice comes from another notebook's run
    partner: dict | None = None         # a model choice's comparison, from its run
    status: str = ""
    alternative_to: str | None = None   # for a kept step off the path: the path's step it competes with
    base_note: str | None = None        # why a base measured in the run was not used

    @property
    def established(self) -> bool:
        """Whether later steps may build on it: a start, a kept technique, or the measured step on a
        computed start (the quantized model that runs on this GPU)."""
        return self.base is None or bool(self.kept) or self.on_computed

    @property
    def tokens_per_s(self) -> float:
        return rate(self.record)

    @property
    def on_chain(self) -> bool:
        return self.status in ("start", "computed start", "on the chain")

    def status_words(self) -> str:
        """The status as every view prints it."""
        words = STATUSES[self.status] if self.status else ""
        if self.status == "alternative":
            words += f" (an alternative to {self.alternative_to})" if self.alternative_to else ""
        return words


@dataclass(frozen=True)
class Chain:
    """The chain built from one selection at one price: its links in workshop order and its path."""

    links: list[Link]
    selection: Selection
    price_per_hour: float

    @property
    def by_step(self) -> dict[str, Link]:
        return {link.step: link for link in self.links}

    @property
    def path(self) -> list[Link]:
        """From the start to the cheapest established level, in order."""
        return [link for link in self.links if link.on_chain]

    @property
    def techniques(self) -> float | None:
        """How many times cheaper the path's end is than its start (the product of its factors)."""
        path = self.path
        return path[0].level / path[-1].level if path else None


def _usd(record: dict, price: float) -> float:
    settings = record.get("settings") or {}
    return cost_per_million(settings["price_per_hour"] if settings.get("computed") else price, rate(record))


def _start(selection: Selection, price: float) -> Link | None:
    runs = selection.runs_with((TECHNIQUE_START,))
    own = [run for run in runs if any(owns(r, TECHNIQUE_START) for r in _of(selection.runs[run], (TECHNIQUE_START,)))]
    if not runs:
        return None
    run = (own or runs)[-1]
    record = max(_of(selection.runs[run], (TECHNIQUE_START,)), key=rate)
    borrowed = None if own else (f"notebook 01 has not measured the target here: taken from "
                                 f"{_source(record)}'s run")
    usd = _usd(record, price)
    return Link(TECHNIQUE_START, record, usd, usd, borrowed=borrowed)


def _model_choice(step: str, selection: Selection, price: float) -> Link | None:
    runs = selection.runs_with((step,))
    if not runs:
        return None

    def partner(run: str) -> dict | None:
        mine = max(_of(selection.runs[run], (step,)), key=rate)
        precision = mine["settings"].get("precision")
        pairs = [r for r in selection.runs[run] if curve_step(r) in PARTNER[step] and r is not mine
                 and r["settings"].get("model") != mine["settings"].get("model")
                 and (step != BASELINE or r["settings"].get("precision") == precision)
                 and (r["metrics"].get("batch") or 1) == 1]
        return max(pairs, key=rate) if pairs else None

    paired = [run for run in runs if partner(run) is not None]
    own = [run for run in paired if any(owns(r, step) for r in _of(selection.runs[run], (step,)))]
    run = (own or paired or runs)[-1]
    record = max(_of(selection.runs[run], (step,)), key=rate)
    borrowed = None if own or not paired else (f"{OWNERS[step][0]} has not measured it beside its "
                                              f"comparison here: taken from {_source(record)}'s run")
    usd = _usd(record, price)
    return Link(step, record, usd, usd, borrowed=borrowed, partner=partner(run))


def _technique(step: str, base: Link, selection: Selection, price: float) -> Link | None:
    """``step`` measured against ``base``: the latest run of the step that measured the base's
    configuration too, else the latest run of the step against the base's own record."""
    runs = selection.runs_with((step,))
    if not runs:
        return None
    wanted = configuration(base.record)

    def pair(run: str) -> tuple[dict, dict | None, bool]:
        records = selection.runs[run]
        if base.computed:        # computed from this very run's quantized record (utils.counterfactual)
            bases = [base.record]
        else:
            bases = [r for r in records if configuration(r) == wanted]
            bases.sort(key=lambda r: curve_step(r) == base.step)           # the base's own step last
        mine = _of(records, (step,))
        others = [r for r in mine if configuration(r) != wanted]
        record = max(others or mine, key=rate)
        return record, (bases[-1] if bases else None), not others

    latest = runs[-1]
    pairs = {run: pair(run) for run in runs}                 # each run's (step, base, same) once
    with_base = [run for run, (r, b, _) in pairs.items() if b is not None and not _impossible(r, b)]
    run = with_base[-1] if with_base else latest
    record, base_record, same = pairs[run]
    base_from, note = "same run", None
    if base_record is None or _impossible(record, base_record):
        if base_record is not None:
            note = (f"its run measured its base at {rate(base_record):.1f} tok/s, which would make batch "
                    f"{_batch(record)} more than {_batch(record) // _batch(base_record)}x batch {_batch(base_record)}: "
                    f"a timing fault in that base, so the base's own record is used")
        base_from, base_record = "another run", base.record
    elif run != latest:
        base_from = "an earlier run"
    usd = _usd(record, price)
    base_usd = _usd(base_record, price)
    factor = base_usd / usd
    noise = not base.computed and within_noise(record, base_record)
    kept = factor > 1 and not same and not noise
    return Link(step, record, usd, base.level / factor, base=base.step, base_record=base_record,
                base_usd=base_usd, factor=factor, base_from=base_from, same_as_base=same,
                within_noise=noise, kept=kept, on_computed=base.computed, base_note=note)


def _batch(record: dict) -> int:
    return (record.get("metrics") or {}).get("batch") or 1


def _impossible(record: dict, base_record: dict | None) -> bool:
    """Whether a batch's gain over its base exceeds the ratio of their batch sizes: a step of B
    sequences is never faster than a step of one, so such a base was timed wrong (the kit's H100
    run has one, datasets/reference/README.md)."""
    if base_record is None or _batch(record) <= _batch(base_record) or base_record.get("settings", {}).get("computed"):
        return False
    return rate(record) / rate(base_record) > _batch(record) / _batch(base_record) * 1.02


def _candidates(step: str, links: dict[str, Link]) -> tuple[str, ...]:
    """Steps ``step`` may build on: measured starts and kept techniques; a computed start only for
    the quantized steps (the same model, which is what it stands in for)."""
    return tuple(s for s in BUILDS_ON[step] if s in links and links[s].established
                 and (not links[s].computed or step in QUANTIZED_STEPS))


def chain(records: list[dict], price_per_hour: float = 1.0, group: tuple | None = None,
          here_key: str | None = None) -> Chain:
    """The chain of one selection (:func:`select`), priced at ``price_per_hour``.

    ``here_key``: the gpus.csv row of the machine the records ran on; where no 16-bit target was
    measured and the 16-bit model does not fit it, a computed start stands in (utils.counterfactual)
    and only the quantized steps build on it."""
    selection = select(records, group)
    links: dict[str, Link] = {}
    start = _start(selection, price_per_hour)
    for step in STEP_ORDER:
        if step in MODEL_CHOICES:
            link = _model_choice(step, selection, price_per_hour)
        elif step == TECHNIQUE_START:
            link = start if start is not None else _computed_start(selection, price_per_hour, here_key)
        else:
            named = next((r["settings"].get("builds_on") for r in reversed(_of(
                sum(selection.runs.values(), []), (step,)))), None)
            while named in links and not links[named].established:
                named = links[named].base
            allowed = _candidates(step, links)
            if not allowed:
                link = _standalone(step, selection, price_per_hour)
            else:
                base = named if named in allowed else min(allowed, key=lambda s: links[s].level)
                link = _technique(step, links[base], selection, price_per_hour)
        if link is not None:
            links[step] = link
    return Chain(_with_status(list(links.values())), selection, price_per_hour)


def _standalone(step: str, selection: Selection, price: float) -> Link | None:
    """A step with nothing measured to build on (a 4-bit target on a CPU, where no 16-bit start is
    computed): a start of its own."""
    runs = selection.runs_with((step,))
    if not runs:
        return None
    record = max(_of(selection.runs[runs[-1]], (step,)), key=rate)
    usd = _usd(record, price)
    return Link(step, record, usd, usd)


def _computed_start(selection: Selection, price: float, here_key: str | None) -> Link | None:
    if here_key is None:
        return None
    from .counterfactual import sixteen_bit_start
    latest = {}
    for step in QUANTIZED_STEPS:
        runs = selection.runs_with((step,))
        if runs:
            latest[step] = max(_of(selection.runs[runs[-1]], (step,)), key=rate)
    record = sixteen_bit_start(latest, here_key, price)
    if record is None:
        return None
    usd = _usd(record, price)
    return Link(TECHNIQUE_START, record, usd, usd, computed=True)


def _with_status(links: list[Link]) -> list[Link]:
    """Each link's one status, from the path to the cheapest established level."""
    techniques = {link.step: link for link in links if link.step not in MODEL_CHOICES}
    path: list[str] = []
    established = [link for link in techniques.values() if link.established]
    if established:
        step = min(established, key=lambda link: link.level).step
        while step is not None:
            path.insert(0, step)
            step = techniques[step].base
    out = []
    for link in links:
        alternative = None
        if link.step in MODEL_CHOICES:
            status = "model choice"
        elif link.base is None and link.step in path:
            status = "computed start" if link.computed else "start"
        elif link.step in path:
            status = "on the chain"
        elif link.base is None:
            status = "alternative"                   # a start of its own, off the path
        elif link.kept or link.on_computed:
            status = "alternative"
            alternative = next((s for s in path if techniques[s].base == link.base), None)
        else:
            status = "same" if link.same_as_base else "noise" if link.within_noise else "dearer"
        out.append(replace(link, status=status, alternative_to=alternative))
    return out


def base_for(step: str, records: list[dict], group: tuple) -> dict | None:
    """The record a new ``step`` should build on: the allowed step at the lowest level."""
    if step not in BUILDS_ON:
        raise ValueError(f"unknown step {step!r}; steps are {', '.join(STEP_ORDER)}")
    links = chain(records, group=group).by_step
    allowed = _candidates(step, links)
    return links[min(allowed, key=lambda s: links[s].level)].record if allowed else None


def build_on(step: str, records: list[dict], group: tuple, default_precision: str) -> dict:
    """The settings a new ``step`` runs with: precision and attention of the record it builds on
    (:func:`base_for`), or ``default_precision`` and SDPA when nothing before it was measured.
    ``builds_on`` names that step (None for the default), to be stored with the new records;
    ``batch`` is the base's batch size (the configuration a notebook measures again as its base)."""
    record = base_for(step, records, group)
    if record is None:
        return dict(precision=default_precision, attn_implementation="sdpa", builds_on=None,
                    tokens_per_s=None, batch=1)
    settings = record["settings"]
    return dict(precision=settings["precision"],
                attn_implementation=settings.get("attn_implementation") or "sdpa",
                builds_on=curve_step(record), tokens_per_s=rate(record),
                batch=(record.get("metrics") or {}).get("batch") or 1)


def prefer(base: dict, records: list[dict], group: tuple, step: str, precision: str) -> dict:
    """``base`` (:func:`build_on`'s) at ``precision`` instead, when the record it builds on is within
    the noise of that precision's record of the same run and step (the two measured alike): how a class
    keeps reading its shared copy when a 4-bit variant it does not share won by noise alone."""
    record = base_for(step, records, group)
    if record is None or base["precision"] == precision:
        return base
    rival = next((r for r in reversed(records) if run_of(r) == run_of(record) and curve_step(r) == curve_step(record)
                  and group_of(r) == group and (r.get("settings") or {}).get("precision") == precision
                  and rate(r)), None)
    if rival is None or not within_noise(record, rival):
        return base
    return dict(base, precision=precision, tokens_per_s=rate(rival), within_noise_of=base["precision"])


def coverage(selection: Selection, chain_: Chain) -> dict:
    """How many step records the curve uses, and how many it leaves out and why."""
    used = {id(link.record) for link in chain_.links} | {id(link.base_record) for link in chain_.links
                                                         if link.base_record is not None}
    used |= {id(link.partner) for link in chain_.links if link.partner is not None}
    standard = sum(len(rs) for rs in selection.runs.values())
    used_runs = {run_of(link.record) for link in chain_.links}
    in_used_runs = sum(len(rs) for run, rs in selection.runs.items() if run in used_runs)
    return dict(group=selection.group, workload=selection.workload, used=len(used),
                other_group=selection.other_group, other_request=selection.other_request,
                earlier_runs=standard - in_used_runs)
