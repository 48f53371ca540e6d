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
    add(store, "target", 100.0, "02")                                     # 02's own base
    add(store, "+ 4-bit", 60.0, "02", precision="nf4")
    add(store, "+ attention", 100.0, "03")                                # 03's own base (SDPA)
    add(store, "+ attention", 80.0, "03", attn="eager")
    add(store, "+ attention", 150.0, "03", attn="flash_attention_2")
    add(store, "+ batching", 150.0, "05", attn="flash_attention_2", builds_on="+ attention")   # 05's base
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
    assert list(cumulative) == [date(2021, 11, 1), date(2023, 7, 17), date(2024, 2, 21)]   # 4-bit adds no point
    assert cumulative[date(2021, 11, 1)] == pytest.approx(10.0)
    assert cumulative[date(2023, 7, 17)] == pytest.approx(10 / 1.5)
    assert cumulative[date(2024, 2, 21)] == pytest.approx(10 / 3)        # the waterfall's total, 3x
    assert stairs[-1][2] == "target + attention + compile"
    assert [u for _, u, _ in stairs] == sorted((u for _, u, _ in stairs), reverse=True)
    assert decline.per_year == pytest.approx(annual_decline([(d, c) for d, c, _ in stairs])) and decline.per_year > 1
    assert decline.points == 3 and "3 points over 2.3 years" in decline.words()
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
    assert stairs == [(date(2021, 11, 1), pytest.approx(1 / 1.8), "target + batching")]
    assert decline.per_year is None and decline.words().startswith("no rate: 1 point")


def test_a_curve_with_one_date_has_no_decline(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, "01", attn="eager")
    _, stairs, decline = timeline.of(curve_rows(store.records(), 1.0))
    assert len(stairs) == 1 and decline.per_year is None and timeline.endpoints(stairs) is None


def test_a_step_that_is_not_kept_leaves_the_rate_unchanged(curve, tmp_path):
    records, rows = curve
    before = timeline.of(rows)[2]
    store = ResultsStore(tmp_path / "more.jsonl")
    for r in records:
        store.write(r)
    add(store, "+ speculative", 120.0, "04", attn="flash_attention_2", draft_length=4, builds_on="+ attention")
    add(store, "+ speculative", 150.0, "04", attn="flash_attention_2", builds_on="+ attention")   # its base
    after_rows = curve_rows(store.records(), 3.6)
    assert next(r for r in after_rows if r["step"] == "+ speculative")["status"] == "dearer"
    assert timeline.of(after_rows)[2] == before


@pytest.mark.parametrize("years", [1, 2.3, 4])
def test_one_4x_gain_over_n_years_is_4_to_the_1_over_n_per_year(years):
    from datetime import timedelta

    from utils.cost import rate_per_year
    start = date(2021, 11, 1)
    rate = rate_per_year([(start, 4.0), (start + timedelta(days=365.25 * years), 1.0)])
    assert rate.per_year == pytest.approx(4 ** (1 / years), rel=1e-3) and rate.points == 2


def test_the_staircase_of_one_dated_4x_gain_gives_4_to_the_1_over_its_years(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, "01")
    add(store, "+ batching", 100.0, "05")                                         # 05's base
    add(store, "+ compile", 400.0, "05", cache_implementation="static")
    _, stairs, rate = timeline.of(curve_rows(store.records(), 1.0))
    years = (date(2024, 2, 21) - date(2021, 11, 1)).days / 365.25
    assert len(stairs) == 2 and rate.per_year == pytest.approx(4 ** (1 / years))


