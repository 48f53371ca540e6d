"""The curve over time (cited technique dates), the historical drop taken apart, and notebook
07's exercise checkpoints against plausible wrong answers."""

import math
from datetime import date
from pathlib import Path

import nbformat
import pytest

from utils import decompose, timeline
from utils.cost import annual_decline
from utils.curve import curve_rows
from utils.results import ResultsStore

REPO = Path(__file__).resolve().parent.parent


def test_every_technique_date_has_a_source_and_an_address():
    dates = timeline.technique_dates()
    assert set(timeline.STEP_TECHNIQUE.values()) | set(timeline.ATTENTION.values()) == set(dates)
    for d in dates.values():
        assert d["source"] and d["released_in"] and d["address"].startswith("https://"), d
        assert date(2022, 1, 1) <= d["date"] <= date(2025, 1, 1)
        assert "UNVERIFIED" not in d["released_in"].upper()
    assert timeline.start_date() == date(2021, 11, 1)    # the historical curve's first point


@pytest.mark.parametrize("step, settings, technique", [
    ("target", dict(precision="float32"), None),
    ("target", dict(precision="nf4"), "4-bit"),            # a T4's target is its 4-bit step
    ("+ attention", dict(attn_implementation="eager"), None),
    ("+ attention", dict(attn_implementation="sdpa_repeat_kv"), "sdpa"),
    ("+ attention", dict(attn_implementation="flash_attention_2"), "flash_attention_2"),
    ("+ batching", dict(), None),                          # batching predates the curve
    ("+ compile", dict(), "static_compile"),
    ("+ continuous batching", dict(), "paged"),
])
def test_each_step_adds_one_dated_technique_or_none(step, settings, technique):
    assert timeline.technique_of(step, settings) == technique


def add(store, step, rate, run, attn="sdpa", batch=1, precision="bfloat16", **settings):
    store.append("benchmark", step=step, run=run,
                 settings=dict(model="m", precision=precision, attn_implementation=attn, profile="offline", **settings),
                 metrics={"e2e_tok_s": {"median": rate, "low": rate * 0.98, "high": rate * 1.02},
                          "prompt_tokens": 64, "new_tokens": 32, "batch": batch},
                 context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": {"gpu_name": None}})


@pytest.fixture
def curve(tmp_path):
    """A GPU-like run: FlashAttention-2 helps, the compiled static cache on top of it helps more,
    4-bit does not, batching helps on its own branch but less than compile here."""
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, "01")
    add(store, "+ 4-bit", 60.0, "02", precision="nf4")
    add(store, "+ attention", 80.0, "03", attn="eager")
    add(store, "+ attention", 150.0, "03", attn="flash_attention_2")
    add(store, "+ compile", 300.0, "05", attn="flash_attention_2", cache_implementation="static",
        builds_on="+ attention")
    add(store, "+ batching", 250.0, "05", attn="flash_attention_2", batch=8, builds_on="+ attention")
    records = store.records()
    return records, curve_rows(records, 3.6)


def test_each_kept_factor_counts_from_its_own_date_and_the_fit_is_reproducible(curve):
    _, rows = curve
    pts, stairs, decline = timeline.of(rows)
    assert [(p.step, p.when, p.kept) for p in pts if p.step in ("target", "+ 4-bit", "+ compile")] == [
        ("target", date(2021, 11, 1), True), ("+ 4-bit", date(2023, 5, 24), False),
        ("+ compile", date(2024, 2, 21), True)]
    # $3.6/h at 100 tok/s is $10 per 1M; flash from 2023-07-17 (1.5x), compile from 2024-02-21 (2x)
    cumulative = {when: usd for when, usd, _ in stairs}
    assert cumulative[date(2021, 11, 1)] == pytest.approx(10.0)
    assert cumulative[date(2023, 5, 24)] == pytest.approx(10.0)          # 4-bit did not help
    assert cumulative[date(2023, 7, 17)] == pytest.approx(10 / 1.5)
    assert cumulative[date(2024, 2, 21)] == pytest.approx(10 / 3)        # the waterfall's total, 3x
    assert stairs[-1][2] == "target + attention + compile"
    assert [u for _, u, _ in stairs] == sorted((u for _, u, _ in stairs), reverse=True)
    assert decline == pytest.approx(annual_decline([(d, c) for d, c, _ in stairs])) and decline > 1
    assert timeline.endpoints(stairs) == ((date(2021, 11, 1), pytest.approx(10.0)),
                                          (date(2024, 2, 21), pytest.approx(10 / 3)))
    text = timeline.table(stairs)
    assert "before the curve" in text and "FlashAttention-2" in text


