"""Keep library chatter (progress bars, advisory warnings) out of notebook output.

nbval compares stderr too, so a progress bar that appears only on some runs
would fail a cell. Errors are never hidden.
"""

from __future__ import annotations

import os
import warnings


def quiet_transformers() -> None:
    """Silence transformers/hub progress bars and info-level logging (idempotent).

    Hub progress bars are switched off by function, not by $HF_HUB_DISABLE_PROGRESS_BARS:
    the variable would also stop utils.models.downloads from showing a long download's progress."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # tqdm warns on stderr when Jupyter lacks ipywidgets; the kit shows no progress bars.
    warnings.filterwarnings("ignore", message="IProgress not found")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars
        disable_progress_bars()
    except ImportError:  # pragma: no cover - older hub clients
        pass
    # bitsandbytes logs, at warning level, that CPU int8 matmuls cast their
    # inputs to fp16 (on every call) and that the optional hub `kernels` package
    # is absent; both are expected on the CPU path and say nothing about results.
    import logging as std_logging
    std_logging.getLogger("bitsandbytes").setLevel(std_logging.ERROR)
    # Advisory messages about generation flags or bitsandbytes' CPU support that
    # say nothing about the measurement itself.
    for pattern in (".*generation flags are not valid.*", ".*Input type into Linear4bit.*"):
        warnings.filterwarnings("ignore", message=pattern)
