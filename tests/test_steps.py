"""The step chain: what each technique builds on, and how the kept factors compound."""

import math

import pytest

from utils.curve import compounding, curve_rows, summary
from utils.results import ResultsStore
from utils.steps import base_for, build_on, chain

GROUP = ("offline", None, False)


def add(store, step, rate, precision="float32", attn="sdpa", prompt=64, profile="offline",
        random_weights=False, batch=1, **settings):
    store.append("benchmark", step=step,
                 settings=dict(model="big" if step == "larger baseline" else "m", precision=precision, attn_implementation=attn,
                               profile=profile, random_weights=random_weights, **settings),
                 metrics={"e2e_tok_s": {"median": rate}, "prompt_tokens": prompt, "new_tokens": 32,
                          "batch": batch},
                 context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": {"gpu_name": None}})


@pytest.fixture
def workshop(tmp_path):
    """A learner's run: 8-bit beats the target, 4-bit does not, eager loses to SDPA (the default,
    so the best '+ attention' is the '+ 8-bit' configuration again), speculative decoding loses."""
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
    links = {link.step: link.base for link in chain(workshop.records())}
    # '+ attention' re-measured the '+ 8-bit' configuration, so later steps link past it
    assert links == {"larger baseline": None, "target": "larger baseline", "+ 8-bit": "target",
                     "+ 4-bit": "target", "+ attention": "+ 8-bit", "+ speculative": "+ 8-bit",
                     "+ batching": "+ 8-bit"}


def test_factors_are_against_the_base_and_the_kept_ones_multiply(workshop):
    rows = {r["step"]: r for r in curve_rows(workshop.records(), price_per_hour=3.6)}
    assert rows["target"]["factor"] == pytest.approx(4.0)          # 100 vs 25 tok/s
    assert rows["+ 4-bit"]["factor"] == pytest.approx(0.8) and rows["+ 4-bit"]["kept"] is False
    attention = rows["+ attention"]
    assert attention["same_as_base"] and not attention["kept"]      # 130 vs 120 tok/s is noise
    assert rows["+ speculative"]["factor"] == pytest.approx(90 / 120) and not rows["+ speculative"]["kept"]
    assert rows["+ batching"]["factor"] == pytest.approx(4.0)       # 480 vs the 120 it built on
    path = compounding(list(rows.values()))
    assert [r["step"] for r in path] == ["larger baseline", "target", "+ 8-bit", "+ batching"]
    product = math.prod(r["factor"] for r in path[1:])
    assert product == pytest.approx(rows["+ batching"]["vs_first"]) == pytest.approx(480 / 25)


def test_summary_names_the_chain_and_the_steps_not_kept(workshop):
    text = summary(curve_rows(workshop.records(), price_per_hour=1.0))
    lines = text.splitlines()
    assert "(not kept)" in lines[3] and "same configuration as + 8-bit" in lines[4]
    assert lines[-1] == ("compounding from larger baseline to + batching: 4.00 (target) x 1.20 (+ 8-bit) "
                         "x 4.00 (+ batching) = 19.2x cheaper")


def test_another_prompt_length_another_profile_or_random_weights_do_not_mix(workshop):
    add(workshop, "+ attention", 999.0, prompt=16)                  # a shorter request is not cheaper
    add(workshop, "+ attention", 999.0, profile="cpu")              # another profile
    add(workshop, "+ attention", 999.0, random_weights=True)        # random weights
    best = {link.step: link.record for link in chain(workshop.records(), GROUP)}
    assert best["+ attention"]["metrics"]["e2e_tok_s"]["median"] == 130.0
    # without a group, the newest record's group is charted: here the random-weights one
    assert [link.step for link in chain(workshop.records())] == ["+ attention"]
    text = summary(curve_rows(workshop.records(), 1.0), workshop.records())
    assert "left out: 10 records from another profile, machine or weights" in text
    assert "profile offline, CPU, random weights" in text
    assert "left out" not in summary(curve_rows(workshop.records(), 1.0))       # only when asked
    add(workshop, "+ batching", 999.0, prompt=16, random_weights=True)
    assert "left out: 1 record timed on another request than the standard 64-token prompt" in \
        summary(curve_rows(workshop.records(), 1.0), workshop.records())


def test_base_for_a_new_step(workshop, tmp_path):
    records = workshop.records()
    assert base_for("+ attention", records, GROUP)["step"] == "+ 8-bit"
    assert base_for("+ batching", records, GROUP)["step"] == "+ 8-bit"   # not its re-measurement
    add(workshop, "+ attention", 150.0, precision="int8", attn="flash_attention_2", builds_on="+ 8-bit")
    flash = base_for("+ batching", workshop.records(), GROUP)
    assert flash["step"] == "+ attention" and flash["settings"]["attn_implementation"] == "flash_attention_2"
    assert base_for("+ batching", records, ("t4", "Tesla T4", False)) is None
    with pytest.raises(ValueError, match="unknown step"):
        base_for("+ magic", records, GROUP)


def test_a_start_without_a_base_has_no_factor(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "+ 4-bit", 50.0, precision="nf4")                   # a T4: the fp16 target never fit
    add(store, "+ batching", 200.0, precision="nf4")
    rows = curve_rows(store.records(), 0.35)
    assert rows[0]["builds_on"] is None and rows[0]["factor"] is None and rows[0]["kept"] is None
    assert rows[1]["builds_on"] == "+ 4-bit" and rows[1]["factor"] == pytest.approx(4.0)


def test_build_on_falls_back_to_the_fitting_precision_and_sdpa():
    base = build_on("+ batching", [], GROUP, default_precision="nf4")
    assert base == dict(precision="nf4", attn_implementation="sdpa", builds_on=None, tokens_per_s=None)


def test_a_factor_inside_the_repeats_spread_is_flagged_as_noise(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    for step, median, low, high, precision in [("target", 100.0, 90.0, 110.0, "float32"),
                                               ("+ 4-bit", 105.0, 95.0, 130.0, "nf4"),
                                               ("+ 8-bit", 150.0, 140.0, 160.0, "int8")]:
        store.append("benchmark", step=step,
                     settings=dict(model="m", precision=precision, profile="offline"),
                     metrics={"e2e_tok_s": {"median": median, "low": low, "high": high}, "batch": 1},
                     context={"hardware": {"gpu_name": None}})
    store.append("benchmark", step="+ attention",
                 settings=dict(model="m", precision="int8", attn_implementation="eager", profile="offline"),
                 metrics={"e2e_tok_s": {"median": 155.0, "low": 145.0, "high": 170.0}, "batch": 1},
                 context={"hardware": {"gpu_name": None}})
    rows = {r["step"]: r for r in curve_rows(store.records(), 1.0)}
    assert rows["+ 4-bit"]["within_noise"] and not rows["+ 4-bit"]["kept"]   # faster, not established
    assert not rows["+ 8-bit"]["within_noise"] and rows["+ 8-bit"]["kept"]
    assert rows["+ attention"]["builds_on"] == "+ 8-bit" and rows["+ attention"]["within_noise"]
    # the chain ends at the cheapest *kept* step, though the noisy one has the lowest median price
    text = summary(list(rows.values()))
    assert "~noise" in text and text.splitlines()[-2].startswith("compounding from target to + 8-bit:")


def test_the_target_is_built_on_even_when_it_is_not_cheaper_than_the_baseline(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "larger baseline", 100.0)
    add(store, "target", 90.0)                          # dearer than the baseline on this machine
    add(store, "+ 4-bit", 120.0, precision="nf4")
    rows = {r["step"]: r for r in curve_rows(store.records(), 1.0)}
    assert rows["target"]["kept"] is False
    assert rows["+ 4-bit"]["builds_on"] == "target" and rows["+ 4-bit"]["kept"]
    # the headline multiplies the target's factor in, so its line must not call it "not kept"
    lines = summary(list(rows.values())).splitlines()
    assert "(model: built on)" in lines[1] and "not kept" not in lines[1]
    assert "0.90 (target)" in lines[-1]
    assert base_for("+ batching", store.records(), GROUP)["step"] == "+ 4-bit"


def test_the_noise_footnote_appears_only_beside_a_noise_mark(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    for step, median, low, high, attn in [("target", 100.0, 90.0, 110.0, "sdpa"),
                                          ("+ attention", 104.0, 95.0, 112.0, "sdpa")]:
        store.append("benchmark", step=step,
                     settings=dict(model="m", precision="float32", attn_implementation=attn,
                                   profile="offline"),
                     metrics={"e2e_tok_s": {"median": median, "low": low, "high": high}, "batch": 1},
                     context={"hardware": {"gpu_name": None}})
    rows = curve_rows(store.records(), 1.0)
    assert rows[1]["same_as_base"] and rows[1]["within_noise"]
    text = summary(rows)
    assert "same configuration as target" in text and "~noise" not in text
