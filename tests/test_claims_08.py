"""Notebook 08's checkpoints, run from the solved notebook's own source on stand-in runs: a right
answer rounded as the notebook prints it passes, the plausible wrong ones (inverted, unit slip,
neighbouring value, sign flip) fail, and no message announces a gain that the figures do not show."""

from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "solutions" / "08_serving.ipynb"


def checkpoint(first_line: str, containing: str = "") -> str:
    """The source of the one checkpoint cell that starts with ``first_line`` and contains ``containing``."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
             if c.cell_type == "code" and c.source.startswith(first_line) and containing in c.source]
    assert len(cells) == 1, f"{len(cells)} cells start with {first_line!r} and contain {containing!r}"
    return cells[0]


def run_checkpoint(source: str, **names) -> tuple[str, list[str]]:
    """Exec a checkpoint cell; what its verdicts said ("PLAUSIBLE" / "CHECK THIS", space-separated)
    and every message it gave (the verdicts' and the printed lines)."""
    said, messages = [], []

    def verdict(ok, good, bad):
        said.append("PLAUSIBLE" if ok else "CHECK THIS")
        messages.append(good if ok else bad)

    namespace = dict(verdict=verdict, print=lambda *a, **k: messages.append(" ".join(map(str, a))), **names)
    exec(source, namespace)
    return " ".join(said), messages


def run(tokens_per_s=100.0, **summary):
    """A stand-in for a utils.serving.Run: its throughput and the summary keys a checkpoint reads."""
    return SimpleNamespace(tokens_per_s=tokens_per_s, extra=dict(summary.pop("extra", {})),
                           summary=lambda: dict(summary, tokens_per_s=tokens_per_s))


# --- section 2: continuous batching shortens the time to first token, beyond a stated noise band ---
TTFT = checkpoint("# Checkpoint\n", "ttft_p90_s")


def test_the_ttft_checkpoint_passes_a_p90_cut_beyond_noise_and_says_when_tokens_come_more_slowly(monkeypatch):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    static = run(354.7, ttft_p90_s=0.2269, itl_p50_s=0.00208)        # the stored run's printed figures
    continuous = run(330.2, ttft_p90_s=0.0233, itl_p50_s=0.0041)
    said, messages = run_checkpoint(TTFT, static=static, continuous=continuous)
    assert said == "PLAUSIBLE" and not found
    assert "cut the p90 time to first token 9.7x (226.9 -> 23.3 ms" in messages[0]
    assert "more than the noise (noise ±11.3 ms: the larger of one engine step (4.1 ms) and 5% of static's p90)" in messages[0]
    assert "0.93x static's useful tokens/s" in messages[1] and "1.97x static's" in messages[1]
    assert "the rest come more slowly" in messages[1]


@pytest.mark.parametrize("static_p90, continuous_p90", [
    (0.2270, 0.2200),      # 1.03x: above 1, but inside 5% of static's p90 (the old check called it a cut)
    (0.0250, 0.0220),      # 3 ms apart: inside one engine step of 4 ms
    (0.0220, 0.0250),      # longer, but inside one engine step
])
def test_the_ttft_checkpoint_calls_a_difference_within_noise_a_finding_not_a_cut(monkeypatch, static_p90, continuous_p90):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    static = run(356.8, ttft_p90_s=static_p90, itl_p50_s=0.0020)
    continuous = run(325.9, ttft_p90_s=continuous_p90, itl_p50_s=0.0040)
    said, messages = run_checkpoint(TTFT, static=static, continuous=continuous)
    assert said == "" and len(found) == 1
    assert "within the noise" in found[0] and "no cut and no loss" in found[0] and "cut the p90" not in found[0]


def test_the_ttft_checkpoint_fails_when_the_p90_got_longer_beyond_noise(monkeypatch):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    static = run(356.8, ttft_p90_s=0.025, itl_p50_s=0.0020)
    continuous = run(325.9, ttft_p90_s=0.227, itl_p50_s=0.0018)
    said, messages = run_checkpoint(TTFT, static=static, continuous=continuous)
    assert said == "CHECK THIS" and not found
    assert "did not improve" in messages[0] and "longer by more than the noise" in messages[0]
    assert "no more slowly" in messages[1]


# --- section 5: prefix sharing; one run per engine establishes no fall of the time to first token ---
PREFIX = checkpoint("# Checkpoint\n", "prefix_tokens_reused")
PLAIN = run(ttft_p50_s=0.0080, itl_p50_s=0.0041)      # section 2's continuous run: the same requests, no shared prefix


@pytest.mark.parametrize("before_ms, after_ms, step_ms, expected", [
    (10.8, 8.3, 4.0, "less than one engine step"),        # 2.5 ms, under one step
    (17.9, 9.6, 4.1, "more than one engine step"),        # the kit's stored run, still one run each
    (8.3, 10.8, 4.0, "it did not fall"),                  # prefix sharing slower: still a pass
])
def test_prefix_sharing_passes_on_reuse_and_never_claims_an_established_fall(monkeypatch, before_ms, after_ms,
                                                                             step_ms, expected):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    without = run(ttft_p50_s=before_ms / 1e3, itl_p50_s=step_ms / 1e3, extra=dict(prefix_tokens_reused=0))
    with_prefix = run(ttft_p50_s=after_ms / 1e3, itl_p50_s=step_ms / 1e3, extra=dict(prefix_tokens_reused=640))
    said, messages = run_checkpoint(PREFIX, without=without, with_prefix=with_prefix, prompt_total=1480, continuous=PLAIN)
    assert said == "PLAUSIBLE" and "640 of 1480" in messages[0] and "without it, none" in messages[0]
    assert len(found) == 1 and expected in found[0] and "one run" in found[0]
    assert "fell" not in found[0]


def test_prefix_sharing_compares_both_runs_with_section_2_in_engine_steps(monkeypatch):
    """The stored run: the shared prefix raised the median TTFT by more than one step over section 2's, and
    with sharing it came back to within one step, as section 5's text says."""
    monkeypatch.setattr("utils.session.finding", lambda text: None)
    without = run(ttft_p50_s=0.0179, itl_p50_s=0.0041, extra=dict(prefix_tokens_reused=0))
    with_prefix = run(ttft_p50_s=0.0096, itl_p50_s=0.0041, extra=dict(prefix_tokens_reused=640))
    _, messages = run_checkpoint(PREFIX, without=without, with_prefix=with_prefix, prompt_total=1480, continuous=PLAIN)
    assert messages[-1] == ("section 2 served the same requests without the shared prefix: median time to first token "
                            "8.0 ms; with the prefix, unshared 17.9 ms, more than one engine step above it, shared 9.6 ms, "
                            "within one engine step of it (one run of each)")


@pytest.mark.parametrize("reused, reused_without, says, not_says", [
    (0, 0, ["no prompt tokens were reused"], ["without prefix sharing reported"]),
    (640, 640, ["the run without prefix sharing reported 640 reused prompt tokens too"], ["no prompt tokens were reused"]),
    (0, 640, ["no prompt tokens were reused", "The run without prefix sharing reported 640"], []),
])
def test_prefix_sharing_fails_with_the_message_of_its_own_cause(monkeypatch, reused, reused_without, says, not_says):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    without = run(ttft_p50_s=0.0108, itl_p50_s=0.004, extra=dict(prefix_tokens_reused=reused_without))
    with_prefix = run(ttft_p50_s=0.0083, itl_p50_s=0.004, extra=dict(prefix_tokens_reused=reused))
    said, messages = run_checkpoint(PREFIX, without=without, with_prefix=with_prefix, prompt_total=1480, continuous=PLAIN)
    assert said == "CHECK THIS"
    assert all(s in messages[0] for s in says) and not any(s in messages[0] for s in not_says)
    assert len(found) == (1 if reused else 0)


# --- exercise 1: the tokens each static batch generated, and the idle share of them ---
IDLE = checkpoint("# Checkpoint for exercise 1")
NEW_TOKENS = [26, 13, 37, 26, 23, 37, 12, 34, 39, 31, 9, 39]                     # the stored trace's output lengths
TRACE = [SimpleNamespace(new_tokens=n) for n in NEW_TOKENS]


def served_in_batches(size):
    """A static run's served requests: the rows of one generate call share their first token's time."""
    return [SimpleNamespace(token_times=[0.1 + i // size]) for i in range(len(NEW_TOKENS))]


STATIC = SimpleNamespace(output_tokens=326, extra=dict(generated_tokens=452), served=served_in_batches(4))
MEASURED = 1 - 326 / 452                                                        # 0.27876..., printed 27.9%


def per_batch(size):
    return [len(TRACE[i:i + size]) * max(r.new_tokens for r in TRACE[i:i + size]) for i in range(0, len(TRACE), size)]


GENERATED = per_batch(4)                                                        # [148, 148, 156]


def exercise_1(idle, generated=GENERATED):
    return run_checkpoint(IDLE, idle=idle, generated=generated, static=STATIC, trace=TRACE)


def test_the_stand_in_is_the_stored_trace():
    assert GENERATED == [148, 148, 156] and sum(GENERATED) == 452
    assert sum(per_batch(8)) == 452                     # why the share alone cannot catch batches of 8


@pytest.mark.parametrize("answer", [MEASURED, round(MEASURED, 3), round(MEASURED * 100, 1) / 100, round(MEASURED, 4)],
                         ids=["exact", "3 decimals", "the printed 27.9% as a fraction", "4 decimals"])
@pytest.mark.parametrize("generated", [GENERATED, tuple(GENERATED), [float(g) for g in GENERATED]],
                         ids=["list", "tuple", "floats"])
def test_exercise_1_passes_a_right_answer_rounded_as_printed(answer, generated):
    said, messages = exercise_1(answer, generated)
    assert said == "PLAUSIBLE" and "27.9%" in messages[0] and "within 0.0005" in messages[0]
    assert "section 2's 3 batches" in messages[0]


@pytest.mark.parametrize("answer, hint", [
    (1 - MEASURED, "the share of the tokens that were asked for"),   # inverted: the used share
    (MEASURED * 100, "a fraction"),                                   # unit slip: percent
    (27.9, "a fraction"),                                             # unit slip, rounded
    (452 / 326 - 1, "Count every row"),                               # idle over used, not over generated
    (round(MEASURED, 3) - 0.001, "Count every row"),                  # neighbouring values as printed
    (round(MEASURED, 3) + 0.001, "Count every row"),
    (-MEASURED, "Count every row"),                                   # sign flip
])
def test_exercise_1_fails_plausible_wrong_answers(answer, hint):
    said, messages = exercise_1(answer)
    assert said == "CHECK THIS" and hint in messages[0] and "within 0.0005" in messages[0]
    assert f"{MEASURED:.4f}" in messages[0] and f"your {answer!r}" in messages[0]   # two different numbers


@pytest.mark.parametrize("size", [8, 2, 3, 12], ids=["max(p.batch_sizes) or base['batch']", "2", "3", "all at once"])
def test_exercise_1_fails_the_wrong_batch_even_where_its_share_is_the_same(size):
    """Batches of 8 (the profile's largest, and base["batch"] here) give the stored trace's share exactly: the
    per-batch counts show the batch, and the message says which one they are."""
    wrong = per_batch(size)
    share = 1 - 326 / sum(wrong)
    said, messages = exercise_1(round(share, 4), wrong)
    assert said == "CHECK THIS"
    assert f"the list for batches of {size}, but section 2's static run served batches of 4" in messages[0]
    if size == 8:
        assert "within 0.0005 of generate's count" in messages[0] and "the same idle share" in messages[0]
        assert "is not within" not in messages[0]
    else:
        assert "is not within 0.0005" in messages[0] and "the same idle share" not in messages[0]
        assert "Count every row" not in messages[0]        # the batch is the cause, not the rows


@pytest.mark.parametrize("generated, hint", [
    (452, "Store generated as a list"),                              # the total, not one number per batch
    (None, "Store generated as a list"),
    ([148, 148, 157], "not the tokens each of section 2's 3 static batches"),
    ([148 / 4, 148 / 4, 156 / 4], "not the tokens each of section 2's 3 static batches"),   # per row, not per batch
])
def test_exercise_1_fails_a_right_share_from_wrong_batch_counts(generated, hint):
    said, messages = exercise_1(round(MEASURED, 3), generated)
    assert said == "CHECK THIS" and hint in messages[0] and "within 0.0005 of generate's count" in messages[0]


def test_exercise_1_not_done_gives_no_verdict():
    said, messages = exercise_1(None, None)
    assert said == "" and "not done yet" in messages[0]


# --- exercise 2: continuous over static throughput at each offered load ---
GAIN = checkpoint("# Checkpoint for exercise 2")
STORED = {5.0: (96.4, 95.5), 20.0: (356.0, 319.4), 1000.0: (1205.9, 1191.9)}   # section 3's printed tok/s
SECTION_2 = (354.7, 330.2)                                                      # section 2's, at 20 requests/s


def names(rates=STORED, section_2=SECTION_2):
    load = [(rate, run(s), run(c)) for rate, (s, c) in rates.items()]
    return dict(load=load, static=run(section_2[0]), continuous=run(section_2[1]))


def ratios(rates=STORED):
    return {rate: c / s for rate, (s, c) in rates.items()}


@pytest.mark.parametrize("answer", [ratios(), {k: round(v, 2) for k, v in ratios().items()}],
                         ids=["exact", "2 decimals"])
def test_exercise_2_passes_a_right_answer_rounded_as_printed(answer):
    said, messages = run_checkpoint(GAIN, gain_by_load=answer, **names())
    assert said == "PLAUSIBLE" and "within 0.005" in messages[0]


def test_exercise_2_passes_ratios_of_the_rates_section_3_prints():
    """Section 3 prints tok/s to 1 decimal: ratios of those printed figures pass against the unrounded runs."""
    true = {5.0: (96.449, 95.551), 20.0: (356.049, 331.851), 1000.0: (1277.249, 1255.051)}
    printed = {k: round(c, 1) / round(s, 1) for k, (s, c) in true.items()}
    said, _ = run_checkpoint(GAIN, gain_by_load=printed, **names(true))
    assert said == "PLAUSIBLE"


@pytest.mark.parametrize("answer, hint", [
    ({k: 1 / v for k, v in ratios().items()}, "static over continuous"),             # inverted
    ({k: 100 * v for k, v in ratios().items()}, "percentages"),                     # unit slip
    ({k: round(v, 2) + 0.01 for k, v in ratios().items()}, "(2 decimals)."),       # neighbouring value
    ({k: round(v, 2) - 0.01 for k, v in ratios().items()}, "(2 decimals)."),
    ({k: c - s for k, (s, c) in STORED.items()}, "(2 decimals)."),                 # a difference, not a ratio
    ({k: v * 1.1 for k, v in ratios().items()}, "(2 decimals)."),
    ({k: v for k, v in list(ratios().items())[:2]}, "(2 decimals)."),              # a rate left out
    (list(ratios().values()), "(2 decimals)."),                                    # not keyed by rate
])
def test_exercise_2_fails_plausible_wrong_answers(answer, hint):
    said, messages = run_checkpoint(GAIN, gain_by_load=answer, **names())
    assert said == "CHECK THIS" and hint in messages[0] and "within 0.005" in messages[0]


def test_exercise_2_reports_the_stored_runs_loss_beyond_noise_and_no_best_rate():
    """The kit's stored run: 0.90x at 20 requests/s is outside the ±0.05 band; 5 and 1000 requests/s are within
    noise of static and of each other, so neither is called the highest."""
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(), **names())
    assert messages[0].startswith(
        "continuous over static throughput is within noise of static at 5 requests/s (0.99x), 1000 requests/s (0.99x); "
        "behind static by more than the noise at 20 requests/s (0.90x); the highest ratios, at 5 and 1000 requests/s, "
        "are within noise of each other, so no one rate comes out best. Noise is taken as ±0.05")
    assert "(0.036)" in messages[0] and "highest at" not in messages[0] and "ahead" not in messages[0]


def test_exercise_2_never_calls_a_ratio_within_noise_of_1_a_gain():
    rates = {**STORED, 20.0: (350.0, 357.0)}                  # 1.02x: inside the 0.05 floor
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates))
    assert messages[0].startswith("continuous over static throughput is within noise of static at 5 requests/s (0.99x), "
                                  "20 requests/s (1.02x), 1000 requests/s (0.99x);")
    assert "ahead" not in messages[0] and "behind" not in messages[0]


def test_exercise_2_calls_a_ratio_a_gain_only_beyond_the_measured_noise():
    rates = {5.0: (100.0, 100.0), 20.0: (300.0, 390.0), 1000.0: (1000.0, 1000.0)}     # 1.30x at 20 requests/s
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates, section_2=(300.0, 390.0)))
    assert messages[0].startswith("continuous over static throughput is ahead of static by more than the noise at "
                                  "20 requests/s (1.30x); within noise of static at 5 requests/s (1.00x), 1000 requests/s (1.00x)")
    assert "the ratio is highest at 20 requests/s, beyond noise of every other rate" in messages[0]
    noisy = names(rates, section_2=(240.0, 480.0))                  # the two runs of one trace far apart: noise > 0.3
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **noisy)
    assert "ahead" not in messages[0] and "within noise of static at 5 requests/s (1.00x), 20 requests/s (1.30x)" in messages[0]
    assert "at 5, 20 and 1000 requests/s, are within noise of each other" in messages[0]


