"""The learner's results store: one JSON record per line, appended, never rewritten.

Every record carries its full context (hardware, software versions, model,
revision, settings, timestamp), so a measurement means the same thing when it
is read back after a kernel restart or merged into a class chart. Appends are
flushed and fsync'ed at once. A damaged file is reported with its path and line
number and is never overwritten.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO / "results" / "my_results.jsonl"
ENV_PATH = "LLMFLATION_RESULTS"
SCHEMA = 1
PACKAGES = ("torch", "transformers", "bitsandbytes", "accelerate", "flash-attn")


COLAB_DRIVE = Path("/content/drive/MyDrive")    # where Colab mounts a learner's Google Drive
DRIVE_FOLDER = "llmflation-lab"


def default_path(in_colab: bool | None = None, drive: Path = COLAB_DRIVE) -> tuple[Path, str | None]:
    """Where results go when no path is given, and a warning when they would not last.

    $LLMFLATION_RESULTS wins. On Colab each notebook runs in its own runtime and the clone
    (with results/ in it) vanishes with it, so a mounted Google Drive is used when there is
    one; without it the results stay in the runtime and the warning says how to keep them."""
    if os.environ.get(ENV_PATH):
        return Path(os.environ[ENV_PATH]).expanduser(), None
    if in_colab is None:
        import sys
        in_colab = "google.colab" in sys.modules
    if not in_colab:
        return DEFAULT_PATH, None
    if drive.is_dir():
        return drive / DRIVE_FOLDER / DEFAULT_PATH.name, None
    return DEFAULT_PATH, (
        "your results live in this Colab runtime only and vanish with it, so notebook 07 would "
        "find none of the earlier notebooks' measurements. To keep them, run "
        "`from google.colab import drive; drive.mount('/content/drive')` and then this cell again "
        f"(they go to MyDrive/{DRIVE_FOLDER}/), or download {DEFAULT_PATH.relative_to(REPO)} "
        "from the Files panel before the runtime ends.")


class CorruptResultsError(ValueError):
    """A results file that cannot be read back; the file itself is left untouched."""


def software_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def kit_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_context(hw=None) -> dict:
    """Hardware, software and time for a record (``hw`` is a Hardware or None)."""
    return dict(timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                hardware=hw.as_dict() if hw is not None else None,
                software=software_versions(), kit_commit=kit_commit(),
                host=platform.node())


class ResultsStore:
    """Append-only JSON-lines file of measurement records."""

    def __init__(self, path: str | os.PathLike | None = None):
        # where no path is given, the default's warning (results that would not last) with it
        self.path, self.warning = (Path(path).expanduser(), None) if path else default_path()

    def __repr__(self) -> str:
        return f"ResultsStore('{self.path}')"

    def append(self, kind: str, *, step: str, settings: dict, metrics: dict,
               hw=None, context: dict | None = None) -> dict:
        """Add one record and make it durable before returning it.

        ``kind`` says what was measured ("generation", "quality", ...), ``step``
        names the cost-curve step it belongs to ("baseline", "+ 4-bit", ...).
        """
        if not kind or not step:
            raise ValueError("a record needs a kind and a step name")
        record = dict(schema=SCHEMA, kind=kind, step=step, settings=settings, metrics=metrics,
                      **(context or run_context(hw)))
        line = json.dumps(record, default=_jsonable, allow_nan=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            # A crash mid-write can leave a last line without its newline;
            # start on a fresh line so the new record stays readable.
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        return record

    def records(self, *, skip_corrupt: bool = False) -> list[dict]:
        """All records, oldest first. A corrupt line raises :class:`CorruptResultsError`
        naming the file and line, unless ``skip_corrupt`` (then it is left out with a warning)."""
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8", errors="replace")
                                      .splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "kind" not in record or "metrics" not in record:
                    raise ValueError("not a results record")
            except ValueError as err:
                message = (f"{self.path}, line {number}: unreadable record ({err}). The file was not "
                           f"changed; fix or delete that line, or read with skip_corrupt=True.")
                if not skip_corrupt:
                    raise CorruptResultsError(message) from None
                import warnings
                warnings.warn(message, stacklevel=2)
                continue
            out.append(record)
        return out

    def latest(self, step: str) -> dict | None:
        """The newest record for ``step``, or None."""
        matches = [r for r in self.records() if r.get("step") == step]
        return matches[-1] if matches else None


def _jsonable(value):
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a results record")
