"""The step chain: what each technique builds on, like for like, and how the kept factors compound."""

import math

import pytest

from utils.curve import compounding, curve_rows, format_row, summary, techniques_count, totals
from utils.results import ResultsStore
from utils.chain import base_for, build_on, chain
from utils.steps import curve_step

GROUP = ("offline", None, False)


def add(store, step, rate, precision="float32", attn="sdpa", prompt=64, profile="offline",
        random_weights=False, batch=1, run=None, low=None, high=None, metrics=None, gpu_name=None,
        model=None, kind="benchmark", **settings):
    stat = {"median": rate, **({"low": low, "high": high} if low is not None else {})}
    store.append(kind, step=step,
                 settings=dict(model=model or ("big" if step == "larger baseline" else "m"), precision=precision,
                               attn_implementation=attn, profile=profile, random_weights=random_weights,
                               **settings),
                 metrics={"e2e_tok_s": stat, "prompt_tokens": prompt, "new_tokens": 32, "batch": batch,
                          **(metrics or {})},
                 context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": {"gpu_name": gpu_name}},
                 run=run)


@pytest.fixture
def workshop(tmp_path):
    """A learner's benchmark run (one run): 8-bit beats the target, 4-bit does not, eager loses to
    the 8-bit SDPA configuration it built on (measured again as '+ attention' sdpa), speculative
    decoding loses, batching wins."""
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "larger baseline", 25.0)
    add(store, "target", 100.0)
    add(store, "+ 8-bit", 120.0, precision="int8")
    add(store, "+ 4-bit", 80.0, precision="nf4")
    add(store, "+ attention", 110.0, precision="int8", attn="eager", builds_on="+ 8-bit")
    add(store, "+ attention", 130.0, precision="int8", attn="sdpa", builds_on="+ 8-bit")
    add(store, "+ speculative", 90.0, precision="int8", builds_on="+ attention", draft_length=4)
    add(store, "+ batching", 480.0, precision="int8", builds_on="+ attention", batch=8)
    return store


def test_each_step_builds_on_the_cheapest_allowed_step(workshop):
    links = {link.step: link.base for link in chain(workshop.records()).links}
    # the baseline is a model choice, not the techniques' start; eager lost, so later steps link past it
    assert links == {"larger baseline": None, "target": None, "+ 8-bit": "target",
                     "+ 4-bit": "target", "+ attention": "+ 8-bit", "+ speculative": "+ 8-bit",
                     "+ batching": "+ 8-bit"}


def test_factors_are_against_the_base_in_the_same_run_and_the_path_multiplies(workshop):
    rows = {r["step"]: r for r in curve_rows(workshop.records(), price_per_hour=3.6)}
    assert rows["target"]["factor"] is None and rows["larger baseline"]["factor"] is None
    assert rows["+ 4-bit"]["factor"] == pytest.approx(0.8) and rows["+ 4-bit"]["status"] == "dearer"
    attention = rows["+ attention"]      # eager against the 8-bit SDPA configuration, not the re-measurement
    assert attention["factor"] == pytest.approx(110 / 120) and attention["status"] == "dearer"
    assert rows["+ speculative"]["factor"] == pytest.approx(90 / 120) and not rows["+ speculative"]["kept"]
    assert rows["+ batching"]["factor"] == pytest.approx(4.0)       # 480 vs the 120 it built on
    assert all(r["base_from"] == "same run" for r in rows.values() if r["builds_on"])
    path = compounding(list(rows.values()))
    assert [r["step"] for r in path] == ["target", "+ 8-bit", "+ batching"]   # the swap is not on it
    assert [r["status"] for r in path] == ["start", "on the chain", "on the chain"]
    product = math.prod(r["factor"] for r in path[1:])
    assert product == pytest.approx(rows["+ batching"]["vs_start"]) == pytest.approx(480 / 100)
    assert rows["+ batching"]["level_usd"] == pytest.approx(rows["target"]["usd_per_million"] / product)
    assert rows["larger baseline"]["swap_factor"] == pytest.approx(4.0)       # 100 vs 25 tok/s, apart
    assert techniques_count(list(rows.values())) == 5                         # the baseline is no technique


def test_summary_states_the_rule_and_names_the_chain(workshop):
    text = summary(curve_rows(workshop.records(), price_per_hour=1.0))
    lines = text.splitlines()
    assert lines[0].startswith("each step: your latest run of it")
    assert "model choice" in lines[1] and "the start of the techniques" in lines[2]
    assert "not kept: dearer" in lines[4] and "0.917x vs + 8-bit: not kept: dearer" in lines[5]
    assert ("techniques from target to + batching: 1.2 (+ 8-bit) x 4 (+ batching) = 4.8x cheaper"
            in lines)
    # no quality was recorded, so the swap is shown but never multiplied into a same-capability total
    assert "model swap, larger baseline -> target: 4x cheaper, quality not established" in text
    assert "same capability: not claimed" in text
    # one dated gain on the path (8-bit, 2022-08-17) after the start (2021-11-01): two points
    assert lines[-1].startswith("your rate per year: 1.26x per year (the ratio of its two ends; 2 points over 0.8 years)")


