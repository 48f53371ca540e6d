"""LLMflation Lab: the helpers the workshop notebooks import.

Four kinds of module, one job each; model access and the tools have folders of their own.

**The lessons** (what the notebooks call):

- ``measure``     the timing harness (prefill, TTFT, ITL, tokens/s, peak memory)
- ``quality``     perplexity, bits per byte, exact match
- ``memory``      predicted memory per precision (MoE included), refusal before loading
- ``quantize``, ``attention``, ``speculative``, ``serving``, ``moe``   each technique's inner workings
- ``cost``        $/1M tokens, roofline, Leviathan speedup, annual decline
- ``steps``       which run and configuration each cost-curve step is priced from, and what it builds on
- ``swap``, ``counterfactual``, ``timeline``, ``decompose``   the model swap, the computed 16-bit start,
  your LLMflation over time, the historical 1,000x taken apart
- ``curve``, ``chart``, ``classroom``   the personal cost curve (table, CSV, PNG) and the class's
- ``reference``, ``data``   the kit's own GPU figures and the cited tables
- ``session``     what each notebook does first (``start``), its checkpoints

**The learner's runs** (their records, and the commands that make them):

- ``results``     the learner's append-only results store
- ``benchmark``, ``lab``   the headless benchmark and the main job (``make lab``)
- ``cli``, ``quiet``, ``versions``, ``publish``   command errors, quiet libraries, tested versions, the kit's address

**Model access** lives in :mod:`utils.models` (which machine this is, which models suit it, how they
arrive: hardware, emulation, profiles, loading, downloads, kept copies, preflight, rehearsal); the
notebooks take what they need from it in one line (``from utils.models import load_model, free``).

**The maintainer's and the instructor's tools** live in :mod:`utils.tools` (the timetable, the
class's shared copies, rehearsals, the GPU check, the offline-model build), run as
``python -m utils.tools.<name>``; nothing a notebook imports depends on them.
"""

__version__ = "0.1.0"
