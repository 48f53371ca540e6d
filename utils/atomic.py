"""Every file the kit writes appears whole or not at all.

Each output is written under a temporary name in its own folder and moved into place
(``os.replace``, a rename within one filesystem) only once it is complete:

    from utils.atomic import replacing, writing
    with writing(path, newline="") as f:                          # one file, opened for you
        f.write(...)
    with replacing(csv_path, png_path) as (csv_temp, png_temp):   # paths, for writers that want one
        write_rows(csv_temp)
        fig.savefig(png_temp)            # both are moved into place only when both were written

A full disk, a Ctrl-C or a drawing error half-way therefore leaves the previous file (or the
previous pair: never one new and one old) as it was, and no temporary file behind. A failure to
write raises :class:`OutputError`, which says so; it is an OSError, and the user's to fix
(status 2, utils.cli). The one gap left: if the first of a pair's renames succeeds and the
second fails (a rename over an existing file in the same folder needs no space, so not on a full
disk), the pair is one new, one old.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from .cli import UserError


class OutputError(UserError, OSError):
    """An output that could not be written; its previous version, if any, is left as it was. It
    carries its cause's errno and reason, and the path it was about: the output itself, or the
    folder that could not be made, never a temporary name that no longer exists."""

    def __init__(self, message: str, cause: OSError, where):
        super().__init__(message)
        self.message = message
        self.errno, self.strerror, self.filename = cause.errno, cause.strerror, where

    def __str__(self) -> str:
        return self.message


def temporary_name(path: Path) -> Path:
    """A fresh hidden name beside ``path``: in its folder, so that moving it into place is a rename,
    and with its suffix, so that a writer choosing the format by it (matplotlib) still does."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


@contextmanager
def replacing(*paths):
    """Yield one temporary path per path in ``paths`` (a list, in the same order); when the block
    ends without an error, each is made durable and moved onto its path. On any error, none is
    moved, the temporaries are removed and the old files stay; an OSError (a full disk, a folder
    that cannot be written) is raised as :class:`OutputError` naming what was kept."""
    paths = [Path(p) for p in paths]
    temps = [temporary_name(p) for p in paths]
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield temps
        for temp in temps:
            _sync(temp)                 # on disk before the rename, so a crash never leaves an empty file
        for temp, path in zip(temps, paths):
            os.replace(temp, path)
    except OutputError:                  # from a nested writer: it already says what was kept
        _remove(temps)
        raise
    except OSError as err:
        _remove(temps)
        raise _output_error(paths, temps, err) from err
    except BaseException:                # a drawing error, a Ctrl-C: no temporary is left behind
        _remove(temps)
        raise


@contextmanager
def writing(path, mode: str = "w", **open_kwargs):
    """Yield ``path`` opened for writing (text in UTF-8 unless told otherwise, or ``mode="wb"``),
    written under a temporary name and moved into place only when the block ends without an error
    (see :func:`replacing`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"writing() replaces a whole file: mode 'w' or 'wb', not {mode!r}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with replacing(path) as (temp,):
        with open(temp, mode, **open_kwargs) as f:
            yield f


def table_and_figure(csv_path: Path, png_path: Path, fig, write_rows, dpi: int) -> tuple[Path, Path]:
    """A CSV (``write_rows(file)`` writes its rows) and a matplotlib figure saved as one pair: both
    rendered under temporary names and both replaced only when both were written, so a failure leaves
    the previous pair as it was; the figure is closed either way."""
    import matplotlib.pyplot as plt
    try:
        with replacing(csv_path, png_path) as (csv_temp, png_temp):
            with open(csv_temp, "w", newline="", encoding="utf-8") as f:
                write_rows(f)
            fig.savefig(png_temp, dpi=dpi)
    finally:
        plt.close(fig)
    return csv_path, png_path


def append_text(path, text: str) -> None:
    """Add ``text`` at the end of a small file (a log): the old content and the new are written
    together under a temporary name and moved into place, so a full disk never leaves half an entry."""
    path = Path(path)
    old = path.read_bytes() if path.is_file() else b""
    with writing(path, "wb") as f:
        f.write(old + text.encode("utf-8"))


def why(err: OSError) -> str:
    """The short reason of an OSError ("No space left on device"), an :class:`OutputError`'s too."""
    return err.strerror or str(err)


def _sync(path: Path) -> None:
    """Make a written file durable (a full disk may only say so here, on some filesystems)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(temps: list[Path]) -> None:
    for temp in temps:
        try:
            temp.unlink(missing_ok=True)
        except OSError:                  # never hide the error that brought us here
            pass


FULL = (errno.ENOSPC, errno.EDQUOT)      # a disk (or a quota) with no room left


def _output_error(paths: list[Path], temps: list[Path], err: OSError) -> OutputError:
    """What could not be written, why, what was kept, and what to do, in plain words."""
    names = " and ".join(str(p) for p in paths)
    by_temp = {str(t): p for t, p in zip(temps, paths)}
    where = by_temp.get(str(err.filename), err.filename) if err.filename is not None else paths[0]
    old = [p.name for p in paths if p.exists()]
    kept = ("nothing was written" if not old else
            f"the previous {' and '.join(old)} {'are' if len(old) > 1 else 'is'} left as "
            f"{'they were' if len(old) > 1 else 'it was'}")
    about = "" if str(where) in map(str, paths) else f"{where}: "
    advice = ("free some space, or write to another disk" if err.errno in FULL else
              "make sure that path is a folder you may write in, or write elsewhere")
    return OutputError(f"could not write {names} ({about}{err.strerror or err}); {kept}; {advice}", err, where)
