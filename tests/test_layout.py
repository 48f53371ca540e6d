"""The package's layout holds: no import circles, model access below the lessons that use it, and
nothing a notebook imports reaching the instructor's and maintainer's tools.

Imports are read from the source (every ``import``, also those inside functions), so a late import
that would close a loop counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UTILS = REPO / "utils"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in UTILS.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The kit's module that ``name`` names (a module, or a name inside a package's face)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {m for m in map(resolve, names) if m and m != module}
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_is_read():
    """The reader finds the arrows it should (a reader that found none would pass every test)."""
    assert "utils.models.hardware" in GRAPH["utils.measure"]
    assert "utils.memory" in GRAPH["utils.models.loading"]
    assert "utils.models.kept" in GRAPH["utils.models.loading"]        # a late import, inside a function
    assert "utils.tools.rehearse" in GRAPH["utils.lab"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_circle(module):
    assert module not in reach(module), f"{module} imports itself through {sorted(reach(module) & set(GRAPH))}"


def test_model_access_sits_below_the_modules_that_use_it():
    """What utils.models imports from the rest of the package never leads back into utils.models: the
    folder is one floor, with the lessons' primitives under it and the lessons that load models above."""
    inside = {m for m in MODULES if m.startswith("utils.models")}
    below = {m for mod in inside for m in GRAPH[mod] if m not in inside}
    assert below, "utils.models imports nothing from utils: the reader is broken"
    for m in below:
        assert not reach(m) & inside, f"{m} is imported by utils.models and imports it back"


def notebook_imports() -> set[str]:
    found = set()
    for nb in [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("solutions/*.ipynb")]:
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("utils"):
                    found |= {resolve(f"{node.module}.{a.name}") for a in node.names}
    return found - {None}


def test_notebooks_never_reach_the_tools():
    used = notebook_imports()
    assert "utils.models" in used and "utils.session" in used
    tools = {m for m in MODULES if m.startswith("utils.tools")}
    for m in used:
        assert not ({m} | reach(m)) & tools, f"the notebooks import {m}, which reaches {sorted(reach(m) & tools)}"


def test_notebooks_take_model_access_from_its_face():
    """One short line (``from utils.models import load_model, free``); the preflight's checks, whose
    function shares its module's name, are the one deeper import."""
    deep = {m for m in notebook_imports() if m.startswith("utils.models.")}
    assert deep <= {"utils.models.preflight"}, deep


@pytest.mark.parametrize("command", [["utils.models.preflight", "--profile", "offline"],
                                     ["utils.models.downloads", "--profile", "t4"]])
def test_model_access_commands_run_without_a_warning(command):
    """Running a module of the folder as a command loads it once (a face that imported it first would
    run it twice, and Python warns on stderr)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "default", "-m", *command], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
