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


class UserError(Exception):
    """A mistake that is the user's to fix (a bad profile, a model that cannot load or does not fit,
    a corrupt results file...). Each such error of the kit subclasses it beside its builtin kind
    (``class ProfileError(UserError, ValueError)``), so this module needs to import none of them."""


def command(main):
    """Wrap a command's ``main(argv)``: a user's mistake prints ``error: ...`` and returns 2."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return USER_ERROR_STATUS
    return wrapped
