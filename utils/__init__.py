"""LLMflation Lab: the helpers the workshop notebooks import.

Modules, one job each:

- ``hardware``    what this machine is and can run
- ``profiles``    which models and settings suit it (data in profiles.toml)
- ``memory``      predicted memory per precision, refusal before loading
- ``loading``     from_pretrained with bitsandbytes and attention kernels
- ``measure``     the timing harness (prefill, TTFT, ITL, tokens/s, peak memory)
- ``quality``     perplexity, bits per byte, exact match
- ``speculative`` assisted generation settings and acceptance per step
- ``cost``        $/1M tokens, roofline, Leviathan speedup, annual decline
- ``results``     the learner's append-only results store
- ``steps``       which run and configuration each cost-curve step is priced from, and what it builds on
- ``swap``        the larger baseline -> target model swap, with its quality beside its cost
- ``counterfactual`` the computed 16-bit start where 16-bit does not fit the GPU
- ``timeline``    your LLMflation over time (cited technique dates, your decline per year)
- ``decompose``   the historical 1,000x taken apart
- ``curve``       the personal cost curve (table, CSV); ``chart`` its panels (PNG)
- ``preflight``   checks before any download
- ``benchmark``   the headless benchmark (python -m utils.benchmark)
"""

__version__ = "0.1.0"