def test_the_historical_drop_taken_apart_multiplies_back_to_the_cited_total():
    parts = {r["part"]: r for r in decompose.parts(dict(factor=4.0, how="yours", source="store", yours=True))}
    total = parts["total (cited)"]["factor"]
    assert total == pytest.approx(60 / 0.06)
    others = [r["factor"] for name, r in parts.items() if name != "total (cited)"]
    assert math.prod(others) == pytest.approx(total)
    assert parts["model size at equal capability"]["factor"] == pytest.approx(175.0 / 3.21)
    assert parts["hardware"]["factor"] == pytest.approx(3350 / 1555)
    assert parts["software techniques, 2021-2024 (yours)"]["factor"] == 4.0
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
    # every dated GPU that holds the 16-bit 8B; the T4 (15 GB) does not, so it draws no point
    assert {r["key"] for r in rows} == {k for k, g in table.items() if g["announced"]} - {"T4"}
    assert all(table[r["key"]]["announced_source"] for r in rows)
    a100 = next(r for r in rows if r["key"] == "A100-40GB")
    from utils.data import model_configs
    from utils.memory import ModelShape, decode_read_bytes
    read = decode_read_bytes(ModelShape.from_config(model_configs()["Qwen/Qwen3-8B"]), "float16")
    assert a100["tok_s"] == pytest.approx(table["A100-40GB"]["bandwidth_gbs"] * 1e9 / read)


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
    assert run_checkpoint(1, t=t, my_years=round(right, 2), math=math) == "PLAUSIBLE"     # rounded as printed
    wrong = {"natural log": math.log(5.42), "log base 2": math.log2(5.42), "inverted": math.log10(1 / 5.42),
             "the factor divided by 10": 5.42 / 10, "the factor itself": 5.42}
    for why, answer in wrong.items():
        assert run_checkpoint(1, t=t, my_years=answer, math=math) == "CHECK THIS", why


def test_exercise_2_checkpoint_fails_on_rows_or_files_counted(curve, tmp_path):
    from types import SimpleNamespace
    _, rows = curve
    store = tmp_path / "me.jsonl"
    store.write_text("{}\n")
    lab = SimpleNamespace(store=SimpleNamespace(path=store))
    class_rows = [dict(r, learner=who) for who in ("me", "sam") for r in rows]
    assert run_checkpoint(2, n_learners=2, class_rows=class_rows, rows=rows, lab=lab) == "PLAUSIBLE"
    for wrong in (1, 3, 4, len(class_rows), 0):      # me alone, the readable files, all files, the rows, nothing
        assert run_checkpoint(2, n_learners=wrong, class_rows=class_rows, rows=rows, lab=lab) == "CHECK THIS"


def test_the_kits_gpu_run_is_a_chain_built_by_the_same_code():
    """The reference chain: the kit's H100 run through utils.chain, each factor within its section's run."""
    from utils.curve import reference_chain
    from utils.reference import curve_records
    ref = reference_chain()
    assert "H100-SXM" in ref["label"] and "random weights" in ref["label"] and "2026-11-23" in ref["label"]
    rows = {r["step"]: r for r in ref["rows"]}
    assert rows["target"]["status"] == "start" and rows["target"]["configuration"].startswith("Qwen/Qwen3-8B, bfloat16")
    sections = {}
    for r in curve_records("h100_qwen3-8b"):
        sections.setdefault(r["run"].split(":")[1], []).append(r)
    dynamic, static = sorted(sections["compile"], key=lambda r: r["settings"]["cache_implementation"])
    compiled = rows["+ compile"]
    assert compiled["factor"] == pytest.approx(static["metrics"]["e2e_tok_s"]["median"] /
                                              dynamic["metrics"]["e2e_tok_s"]["median"])
    assert compiled["base_from"] == "same run" and compiled["status"] == "alternative"
    assert rows["+ batching"]["status"] == "on the chain" and ref["rate"].per_year is None   # batching: 2021


@pytest.mark.parametrize("gpu_name, model, yours", [
    (None, "offline:target", False),                  # a CPU and a toy model: the kit's GPU chain stands in
    ("NVIDIA H100 80GB HBM3", "Qwen/Qwen3-8B", True),  # a GPU and a hub model: yours
])
def test_the_software_row_of_the_1000x_is_yours_only_from_a_gpu_and_a_hub_model(tmp_path, gpu_name, model, yours):
    from utils.curve import reference_chain
    store = ResultsStore(tmp_path / "r.jsonl")
    for step, rate, cache in [("target", 100.0, None), ("+ batching", 100.0, None), ("+ compile", 400.0, "static")]:
        store.append("benchmark", step=step, run="b",
                     settings=dict(model=model, precision="bfloat16", attn_implementation="sdpa", profile="x",
                                   cache_implementation=cache),
                     metrics={"e2e_tok_s": {"median": rate}, "prompt_tokens": 64, "new_tokens": 32, "batch": 1},
                     context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": {"gpu_name": gpu_name}})
    row = decompose.software(curve_rows(store.records(), 2.0), reference_chain())
    assert row["yours"] is yours
    assert row["factor"] == pytest.approx(4.0 if yours else 1.0)        # compile arrived in the window
    assert ("your chain" in row["how"]) is yours and ("the kit's H100-SXM run" in row["how"]) is not yours
