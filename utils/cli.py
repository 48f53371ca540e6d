"""Commands end a learner's mistake with its message and a non-zero exit, never a traceback.

A bad profile, a model that cannot load or does not fit, a corrupt results file or a
results path that cannot take records is the user's to fix: the command prints what is
wrong and what to do, and exits with status 2. So is an OS error on a path (a name too long,
a file where a folder is needed, no permission, a full or read-only disk): the command says
the path and what went wrong in one line, status 2. Ctrl-C outside a measurement says it
stopped in one line and exits with status 130, the shell's convention, as a measurement's
Ctrl-C does. Anything else is a bug in the kit and keeps its traceback.

In a notebook, IPython shows a user error as its one line too (:meth:`UserError._render_traceback_`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys

USER_ERROR_STATUS = 2
INTERRUPTED_STATUS = 130        # 128 + SIGINT, what a shell reports for Ctrl-C

# errors that describe a path or the disk it is on, never the kit's code: each is the user's
# to fix whichever path it is on, with what to do about it
PATH_ADVICE = {
    errno.ENAMETOOLONG: "give a shorter path (each name in it must fit the filesystem, usually 255 characters)",
    errno.EEXIST: "a file is in the way where a folder is needed: move it or give another path",
    errno.ENOTDIR: "part of that path is a file, not a folder: give a path through folders only",
    errno.EISDIR: "that is a folder: give the path of a file",
    errno.EACCES: "you may not use it: fix its permissions or give a path in a folder of yours",
    errno.EPERM: "you may not use it: fix its permissions or give a path in a folder of yours",
    errno.EROFS: "that disk is read-only: give a path on a writable one",
    errno.ENOSPC: "the disk is full: free some space or give a path on another disk",
    errno.EDQUOT: "your disk quota is used up: free some space or give a path on another disk",
    errno.ELOOP: "it goes round a loop of symbolic links: give the real path",
}
OTHER_ADVICE = "check that path or give another"

_running = 0        # wrapped commands now running: utils.lab runs the benchmark's main inside its own


class UserError(Exception):
    """A mistake that is the user's to fix (a bad profile, a model that cannot load or does not fit,
    a corrupt results file...). Each such error of the kit subclasses it beside its builtin kind
    (``class ProfileError(UserError, ValueError)``), so this module needs to import none of them."""

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows for this error instead of its traceback (IPython calls this hook
        on any exception that has it): the learner reads what is wrong and what to do, not the kit's
        frames. The cell still fails: the kernel's error output keeps its ename and evalue, so
        nbclient, nbval and ``make rehearse`` see the error as before."""
        return [f"{type(self).__name__}: {self}"]


def shown(path) -> str:
    """A path as a message shows it: a very long one abbreviated, with its length."""
    text = os.fsdecode(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]} ({len(text)} characters)"


def given_paths(argv) -> list[str]:
    """The absolute paths of the words on a command line that could be paths (options' values included)."""
    words = sys.argv[1:] if argv is None else [str(a) for a in argv]
    values = [w.split("=", 1)[1] if w.startswith("--") and "=" in w else w for w in words]
    return [os.path.abspath(v) for v in values if v and not v.startswith("-")]


def is_given(path, argv) -> bool:
    """Whether ``path`` is, lies inside, or leads to a path named on the command line."""
    path = os.path.abspath(os.fsdecode(path))
    return any(path == g or g.startswith(path.rstrip(os.sep) + os.sep) or path.startswith(g + os.sep)
               for g in given_paths(argv))


def path_error(err: OSError, argv=None) -> str | None:
    """The one line for an OS error that is the user's to fix, None for one that is a bug.

    The user's: one with a path whose kind is about paths and disks (:data:`PATH_ADVICE`), or of any
    kind on a path named on the command line. A bug: one with no path (a socket, a library's own
    failure), or one such as "no such file" on a path the kit chose."""
    if err.filename is None:
        return None
    advice = PATH_ADVICE.get(err.errno)
    if err.errno == errno.EEXIST and os.path.isdir(err.filename):
        return None          # a folder made twice: the kit's mistake, not a file in the user's way
    if advice is None and not is_given(err.filename, argv):
        return None
    where = shown(err.filename) + (f" -> {shown(err.filename2)}" if err.filename2 else "")
    return f"{where}: {err.strerror or err}; {advice or OTHER_ADVICE}"


class _Interrupts:
    """While the outermost command runs: a Ctrl-C is noted as well as raised, and one that lands in a
    finalizer (where Python prints "Exception ignored in ..." with a traceback and goes on) is kept
    quiet and raised again when ``main`` returns, so the command still stops with its one line."""

    def __enter__(self):
        self.swallowed, self._hook = False, sys.unraisablehook

        def hook(unraisable):
            if isinstance(unraisable.exc_value, KeyboardInterrupt):
                self.swallowed = True
            else:
                self._hook(unraisable)
        sys.unraisablehook = hook
        return self

    def __exit__(self, *exc):
        sys.unraisablehook = self._hook
        return False


def command(main):
    """Wrap a command's ``main(argv)``: a user's mistake or an OS error on a user's path prints
    ``error: ...`` and returns 2; Ctrl-C prints one line and returns 130."""
    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        global _running
        _running += 1
        caught = _Interrupts() if _running == 1 else None
        try:
            with caught or contextlib.nullcontext():
                status = main(argv)
            if caught is not None and caught.swallowed:    # Python dropped it inside a finalizer
                raise KeyboardInterrupt
            return status
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return USER_ERROR_STATUS
        except OSError as err:
            line = path_error(err, argv)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            return USER_ERROR_STATUS
        except KeyboardInterrupt:
            if _running > 1:     # inside another command: that one says so and stops, not carries on
                raise
            # a measurement's Ctrl-C is caught where it runs and says what was kept; this is any other
            print("\nstopped (Ctrl-C); no measurement was running, so none was lost; run the command "
                  "again to go on", file=sys.stderr)
            return INTERRUPTED_STATUS
        finally:
            _running -= 1
    return wrapped
