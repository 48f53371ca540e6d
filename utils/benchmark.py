"""The kit's headless benchmark: every technique of the workshop, measured and recorded.

    python -m utils.benchmark                      # profile chosen from the hardware
    python -m utils.benchmark --profile offline    # the embedded CPU profile
    python -m utils.benchmark --random-weights     # real architecture, random weights (no download)

Steps (each appended to the results store with its full context):

1. ``larger baseline``   - the profile's baseline model in the compute dtype (NF4 if only that fits);
   ``mixture of experts`` - the profile's mixture of experts likewise, where it has one
2. ``target``            - the target model in the compute dtype (the profile's first precision
                           that fits otherwise: NF4 on a T4, as in notebook 01)
3. ``+ 4-bit``           - the target in NF4 (and every other profile precision)
4. ``+ attention``       - every attention implementation across prompt lengths
5. ``+ speculative``     - assisted generation with the draft, per draft length
6. ``+ compile``         - a static KV cache, which transformers compiles with torch.compile on a
                           GPU for a 16-bit model (recorded with ``compiled`` false where it does
                           not: a CPU, a bitsandbytes model)
7. ``+ batching``        - throughput across batch sizes
8. ``+ continuous batching`` - the largest batch's requests served by transformers' continuous
                           batching with a paged KV cache (utils.serving)

Both models' quality is measured on the same tokens, and the target's record carries the paired
difference from the baseline (``quality_gap``, utils.quality.paired_gap) for the model swap.

Steps 4-8 build on the cheapest configuration measured before them (see
utils.steps): the attention sweep runs at the fastest precision, speculative
decoding and batching at the fastest precision and attention implementation.
Each record names the step it built on (``settings["builds_on"]``).

Results measured with ``--random-weights`` are labelled so in every record;
their speed and memory are real, their quality figures are meaningless and are
not measured.

A step that cannot be measured (a model that does not fit or cannot load, a
draft with another tokenizer, an impossible timing, a non-finite logit) stops
with its reason and records nothing; the next step still runs. So does a step that
fails with any other error (an untested library version, a bug): its traceback is kept
in ``<results>_errors.log`` beside the results file (or said, where that file cannot be
written). A measurement the results file cannot take (a full disk) is kept: it is said NOT
SAVED with the reason, kept in memory and the later steps still run; at the end each kept
record is tried once more, and the rest are written to a file in the temporary folder (else
printed as JSON lines to paste into the results file), and the command exits with status 1.
A step that runs
past its time budget (the profile's ``step_budget_s``, else
:data:`STEP_BUDGET_S`; checked before each measurement) stops there, keeping
what it recorded. The command then exits with status 1 and lists the stopped steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from . import atomic, cli
from .models.hardware import Hardware, configure_threads, detect_hardware
from .models.loading import Loaded, ModelLoadError, free, load_model
from .measure import ContextTooLongError, ImpossibleTimingError, measure_generation
from .memory import BYTES_16, ModelTooLargeError
from .models.preflight import fitting_precision
from .models.profiles import Profile, load_profile
from .quality import (SCORED_TOKENS, NonFiniteError, completion_items, exact_match, heldout_text,
                      paired_gap, perplexity)
from .quiet import quiet_transformers
from .serving import PagedCacheUnsupported
from .results import ResultsStore, _jsonable, check_writable, new_run, run_context
from .speculative import AcceptanceRecorder, PairError, check_pair, set_draft_length
from .chain import build_on

EM_ITEMS = 40          # code-completion questions (as in the notebooks)
STEP_BUDGET_S = 1800   # seconds a step may run unless its profile says otherwise (step_budget_s)


class BudgetExceeded(RuntimeError):
    """A step that ran past its time budget: stopped before its next measurement."""


# what stops one step (with its reason) and lets the next one run
STEP_STOPS = (ModelTooLargeError, ModelLoadError, PairError, ImpossibleTimingError, NonFiniteError,
              BudgetExceeded, ContextTooLongError)
STEP_SKIPS = (PagedCacheUnsupported,)    # a known limitation of the installed transformers, said in one line


class Bench:
    """Runs the steps for one profile on one machine, appending to one store."""

    def __init__(self, profile: Profile, hw: Hardware, store: ResultsStore,
                 random_weights: bool = False, log=print):
        self.profile, self.hw, self.store = profile, hw, store
        self.random_weights, self.log = random_weights, log
        self.text = heldout_text()
        self.context = run_context(hw)  # one context for the whole run
        self.run_id = new_run("benchmark")
        self.target_precision = fitting_precision(profile, hw)
        self.budget_s = float(profile.extra.get("step_budget_s", STEP_BUDGET_S))
        self.step_started = time.perf_counter()
        self.stopped: list[str] = []      # "step: reason" for each step that stopped
        self.scored: dict = {}            # role -> its perplexity (per-token losses), for the swap
        self.unsaved: list[dict] = []     # records the store could not take (a full disk): never lost
        self.unsaved_reason = ""          # why the last of them could not be written

    @property
    def error_log(self) -> Path:
        """Where an unexpected error's traceback is kept: beside the results store."""
        return self.store.path.with_name(self.store.path.stem + "_errors.log")

    def guarded(self, step: str, work, *args) -> None:
        """Run one step's ``work``; a reason it cannot be measured stops that step alone, said so.
        Any other error (a library the kit was not tested with, a bug) stops that step alone too:
        its one-line reason is said and its traceback kept in :attr:`error_log`; the next step runs."""
        self.step_started = time.perf_counter()
        try:
            work(*args)
        except STEP_SKIPS as err:         # the installed libraries cannot run it here: nothing is wrong
            self.log(f"[{step}] skipped: {err}")
        except STEP_STOPS as err:
            self.stopped.append(f"{step}: {err}")
            self.log(f"[{step}] STOPPED: {err}")
        except Exception as err:  # noqa: BLE001 - one step's failure must not cost the others
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            kept_in = self.keep_traceback(step, traceback.format_exc())
            self.stopped.append(f"{step}: unexpected error {reason} (traceback {kept_in})")
            self.log(f"[{step}] FAILED with an unexpected error, {reason}; the traceback is {kept_in}; "
                     f"the other steps still run")
        finally:
            free(None)                   # return a stopped step's memory before the next one

    def keep_traceback(self, step: str, trace: str) -> str:
        """Add ``trace`` to :attr:`error_log`; where the log cannot be written (a full disk) the
        traceback is said instead, since writing it must never stop the run. Returns where it is."""
        entry = (f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} [{step}] "
                 f"run {self.run_id}\n{trace}\n")
        try:
            atomic.append_text(self.error_log, entry)
        except OSError as err:
            self.log(f"[{step}] the traceback could not be kept in {self.error_log} "
                     f"({atomic.why(err)}); here it is:\n{trace}")
            return "above"
        return f"in {self.error_log}"

    def check_budget(self) -> None:
        spent = time.perf_counter() - self.step_started
        if spent > self.budget_s:
            raise BudgetExceeded(
                f"ran {spent:.0f} s, past its budget of {self.budget_s:.0f} s; the measurements before "
                f"this point are recorded. This architecture or machine is slower than the profile "
                f"expects: use fewer settings, or raise step_budget_s in the profile")

    def base(self, step: str) -> dict:
        """What ``step`` builds on: the cheapest configuration measured so far here (utils.steps)."""
        group = (self.profile.name, self.hw.gpu_name, self.random_weights)
        # the measurements kept in memory count too: a full disk never changes what a step builds on
        base = build_on(step, self.store.records(skip_corrupt=True) + self.unsaved, group,
                        self.target_precision)
        self.log(f"[{step}] building on {base['builds_on'] or 'nothing measured yet'}: "
                 f"{base['precision']}, {base['attn_implementation']}")
        return base

    def load(self, role: str, precision: str | None = None, attn: str = "sdpa") -> Loaded:
        ref = getattr(self.profile, role)
        return load_model(ref, precision, attn_implementation=attn, hw=self.hw,
                          random_weights=self.random_weights)

    def record(self, step: str, loaded: Loaded, metrics: dict, **settings) -> None:
        """Append one measurement to the store; one it cannot take (a full disk) is kept in
        :attr:`unsaved`, said NOT SAVED, and the run goes on (see :meth:`keep_unsaved`)."""
        settings = dict(loaded.settings(), role=settings.pop("role", None),
                        profile=self.profile.name, **settings)
        record = self.store.make_record("benchmark", step=step, settings=settings, metrics=metrics,
                                        context=self.context, run=self.run_id)
        try:
            self.store.write(record)
        except OSError as err:          # the measurement is taken: never lose it
            self.unsaved.append(record)
            self.unsaved_reason = atomic.why(err)
            self.log(f"[{step}] NOT SAVED: {self.store.path} cannot take the record ({self.unsaved_reason}); "
                     f"it is kept in memory ({len(self.unsaved)} so far), tried again at the end, and "
                     f"the later steps still run")

    def keep_unsaved(self) -> int:
        """At the end of the run: try the store once more for each record it could not take; the
        rest go to a file in the temporary folder, or, where that fails too, are printed as JSON
        lines to paste into the results file. Says where they are; returns how many are not in
        the store."""
        if not self.unsaved:
            return 0
        still = []
        for record in self.unsaved:
            try:
                self.store.write(record)
            except OSError as err:
                self.unsaved_reason = atomic.why(err)
                still.append(record)
        if len(still) < len(self.unsaved):
            self.log(f"saved {len(self.unsaved) - len(still)} kept record(s) to {self.store.path} on the "
                     f"second try")
        self.unsaved = still
        if not still:
            return 0
        lines = [json.dumps(r, default=_jsonable, allow_nan=False) for r in still]   # the store's own lines
        fallback = self.fallback_path()
        head = (f"NOT SAVED: {len(still)} measurement(s) of this run could not be added to {self.store.path} "
                f"({self.unsaved_reason})")
        try:
            with atomic.writing(fallback) as f:
                f.write("".join(line + "\n" for line in lines))
        except OSError as err:
            self.log(f"{head}, nor to {fallback} ({atomic.why(err)}). Here they are, one JSON line "
                     f"each: once the disk has room, add these lines to the end of {self.store.path}:")
            for line in lines:
                self.log(line)
            return len(still)
        self.log(f"{head}. They are kept in {fallback}: free some space, then add them with\n"
                 f"  cat {fallback} >> {self.store.path}\n(or read that file alone with --results)")
        return len(still)

    def fallback_path(self) -> Path:
        """Where the records the store could not take go at the end: the temporary folder, most
        often on another disk than the results."""
        return Path(tempfile.gettempdir()) / f"llmflation-unsaved-{self.run_id}.jsonl"

    def generation(self, loaded: Loaded, *, prompt_tokens: int | None = None, batch: int = 1,
                   extra_warmup: int = 0, **generate_kwargs):
        p = self.profile
        self.check_budget()
        return measure_generation(
            loaded.model, loaded.tokenizer, self.text,
            prompt_tokens=prompt_tokens or p.prompt_tokens[0], new_tokens=p.new_tokens,
            batch=batch, warmup=p.warmup + extra_warmup, repeats=p.repeats, device=self.hw.device,
            **generate_kwargs)

    def quality(self, loaded: Loaded, role: str) -> dict:
        """Perplexity and exact match; the target's also carries its paired gap to the baseline
        when the baseline was scored first (the same tokens: utils.quality.paired_gap)."""
        if self.random_weights:
            return {}
        ppl = perplexity(loaded.model, loaded.tokenizer, self.text, max_tokens=SCORED_TOKENS,
                         device=self.hw.device)
        self.scored[role] = ppl
        em = exact_match(loaded.model, loaded.tokenizer, completion_items(self.text, EM_ITEMS),
                         device=self.hw.device)
        gap = (paired_gap(ppl, self.scored["baseline"]) if role in ("target", "moe") and "baseline" in self.scored
               else None)
        return dict(ppl.as_dict(), exact_match=em, exact_match_items=EM_ITEMS,
                    **({"quality_gap": gap} if gap else {}))

    # --- the steps -------------------------------------------------------
    def model_at(self, step: str, role: str, precision: str | None) -> None:
        """Measure one model; ``precision`` None means the precision that fits (as the notebooks do:
        the compute dtype where it fits, else 4-bit, so a T4's 'target' is the NF4 model)."""
        try:
            loaded = self.load(role, precision or fitting_precision(self.profile, self.hw, role=role))
        except ModelTooLargeError as err:
            self.log(f"[{step}] skipped, predicted not to fit: {err}")
            return
        m = self.generation(loaded)
        self.record(step, loaded, dict(m.as_dict(), **self.quality(loaded, role)), role=role)
        self.log(f"[{step}] {loaded.ref.id} {loaded.precision}: "
                 f"{m.decode_tok_s.median:.1f} decode tok/s, peak {m.peak_memory_gb:.2f} GB")
        free(loaded)

    def attention(self) -> None:
        base = self.base("+ attention")
        for attn in self.profile.attention:
            if attn == "flash_attention_2" and not self.hw.flash_attn_usable:
                self.log(f"[+ attention] skipping {attn}: not usable on this machine")
                continue
            loaded = self.load("target", base["precision"], attn)
            for n in self.profile.prompt_tokens:
                m = self.generation(loaded, prompt_tokens=n)
                self.record("+ attention", loaded, m.as_dict(), role="target", builds_on=base["builds_on"])
                self.log(f"[+ attention] {attn} prompt {n}: prefill {m.prefill_s.median * 1e3:.1f} ms")
            free(loaded)

    def speculative(self) -> None:
        base = self.base("+ speculative")
        target = self.load("target", base["precision"], base["attn_implementation"])
        draft = self.load("draft")
        check_pair(target.model.config, draft.model.config, target.tokenizer, draft.tokenizer)
        for gamma in self.profile.draft_lengths:
            set_draft_length(draft.model, gamma)
            m = self.generation(target, assistant_model=draft.model)
            with AcceptanceRecorder(target.model) as rec:
                self.generation_once(target, draft)
            self.record("+ speculative", target, dict(m.as_dict(), acceptance=rec.stats.as_dict()),
                        role="target", draft=draft.ref.id, draft_length=gamma,
                        builds_on=base["builds_on"])
            self.log(f"[+ speculative] draft length {gamma}: {m.e2e_tok_s.median:.1f} tok/s, "
                     f"kept {rec.stats.acceptance_rate:.0%} of drafted tokens, alpha {rec.stats.alpha:.2f}")
        free(draft)
        free(target)

    def generation_once(self, target: Loaded, draft: Loaded) -> None:
        import torch

        from .measure import make_inputs
        inputs = make_inputs(target.tokenizer, self.text, self.profile.prompt_tokens[0],
                             device=self.hw.device)
        with torch.inference_mode():
            target.model.generate(**inputs, assistant_model=draft.model, do_sample=False,
                                  max_new_tokens=self.profile.new_tokens,
                                  pad_token_id=target.tokenizer.pad_token_id)

    def static_cache(self) -> None:
        """The static KV cache at batch 1; transformers compiles it on a GPU for a 16-bit model
        (not on a CPU, never for a bitsandbytes model), and the record says which."""
        base = self.base("+ compile")
        loaded = self.load("target", base["precision"], base["attn_implementation"])
        compiles = self.hw.device == "cuda" and loaded.precision in BYTES_16
        m = self.generation(loaded, extra_warmup=2 if compiles else 0, cache_implementation="static")
        self.record("+ compile", loaded, m.as_dict(), role="target", builds_on=base["builds_on"],
                    cache_implementation="static", compiled=compiles)
        self.log(f"[+ compile] static cache, {'compiled' if compiles else 'not compiled (CPU or bitsandbytes)'}: "
                 f"{m.e2e_tok_s.median:.1f} tok/s")
        free(loaded)

    def batching(self) -> None:
        base = self.base("+ batching")
        loaded = self.load("target", base["precision"], base["attn_implementation"])
        for b in self.profile.batch_sizes:
            m = self.generation(loaded, batch=b)
            self.record("+ batching", loaded, m.as_dict(), role="target", builds_on=base["builds_on"])
            self.log(f"[+ batching] batch {b}: {m.e2e_tok_s.median:.1f} tok/s")
        free(loaded)

    def continuous(self) -> None:
        from .serving import measure_continuous
        base = self.base("+ continuous batching")
        loaded = self.load("target", base["precision"], base["attn_implementation"])
        p = self.profile
        self.check_budget()
        metrics = measure_continuous(loaded.model, loaded.tokenizer, self.text,
                                     prompt_tokens=p.prompt_tokens[0], new_tokens=p.new_tokens,
                                     requests=max(p.batch_sizes), warmup=p.warmup, repeats=p.repeats)
        self.record("+ continuous batching", loaded, metrics, role="target", builds_on=base["builds_on"],
                    cache_implementation="paged", engine="transformers continuous batching")
        self.log(f"[+ continuous batching] {max(p.batch_sizes)} requests: "
                 f"{metrics['e2e_tok_s']['median']:.1f} tok/s")
        free(loaded)

    def run(self, steps: list[str]) -> list[str]:
        """Run ``steps``; returns the stopped ones with their reasons (empty: all measured)."""
        if "baseline" in steps:
            self.guarded("larger baseline", self.model_at, "larger baseline", "baseline", None)
        if "moe" in steps and self.profile.moe is not None:
            self.guarded("mixture of experts", self.model_at, "mixture of experts", "moe", None)
        if "real" in steps and self.profile.real is not None:      # beside the chain, never on it
            self.guarded(REAL_STEP, self.model_at, REAL_STEP, "real", None)
        if "precision" in steps:
            self.guarded("target", self.model_at, "target", "target", None)
            for prec in self.profile.precisions:
                if prec not in BYTES_16 and prec != self.target_precision:   # measured as "target"
                    step = "+ 8-bit" if prec == "int8" else "+ 4-bit"
                    self.guarded(step, self.model_at, step, "target", prec)
        for name, step, work in (("attention", "+ attention", self.attention),
                                 ("speculative", "+ speculative", self.speculative),
                                 ("compile", "+ compile", self.static_cache),
                                 ("batching", "+ batching", self.batching),
                                 ("continuous", "+ continuous batching", self.continuous)):
            if name in steps:
                self.guarded(step, work)
        return self.stopped


