"""The headless benchmark and the main job, end to end on a small offline profile."""

import pytest

from utils import benchmark, lab
from utils.results import ResultsStore

@pytest.fixture
def quick_profile(quick_profile_file, monkeypatch):
    """The small offline profile (tests/conftest.py) with every attention kernel and two of each size."""
    monkeypatch.setattr(benchmark, "SCORED_TOKENS", 256)
    monkeypatch.setattr(benchmark, "EM_ITEMS", 2)
    return quick_profile_file(attention=["eager", "sdpa", "flash_attention_2"], prompt_tokens=[16, 32],
                              batch_sizes=[1, 2])


def test_main_job_measures_every_step_and_writes_the_curve(quick_profile, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    assert lab.main(["--profile", quick_profile, "--results", str(results)]) == 0
    records = ResultsStore(results).records()
    out = capsys.readouterr().out
    steps = {r["step"] for r in records}
    assert steps == {"larger baseline", "target", "+ 4-bit", "+ attention", "+ speculative", "+ compile",
                     "+ batching", "+ continuous batching"}
    assert len({r["run"] for r in records}) == 1          # one benchmark run: one run id on every record
    compiled = next(r for r in records if r["step"] == "+ compile")
    assert compiled["settings"]["cache_implementation"] == "static" and compiled["settings"]["compiled"] is False
    # the target carries its paired quality gap to the baseline (the same scored tokens), for the swap
    gap = next(r for r in records if r["step"] == "target")["metrics"]["quality_gap"]
    assert gap["tokens"] > 0 and gap["se"] > 0
    for r in records:
        assert r["hardware"]["device"] == "cpu" and r["software"]["transformers"]
        assert r["settings"]["random_weights"] is False
    spec = next(r for r in records if r["step"] == "+ speculative")
    assert spec["metrics"]["acceptance"]["steps"] >= 1
    # the later steps build on the fastest configuration measured before them (with repeats = 1
    # a record's spread is one point, so no gain here counts as noise)
    rate = lambda r: r["metrics"]["e2e_tok_s"]["median"]                       # noqa: E731
    standard = [r for r in records if r["metrics"]["prompt_tokens"] == 16]
    fastest_precision = max((r for r in standard if r["step"] in ("target", "+ 4-bit")), key=rate)
    assert all(r["settings"]["builds_on"] == fastest_precision["step"] and
               r["settings"]["precision"] == fastest_precision["settings"]["precision"]
               for r in records if r["step"] == "+ attention")
    # the later steps build on the base the curve's chain gives them (utils/chain.py: each factor within one run,
    # tested on its own in tests/test_steps.py): the benchmark asks the chain, never re-decides
    from utils.chain import base_for
    from utils.steps import curve_step, group_of
    for r in records:
        if r["step"] in ("+ speculative", "+ compile", "+ batching"):
            expected = base_for(r["step"], records, group_of(r))
            assert r["settings"]["builds_on"] == curve_step(expected)
            assert r["settings"]["attn_implementation"] == expected["settings"]["attn_implementation"]
            assert r["settings"]["precision"] == expected["settings"]["precision"]
    # the curve's table is printed, one line per step; the techniques' line appears when the
    # cheapest established step is not the target (timing on a busy 2-core machine can make the
    # target cheapest, and then there is no chain to print); the swap is always beside it
    for step in steps:
        assert any(line.startswith(step) and "tok/s" in line for line in out.splitlines()), step
    from utils.curve import compounding, curve_rows
    chained = len(compounding(curve_rows(records, 1.0))) > 1
    assert ("techniques from target to" in out) == chained
    assert "model swap, larger baseline -> target" in out
    assert "skipping flash_attention_2" in out
    assert (tmp_path / "cost_curve.png").stat().st_size > 10_000
    assert (tmp_path / "cost_curve.csv").read_text().count("\n") == 9


def test_random_weights_benchmark_is_labelled(quick_profile, tmp_path):
    results = tmp_path / "r.jsonl"
    benchmark.main(["--profile", quick_profile, "--results", str(results), "--random-weights",
                    "--steps", "precision"])
    records = ResultsStore(results).records()
    assert records and all(r["settings"]["random_weights"] for r in records)
    assert all("perplexity" not in r["metrics"] for r in records)   # no quality from random weights


def test_main_job_stops_before_any_work_when_preflight_blocks(hw, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("utils.models.preflight.has_internet", lambda: False)
    monkeypatch.setattr("utils.lab.detect_hardware", lambda: hw["none"])
    results = tmp_path / "r.jsonl"
    assert lab.main(["--profile", "a100-80", "--results", str(results)]) == 1    # no GPU here
    assert not results.exists()
    assert "[!!] GPU: profile 'a100-80' needs a CUDA GPU" in capsys.readouterr().out


def test_on_a_t4_the_benchmark_plans_nf4_for_target_and_baseline(hw, tmp_path, monkeypatch):
    """The plan only (no GPU here): what each step would load on a free Colab T4."""
    from utils.memory import ModelTooLargeError
    from utils.models.profiles import get_profile

    planned = []

    def load(self, role, precision=None, attn="sdpa"):
        planned.append((role, precision))
        raise ModelTooLargeError("planned only")

    monkeypatch.setattr(benchmark.Bench, "load", load)
    bench = benchmark.Bench(get_profile("t4"), hw["T4"], ResultsStore(tmp_path / "r.jsonl"),
                            random_weights=True, log=lambda *_: None)
    bench.run(["baseline", "precision"])
    assert planned == [("baseline", "nf4"), ("target", "nf4"),          # fp16 fits neither
                       ("target", "nf4-dq"), ("target", "fp4"), ("target", "int8")]
