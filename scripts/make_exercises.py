"""Generate the exercise notebooks in notebooks/ from the solved ones in solutions/.

Each exercise is written once, in its solution notebook:

    ### BEGIN SOLUTION
    my_cost = cost_per_million(lab.price_per_hour, rate)
    ### END SOLUTION
    #STUB my_cost = None   # use cost_per_million(...)

In notebooks/ the lines between the markers become "# YOUR CODE HERE" and each
"#STUB " line becomes code, so an unsolved exercise leaves a placeholder value
(None) and the cells after it still run. Every notebook's badges and setup cell,
and the README's badges, are regenerated from utils/publish.py (where the kit is
published), each badge pointing at its own file. Only the outputs of "# NBVAL_CHECK_OUTPUT" cells are kept (nbval
compares them); every other output is cleared, so no solution result shows.

    python scripts/make_exercises.py            # write notebooks/
    python scripts/make_exercises.py --check    # exit 1 if notebooks/ is out of sync
    python scripts/make_exercises.py --execute  # run the solutions first, storing their outputs

--execute runs them on an empty results store of its own, the cost curve (07) last, so its
figures are the ones 00-06 and 08 printed in the same run. It also writes how long each solution took to run, and on what machine, to
datasets/reference/offline-cpu_notebooks.json: the measured CPU column of the
instructor's timetable, and rewrites that page (docs/timetable.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from utils import publish  # noqa: E402  (the repository root is not installed)

SOLUTIONS, EXERCISES = REPO / "solutions", REPO / "notebooks"
README = REPO / "README.md"
BEGIN, END, STUB = "### BEGIN SOLUTION", "### END SOLUTION", "#STUB "


def strip_solution(source: str, hint: bool = True) -> str:
    """``source`` with its solution blocks replaced by a placeholder (which points at the exercise's
    hint only when it has one) and its #STUB lines made code."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == BEGIN:
            inside = True
            out.append(indent + "# YOUR CODE HERE" + (" (see the hint above)" if hint else ""))
        elif stripped == END:
            inside = False
        elif inside:
            continue
        elif stripped.startswith(STUB):
            out.append(indent + stripped[len(STUB):])
        else:
            out.append(line)
    if inside:
        raise ValueError("a solution block is not closed with " + END)
    return "\n".join(out)


def published(nb, path: str):
    """``nb`` with its header badges (for ``path``) and setup cell from utils/publish.py, and its
    estimated-time table from utils/tools/timetable.py (the measured and computed figures)."""
    from utils.tools import timetable
    nb = copy.deepcopy(nb)
    nb.cells[0].source = timetable.with_header_table(publish.with_badges(nb.cells[0].source, path),
                                                     Path(path).stem)
    nb.cells[1].source = publish.setup_cell()
    return nb


def exercise_version(nb, name: str = ""):
    ex = published(nb, f"notebooks/{name}") if name else copy.deepcopy(nb)
    exercise = ""                                  # the text of the exercise a solution cell answers
    for cell in ex.cells:
        if cell.cell_type == "markdown":
            exercise = cell.source if cell.source.lstrip().startswith("### Exercise") else exercise
        else:
            cell.metadata.pop("execution", None)   # run timestamps: noise in every diff
            if BEGIN in cell.source:
                cell.source = strip_solution(cell.source, hint="*Hint" in exercise or "Hint:" in exercise)
            if "# NBVAL_CHECK_OUTPUT" not in cell.source:
                # learners see their own results, not the solution's (which could
                # give an answer away); checked cells keep theirs for nbval
                cell.outputs, cell.execution_count = [], None
    return ex


def sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


TIMINGS = REPO / "datasets" / "reference" / "offline-cpu_notebooks.json"


def execute(path: Path) -> float:
    """Run one notebook in place; returns its wall time in seconds (kernel start included)."""
    from nbclient import NotebookClient

    from utils.tools.rehearse import quiet_kernel_manager
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3", kernel_manager_class=quiet_kernel_manager(),
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)      # run timestamps: noise in every diff
    nbformat.write(nb, path)
    print(f"executed {path.resolve().relative_to(REPO)} in {seconds:.0f} s")
    return seconds


def write_timings(seconds: dict[str, float]) -> None:
    """Record the solutions' run times and the machine they ran on (the timetable's CPU column)."""
    from datetime import datetime, timezone

    from utils.models.hardware import detect_hardware
    from utils.models.profiles import load_profile
    hw = detect_hardware(str(REPO))
    TIMINGS.write_text(json.dumps(dict(
        what="wall time of each solved notebook run top to bottom by scripts/make_exercises.py --execute",
        profile=load_profile(hw=hw).name, machine=hw.summary(), cpus=hw.cpu_count,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seconds={k: round(v, 1) for k, v in sorted(seconds.items())}), indent=1) + "\n", encoding="utf-8")
    from utils.tools import timetable
    timetable.write()                              # the page that reads them