STEPS = ["baseline", "moe", "real", "precision", "attention", "speculative", "compile", "batching", "continuous"]
REAL_STEP = "real model"     # the profile's real pretrained model (offline: SmolLM2-135M-Instruct), priced apart


@cli.command
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the LLMflation Lab benchmark headless.")
    parser.add_argument("--profile", help="profile name (default: $LLMFLATION_PROFILE or auto)")
    parser.add_argument("--results", help="results file (default: results/my_results.jsonl)")
    parser.add_argument("--random-weights", action="store_true",
                        help="build each model from its config with random weights (no download); "
                             "also set by LLMFLATION_RANDOM_WEIGHTS")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS)
    args = parser.parse_args(argv)
    from .models import rehearsal
    args.random_weights = args.random_weights or rehearsal.mode() is not None

    quiet_transformers()
    hw = detect_hardware()
    profile = load_profile(args.profile, hw)
    store = ResultsStore(args.results)
    check_writable(store.path)           # before an hour of measuring, not after
    if hw.device == "cpu":
        print(f"threads:  {configure_threads(hw)}")
    print(f"hardware: {hw.summary()}\nprofile:  {profile.name} - {profile.description}\n"
          f"results:  {store.path}" + (f"\nRANDOM WEIGHTS: {rehearsal.LABEL}" if args.random_weights else ""))
    start, before = time.perf_counter(), len(store.read()[0])
    bench = Bench(profile, hw, store, random_weights=args.random_weights)
    try:
        stopped = bench.run(args.steps)
    except KeyboardInterrupt:          # Ctrl-C: what was recorded stays, and the learner hears so
        kept = len(store.read()[0]) - before
        print(f"\nstopped after {time.perf_counter() - start:.0f}s; {kept} record(s) of this run kept in "
              f"{store.path} (the step in progress recorded nothing)", file=sys.stderr)
        bench.keep_unsaved()
        return 130
    unsaved = bench.keep_unsaved()
    print(f"done in {time.perf_counter() - start:.0f}s; results in {store.path}"
          + (f", except {unsaved} measurement(s) NOT SAVED (see above)" if unsaved else ""))
    if stopped:
        print(f"{len(stopped)} step(s) stopped, nothing recorded past each stop:\n  "
              + "\n  ".join(stopped))
    return 1 if stopped or unsaved else 0


if __name__ == "__main__":
    raise SystemExit(main())
