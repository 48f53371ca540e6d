"""The one-runtime class: the notebook built from the solutions, and the models kept between lessons."""

import copy
from pathlib import Path

import nbformat
import pytest

from utils.tools import class_notebook
from utils.tools.plan import CORE

REPO = Path(__file__).resolve().parent.parent
CLASS = REPO / "solutions" / f"{class_notebook.NAME}.ipynb"


def solved() -> dict:
    return {nb: nbformat.read(REPO / "solutions" / f"{nb}.ipynb", as_version=4) for nb in CORE}


def lessons_of(nb) -> dict[str, list]:
    out = {}
    for cell in nb.cells:
        lesson = cell.metadata.get(class_notebook.LESSON)
        if lesson:
            out.setdefault(lesson, []).append(cell)
    return out


def test_the_class_holds_every_core_lesson_in_the_plans_order_each_with_its_exercise_and_summary():
    nb = nbformat.read(CLASS, as_version=4)
    lessons = lessons_of(nb)
    assert list(lessons) == list(CORE)
    for stem, cells in lessons.items():
        talk, minutes, which = CORE[stem]
        head = cells[0].source
        assert head.startswith(f"# Lesson {stem[:2]} ·") and f"*Talk {talk} min, then exercise" in head
        exercises = [int(c.source.split()[2]) for c in cells
                     if c.cell_type == "markdown" and c.source.startswith("### Exercise")]
        assert exercises == list(which), f"{stem}: the plan gives exercise(s) {which}, the class has {exercises}"
        assert any(c.cell_type == "markdown" and c.source.startswith("## Summary") for c in cells)


def test_one_setup_one_drive_mount_one_start_and_a_lesson_call_for_every_other_lesson():
    from utils import publish
    nb = nbformat.read(CLASS, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0] == publish.setup_cell() and code[1] == publish.drive_cell()
    assert sum("KIT, REF =" in s for s in code) == 1 and sum("drive.mount(" in s for s in code) == 1
    starts = [s for s in code if "= start(" in s]
    assert len(starts) == 1 and "lessons=[" in starts[0]
    lessons = [line for s in code for line in s.splitlines() if "lab = lab.lesson(" in line]
    assert len(lessons) == len(CORE) - 1


def test_every_other_cell_is_the_solutions_own():
    """Nothing written twice: each lesson cell's source is its notebook's, except the start line."""
    import re
    opening = re.compile(r'lab = (start\("[^"]+"(, lessons=\[[^\]]*\])?\)|lab\.lesson\("[^"]+"\))')
    built = class_notebook.build(solved(), "# header", "setup", "drive")
    for stem, cells in lessons_of(built).items():
        originals = {opening.sub("lab = X", c.source) for c in solved()[stem].cells}
        for cell in cells[1:]:
            assert opening.sub("lab = X", cell.source) in originals, cell.source[:80]
        assert sum(bool(opening.search(c.source)) for c in cells) == 1


def test_a_changed_core_notebook_makes_the_class_stale(monkeypatch):
    import subprocess
    import sys
    assert subprocess.run([sys.executable, str(REPO / "scripts" / "make_exercises.py"), "--check"],
                          capture_output=True).returncode == 0
    solutions = solved()
    changed = copy.deepcopy(solutions)
    cell = next(c for c in changed["03_attention_kernels"].cells if c.cell_type == "markdown" and c.source.startswith("## 1."))
    cell.source += "\n\nA sentence added to notebook 03."
    sources = lambda nb: [(c.cell_type, c.source) for c in nb.cells]   # noqa: E731
    assert sources(class_notebook.build(changed, "h", "s", "d")) != sources(class_notebook.build(solutions, "h", "s", "d"))
    missing = dict(solutions)
    del missing["05_batching"]
    with pytest.raises(ValueError, match="needs the solutions of 05_batching"):
        class_notebook.build(missing, "h", "s", "d")


def test_a_lesson_keeps_the_lab_and_the_store_and_starts_a_run_of_its_own(tmp_path, monkeypatch, capsys):
    from utils.models import resident
    from utils.session import start
    monkeypatch.setenv("LLMFLATION_RESULTS", str(tmp_path / "r.jsonl"))
    lab = start("00 setup and preflight", lessons=["00 setup and preflight", "01 measuring cost"])
    try:
        assert resident.enabled()
        lab.price_per_hour = 1.25
        nxt = lab.lesson("01 measuring cost")
        assert nxt.notebook == "01 measuring cost" and nxt.run != lab.run and "measuring-cost" in nxt.run
        assert nxt.store.path == lab.store.path and nxt.price_per_hour == 1.25 and nxt.hw is lab.hw
        assert nxt.unsaved is lab.unsaved          # a record the store could not take is not lost
        assert "lesson   : 01 measuring cost, in this runtime" in capsys.readouterr().out
    finally:
        resident.enable(False)
    start("01 measuring cost")
    assert not resident.enabled()                  # a notebook of its own frees what it is done with


