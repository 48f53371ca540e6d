"""The learner's results store: one JSON record per line, appended, never rewritten.

Every record carries its full context (hardware, software versions, model,
revision, settings, timestamp), so a measurement means the same thing when it
is read back after a kernel restart or merged into a class chart. Appends are
flushed and fsync'ed at once. A damaged file is reported with its path and line
number and is never overwritten.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from .cli import UserError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO / "results" / "my_results.jsonl"
ENV_PATH = "LLMFLATION_RESULTS"
ENV_LEARNER = "LLMFLATION_LEARNER"     # a name for the class chart (optional)
SCHEMA = 1
PACKAGES = ("torch", "transformers", "bitsandbytes", "accelerate", "flash-attn")


COLAB_DRIVE = Path("/content/drive/MyDrive")    # where Colab mounts a learner's Google Drive
DRIVE_FOLDER = "llmflation-lab"


def in_colab_runtime(in_colab: bool | None = None) -> bool:
    """Whether this kernel runs on Colab (``in_colab`` overrides, for tests)."""
    if in_colab is None:
        import sys
        return "google.colab" in sys.modules
    return in_colab


def drive_folder(in_colab: bool | None = None, drive: Path = COLAB_DRIVE) -> Path | None:
    """The kit's folder on a mounted Google Drive (results, kept model copies), or None when not
    on Colab or Drive is not mounted."""
    if in_colab_runtime(in_colab) and drive.is_dir():
        return drive / DRIVE_FOLDER
    return None


def default_path(in_colab: bool | None = None, drive: Path = COLAB_DRIVE) -> tuple[Path, str | None]:
    """Where results go when no path is given, and a warning when they would not last.

    $LLMFLATION_RESULTS wins. On Colab each notebook runs in its own runtime and the clone
    (with results/ in it) vanishes with it, so a mounted Google Drive is used when there is
    one; without it the results stay in the runtime and the warning says how to keep them."""
    if os.environ.get(ENV_PATH):
        return Path(os.environ[ENV_PATH]).expanduser(), None
    if not in_colab_runtime(in_colab):
        return DEFAULT_PATH, None
    folder = drive_folder(True, drive)
    if folder is not None:
        return folder / DEFAULT_PATH.name, None
    return DEFAULT_PATH, (
        "your results live in this Colab runtime only and vanish with it, so notebook 07 would "
        "find none of the earlier notebooks' measurements. To keep them, run "
        "`from google.colab import drive; drive.mount('/content/drive')` and then this cell again "
        f"(they go to MyDrive/{DRIVE_FOLDER}/, with a quantized copy of the model that the next notebooks "
        f"read instead of downloading it again), or download {DEFAULT_PATH.relative_to(REPO)} "
        "from the Files panel before the runtime ends.")


class CorruptResultsError(UserError, ValueError):
    """A results file that cannot be read back; the file itself is left untouched."""


class ResultsPathError(UserError, OSError):
    """A results path that cannot take records (a folder, a read-only file, an unwritable folder)."""


# timing statistics (utils.measure.Stat.as_dict): a table of finite numbers
STAT_METRICS = ("prefill_s", "total_s", "decode_tok_s", "e2e_tok_s", "ttft_s", "itl_s")
STAT_FIELDS = ("median", "low", "high", "n")
NUMBER_METRICS = ("batch", "prompt_tokens", "new_tokens", "peak_memory_gb", "usd_per_million",
                  "perplexity", "bits_per_byte", "exact_match", "exact_match_items",
                  "total_params", "active_params")
# settings the curve and the class chart join into words or compare as names (utils.steps.describe,
# utils.chain, utils.curve.source_of): a number there passes json but fails them with TypeError
STRING_SETTINGS = ("precision", "notebook", "profile", "model", "attn_implementation", "builds_on")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _non_finite(value, where: str) -> list[str]:
    """Paths inside ``value`` that hold NaN or an infinity (json reads both without complaint)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where} is {value}, not a finite number"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{where}[{i}]")]
    return []


