"""Faults and odd inputs (issue #38, items 3 and 4): a full disk, and a chain that cannot be drawn.

A full disk is faked, never made: ``full_disk`` lets files under one folder be opened (and
created, as a real full disk does) but every write to them fails with ENOSPC.
"""

import builtins
import errno
import io
import json
from pathlib import Path

import pytest

from utils import benchmark
from utils.curve import write_curve
from utils.results import ResultsStore, record_problems

ENOSPC = "No space left on device"


@pytest.fixture
def quick_profile(quick_profile_file):
    """The small offline profile (tests/conftest.py), SDPA alone."""
    return quick_profile_file()


def no_space(name) -> OSError:
    return OSError(errno.ENOSPC, ENOSPC, str(name))


class FullFile:
    """A real open file whose writes fail as on a full disk (opening, reading, seeking still work)."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise no_space(self._f.name)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Call with a folder: from then on every file opened for writing under it cannot take a byte."""
    folders = []
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        writes = any(c in mode for c in "wax+")
        if writes and isinstance(file, (str, Path)) and any(Path(file).resolve().is_relative_to(d)
                                                           for d in folders):
            return FullFile(f)
        return f

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)        # pathlib.Path.open calls io.open
    return lambda folder: folders.append(Path(folder).resolve())


def leftovers(folder: Path, expected: set[str]) -> set[str]:
    """Files in ``folder`` beyond ``expected`` (a temporary file left behind shows here)."""
    return {p.name for p in folder.iterdir()} - expected


# --- item 3: a full disk loses a measurement ---------------------------------------------------

def test_a_full_disk_keeps_every_measurement_and_runs_the_later_steps(quick_profile, tmp_path,
                                                                      full_disk, monkeypatch, capsys):
    import tempfile
    full, spare = tmp_path / "full", tmp_path / "spare"
    full.mkdir(), spare.mkdir()
    full_disk(full)
    monkeypatch.setattr(tempfile, "tempdir", str(spare))     # where the kept records can still go
    results = full / "r.jsonl"
    status = benchmark.main(["--profile", quick_profile, "--results", str(results), "--random-weights",
                             "--steps", "baseline", "precision"])
    out = capsys.readouterr().out
    assert status == 1
    assert out.count("NOT SAVED") >= 3 and ENOSPC in out          # each step said so, with the reason
    assert ResultsStore(results).read() == ([], [])                # nothing (not even a torn line) got in
    kept = list(spare.glob("llmflation-unsaved-*.jsonl"))
    assert len(kept) == 1 and str(kept[0]) in out                  # the end says where they are
    records = [json.loads(line) for line in kept[0].read_text().splitlines()]
    assert [r["step"] for r in records] == ["larger baseline", "target", "+ 4-bit"]
    assert all(record_problems(r) == [] for r in records)          # a results file as the store's
    assert leftovers(full, {"r.jsonl"}) == set()


def test_a_log_that_cannot_be_written_never_stops_the_run(quick_profile, tmp_path, full_disk,
                                                          monkeypatch, capsys):
    """The errors log and the fallback file are on the full disk too: the run still ends, and the
    kept records come out on stdout as JSON lines that can be pasted into the results file."""
    full, fallback = tmp_path / "full", tmp_path / "full" / "unsaved.jsonl"
    full.mkdir()
    full_disk(full)
    monkeypatch.setattr(benchmark.Bench, "fallback_path", lambda self: fallback, raising=False)
    model_at = benchmark.Bench.model_at

    def baseline_breaks(self, step, role, precision):
        if role == "baseline":
            raise RuntimeError("an untested library version")
        return model_at(self, step, role, precision)

    monkeypatch.setattr(benchmark.Bench, "model_at", baseline_breaks)
    results = full / "r.jsonl"
    status = benchmark.main(["--profile", quick_profile, "--results", str(results), "--random-weights",
                             "--steps", "baseline", "precision"])
    out = capsys.readouterr().out
    assert status == 1
    assert f"could not be kept in {full / 'r_errors.log'} ({ENOSPC}); here it is:\nTraceback" in out
    assert "RuntimeError: an untested library version" in out             # its traceback, said instead
    assert f"nor to {fallback} ({ENOSPC})" in out
    lines = [line for line in out.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == ["target", "+ 4-bit"]          # the later steps still ran
    assert all(record_problems(r) == [] for r in records)
    assert leftovers(full, {"r.jsonl"}) == set()


def test_a_failed_append_leaves_no_torn_line(tmp_path, monkeypatch):
    """A disk that fills while the record is being made durable: the file keeps whole records only."""
    store = ResultsStore(tmp_path / "r.jsonl")
    store.append("benchmark", step="target", settings={}, metrics={}, context={})
    before = store.path.read_bytes()

    def fsync(fd):
        raise no_space(store.path)

    monkeypatch.setattr("os.fsync", fsync)
    with pytest.raises(OSError, match=ENOSPC):
        store.append("benchmark", step="+ 4-bit", settings={}, metrics={}, context={})
    assert store.path.read_bytes() == before


# --- the curve's pair: both new, or both old ----------------------------------------------------

def add(store, step, rate, when="2026-11-22T00:00:00+00:00", profile="a", precision="nf4", **settings):
    store.append("benchmark", step=step, settings=dict(model="m", precision=precision, profile=profile, **settings),
                 metrics={"e2e_tok_s": {"median": rate}, "batch": 1},
                 context={"timestamp": when, "hardware": {"gpu_name": None, "vram_gb": None, "device": "cpu"}})


@pytest.fixture
def old_pair(tmp_path):
    """A store with a two-step chain and the curve already written from it: (store, out, old bytes)."""
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, precision="float16")
    add(store, "+ 4-bit", 300.0)
    out = tmp_path / "out"
    write_curve(store, out, 1.0)
    return store, out, {name: (out / name).read_bytes() for name in ("cost_curve.csv", "cost_curve.png")}