def test_a_kept_model_is_reused_switched_and_freed_for_room(monkeypatch, capsys):
    from utils.models import free, load_model, resident
    from utils.models.hardware import detect_hardware
    from utils.models.profiles import get_profile
    target = get_profile("offline").target
    hw = detect_hardware()
    resident.enable(True)
    try:
        resident.set_lesson("03 attention kernels")
        eager = load_model(target, "float32", attn_implementation="eager", hw=hw, keep=True)
        model = eager.model
        free(eager)
        assert "stays in memory for the next lesson" in capsys.readouterr().out
        again = load_model(target, "float32", attn_implementation="sdpa", hw=hw, keep=True)
        assert again.model is model and again.attn_implementation == "sdpa"
        assert model.config._attn_implementation == "sdpa"
        out = capsys.readouterr().out
        assert "reusing" in out and "its attention switched to sdpa" in out
        same = load_model(target, "float32", attn_implementation="sdpa", hw=hw, keep=True)
        assert same.model is model and "switched" not in capsys.readouterr().out
        other = load_model(target, "float32", hw=hw)       # not kept: a load of its own (notebook 02's way)
        assert other.model is not model
        free(other)
        assert resident.resident() == [(target.id, "float32", "03 attention kernels")]
        held = load_model(target, "float32", hw=hw, keep=True).model      # a lesson's variable still holds it
        free_gb = iter([0.0, 0.0, 0.0]).__next__                          # ... so nothing comes back
        assert resident.make_room(10.0, available=free_gb, log=print) == [f"{target.id} in float32"]
        assert "its memory did not come back: a variable still holds the model" in capsys.readouterr().out
        del held
        load_model(target, "float32", hw=hw, keep=True)
        freed = resident.make_room(10.0, available=iter([0.0, 0.0, 99.0, 99.0]).__next__, log=print)
        assert freed == [f"{target.id} in float32"] and resident.resident() == []
        assert "to make room" in capsys.readouterr().out
        assert resident.measures_alone("02 quantization") and not resident.measures_alone("03 attention kernels")
    finally:
        resident.enable(False)
    assert load_model(target, "float32", hw=hw, keep=True).model is not model    # off: nothing is reused


def test_a_resident_model_counts_as_free_memory_when_a_lesson_chooses_what_fits(monkeypatch):
    """Lesson 06 picks the 14B's precision while the 8B is still in memory: the choice must count the 8B
    as memory the load will free, or the baseline is wrongly found not to fit."""
    from utils.models import hardware, load_model, preflight, resident
    from utils.models.hardware import detect_hardware
    from utils.models.profiles import get_profile
    hw = detect_hardware()
    monkeypatch.setattr(hardware, "available_gb", lambda hw: 1.0)     # a steady machine, for the sums
    resident.enable(True)
    try:
        load_model(get_profile("offline").target, "float32", hw=hw, keep=True)
        held = resident.held_gb()
        assert held > 0 and resident.room_gb(hw) == pytest.approx(1.0 + held)
        assert preflight.room_gb is resident.room_gb          # what fitting_precision and the checks use
    finally:
        resident.enable(False)
    assert resident.held_gb() == 0 and resident.room_gb(hw) == 1.0


def test_after_a_lost_runtime_each_lesson_runs_again_from_its_heading(tmp_path, monkeypatch):
    """docs/checklist.md: a learner whose runtime died runs the first three code cells again (setup, Drive,
    lesson 00's start), then the current lesson from its heading. So no lesson may lean on a name only an
    earlier lesson defines."""
    from nbclient import NotebookClient
    from utils.tools.rehearse import quiet_kernel_manager
    monkeypatch.setenv("LLMFLATION_RESULTS", str(tmp_path / "r.jsonl"))
    nb = nbformat.read(CLASS, as_version=4)
    first_three = [c for c in nb.cells if c.cell_type == "code"][:3]
    assert "lab = start(" in first_three[2].source
    for stem, cells in lessons_of(nb).items():
        if stem == next(iter(CORE)):
            continue
        alone = nbformat.v4.new_notebook(cells=copy.deepcopy(first_three) + copy.deepcopy(cells))
        NotebookClient(alone, timeout=600, kernel_name="python3", kernel_manager_class=quiet_kernel_manager(),
                       resources={"metadata": {"path": str(CLASS.parent)}}).execute()   # raises on a failed cell