def record_problems(record) -> list[str]:
    """What is wrong with one record's shape (empty when it is sound): the fields every record
    has, timing statistics that are tables of numbers, numbers that are numbers (a median stored
    as the string "12.3" is reported, never dropped silently) and finite, and the types the curve
    and the class chart read (an ISO timestamp, settings such as precision that are strings)."""
    if not isinstance(record, dict):
        return [f"a {type(record).__name__}, not a results record (an object)"]
    schema = record.get("schema", SCHEMA)
    if not (isinstance(schema, int) and not isinstance(schema, bool)) or schema > SCHEMA:
        return [f"schema {schema!r}: written by a newer version of the kit (this one reads schema {SCHEMA}); "
                f"update the kit (git pull) to read it"]
    out = [f"{key} must be a non-empty string" for key in ("kind", "step")
           if not (isinstance(record.get(key), str) and record[key])]
    for key in ("settings", "metrics"):
        if not isinstance(record.get(key), dict):
            out.append(f"{key} must be an object, not {type(record.get(key)).__name__}")
    if record.get("run") is not None and not (isinstance(record["run"], str) and record["run"]):
        out.append(f"run must be a non-empty string, not {record['run']!r}")
    if record.get("hardware") is not None and not isinstance(record["hardware"], dict):
        out.append(f"hardware must be an object, not {type(record['hardware']).__name__}")
    out += _timestamp_problems(record.get("timestamp"))
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    out += [f"settings.{key} is {settings[key]!r}, not a string" for key in STRING_SETTINGS
            if settings.get(key) is not None and not isinstance(settings[key], str)]
    hardware = record.get("hardware") if isinstance(record.get("hardware"), dict) else {}
    if hardware.get("gpu_name") is not None and not isinstance(hardware["gpu_name"], str):
        out.append(f"hardware.gpu_name is {hardware['gpu_name']!r}, not a string")
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    for key in STAT_METRICS:
        if metrics.get(key) is None:          # absent, or not taken (TTFT at batch > 1)
            continue
        stat = metrics[key]
        if not isinstance(stat, dict) or "median" not in stat:
            out.append(f"metrics.{key} must be an object with a median, not {stat!r}")
            continue
        out += [f"metrics.{key}.{f} is {stat[f]!r}, not a number" for f in STAT_FIELDS
                if f in stat and not _is_number(stat[f])]
    out += [f"metrics.{key} is {metrics[key]!r}, not a number" for key in NUMBER_METRICS
            if metrics.get(key) is not None and not _is_number(metrics[key])]
    return out + _non_finite(metrics, "metrics")


def _timestamp_problems(value) -> list[str]:
    """What is wrong with a record's timestamp (absent or None is allowed: older records): it is
    an ISO 8601 string, as :func:`run_context` writes it, which the curve slices for its dates."""
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"timestamp is {value!r}, not an ISO date string such as '2026-11-22T09:30:00+00:00'"]
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return [f"timestamp {value!r} is not an ISO date such as '2026-11-22T09:30:00+00:00'"]
    return []


def learner_id(record: dict) -> str | None:
    """The learner id a record carries (see :meth:`ResultsStore.learner`), or None."""
    learner = record.get("learner")
    return learner["id"] if isinstance(learner, dict) and isinstance(learner.get("id"), str) else None


_REPORTED: set[str] = set()      # problems already told, so a run reports each bad line once


def check_writable(path: Path) -> None:
    """Raise :class:`ResultsPathError` if records cannot be appended at ``path``; checked before
    any measurement, so an hour of timing is never lost to a path that cannot take it."""
    path = Path(path)
    if path.is_dir():
        raise ResultsPathError(f"results path {path} is a folder; give a file such as "
                               f"{path / DEFAULT_PATH.name}")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ResultsPathError(f"results file {path} is read-only; make it writable "
                                   f"(chmod u+w) or give another file with --results / {ENV_PATH}")
        return
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ResultsPathError(f"cannot create {path}: {folder} is not a writable folder; give "
                               f"another file with --results / {ENV_PATH}")


def software_versions() -> dict:
    from .versions import installed
    return {"python": platform.python_version(), **{name: installed(name) for name in PACKAGES}}


def kit_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def new_run(what: str) -> str:
    """A new run id: when it started (UTC) and what ran (a notebook, the benchmark), plus a random
    suffix so two runs started in the same second stay two. Every record of one notebook session
    or one benchmark run carries the same id."""
    import uuid
    started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{started}-{'-'.join(what.lower().split())}-{uuid.uuid4().hex[:6]}"


def run_context(hw=None) -> dict:
    """Hardware, software and time for a record (``hw`` is a Hardware or None)."""
    return dict(timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                hardware=hw.as_dict() if hw is not None else None,
                software=software_versions(), kit_commit=kit_commit(),
                host=platform.node())


NOT_JSON_LINES = "not a JSON Lines results file (binary data): left out whole"


