"""Where the kit is published: one setting for every badge, clone and link.

To publish the kit elsewhere, or to pin a release, change ``GITHUB_REPO`` and
``REF`` here and run ``python scripts/make_exercises.py``: the notebooks' badges
and setup cells and the README's badges are regenerated from this module (a
test fails while any of them disagrees).

``REF`` is a branch or a tag. The badges open the notebooks at ``REF`` and the
setup cell clones ``REF``, so on Colab the notebook and the kit it imports are
always the same version.
"""

from __future__ import annotations

import re

GITHUB_REPO = "llmflation-lab/llmflation-lab"
REF = "main"
COLAB_FOLDER = "/content/llmflation-lab"

BADGES_BEGIN = "<!-- badges: generated from utils/publish.py by scripts/make_exercises.py -->"
BADGES_END = "<!-- /badges -->"
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\].*$", re.M)


def clone_url() -> str:
    return f"https://github.com/{GITHUB_REPO}"


def colab_url(path: str) -> str:
    """Open ``path`` (relative to the repository root) in Colab, at REF."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{REF}/{path}"


def binder_url(path: str) -> str:
    """Open ``path`` in JupyterLab on Binder, built from REF."""
    return f"https://mybinder.org/v2/gh/{GITHUB_REPO}/{REF}?urlpath=lab/tree/{path}"


def badges(path: str) -> str:
    """The Colab and Binder badges for one notebook, on one line."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path)}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(path)})")


def with_badges(markdown: str, path: str) -> str:
    """A notebook's header cell with its badge line regenerated for ``path``."""
    if not _BADGE_LINE.search(markdown):
        raise ValueError(f"{path}: the header cell has no badge line to regenerate")
    return _BADGE_LINE.sub(lambda _: badges(path), markdown, count=1)


def readme_with_badges(text: str, first_notebook: str) -> str:
    """The README with its generated badge block (between the markers) rewritten."""
    block = f"{BADGES_BEGIN}\n{badges(first_notebook)}\n{BADGES_END}"
    pattern = re.compile(re.escape(BADGES_BEGIN) + r".*?" + re.escape(BADGES_END), re.S)
    if not pattern.search(text):
        raise ValueError("README.md has no badge block: add the two marker lines under the title")
    return pattern.sub(lambda _: block, text, count=1)


def setup_cell() -> str:
    """The first code cell of every notebook. On Colab: clone the kit at REF (again, if a
    clone broke off), then run scripts/colab_setup.py until it has once succeeded (what Colab
    lacks, a tested transformers, never Colab's torch). Elsewhere: find the checkout."""
    return f'''# Setup: on Colab, fetch the kit at this notebook's version and add what Colab lacks (once per
# runtime); Binder and a local checkout need nothing. The repository is set in utils/publish.py.
import subprocess
import sys
from pathlib import Path

KIT, REF = "{clone_url()}", "{REF}"
if "google.colab" in sys.modules:
    root = Path("{COLAB_FOLDER}")
    if not (root / "utils" / "__init__.py").exists():    # first run, or a clone that broke off
        subprocess.run(["rm", "-rf", str(root)], check=True)
        subprocess.run(["git", "clone", "--depth=1", "--branch", REF, KIT, str(root)], check=True)
    if not (root / ".colab-ready").exists():               # until an install has succeeded
        subprocess.run([sys.executable, str(root / "scripts" / "colab_setup.py")], check=True)
else:
    here = Path.cwd().resolve()
    root = next((p for p in [here, *here.parents] if (p / "utils" / "__init__.py").exists()), None)
    if root is None:
        raise RuntimeError(f"{{here}} is not inside the LLMflation Lab folder (the one with utils/): "
                           "start Jupyter in the kit's folder, or open the notebook from there.")
sys.path.insert(0, str(root))'''


def drive_cell() -> str:
    """The class notebook's one Google Drive mount (Colab only): the learner's results and the class's
    model copies live there."""
    return '''# Google Drive, once for the whole class: your results store and the class's model copies live there.
# Colab asks you to approve it; anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    from google.colab import drive
    drive.mount("/content/drive")'''