def test_a_slower_rerun_moves_the_curve_and_an_older_faster_run_is_left_out(workshop):
    rows = {r["step"]: r for r in curve_rows(workshop.records(), 1.0)}
    assert rows["+ batching"]["tokens_per_s"] == 480.0
    add(workshop, "+ batching", 110.0, precision="int8", batch=1, run="rerun-1")   # its base, again
    add(workshop, "+ batching", 300.0, precision="int8", batch=8, run="rerun-1")   # a slower rerun
    add(workshop, "+ batching", 350.0, precision="int8", batch=16, run="rerun-1")  # its best config
    records = workshop.records()
    rows = {r["step"]: r for r in curve_rows(records, 1.0)}
    assert rows["+ batching"]["tokens_per_s"] == 350.0 and rows["+ batching"]["run"] == "rerun-1"
    assert rows["+ batching"]["factor"] == pytest.approx(350 / 110) and rows["+ batching"]["base_from"] == "same run"
    assert "left out: 1 record from earlier runs of the same steps" not in summary(curve_rows(records, 1.0), records)


def test_a_rerun_without_its_base_is_priced_from_the_latest_run_that_has_both(workshop):
    add(workshop, "+ batching", 999.0, precision="int8", batch=8, run="rerun-no-base")
    rows = {r["step"]: r for r in curve_rows(workshop.records(), 1.0)}
    assert rows["+ batching"]["tokens_per_s"] == 480.0 and rows["+ batching"]["base_from"] == "an earlier run"
    assert "its latest run did not measure its base again" in summary(list(rows.values()))


def test_a_base_measured_in_no_run_of_the_step_is_taken_across_runs_and_said(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, run="01")
    add(store, "+ batching", 400.0, batch=8, run="05")
    rows = {r["step"]: r for r in curve_rows(store.records(), 1.0)}
    assert rows["+ batching"]["base_from"] == "another run" and rows["+ batching"]["factor"] == pytest.approx(4)
    assert "(base from another run)" in format_row(rows["+ batching"])
    assert "across runs" in summary(list(rows.values()))


def test_a_later_notebook_that_measures_the_models_again_moves_nothing(workshop):
    """A 09 run re-records a faster target and the baseline beside its MoE: the start, the swap and
    every factor stay those of the benchmark run that owns them."""
    before = {r["step"]: r for r in curve_rows(workshop.records(), 1.0)}
    nine = dict(kind="notebook", notebook="09 mixture of experts", run="09")
    add(workshop, "target", 300.0, **nine)
    add(workshop, "larger baseline", 50.0, **nine)
    add(workshop, "mixture of experts", 150.0, model="moe", **nine)
    after = {r["step"]: r for r in curve_rows(workshop.records(), 1.0)}
    for step in ("target", "larger baseline", "+ 8-bit", "+ 4-bit", "+ attention", "+ speculative", "+ batching"):
        for field in ("tokens_per_s", "factor", "swap_factor", "level_usd", "status"):
            assert after[step][field] == before[step][field], (step, field)
    assert after["mixture of experts"]["swap_factor"] == pytest.approx(3.0)   # 150 vs 50, its own run


def test_another_prompt_length_another_profile_or_random_weights_do_not_mix(workshop):
    add(workshop, "+ attention", 999.0, prompt=16)                  # a shorter request is not cheaper
    add(workshop, "+ attention", 999.0, profile="cpu")              # another profile
    add(workshop, "+ attention", 999.0, random_weights=True)        # random weights
    best = {link.step: link.record for link in chain(workshop.records(), group=GROUP).links}
    assert best["+ attention"]["metrics"]["e2e_tok_s"]["median"] == 110.0
    # without a group, the newest record's group is charted: here the random-weights one
    assert [link.step for link in chain(workshop.records()).links] == ["+ attention"]
    text = summary(curve_rows(workshop.records(), 1.0), workshop.records())
    assert "left out: 10 records from another profile, machine or weights" in text
    assert "profile offline, CPU, random weights" in text
    assert "left out:" not in summary(curve_rows(workshop.records(), 1.0))      # only when asked
    add(workshop, "+ batching", 999.0, prompt=16, random_weights=True)
    assert "left out: 1 record timed on another request than the standard 64-token prompt" in \
        summary(curve_rows(workshop.records(), 1.0), workshop.records())


