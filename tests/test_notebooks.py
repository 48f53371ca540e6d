"""The notebooks' structure: headers, badges, exercises, markers, and the exercise copies in sync."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
SOLVED = sorted((REPO / "solutions").glob("*.ipynb"))
ALL = SOLVED + sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = ["00_setup_preflight", "01_measuring_cost", "02_quantization", "03_attention_kernels",
            "04_speculative_decoding", "05_batching", "06_larger_baseline", "07_cost_curve", "08_serving",
            "09_mixture_of_experts"]


def test_the_whole_sequence_exists():
    assert [p.stem for p in SOLVED] == EXPECTED + ["class_t4"]     # and the class, generated from the core ones
    assert sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb")) == EXPECTED + ["class_t4"]


def test_exercise_notebooks_are_generated_from_solutions():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "make_exercises.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


BADGE_LINKS = re.compile(r"\((https://(?:colab\.research\.google\.com/github|mybinder\.org/v2/gh)/[^)\s]+)\)")


def badge_targets(text: str) -> list[tuple[str, str, str]]:
    """(service, "owner/repo@ref", path) for every Colab and Binder link in ``text``."""
    out = []
    for url in BADGE_LINKS.findall(text):
        colab = re.fullmatch(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)", url)
        binder = re.fullmatch(r"https://mybinder\.org/v2/gh/([^/]+/[^/]+)/([^?]+)\?urlpath=lab/tree/(.+)", url)
        match = colab or binder
        assert match, f"a badge link of an unknown shape: {url}"
        out.append(("colab" if colab else "binder", f"{match.group(1)}@{match.group(2)}", match.group(3)))
    return out


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_header_badges_point_at_this_file_in_the_published_repository(path):
    from utils import publish
    nb = nbformat.read(path, as_version=4)
    head = nb.cells[0].source
    targets = badge_targets(head)
    assert {t[0] for t in targets} == {"colab", "binder"}
    for _, where, rel in targets:
        assert where == f"{publish.GITHUB_REPO}@{publish.REF}"
        assert (REPO / rel).resolve() == path.resolve()
    setup = nb.cells[1].source
    assert f'KIT, REF = "{publish.clone_url()}", "{publish.REF}"' in setup, "clone and badges disagree"
    for needed in ("**Goal.**", "estimated time", "CPU", "T4", "A100", "**GPU needed:**"):
        assert needed in head


def test_readme_badges_open_existing_notebooks_of_the_published_repository():
    from utils import publish
    targets = badge_targets((REPO / "README.md").read_text())
    assert {t[0] for t in targets} == {"colab", "binder"}
    for _, where, rel in targets:
        assert where == f"{publish.GITHUB_REPO}@{publish.REF}" and (REPO / rel).is_file()


def test_setup_cell_finds_the_kit_from_a_subfolder_and_explains_elsewhere(tmp_path):
    from utils import publish
    code = publish.setup_cell() + "\nprint(root)"
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO / "notebooks", capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == str(REPO)
    lost = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert lost.returncode != 0 and "is not inside the LLMflation Lab folder" in lost.stderr


def test_colab_setup_reads_the_tested_range_from_requirements():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import colab_setup
    finally:
        sys.path.pop(0)
    from utils.versions import tested_range
    assert colab_setup.requirement("transformers") == "transformers" + tested_range()
    assert colab_setup.outside("transformers") is None          # .venv's is tested
    assert colab_setup.outside("no-such-package-xyz") == "not installed"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_markers_are_whole_lines_and_checked_cells_have_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if "NBVAL" in line:
                assert line.strip() in ("# NBVAL_CHECK_OUTPUT", "# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")
        if "# NBVAL_CHECK_OUTPUT" in cell.source:
            assert cell.outputs, "a checked cell needs a stored output to compare with"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_exercises_have_difficulty_marks_and_solutions(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    exercises = re.findall(r"### Exercise \d+ (★+☆*)", text)
    if path.stem == "class_t4":          # the one exercise (or more) the class plan gives each lesson
        from utils.tools.plan import CORE
        assert len(exercises) == sum(len(which) for _, _, which in CORE.values())
    else:
        assert 2 <= len(exercises) <= 4
    assert "### BEGIN SOLUTION" in text
    setup = nb.cells[1].source
    assert "google.colab" in setup and "sys.path.insert" in setup


def test_setup_cell_is_identical_everywhere():
    setups = {nbformat.read(p, as_version=4).cells[1].source for p in ALL}
    assert len(setups) == 1


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_exercise_copies_show_no_solution_output(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" not in cell.source:
            assert not cell.outputs
        assert "### BEGIN SOLUTION" not in cell.source


DISPLAY_MATH_OR_CODE = re.compile(r"\$\$.*?\$\$|`[^`]*`", re.S)


def unescaped_dollars(markdown: str) -> list[str]:
    """Dollar signs outside $$...$$ display maths and code spans that are not written \\$.

    Jupyter renders the text between two of them as LaTeX ("$60 ... $0.06" becomes italic
    run-together letters), so a price must be written \\$60."""
    text = DISPLAY_MATH_OR_CODE.sub(" ", markdown)
    return [text[max(0, m.start() - 15):m.end() + 15] for m in re.finditer(r"(?<!\\)\$", text)]


def test_the_dollar_check_catches_a_price_pair_and_spares_maths_and_code():
    assert unescaped_dollars("from $60 per 1M tokens to about $0.06")
    assert not unescaped_dollars(r"from \$60 to \$0.06, `f'${x}'`, and $$\$/\text{1M} = x$$")


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_prices_in_markdown_are_escaped_so_they_do_not_render_as_maths(path):
    nb = nbformat.read(path, as_version=4)
    found = [hit for c in nb.cells if c.cell_type == "markdown" for hit in unescaped_dollars(c.source)]
    assert not found, f"write \\$ for a dollar sign in markdown: {found}"


def test_readme_states_the_offline_models_true_parameter_counts():
    """The README's offline row is text; its counts must be the models' own (it once said 7.7M for 7.3M)."""
    import json

    from utils.memory import ModelShape
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `offline` |"))
    stated = re.search(r"\(([\d.]+)M / ([\d.]+)M / ([\d.]+)M parameters\)", row)
    assert stated, f"the README's offline row no longer states target / draft / baseline counts: {row}"
    for role, text in zip(("target", "draft", "baseline"), stated.groups()):
        config = json.loads((REPO / "models" / "offline" / role / "config.json").read_text())
        assert text == f"{ModelShape.from_config(config).params / 1e6:.1f}", f"README {role}: {text}M"
