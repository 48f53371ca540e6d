"""Commands end a learner's mistake with its message and a non-zero exit, never a traceback.

A bad profile, a model that cannot load or does not fit, a corrupt results file or a
results path that cannot take records is the user's to fix: the command prints what is
wrong and what to do, and exits with status 2. Anything else is a bug in the kit and
keeps its traceback.
"""

from __future__ import annotations

import functools
import sys

USER_ERROR_STATUS = 2


def user_errors() -> tuple[type[BaseException], ...]:
    """The kit's exceptions that describe a user's mistake (imported late: no import cycles)."""
    from .emulate import EmulationError
    from .refs import ModelLoadError
    from .memory import ModelTooLargeError
    from .profiles import ProfileError
    from .rehearsal import RehearsalError
    from .results import CorruptResultsError, ResultsPathError
    from .speculative import PairError
    from .versions import UntestedVersionError
    return (ProfileError, ModelLoadError, ModelTooLargeError, CorruptResultsError,
            ResultsPathError, PairError, UntestedVersionError, EmulationError, RehearsalError)


def command(main):
    """Wrap a command's ``main(argv)``: a user's mistake prints ``error: ...`` and returns 2."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except user_errors() as err:
            print(f"error: {err}", file=sys.stderr)
            return USER_ERROR_STATUS
    return wrapped