def test_base_for_a_new_step(workshop, tmp_path):
    records = workshop.records()
    assert base_for("+ attention", records, GROUP)["step"] == "+ 8-bit"
    assert base_for("+ batching", records, GROUP)["step"] == "+ 8-bit"
    assert base_for("+ compile", records, GROUP)["step"] == "+ 8-bit"
    add(workshop, "+ attention", 120.0, precision="int8", attn="sdpa", builds_on="+ 8-bit", run="kernels-again")
    add(workshop, "+ attention", 150.0, precision="int8", attn="flash_attention_2", builds_on="+ 8-bit",
        run="kernels-again")
    flash = base_for("+ batching", workshop.records(), GROUP)
    assert flash["step"] == "+ attention" and flash["settings"]["attn_implementation"] == "flash_attention_2"
    assert base_for("+ batching", records, ("t4", "Tesla T4", False)) is None
    with pytest.raises(ValueError, match="unknown step"):
        base_for("+ magic", records, GROUP)


def test_a_start_without_a_base_has_no_factor(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "+ 4-bit", 50.0, precision="nf4")       # a CPU: RAM decides, no computed 16-bit start
    add(store, "+ batching", 200.0, precision="nf4")
    rows = curve_rows(store.records(), 0.35)
    assert rows[0]["builds_on"] is None and rows[0]["factor"] is None and rows[0]["kept"] is None
    assert not rows[0]["computed"]
    assert rows[1]["builds_on"] == "+ 4-bit" and rows[1]["factor"] == pytest.approx(4.0)


def test_build_on_falls_back_to_the_fitting_precision_and_sdpa():
    base = build_on("+ batching", [], GROUP, default_precision="nf4")
    assert base == dict(precision="nf4", attn_implementation="sdpa", builds_on=None, tokens_per_s=None, batch=1)


def test_a_factor_inside_the_repeats_spread_is_flagged_as_noise(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, low=90.0, high=110.0)
    add(store, "+ 4-bit", 105.0, precision="nf4", low=95.0, high=130.0)
    add(store, "+ 8-bit", 150.0, precision="int8", low=140.0, high=160.0)
    add(store, "+ attention", 155.0, precision="int8", attn="eager", low=145.0, high=170.0)
    rows = {r["step"]: r for r in curve_rows(store.records(), 1.0)}
    assert rows["+ 4-bit"]["within_noise"] and rows["+ 4-bit"]["status"] == "noise"   # faster, not established
    assert not rows["+ 8-bit"]["within_noise"] and rows["+ 8-bit"]["kept"]
    assert rows["+ attention"]["builds_on"] == "+ 8-bit" and rows["+ attention"]["within_noise"]
    # the chain ends at the cheapest *kept* step, though the noisy one has the lowest median price
    text = summary(list(rows.values()))
    assert "~noise" in text and "techniques from target to + 8-bit: 1.5 (+ 8-bit) = 1.5x cheaper" in text


def test_a_step_that_only_measured_its_base_says_same_configuration(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, low=90.0, high=110.0)
    add(store, "+ attention", 104.0, low=95.0, high=112.0)
    rows = curve_rows(store.records(), 1.0)
    assert rows[1]["same_as_base"] and rows[1]["status"] == "same"
    text = summary(rows)
    assert "not kept: the same configuration as its base" in text and "~noise" not in text


