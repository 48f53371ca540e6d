"""LLMflation Lab: the helpers the workshop notebooks import.

Three kinds of module, one job each.

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

**Model access** (which machine, which models, how they arrive):

- ``machine``, ``hardware``, ``emulate``   what this machine is and can run, a smaller GPU imposed
- ``profiles``    which models and settings suit it (data in profiles.toml)
- ``refs``        where a model is and what it is (its config), before anything loads
- ``loading``     from_pretrained with bitsandbytes and attention kernels
- ``downloads``, ``kept``   what each notebook downloads (in the background), kept and shared copies
- ``preflight``   checks before any download
- ``rehearsal``   random weights of the real architectures, for rehearsals
- ``results``     the learner's append-only results store
- ``benchmark``, ``lab``   the headless benchmark and the main job (``make lab``)
- ``cli``, ``quiet``, ``versions``, ``publish``   command errors, quiet libraries, tested versions, the kit's address

**The maintainer's and the instructor's tools** live in :mod:`utils.tools` (the timetable, the
class's shared copies, rehearsals, the GPU check, the offline-model build), run as
``python -m utils.tools.<name>``; nothing a notebook imports depends on them.
"""

__version__ = "0.1.0"