def class_version():
    """The class notebook (utils/tools/class_notebook.py), solved, from the published solutions."""
    from utils.tools import class_notebook, timetable
    from utils.tools.plan import CORE
    path = f"solutions/{class_notebook.NAME}.ipynb"
    solved = {nb: published(nbformat.read(SOLUTIONS / f"{nb}.ipynb", as_version=4), f"solutions/{nb}.ipynb")
              for nb in CORE}
    return class_notebook.build(solved, timetable.class_header(path), publish.setup_cell(), publish.drive_cell())


def write_class(check: bool, run: bool, seconds: dict) -> list[str]:
    """Write (or with ``check``, compare) the class notebook, both versions; with ``run``, execute the
    solved one first, on a results store of its own; what is out of sync."""
    from utils.tools import class_notebook, timetable
    name = f"{class_notebook.NAME}.ipynb"
    sol, target = SOLUTIONS / name, EXERCISES / name
    current = class_version()
    if check:
        stale = [f"solutions/{name}"] if not sol.exists() or sources(nbformat.read(sol, as_version=4)) != sources(current) else []
        ex = exercise_version(current)
        ex.cells[0].source = timetable.class_header(f"notebooks/{name}")
        if not target.exists() or sources(nbformat.read(target, as_version=4)) != sources(ex):
            stale.append(name)
        return stale
    if sol.exists():           # keep the outputs of the last run where the cell is unchanged
        old = {c.source: c for c in nbformat.read(sol, as_version=4).cells}
        for cell in current.cells:
            if cell.cell_type == "code" and cell.source in old:
                cell.outputs = old[cell.source].get("outputs", [])
                cell.execution_count = old[cell.source].get("execution_count")
    nbformat.write(current, sol)
    if run:
        import tempfile
        os.environ["LLMFLATION_RESULTS"] = str(Path(tempfile.mkdtemp(prefix="llmflation-class-")) / "my_results.jsonl")
        seconds[sol.stem] = execute(sol)
    ex = exercise_version(nbformat.read(sol, as_version=4))
    ex.cells[0].source = timetable.class_header(f"notebooks/{name}")
    nbformat.write(ex, target)
    return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--execute", action="store_true")
    args = parser.parse_args(argv)
    stale, seconds = [], {}
    readme = publish.readme_with_badges(README.read_text(), "notebooks/00_setup_preflight.ipynb")
    if readme != README.read_text():
        if args.check:
            stale.append("README.md badges")
        else:
            README.write_text(readme)
    if args.execute:
        # the solutions' stored outputs come from one run on an empty results store, 07 last
        # (it reads what 00-06 and 08 recorded), so its figures are the figures they printed
        import tempfile
        os.environ["LLMFLATION_RESULTS"] = str(Path(tempfile.mkdtemp(prefix="llmflation-solutions-"))
                                               / "my_results.jsonl")
    from utils.tools.rehearse import is_class, notebook_order
    for sol in notebook_order(p for p in SOLUTIONS.glob("*.ipynb") if not is_class(p)):
        solved = nbformat.read(sol, as_version=4)
        current = published(solved, f"solutions/{sol.name}")
        if sources(current) != sources(solved):
            if args.check:
                stale.append(f"solutions/{sol.name} (badges or setup cell)")
            else:
                nbformat.write(current, sol)
        ex = exercise_version(current, sol.name)
        target = EXERCISES / sol.name
        if args.check:
            if not target.exists() or sources(nbformat.read(target, as_version=4)) != sources(ex):
                stale.append(target.name)
            continue
        if args.execute:
            seconds[sol.stem] = execute(sol)
            ex = exercise_version(nbformat.read(sol, as_version=4), sol.name)
        nbformat.write(ex, target)
    stale += write_class(args.check, args.execute, seconds)
    if seconds and len(seconds) == len(list(SOLUTIONS.glob("*.ipynb"))):
        write_timings(seconds)
        return main([])          # the headers' estimated times read the timings just written
    extra = {p.name for p in EXERCISES.glob("*.ipynb")} - {p.name for p in SOLUTIONS.glob("*.ipynb")}
    stale += sorted(extra)
    if args.check and stale:
        print("out of sync with solutions/ or utils/publish.py: " + ", ".join(stale) +
              "\nrun: python scripts/make_exercises.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
