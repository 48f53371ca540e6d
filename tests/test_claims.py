"""What the notebooks say holds to their own data: no failing verdict in a stored solution, no
figure typed into prose that a cell does not compute or a source does not give, no amount a
renderer takes for maths, and claims that the kit's reference runs back."""

import re
from pathlib import Path

import nbformat
import pytest

from utils import reference

REPO = Path(__file__).resolve().parent.parent
SOLVED = sorted((REPO / "solutions").glob("*.ipynb"))
ALL = SOLVED + sorted((REPO / "notebooks").glob("*.ipynb"))
HEADER_TABLE = re.compile(r"\| hardware \| estimated time \|.*?\n\n\*Downloads[^\n]*", re.S)   # generated

# A measured-looking figure: a factor, a share, a rate or a time.
FIGURE = re.compile(r"(?<![\w.(])(\d[\d,]*(?:\.\d+)?)\s*((?:×|x\b)(?!\s*\(?\d)|%|tok/s|tokens/s|ms\b)")
# Figures prose may state: cited headlines with their source, stated constants, and hypotheticals in questions.
ALLOWED = {
    "10x per year": "the seed posts' modelled rate (datasets/historical_prices.csv)",
    "10x": "the posts' rate, in the same sentences as '10x per year'",
    "1,000x": "a16z's $60 -> $0.06 (datasets/historical_prices.csv)",
    "8× higher": "a question in 00's exercise 2",
    "4× the prompt": "a question in 03's exercise 2",
    "40% sure": "transformers' default assistant_confidence_threshold (0.4), named as its default",
    "1.5x the estimate": "the class header's operating point, utils.tools.plan.HELD_AT, written by timetable.class_header",
}


def test_the_class_headers_operating_point_is_the_plans():
    from utils.tools import plan
    assert f"{plan.HELD_AT[1]:g}x the estimate" in ALLOWED     # allowed because the header computes it from here


def prose(nb) -> list[tuple[int, str]]:
    """Markdown text of a notebook without code spans, maths blocks and the generated time table."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            text = HEADER_TABLE.sub("", cell.source)
            text = re.sub(r"\$\$.*?\$\$", "", re.sub(r"`[^`]*`", "", text), flags=re.S)
            out.append((i, text))
    return out


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_no_stored_solution_output_is_a_failing_verdict(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert "CHECK THIS" not in out.get("text", ""), f"{path.name} cell {i}: {out['text'][:300]}"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_prose_states_no_figure_that_no_cell_computes(path):
    """A factor, share, rate or time in a notebook's prose is computed by a cell (and printed there),
    or is one of the cited or hypothetical figures listed in ALLOWED; typed measurements drift from
    the kit's own data."""
    for i, text in prose(nbformat.read(path, as_version=4)):
        for m in FIGURE.finditer(text):
            snippet = text[m.start():m.end() + 12]
            assert any(snippet.startswith(a) or text[m.start():].startswith(a) for a in ALLOWED), \
                f"{path.name} cell {i}: '{text[max(0, m.start() - 60):m.end() + 20]}' types a figure: compute it in a cell"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_amount_in_prose_that_a_renderer_reads_as_maths(path):
    """JupyterLab reads two dollar signs in one paragraph as inline maths even when escaped
    (jupyterlab#8645): prose writes USD or 'price per hour', and $ only inside $$ blocks or code."""
    for i, text in prose(nbformat.read(path, as_version=4)):
        assert "$" not in text, f"{path.parent.name}/{path.name} cell {i}: a $ outside a $$ block or code span"


def test_the_t4_sdpa_claim_matches_the_kits_t4_run():
    """00 and 03 say that on a T4 plain SDPA runs math for Qwen3 (grouped-query attention); the
    kit's run under a T4's rules shows it."""
    from utils.attention import attention_kernel
    rows = [r for r in reference.records("t4-emulated-on-h100_qwen3") if r["step"] == "attention"
            and r["metrics"].get("kernel_names") and not r["settings"].get("sdpa_backend")]
    ran = {r["settings"]["attn_implementation"]: attention_kernel(r["metrics"]["kernel_names"]) for r in rows}
    assert ran["sdpa"] == "SDPA math" and ran["sdpa_repeat_kv"] == "SDPA memory-efficient"
    text = "\n".join(t for _, t in prose(nbformat.read(REPO / "solutions" / "00_setup_preflight.ipynb", as_version=4)))
    assert "then runs **math** on a T4" in text


def test_the_host_bound_claim_holds_in_the_kits_h100_run():
    """00 and 01 teach that generate() at batch 1 on the H100 is overhead-bound: the 14B reads far more
    bytes per step than the 8B but takes no longer, and both sit far below the roofline."""
    from utils.cost import roofline_of
    rows = reference.records("h100_qwen3-8b") + reference.records("h100_qwen3-14b")
    bf16 = {r["settings"]["model"]: r for r in rows if r["step"] == "precision"
            and r["settings"]["precision"] == "bfloat16" and "decode_tok_s" in r["metrics"]}
    small, large = bf16["Qwen/Qwen3-8B"], bf16["Qwen/Qwen3-14B"]
    step = {k: 1 / r["metrics"]["decode_tok_s"]["median"] for k, r in bf16.items()}
    assert step["Qwen/Qwen3-14B"] < 1.1 * step["Qwen/Qwen3-8B"]
    for r in (small, large):
        assert r["metrics"]["decode_tok_s"]["median"] / roofline_of(r) < 0.25


def test_a_batch_gain_above_the_batch_size_is_called_a_timing_fault(capsys):
    reference.show("batch")
    out = capsys.readouterr().out
    gain = float(re.search(r"batch 64 produced (\d+)x", out).group(1))
    assert gain <= 64 and "timing fault" in out


def test_the_assisted_generation_defaults_04_and_set_draft_length_name_are_transformers():
    """04's exercise 2 and utils.speculative.set_draft_length say what transformers does when nothing is set."""
    from transformers import GenerationConfig

    from utils import speculative
    defaults = GenerationConfig._get_default_generation_params()
    assert (defaults["num_assistant_tokens"], defaults["num_assistant_tokens_schedule"],
            defaults["assistant_confidence_threshold"]) == (20, "constant", 0.4)
    doc = " ".join(speculative.set_draft_length.__doc__.split())
    assert "20 assistant tokens, the constant schedule, and a confidence threshold of 0.4" in doc


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_an_exercise_points_at_a_hint_only_when_it_has_one(path):
    nb = nbformat.read(path, as_version=4)
    exercise = ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("### Exercise"):
            exercise = cell.source
        elif cell.cell_type == "code" and "see the hint above" in cell.source:
            assert "Hint" in exercise, f"{path.name} cell {i} points at a hint its exercise does not give"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_every_exercise_has_a_cell_of_its_own(path):
    """An exercise's markdown is followed by a code cell before the next section, and shares no cell
    with a summary."""
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and "### Exercise" in cell.source:
            assert "## Summary" not in cell.source and len(re.findall("[★☆]{3}", cell.source)) == 1, \
                f"{path.name} cell {i}: one exercise per cell, and no summary in it"
            assert i + 1 < len(cells) and cells[i + 1].cell_type == "code", f"{path.name} cell {i} has no code cell"
