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
- ``curve``       the personal cost curve (CSV and PNG)
- ``preflight``   checks before any download
- ``benchmark``   the headless benchmark (python -m utils.benchmark)
"""

__version__ = "0.1.0"