def test_exercise_2_says_when_continuous_is_behind_everywhere():
    rates = {5.0: (100.0, 90.0), 20.0: (350.0, 300.0), 1000.0: (1300.0, 1000.0)}     # 0.90x, 0.86x, 0.77x
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates, section_2=(350.0, 300.0)))
    assert messages[0].startswith("continuous over static throughput is behind static by more than the noise at "
                                  "5 requests/s (0.90x), 20 requests/s (0.86x), 1000 requests/s (0.77x)")
    assert "within noise of static" not in messages[0]
    assert "at 5 and 20 requests/s, are within noise of each other" in messages[0]      # 0.90 and 0.86: 0.04 apart
    rates = {5.0: (100.0, 95.0), 20.0: (350.0, 300.0), 1000.0: (1300.0, 1000.0)}     # 0.95x is clear of the rest
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates, section_2=(350.0, 300.0)))
    assert "the ratio is highest at 5 requests/s, beyond noise of every other rate" in messages[0]


def test_exercise_2_prints_a_ratio_by_the_band_edge_on_the_side_it_was_judged():
    """A 0.9486x loss at the 0.05 floor would read 0.95x, on the edge of the band: it is printed to 3 decimals."""
    rates = {5.0: (96.5, 95.7), 20.0: (358.0, 330.9), 1000.0: (1270.4, 1205.1)}     # a fresh run's section 3
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates, section_2=(355.0, 329.1)))
    assert "behind static by more than the noise at 20 requests/s (0.92x), 1000 requests/s (0.949x)" in messages[0]
    assert "within noise of static at 5 requests/s (0.99x)" in messages[0]
