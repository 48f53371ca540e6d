"""Model access: which machine this is, which models suit it, and how they arrive.

- ``machine``, ``hardware``, ``emulate``   what this machine is and can run, a smaller GPU imposed
- ``profiles``    which models and settings suit it (data in ``profiles.toml``)
- ``refs``        where a model is and what it is (its config), before anything loads
- ``loading``     ``from_pretrained`` with bitsandbytes and attention kernels
- ``downloads``, ``kept``   what each notebook downloads (in the background), kept and shared copies
- ``preflight``   checks before any download (``python -m utils.models.preflight``)
- ``rehearsal``   random weights of the real architectures, for rehearsals
- ``real``        the real offline model (SmolLM2-135M-Instruct), converted at install: is it sound
- ``resident``    the models a one-runtime class keeps between lessons

The notebooks take what they need from here in one short line
(``from utils.models import load_model, free``). Each name is imported when first asked for, so
importing one module of this folder (or running one as a command) loads no other.
"""

__all__ = ["TARGETS", "describe", "real_model", "fitting_precision", "free", "load_model", "model_config", "quantization_config"]


def __getattr__(name: str):
    if name == "TARGETS":
        from .emulate import TARGETS
        return TARGETS
    if name in ("free", "load_model", "model_config", "quantization_config"):
        from . import loading
        return getattr(loading, name)
    if name in ("describe", "real_model"):
        from . import real
        return getattr(real, name)
    if name == "fitting_precision":
        from .preflight import fitting_precision
        return fitting_precision
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
