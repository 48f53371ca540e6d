"""The Colab T4 class in one runtime: the core track as one notebook, built from the solutions' cells.

``scripts/make_exercises.py`` writes ``solutions/class_t4.ipynb`` with :func:`build` and its exercise
version beside the other notebooks; nothing in it is written twice. From each core notebook
(:data:`utils.tools.plan.CORE`, in the plan's order) it takes every cell, except:

* the header becomes the lesson's heading: its title and goal, with the plan's talk and exercise minutes;
* the setup cell is kept once, at the top, followed by one Google Drive mount;
* ``lab = start("...")`` stays in the first lesson, which opens the one runtime for every lesson
  (``start(..., lessons=[...])``), and becomes ``lab = lab.lesson("...")`` in the others: the same
  machine, profile, store and price, a new run for the lesson's records;
* the exercises the plan does not give the class (and their checkpoints) are left out.

A model a lesson loads again is not reloaded by a dropped cell but by the kit: in one runtime
``load_model`` returns the model an earlier lesson kept (:mod:`utils.models.resident`), and frees
the resident ones when another model needs the room.
"""

from __future__ import annotations

import copy
import re

import nbformat

NAME = "class_t4"
LESSON = "lesson"                  # cell metadata: the core notebook a cell comes from
START = re.compile(r'lab = start\("([^"]+)"\)')
EXERCISE = re.compile(r"### Exercise (\d+)\b")


def heading(header: str, notebook: str, talk: int, exercise_min: int, which: tuple[int, ...],
            left_out: tuple[int, ...] = ()) -> str:
    """A lesson's heading from its notebook's header cell: the title, the goal, the plan's minutes, and
    the notebook's exercises the class leaves out (its text may still name them)."""
    title = next(line for line in header.splitlines() if line.startswith("# "))
    goal = next((line for line in header.splitlines() if line.startswith("**Goal.**")), "")
    exercises = ", ".join(str(n) for n in which)
    others = ", ".join(str(n) for n in left_out)
    return (f"# Lesson {title[2:]}\n\n{goal}\n\n*Talk {talk} min, then exercise {exercises} ({exercise_min} min). "
            f"This lesson is notebook `{notebook}` run in the class's one runtime: where its text says "
            f"\"this notebook\", it means this lesson, and \"notebook NN\" means lesson NN."
            + (f" The notebook's exercise{'s' if len(left_out) > 1 else ''} {others} {'are' if len(left_out) > 1 else 'is'} "
               f"not in this class: where the text names {'them' if len(left_out) > 1 else 'it'}, open the separate "
               f"notebook." if left_out else "") + "*")


def lesson_cells(nb, notebook: str, first: bool, lessons: list[str], plan_row: tuple) -> list:
    """The cells of one lesson (see the module doc), each tagged with the notebook it comes from."""
    talk, exercise_min, which = plan_row
    numbers = [int(m.group(1)) for c in nb.cells if c.cell_type == "markdown"
               for m in [EXERCISE.match(c.source.lstrip())] if m]
    left_out = tuple(n for n in numbers if n not in which)
    out = [nbformat.v4.new_markdown_cell(heading(nb.cells[0].source, notebook, talk, exercise_min, which, left_out),
                                         metadata={LESSON: notebook})]
    skipping = False
    for cell in nb.cells[2:]:                           # the header and the setup cell are the class's
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            match = EXERCISE.match(cell.source.lstrip())
            skipping = match is not None and int(match.group(1)) not in which
        if skipping:
            continue
        if cell.cell_type == "code" and START.search(cell.source):
            name = START.search(cell.source).group(1)
            cell.source = START.sub(f'lab = start("{name}", lessons={lessons!r})' if first
                                    else f'lab = lab.lesson("{name}")', cell.source)
        cell.metadata[LESSON] = notebook
        out.append(cell)
    return out


def lesson_names(solutions: dict) -> list[str]:
    """The name each core notebook starts its lab with ("01 measuring cost"), in the plan's order."""
    out = []
    for nb in solutions.values():
        found = [START.search(c.source) for c in nb.cells if c.cell_type == "code" and START.search(c.source)]
        out.append(found[0].group(1))
    return out


def build(solutions: dict, header: str, setup: str, drive: str):
    """The class notebook from ``solutions`` ({stem: solved notebook}, in the plan's order) and the
    class's own header, setup and Drive cells."""
    from .plan import BREAK_AFTER, BREAK_MIN, CORE
    missing = [nb for nb in CORE if nb not in solutions]
    if missing:
        raise ValueError(f"the class needs the solutions of {', '.join(missing)}")
    ordered = {nb: solutions[nb] for nb in CORE}
    lessons = lesson_names(ordered)
    nb = nbformat.v4.new_notebook()
    nb.metadata = copy.deepcopy(next(iter(ordered.values())).metadata)
    nb.cells = [nbformat.v4.new_markdown_cell(header), nbformat.v4.new_code_cell(setup),
                nbformat.v4.new_code_cell(drive)]
    for i, (stem, solved) in enumerate(ordered.items()):
        nb.cells += lesson_cells(solved, stem, i == 0, lessons, CORE[stem])
        if stem == BREAK_AFTER:
            nb.cells.append(nbformat.v4.new_markdown_cell(
                f"# Break, {BREAK_MIN} min\n\nThe runtime keeps its state over the break (the models in memory, "
                f"any downloads still coming in the background, `lab`) as long as it stays connected: leave the "
                f"tab open, since Colab may disconnect a runtime whose page is closed or left idle."))
    for i, cell in enumerate(nb.cells):                # ids of their own, stable from build to build
        cell["id"] = f"{cell.metadata.get(LESSON, 'class')[:2]}-{i:03d}"
    return nb
