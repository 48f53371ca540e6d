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


# --- section 2: continuous batching shortens the time to first token; the cell says what it costs ---
TTFT = checkpoint("# Checkpoint\n", "ttft_p90_s")


def test_the_ttft_checkpoint_passes_a_shorter_p90_and_says_when_tokens_come_more_slowly():
    static = run(356.8, ttft_p90_s=0.227, itl_p50_s=0.0020)
    continuous = run(325.9, ttft_p90_s=0.025, itl_p50_s=0.0040)
    said, messages = run_checkpoint(TTFT, static=static, continuous=continuous)
    assert said == "PLAUSIBLE"
    assert "0.91x static's useful tokens/s" in messages[1] and "2.00x static's" in messages[1]
    assert "the rest come more slowly" in messages[1]


def test_the_ttft_checkpoint_fails_when_the_p90_did_not_improve():
    static = run(356.8, ttft_p90_s=0.025, itl_p50_s=0.0020)
    continuous = run(325.9, ttft_p90_s=0.227, itl_p50_s=0.0018)
    said, messages = run_checkpoint(TTFT, static=static, continuous=continuous)
    assert said == "CHECK THIS" and "did not improve" in messages[0]
    assert "no more slowly" in messages[1]


# --- section 5: prefix sharing; one run per engine establishes no fall of the time to first token ---
PREFIX = checkpoint("# Checkpoint\n", "prefix_tokens_reused")


@pytest.mark.parametrize("before_ms, after_ms, step_ms, expected", [
    (10.8, 8.3, 4.0, "less than one engine step"),        # the kit's stored run: 2.5 ms, under one step
    (13.1, 8.7, 4.0, "more than one engine step"),        # a larger difference, still one run each
    (8.3, 10.8, 4.0, "it did not fall"),                  # prefix sharing slower: still a pass
])
def test_prefix_sharing_passes_on_reuse_and_never_claims_an_established_fall(monkeypatch, before_ms, after_ms,
                                                                             step_ms, expected):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    without = run(ttft_p50_s=before_ms / 1e3, itl_p50_s=step_ms / 1e3, extra=dict(prefix_tokens_reused=0))
    with_prefix = run(ttft_p50_s=after_ms / 1e3, itl_p50_s=step_ms / 1e3, extra=dict(prefix_tokens_reused=640))
    said, messages = run_checkpoint(PREFIX, without=without, with_prefix=with_prefix, prompt_total=1480)
    assert said == "PLAUSIBLE" and "640 of 1480" in messages[0]        # the reuse is the checkpoint
    assert len(found) == 1 and expected in found[0] and "one run" in found[0]
    assert "fell" not in found[0]


def test_prefix_sharing_fails_when_nothing_was_reused(monkeypatch):
    found = []
    monkeypatch.setattr("utils.session.finding", found.append)
    without = run(ttft_p50_s=0.0108, itl_p50_s=0.004, extra=dict(prefix_tokens_reused=0))
    with_prefix = run(ttft_p50_s=0.0083, itl_p50_s=0.004, extra=dict(prefix_tokens_reused=0))
    said, _ = run_checkpoint(PREFIX, without=without, with_prefix=with_prefix, prompt_total=1480)
    assert said == "CHECK THIS" and not found


# --- exercise 1: the idle share of the static batches' tokens ---
IDLE = checkpoint("# Checkpoint for exercise 1")
STATIC = SimpleNamespace(output_tokens=326, extra=dict(generated_tokens=452))   # the stored trace's counts
MEASURED = 1 - 326 / 452                                                        # 0.27876..., printed 27.9%


@pytest.mark.parametrize("answer", [MEASURED, round(MEASURED, 3), round(MEASURED * 100, 1) / 100, round(MEASURED, 4)],
                         ids=["exact", "3 decimals", "the printed 27.9% as a fraction", "4 decimals"])
def test_exercise_1_passes_a_right_answer_rounded_as_printed(answer):
    said, messages = run_checkpoint(IDLE, idle=answer, static=STATIC)
    assert said == "PLAUSIBLE" and "27.9%" in messages[0] and "within 0.0005" in messages[0]


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
    said, messages = run_checkpoint(IDLE, idle=answer, static=STATIC)
    assert said == "CHECK THIS" and hint in messages[0] and "within 0.0005" in messages[0]
    assert f"{MEASURED:.4f}" in messages[0] and f"your {answer!r}" in messages[0]   # two different numbers


def test_exercise_1_not_done_gives_no_verdict():
    said, messages = run_checkpoint(IDLE, idle=None, static=STATIC)
    assert said == "" and "not done yet" in messages[0]


# --- exercise 2: continuous over static throughput at each offered load ---
GAIN = checkpoint("# Checkpoint for exercise 2")
STORED = {5.0: (96.4, 95.6), 20.0: (356.0, 331.9), 1000.0: (1277.2, 1255.1)}   # section 3's printed tok/s
SECTION_2 = (356.8, 325.9)                                                      # section 2's, at 20 requests/s


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


def test_exercise_2_calls_the_stored_run_no_gain():
    """The kit's stored run: continuous below static at every rate, its highest 0.99x at 5 requests/s."""
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(), **names())
    assert messages[0].startswith("no rate shows a gain beyond noise: continuous over static runs from 0.93x to 0.99x")
    assert "highest at 5 requests/s, within noise of static" in messages[0] and "gains most" not in messages[0]


def test_exercise_2_never_calls_a_ratio_within_noise_of_1_a_gain():
    rates = {**STORED, 20.0: (350.0, 357.0)}                  # 1.02x: inside the 0.05 floor
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates))
    assert messages[0].startswith("no rate shows a gain beyond noise") and "1.02x" in messages[0]
    assert "beats" not in messages[0]


def test_exercise_2_calls_a_ratio_a_gain_only_beyond_the_measured_noise():
    rates = {**STORED, 20.0: (300.0, 390.0)}                  # 1.30x
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates, section_2=(300.0, 390.0)))
    assert messages[0].startswith("continuous batching beats static by more than the noise at 20 requests/s")
    noisy = names(rates, section_2=(240.0, 480.0))                  # the two runs of one trace far apart: noise > 0.3
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **noisy)
    assert messages[0].startswith("no rate shows a gain beyond noise")


def test_exercise_2_says_when_continuous_is_behind_everywhere():
    rates = {5.0: (100.0, 90.0), 20.0: (350.0, 300.0), 1000.0: (1300.0, 1000.0)}
    _, messages = run_checkpoint(GAIN, gain_by_load=ratios(rates), **names(rates, section_2=(350.0, 300.0)))
    assert messages[0].startswith("continuous batching is behind static at every rate, beyond noise (0.77x to 0.90x)")
    assert "comes closest at 5 requests/s" in messages[0]