def test_every_view_says_the_same_status_and_the_title_multiplies_the_path(workshop):
    """A kept step off the path (compile, an alternative to batching) is kept in the table, in the
    waterfall's colour and in the time panel alike; the title's product is the path's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils import chart, timeline
    add(workshop, "+ compile", 240.0, precision="int8", builds_on="+ 8-bit", cache_implementation="static")
    rows = curve_rows(workshop.records(), 1.0)
    by_step = {r["step"]: r for r in rows}
    assert by_step["+ compile"]["status"] == "alternative" and by_step["+ compile"]["alternative_to"] == "+ batching"
    assert "kept, not on the chain (an alternative to + batching)" in format_row(by_step["+ compile"])
    points = {p.step: p for p in timeline.points(rows)}
    assert points["+ compile"].status == "alternative" and not points["+ compile"].kept
    fig, ax = plt.subplots()
    chart.waterfall(ax, rows, compounding(rows), totals(rows))
    assert "1.2 x 4 = 4.8x cheaper" in ax.get_title()
    colours = {patch.get_facecolor()[:3] for patch in ax.patches}
    assert matplotlib.colors.to_rgb(chart.COLOURS["alternative"]) in colours
    plt.close(fig)


def quality(ppl, em, gap=None, n=40):
    return dict(perplexity=ppl, exact_match=em, exact_match_items=n,
                **({"quality_gap": dict(nll=gap[0], se=gap[1], tokens=4096)} if gap else {}))


@pytest.mark.parametrize("gap, em, n, standing", [
    ((0.024, 0.004), 0.15, 40, "worse"),             # 6 paired standard errors worse per token
    ((0.004, 0.004), 0.15, 40, "not established"),   # 40 questions cannot bound a 5-point gap
    ((0.004, 0.004), 0.18, 4000, "as good"),         # both bounds inside the margins
    ((-0.01, 0.004), 0.18, 4000, "as good"),         # better
    ((0.04, 0.03), 0.18, 4000, "not established"),   # perplexity's bound too wide for the 5% margin
    ((0.004, 0.004), 0.00, 40, "worse"),             # 0% vs 18%: beyond the noise of 40 questions
    (None, 0.18, 4000, "not established"),           # no paired perplexity: never claimed
])
def test_the_model_swap_counts_toward_equal_capability_only_when_shown_as_good(tmp_path, gap, em, n, standing):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, run="06", metrics=quality(36.5, em, n=n))
    add(store, "larger baseline", 40.0, run="06", metrics=quality(35.6, 0.18, gap, n=n))
    add(store, "+ batching", 400.0, batch=8, run="05")
    rows = curve_rows(store.records(), 1.0)
    t = totals(rows)
    baseline = rows[0]
    assert baseline["swap_factor"] == pytest.approx(2.5) and t["techniques"] == pytest.approx(4.0)
    assert baseline["swap_as_good"] == (standing == "as good")
    if standing == "as good":
        assert t["same_capability"] == pytest.approx(10.0)
        assert "same capability: 4x (techniques) x 2.5x (swap) = 10x cheaper" in summary(rows)
    else:
        assert t["same_capability"] is None and "same capability: not claimed" in summary(rows)
        assert baseline["swap_verdict"].endswith("worse" if standing == "worse" else "not established")


def test_the_swap_says_how_many_questions_would_settle_it(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 80.0, run="06", metrics=quality(36.5, 0.15))
    add(store, "larger baseline", 40.0, run="06", metrics=quality(35.6, 0.18, (0.02, 0.004)))
    quality_words = curve_rows(store.records(), 1.0)[0]["swap_quality"]
    assert "lead 3.0 points plus 2 standard errors (16.6 points on 40 questions) is 19.6" in quality_words
    assert "questions would be needed" in quality_words


def test_the_swap_pairs_the_baseline_with_the_target_of_its_own_run(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0, run="01")                                  # notebook 01
    add(store, "target", 80.0, run="06", metrics=quality(36.5, 0.15))      # notebook 06, both models
    add(store, "larger baseline", 40.0, run="06", metrics=quality(35.6, 0.18, (0.02, 0.004)))
    rows = curve_rows(store.records(), 1.0)
    assert rows[0]["swap_factor"] == pytest.approx(2.0)                     # 80 vs 40, not 100 vs 40
    assert "perplexity 36.50 vs 35.60 (+2.0% per token, at most +2.8% with 2 paired standard errors: worse)" \
        in rows[0]["swap_quality"]


def test_a_t4_target_in_4_bit_is_the_4_bit_step_against_a_computed_16_bit_start(tmp_path):
    """On a T4 the 16-bit 8B does not fit: notebook 01's target is NF4, so it is '+ 4-bit', and
    its factor is taken against 16 bits on the cheapest GPU that holds it, the basis stated."""
    store = ResultsStore(tmp_path / "r.jsonl")
    kw = dict(profile="t4", gpu_name="Tesla T4", model="Qwen/Qwen3-8B")
    add(store, "target", 20.0, precision="nf4", run="01",
        metrics={"decode_tok_s": {"median": 21.0}}, **kw)
    add(store, "+ batching", 120.0, precision="nf4", batch=8, run="05", **kw)
    assert curve_step(store.records()[0]) == "+ 4-bit"
    rows = {r["step"]: r for r in curve_rows(store.records(), 0.35)}
    start = rows["target"]
    assert start["computed"] and start["builds_on"] is None
    assert "does not fit a T4" in start["basis"] and "cheapest GPU in gpus.csv that holds it" in start["basis"]
    assert start["price_per_hour"] != 0.35 and start["hardware"] != "Tesla T4"
    four = rows["+ 4-bit"]
    assert four["builds_on"] == "target" and four["factor"] == pytest.approx(
        start["usd_per_million"] / four["usd_per_million"])
    assert rows["+ batching"]["builds_on"] == "+ 4-bit"       # never built on the computed start
    assert "computed start: " in summary(list(rows.values()))


def test_a_measured_16_bit_target_needs_no_computed_start(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    kw = dict(profile="a100-80", gpu_name="NVIDIA A100-SXM4-80GB", model="Qwen/Qwen3-8B")
    add(store, "target", 40.0, precision="bfloat16", **kw)
    add(store, "+ 4-bit", 30.0, precision="nf4", **kw)
    rows = curve_rows(store.records(), 1.39)
    assert not any(r["computed"] for r in rows) and rows[1]["builds_on"] == "target"