class ResultsStore:
    """Append-only JSON-lines file of measurement records."""

    def __init__(self, path: str | os.PathLike | None = None):
        # where no path is given, the default's warning (results that would not last) with it
        self.path, self.warning = (Path(path).expanduser(), None) if path else default_path()
        self._learner_id: str | None = None

    def learner(self) -> dict:
        """Who records here, stored in every record so a class merge never takes two learners
        for one (two files may share a name): a random id kept by the store (the one its first
        records carry) and, when $LLMFLATION_LEARNER is set, a name for the class chart."""
        if self._learner_id is None:
            records, _ = self.read() if self.path.is_file() else ([], [])
            ids = [i for i in map(learner_id, records) if i is not None]
            import uuid
            self._learner_id = ids[0] if ids else uuid.uuid4().hex[:12]
        name = os.environ.get(ENV_LEARNER, "").strip()
        return dict(id=self._learner_id, **({"name": name} if name else {}))

    def __repr__(self) -> str:
        return f"ResultsStore('{self.path}')"

    def append(self, kind: str, *, step: str, settings: dict, metrics: dict,
               hw=None, context: dict | None = None, run: str | None = None) -> dict:
        """Add one record and make it durable before returning it.

        ``kind`` says what was measured ("generation", "quality", ...), ``step``
        names the cost-curve step it belongs to ("baseline", "+ 4-bit", ...),
        ``run`` the notebook session or benchmark run that measured it (:func:`new_run`):
        the cost curve prices each step from its latest run.
        """
        return self.write(self.make_record(kind, step=step, settings=settings, metrics=metrics, hw=hw,
                                           context=context, run=run))

    def make_record(self, kind: str, *, step: str, settings: dict, metrics: dict,
                    hw=None, context: dict | None = None, run: str | None = None) -> dict:
        """The record :meth:`append` would write (see there), not yet written."""
        if not kind or not step:
            raise ValueError("a record needs a kind and a step name")
        return dict(schema=SCHEMA, kind=kind, step=step, settings=settings, metrics=metrics,
                    learner=self.learner(), **({"run": run} if run else {}),
                    **(context or run_context(hw)))

    def write(self, record: dict) -> dict:
        """Append ``record`` (from :meth:`make_record`) and make it durable before returning it."""
        line = json.dumps(record, default=_jsonable, allow_nan=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        end = None
        try:
            with open(self.path, "a+b") as f:
                # A crash mid-write can leave a last line without its newline;
                # start on a fresh line so the new record stays readable.
                f.seek(0, os.SEEK_END)
                end = f.tell()
                if end:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.write(line.encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            # a full disk can take part of the line: cut it off, so the file keeps whole records
            # only and the caller (which keeps the record: Lab.record, the benchmark) can retry it
            if end is not None:
                try:
                    os.truncate(self.path, end)
                except OSError:
                    pass
            raise
        return record

    def read(self) -> tuple[list[dict], list[str]]:
        """(the sound records, oldest first; one message per line left out, naming file, line
        and what is wrong). A torn last line (a crash mid-write) is one such line."""
        if not self.path.exists():
            return [], []
        if self.path.is_dir():
            raise ResultsPathError(f"results path {self.path} is a folder, not a results file")
        data = self.path.read_bytes()
        if b"\0" in data[:8192]:        # a JSON Lines file never holds a NUL byte
            return [], [f"{self.path}: {NOT_JSON_LINES}"]
        out, problems = [], []
        # utf-8-sig: an editor's byte-order mark before the first record is not part of it
        for number, line in enumerate(data.decode("utf-8-sig", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                found = [f"not JSON ({err}; a torn write from a crash looks like this)"]
            else:
                found = record_problems(record)
            if found:
                problems.append(f"{self.path}, line {number}: " + "; ".join(found))
            else:
                out.append(record)
        return out, problems

    def records(self, *, skip_corrupt: bool = False) -> list[dict]:
        """All sound records, oldest first. A bad line raises :class:`CorruptResultsError`
        naming the file, the line and what is wrong, unless ``skip_corrupt`` (then it is left
        out with a warning, given once per run). The file is never changed."""
        records, problems = self.read()
        if problems and not skip_corrupt:
            raise CorruptResultsError("\n".join(problems) + "\nThe file was not changed; fix or delete "
                                      "those lines, or read with skip_corrupt=True (--skip-corrupt).")
        for message in problems:
            if message not in _REPORTED:
                _REPORTED.add(message)
                import warnings
                # explicit, under the file's name in angle brackets: the warning shows the file and
                # no line of the kit's source (a name in <> is never looked up as a source file)
                warnings.warn_explicit(f"left out: {message}", UserWarning, filename=f"<{self.path.name}>",
                                       lineno=0)
        return records

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