def test_a_cpu_curve_where_only_batching_helps_declines_by_nothing_per_year(tmp_path):
    """Batching predates the curve, so a curve whose only gain is batching is flat over time."""
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, "01", precision="float32")
    add(store, "+ 4-bit", 60.0, "02", precision="nf4")
    add(store, "+ batching", 500.0, "05", precision="float32", batch=8)
    _, stairs, decline = timeline.of(curve_rows(store.records(), 1.0))
    assert stairs[0][0] == date(2021, 11, 1) and stairs[0][2] == "target + batching"
    assert decline == pytest.approx(1.0)


def test_a_curve_with_one_date_has_no_decline(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, "01", attn="eager")
    _, stairs, decline = timeline.of(curve_rows(store.records(), 1.0))
    assert len(stairs) == 1 and decline is None and timeline.endpoints(stairs) is None


def test_the_historical_drop_taken_apart_multiplies_back_to_the_cited_total():
    parts = {r["part"]: r for r in decompose.parts(4.0)}
    total = parts["total (cited)"]["factor"]
    assert total == pytest.approx(60 / 0.06)
    others = [r["factor"] for name, r in parts.items() if name != "total (cited)"]
    assert math.prod(others) == pytest.approx(total)
    assert parts["model size at equal capability"]["factor"] == pytest.approx(175.0 / 3.21)
    assert parts["hardware"]["factor"] == pytest.approx(3350 / 1555)
    assert parts["software techniques (yours)"]["factor"] == 4.0
    # without the learner's factor the residual holds the techniques too, and says so
    rest = decompose.parts(None)[-1]
    assert rest["factor"] == pytest.approx(total / (175.0 / 3.21) / (3350 / 1555)) and "techniques" in rest["part"]


def test_llama_3_2_3b_parameter_count_follows_from_its_config():
    """The 2024 end of a16z's curve: the shipped count is what the config gives (embeddings tied)."""
    from utils.memory import ModelShape
    config = dict(model_type="llama", hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                  num_attention_heads=24, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                  tie_word_embeddings=True)
    llama = next(m for m in decompose.historical_models() if m["model"] == "Llama 3.2 3B")
    assert ModelShape.from_config(config).params / 1e9 == pytest.approx(llama["params_billion"], rel=0.005)


def test_hardware_alone_is_computed_for_dated_gpus_with_a_source():
    from utils.chart import hardware_what_ifs
    from utils.data import gpus
    rows = hardware_what_ifs()
    table = gpus()
    assert {r["key"] for r in rows} == {k for k, g in table.items() if g["announced"]}
    assert all(table[r["key"]]["announced_source"] for r in rows)
    t4 = next(r for r in rows if r["key"] == "T4")
    from utils.data import model_configs
    from utils.memory import ModelShape, decode_read_bytes
    read = decode_read_bytes(ModelShape.from_config(model_configs()["Qwen/Qwen3-8B"]), "float16")
    assert t4["tok_s"] == pytest.approx(320e9 / read) and 20 < t4["tok_s"] < 22   # 15.1 GB read per step


# --- notebook 07's exercise checkpoints: they pass the answer and fail plausible wrong ones ---
def checkpoint(number: int) -> str:
    nb = nbformat.read(REPO / "solutions" / "07_cost_curve.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.source.startswith(f"# Checkpoint for exercise {number}"))


def run_checkpoint(number: int, **names) -> str:
    said = []
    namespace = dict(verdict=lambda ok, good, bad: said.append("PLAUSIBLE" if ok else "CHECK THIS"),
                     print=lambda *a, **k: None, **names)
    exec(checkpoint(number), namespace)
    return " ".join(said)


def test_exercise_1_checkpoint_fails_on_plausible_wrong_answers():
    t = dict(techniques=5.42)
    right = math.log10(5.42)
    assert run_checkpoint(1, t=t, my_years=right, math=math) == "PLAUSIBLE"
    wrong = {"natural log": math.log(5.42), "log base 2": math.log2(5.42), "inverted": math.log10(1 / 5.42),
             "the factor divided by 10": 5.42 / 10, "the factor itself": 5.42}
    for why, answer in wrong.items():
        assert run_checkpoint(1, t=t, my_years=answer, math=math) == "CHECK THIS", why


def test_exercise_2_checkpoint_fails_on_rows_or_files_counted(curve):
    _, rows = curve
    class_rows = [dict(r, learner="me") for r in rows]
    assert run_checkpoint(2, n_learners=1, class_rows=class_rows, rows=rows) == "PLAUSIBLE"
    for wrong in (2, len(class_rows), 0):                   # both files, the rows, nothing
        assert run_checkpoint(2, n_learners=wrong, class_rows=class_rows, rows=rows) == "CHECK THIS"
