"""What every notebook does first: quiet libraries, detect hardware, choose a profile, open the store.

    from utils.session import start
    lab = start("01 measuring cost")
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cost import roofline_tokens_per_s
from .data import gpu, gpu_key_for, price_key
from .models.hardware import Hardware, configure_threads, detect_hardware
from .models.profiles import Profile, load_profile
from .quality import heldout_text
from .quiet import quiet_transformers
from .results import ResultsStore, check_writable, new_run, run_context


@dataclass
class Lab:
    notebook: str
    hw: Hardware
    profile: Profile
    store: ResultsStore
    price_per_hour: float
    text: str
    run: str = ""             # this notebook session's run id: every record it makes carries it
    unsaved: list = field(default_factory=list)   # records the store could not take (see record)

    @property
    def device(self) -> str:
        return self.hw.device

    @property
    def random_weights(self) -> bool:
        """True in a rehearsal ($LLMFLATION_RANDOM_WEIGHTS): speed and memory real, quality not."""
        from .models.rehearsal import mode
        return mode() is not None

    def mark(self, fig) -> None:
        """Label a figure of measured figures "random weights: ..." in a rehearsal (no-op otherwise)."""
        if self.random_weights:
            from .models.rehearsal import LABEL
            fig.suptitle(f"REHEARSAL, {LABEL}", color="tab:red", fontsize=9)

    @property
    def gpu_key(self) -> str:
        """This machine's row in datasets/gpus.csv (``cpu-laptop`` without a GPU); under
        emulation the GPU that really runs, whose bandwidth the timings reflect."""
        return gpu_key_for(self.hw.host_gpu or self.hw.gpu_name, self.hw.vram_gb)

    def roofline(self, precision: str, context: int = 0, gpu_key: str | None = None) -> float:
        """Decode tokens/s ceiling at batch 1 for the profile's target in ``precision``, from the
        memory bandwidth of this machine (or of ``gpu_key``) in datasets/gpus.csv."""
        from .models.refs import model_config
        from .memory import ModelShape
        shape = ModelShape.from_config(model_config(self.profile.target))
        compute_dtype = self.hw.compute_dtype if gpu_key is None else "float16"  # any GPU: 2 bytes
        return roofline_tokens_per_s(shape, precision, gpu(gpu_key or self.gpu_key)["bandwidth_gbs"],
                                     context=context, compute_dtype=compute_dtype)

    def build_on(self, step: str) -> dict:
        """The configuration a new ``step`` builds on: the cheapest kept one you measured before
        it on this machine and profile (see utils.steps), or the precision that fits and SDPA
        when you have measured none yet. In a class that shares the target's copy, the copy's
        precision when the cheapest is within the noise of it (the copy is then read, nothing is
        quantized or saved again). Says what it chose."""
        from .models.preflight import fitting_precision
        from .chain import build_on, prefer
        records, group = self.store.records(skip_corrupt=True), (self.profile.name, self.hw.gpu_name,
                                                                 self.random_weights)
        base = build_on(step, records, group, fitting_precision(self.profile, self.hw))
        shared = self._class_copy_precision()
        if shared is not None:
            base = prefer(base, records, group, step, shared)
        if base["builds_on"] is None:
            print(f"{step}: nothing measured before it here yet, so it runs at the precision that "
                  f"fits ({base['precision']}) with {base['attn_implementation']}")
        else:
            print(f"{step}: builds on your '{base['builds_on']}' ({base['precision']}, "
                  f"{base['attn_implementation']}, {base['tokens_per_s']:.1f} tok/s): the cheapest "
                  f"configuration before it that measurably helped"
                  + (f" (your {base['within_noise_of']} was within the noise of it, and the class shares "
                     f"{base['precision']}: its copy is read)" if base.get("within_noise_of") else ""))
        if shared is not None and base["precision"] != shared:
            print(f"class copy: the class shares {self.profile.target.id} in {shared}, not {base['precision']}, "
                  f"which measured faster beyond the noise: this lesson quantizes {base['precision']} from the "
                  f"16-bit checkpoint instead of reading the class copy")
        return base

    def _class_copy_precision(self) -> str | None:
        """The precision of the class's shared copy of the target usable here (utils.models.kept.class_root),
        or None (no class folder, not a hub model, a rehearsal, or no usable copy)."""
        from .models import kept
        from .models.downloads import is_hub
        from .models.preflight import fitting_precision
        ref = self.profile.target
        if kept.class_root() is None or not is_hub(ref) or self.random_weights:
            return None
        shared = fitting_precision(self.profile, self.hw)
        quiet = (lambda message: None)
        return shared if kept.class_copy(ref, shared, kept.compute_of(self.hw, shared), log=quiet) is not None else None

    def record(self, step: str, settings: dict, metrics: dict, kind: str = "notebook") -> dict:
        """Append one measurement, with its full context, to the results store."""
        settings = dict(settings, profile=self.profile.name, notebook=self.notebook,
                        price_per_hour=self.price_per_hour)
        record = self.store.make_record(kind, step=step, settings=settings, metrics=metrics,
                                        context=run_context(self.hw), run=self.run)
        try:
            return self.store.write(record)
        except OSError as err:           # the measurement is taken: never lose it
            self.unsaved.append(record)
            print(f"NOT SAVED: {self.store.path} cannot take the record ({err.strerror or err}). This "
                  f"measurement is kept in this notebook ({len(self.unsaved)} in lab.unsaved): fix the file "
                  f"or folder, then run lab.save_unsaved() (or lab.save_unsaved('another.jsonl'))")
            return record

    def lesson(self, notebook: str) -> "Lab":
        """The next lesson of the one-runtime class (``class_t4``): this machine, profile, results store
        and price (yours, if you set one), a new run for ``notebook``'s records; nothing detected, and
        no model loaded, again. Says which models are still in memory."""
        from dataclasses import replace

        from .models import resident
        resident.set_lesson(notebook)
        if resident.measures_alone(notebook):
            resident.clear(f"lesson {notebook} measures each precision's memory with nothing beside it",
                           log=lambda m: print(f"memory   : {m}"))
        held = resident.resident()
        print(f"lesson   : {notebook}, in this runtime; in memory: "
              + (", ".join(f"{m} in {p} (since {lesson})" for m, p, lesson in held) if held else "no model"))
        downloads([notebook], self.profile, self.hw)
        return replace(self, notebook=notebook, run=new_run(notebook))

    def save_unsaved(self, path: str | None = None) -> int:
        """Write the records the store could not take (:attr:`unsaved`) to it, or to ``path``;
        returns how many were written (those that still fail stay in :attr:`unsaved`)."""
        store = ResultsStore(path) if path else self.store
        written = 0
        while self.unsaved:
            store.write(self.unsaved[0])
            self.unsaved.pop(0)
            written += 1
        print(f"saved {written} record(s) to {store.path}")
        return written


def start(notebook: str, profile: str | None = None, results: str | None = None,
          lessons: list[str] | None = None) -> Lab:
    """Set up a notebook and print one line per fact a learner should check.

    ``lessons`` makes this runtime the one-runtime class (``class_t4``): the downloads of every lesson
    start now, one after the other in lesson order, and the models a lesson keeps stay in memory for
    the next (:mod:`utils.models.resident`); each later lesson begins with :meth:`Lab.lesson`."""
    from .versions import check_versions
    versions = check_versions()          # an untested transformers stops here, with the fix
    quiet_transformers()
    import torch
    torch.manual_seed(0)
    hw = detect_hardware()
    prof = load_profile(profile, hw)
    store = ResultsStore(results)
    check_writable(store.path)           # before the notebook measures anything, not after
    key = price_key(hw, prof)
    price = gpu(key)["price_per_hour_usd"]
    print(f"versions : {versions}")
    print(f"hardware : {hw.summary()}")
    if hw.device == "cpu":
        print(f"threads  : {configure_threads(hw)}")
    print(f"profile  : {prof.name} - {prof.description}")
    print(f"results  : {store.path} ({len(store.records(skip_corrupt=True))} records so far)")
    if store.warning:
        print(f"WARNING  : {store.warning}")
    print(f"price    : ${price}/h default for {key} (set lab.price_per_hour to yours)")
    from .models import resident
    resident.enable(lessons is not None)
    resident.set_lesson(notebook)
    from .models.rehearsal import LABEL, mode
    rehearsal = mode()
    if rehearsal:
        print(f"REHEARSAL: {LABEL} ({'reduced architectures' if rehearsal == 'reduced' else 'real size'}); "
              f"quality figures and their checkpoints mean nothing here")
    if lessons is not None:
        print(f"runtime  : one runtime for {len(lessons)} lessons; the models a lesson keeps stay in memory "
              f"for the next")
    downloads(lessons or [notebook], prof, hw)
    return Lab(notebook=notebook, hw=hw, profile=prof, store=store, price_per_hour=price,
               text=heldout_text(), run=new_run(notebook))


def downloads(notebooks: list[str], profile: Profile, hw: Hardware) -> None:
    """Say what ``notebooks`` download (a model a kept or class copy serves is not downloaded, and is
    said so), and start it in the background (one queue, in their order) while the instructor
    introduces them; nothing in a rehearsal (random weights)."""
    from .models.downloads import hurry, is_hub, notebook_models, plan, start_background
    from .models.preflight import to_download
    from .models.rehearsal import mode
    fetched = {nb: to_download(nb, profile, hw) for nb in notebooks}
    wanted = {ref.id for refs in fetched.values() for ref in refs}
    served = [ref for nb in notebooks for ref in notebook_models(nb, profile) if ref.id not in wanted]
    for line in dict.fromkeys(line for nb in notebooks for line in plan(nb, profile)
                              if line.split(":", 1)[0] in wanted):
        print(f"download : {line}")
    for ref in dict.fromkeys(r for r in served if is_hub(r)):
        print(f"download : {ref.id}: not downloaded here, a kept or class copy serves it")
    if mode() is None:
        refs = [ref for nb in notebooks for ref in fetched[nb]]
        start_background(refs, log=lambda m: print(f"download : {m}"))
        if len(notebooks) == 1:          # a lesson's own models before those still queued for later lessons
            hurry(refs)


def finding(text: str) -> None:
    """A result that is neither right nor wrong (a slowdown a CPU is expected to show, a gain the
    theory did not predict): said as a finding, never as a failed checkpoint."""
    from .models.rehearsal import mode
    print(("REHEARSAL (random weights): " if mode() else "FINDING: ") + text)


def verdict(ok: bool, good: str, bad: str) -> None:
    """A checkpoint: tell the learner in plain words whether a result is plausible.

    In a random-weight rehearsal a checkpoint judges nothing (quality is meaningless and speed
    may be a shrunk model's), so it says so instead of passing or failing."""
    from .models.rehearsal import mode
    if mode():
        print(f"REHEARSAL (random weights), no verdict: {'passes' if ok else 'would ask you to check'}: "
              f"{good if ok else bad}")
        return
    print(("PLAUSIBLE: " + good) if ok else ("CHECK THIS: " + bad))