def test_a_curve_that_cannot_be_saved_leaves_the_old_pair(old_pair, monkeypatch, capsys):
    from matplotlib.figure import Figure

    from utils.curve import main
    store, out, before = old_pair
    add(store, "+ batching", 900.0, batch=8)                   # a new CSV would differ

    def savefig(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")               # part of it made it to the disk
        raise no_space(fname)

    monkeypatch.setattr(Figure, "savefig", savefig)
    assert main(["--results", str(store.path), "--price", "1.0", "--out", str(out)]) == 2
    assert ENOSPC in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert leftovers(out, set(before)) == set()


def test_a_full_disk_never_leaves_an_empty_csv(old_pair, full_disk):
    from utils.atomic import OutputError
    store, out, before = old_pair
    full_disk(out)
    with pytest.raises(OutputError, match=ENOSPC):
        write_curve(store, out, 1.0)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert leftovers(out, set(before)) == set()


# --- item 4: a chain that cannot be drawn ---------------------------------------------------------

def test_a_baseline_alone_says_so_and_writes_nothing(old_pair, capsys):
    """A baseline-only run on a new profile into an existing file: the newest group has no chain."""
    from utils import cli
    from utils.curve import NothingToDrawError, main
    store, out, before = old_pair
    add(store, "larger baseline", 50.0, when="2026-11-23T00:00:00+00:00", profile="b", role="baseline")
    capsys.readouterr()
    assert main(["--results", str(store.path), "--price", "1.0", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "nothing to draw" in err[0] and "larger baseline" in err[0]
    assert "log-scaled" not in captured.out + captured.err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert leftovers(out, set(before)) == set()
    # utils.lab catches a ValueError from the curve ("no cost curve written"): this is one
    with pytest.raises(NothingToDrawError) as caught:
        write_curve(store, out, 1.0)
    assert isinstance(caught.value, cli.UserError) and isinstance(caught.value, ValueError)


# --- the helper itself, and the class chart ------------------------------------------------------

def test_writing_replaces_only_a_complete_file(tmp_path):
    from utils.atomic import replacing, writing
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):             # a Ctrl-C half-way: the old file, no temporary
        with writing(path) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and leftovers(tmp_path, {"a.txt"}) == set()
    with writing(path) as f:
        f.write("new")
    assert path.read_text() == "new" and leftovers(tmp_path, {"a.txt"}) == set()
    other = tmp_path / "b.png"
    other.write_bytes(b"old png")
    with pytest.raises(ValueError):                    # the second of a pair fails: neither is replaced
        with replacing(path, other) as (text, png):
            text.write_text("newer")
            raise ValueError("Data cannot be log-scaled")
    assert path.read_text() == "new" and other.read_bytes() == b"old png"
    assert leftovers(tmp_path, {"a.txt", "b.png"}) == set()


def test_the_class_chart_that_cannot_be_saved_leaves_the_old_pair(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from utils.classroom import main
    alice = ResultsStore(tmp_path / "alice.jsonl")
    add(alice, "target", 100.0, precision="float16")
    add(alice, "+ 4-bit", 300.0)
    out = tmp_path / "class"
    assert main([str(alice.path), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    add(alice, "+ batching", 900.0, batch=8)
    monkeypatch.setattr(Figure, "savefig", lambda self, fname, **kw: (_ for _ in ()).throw(no_space(fname)))
    assert main([str(alice.path), "--out", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
