"""The models a shared runtime keeps in memory between lessons: the one-runtime class (``class_t4``).

A notebook opened on its own frees every model it is done with, and nothing here is used. The
class notebook runs the core lessons in one runtime, so it calls ``start(..., lessons=[...])``,
which turns this on:

* a model loaded with ``keep=True`` (the target, in the precision a lesson keeps) stays in memory
  after the lesson's ``free()``; the next ``load_model`` of the same model and precision returns it
  instead of reading it again, switching its attention kernel with transformers'
  ``set_attn_implementation`` when the lesson asks for another one;
* every other model (notebook 02's own quantizations, the draft, the larger baseline) is freed as
  in the separate notebooks;
* a lesson that measures each model's memory alone (notebook 02's precisions) begins by freeing
  the resident ones;
* when a model to load does not fit beside the resident ones, the oldest resident models are freed
  first, and said so: a later lesson that needs one loads it again (from the runtime's local copy,
  :func:`utils.models.kept.staged`, not over the network again).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, replace

_HELD: dict[tuple, "Held"] = {}      # oldest first
_STATE = {"on": False, "lesson": ""}


@dataclass
class Held:
    """A resident model: the lesson's handle as loaded, and the lesson that loaded it."""

    loaded: object                   # utils.models.loading.Loaded, its model kept here
    model: object
    lesson: str


def enable(on: bool = True) -> None:
    """Keep the ``keep=True`` models between lessons (True), or free everything as a notebook does."""
    _STATE["on"] = on
    if not on:
        clear()


def enabled() -> bool:
    return _STATE["on"]


def set_lesson(name: str) -> None:
    """The lesson now running, named in what this module says."""
    _STATE["lesson"] = name


def key(ref, precision: str, random_weights: bool) -> tuple:
    return ref.id, ref.revision, precision, random_weights


def reuse(ref, precision: str, attn_implementation: str, random_weights: bool, log=print):
    """The resident ``ref`` at ``precision`` with ``attn_implementation`` set, or None (never
    when this is off)."""
    held = _HELD.pop(key(ref, precision, random_weights), None) if enabled() else None
    if held is None:
        return None
    _HELD[key(ref, precision, random_weights)] = held           # the most recently used now
    switched = held.model.config._attn_implementation != attn_implementation
    if switched:
        held.model.set_attn_implementation(attn_implementation)
        held.loaded = replace(held.loaded, attn_implementation=attn_implementation)
    log(f"reusing {ref.id} in {precision}, in memory since lesson {held.lesson}"
        + (f", its attention switched to {attn_implementation}" if switched else "") + ": nothing read again")
    return replace(held.loaded, model=held.model, attn_implementation=attn_implementation)


def hold(loaded) -> None:
    """Keep ``loaded``'s model between lessons (when this is on)."""
    if enabled():
        _HELD[key(loaded.ref, loaded.precision, loaded.random_weights)] = Held(
            replace(loaded, model=None), loaded.model, _STATE["lesson"] or "?")


def held_gb() -> float:
    """GB the resident models' weights occupy (measured: what freeing them gives back)."""
    from ..memory import measured_weight_bytes
    return sum(measured_weight_bytes(h.model) for h in _HELD.values() if h.model is not None) / 1e9


def room_gb(hw) -> float:
    """Memory a new model may use, in GB, when a lesson chooses what fits: the free memory, plus the
    resident models' on this machine, since a load frees them when it needs the room."""
    from .hardware import available_gb
    return available_gb(hw) + (held_gb() if hw.live else 0.0)


def holds(model) -> bool:
    """Whether ``model`` stays in memory between lessons."""
    return model is not None and any(h.model is model for h in _HELD.values())


def make_room(needed_gb: float, available, log=print) -> list[str]:
    """Free resident models, oldest first, until ``available()`` (GB) holds ``needed_gb``; what was
    freed."""
    freed = []
    while _HELD and available() < needed_gb:
        k, held = next(iter(_HELD.items()))
        del _HELD[k]
        before = available()
        held.model = None
        release_memory()
        freed.append(f"{k[0]} in {k[2]}")
        if available() > before:
            log(f"freed {k[0]} in {k[2]} (in memory since lesson {held.lesson}) to make room; "
                f"a later lesson that needs it loads it again")
        else:                            # a variable of the notebook still holds it
            log(f"let go of {k[0]} in {k[2]}, but its memory did not come back: a variable still holds the model "
                f"(a lesson's `target`?); `del` it, or restart the runtime, if the next load is refused")
    return freed


def resident() -> list[tuple[str, str, str]]:
    """(model id, precision, the lesson that loaded it) of every resident model, oldest first."""
    return [(k[0], k[2], h.lesson) for k, h in _HELD.items()]


def clear(why: str = "", log=print) -> None:
    """Free every resident model (saying which, and ``why``, when there were any)."""
    if _HELD and why:
        log(f"freed {', '.join(f'{k[0]} in {k[2]}' for k in _HELD)}: {why}")
    _HELD.clear()
    release_memory()


def measures_alone(notebook: str) -> bool:
    """Whether lesson ``notebook`` measures each model's memory on its own, so that nothing may stay
    resident beside it: notebook 02, which loads and quantizes every precision itself."""
    from .downloads import EVERY_PRECISION
    return notebook[:2] in EVERY_PRECISION


def release_memory() -> None:
    """Return freed models' memory (GPU caches included)."""
    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
