"""The bad-input battery: what a new user gets wrong, and what the kit says back.

One section per case. Each case checks the message (what is wrong, where, what to do), that a
command exits non-zero without a traceback, and that nothing was lost or overwritten.

 1. profiles validated when read        6. price
 2. impossible measurements refused     7. paths
 3. `make lab` after a crash            8. draft/target tokenizers
 4. class merge                         9. architectures
 5. record schema                      10. time budget
"""

import json
import types
from pathlib import Path

import pytest

from utils import benchmark, classroom, lab
from utils.models import preflight
from utils.results import CorruptResultsError, ResultsStore

GOOD = """
[mine]
description    = "offline models, minimal settings"
device         = "cpu"
target         = { id = "offline:target",   revision = "local" }
draft          = { id = "offline:draft",    revision = "local" }
baseline       = { id = "offline:baseline", revision = "local" }
precisions     = ["float32"]
attention      = ["sdpa"]
prompt_tokens  = [16]
new_tokens     = 4
warmup         = 1
repeats        = 1
batch_sizes    = [1]
draft_lengths  = [2]
gpu_price_key  = "cpu-laptop"
"""


def profile_file(tmp_path, monkeypatch, text=GOOD, **replace):
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "mine.toml"
    path.write_text(text)
    monkeypatch.setenv("LLMFLATION_PROFILES_FILE", str(path))
    return path


def add(store, step="target", rate=100.0, gpu_name=None, profile="offline", **metrics):
    hw = {"gpu_name": gpu_name, "vram_gb": 15.0 if gpu_name else None}
    return store.append("benchmark", step=step, settings=dict(model="m", precision="nf4", profile=profile),
                        metrics=dict({"e2e_tok_s": {"median": rate}, "batch": 1}, **metrics),
                        context={"timestamp": "2026-11-23T00:00:00+00:00", "hardware": hw})


# --- 1. profiles are validated when read -------------------------------------------------
def test_every_fault_of_a_profile_is_reported_at_once_with_file_and_name(tmp_path, monkeypatch):
    from utils.models.profiles import ProfileError, get_profile
    path = profile_file(tmp_path, monkeypatch, **{
        "repeats        = 1": 'repeats        = "three"',
        'precisions     = ["float32"]': 'precisions     = "nf4"',
        "new_tokens     = 4": "new_tokens     = -5",
        'attention      = ["sdpa"]': 'attention      = ["sdpa", "flash"]',
        '"cpu-laptop"': '"V100"',
        'revision = "local" }\ndraft': 'revision = "local", trust = true }\ndraft',
        "warmup         = 1": "warmup         = 0\nbatchsize = 4"})
    with pytest.raises(ProfileError) as err:
        get_profile("mine")
    message = str(err.value)
    assert "profile 'mine'" in message and str(path) in message
    for fault in ("repeats = 'three'", "precisions = 'nf4'", "new_tokens = -5", "unknown name 'flash'",
                  "gpu_price_key = 'V100'", "target: unknown key 'trust'", "warmup = 0",
                  "unknown key 'batchsize'"):
        assert fault in message, fault
    assert message.count("\n  - ") == 8


def test_a_bad_profile_stops_preflight_and_lab_with_the_message_and_no_ok_lines(tmp_path, monkeypatch, capsys):
    profile_file(tmp_path, monkeypatch, **{"repeats        = 1": "repeats        = 0"})
    assert preflight.main(["--profile", "mine"]) == 2
    out, err = capsys.readouterr()
    assert "[ok]" not in out and "error: profile 'mine'" in err and "repeats = 0" in err
    assert "Traceback" not in err
    assert lab.main(["--profile", "nope", "--results", str(tmp_path / "r.jsonl")]) == 2
    assert "unknown profile 'nope'. Valid profiles:" in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists()


def test_an_unknown_profile_stops_the_downloads_table_with_the_message_and_status_2(capsys):
    """python -m utils.models.downloads --profile <typo>: the valid names, no traceback."""
    from utils.models import downloads
    assert downloads.main(["--profile", "nope"]) == 2
    out, err = capsys.readouterr()
    assert "unknown profile 'nope'. Valid profiles:" in err and "Traceback" not in err and not out
    assert downloads.main(["--profile", "t4"]) == 0
    assert "total:" in capsys.readouterr().out


def test_an_unknown_rehearsal_mode_is_a_user_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    """$LLMFLATION_RANDOM_WEIGHTS with a typo: every command says which values it takes, exit 2."""
    from utils import curve
    monkeypatch.setenv("LLMFLATION_RANDOM_WEIGHTS", "bogus")
    for command in (lambda: preflight.main(["--profile", "offline"]),
                    lambda: curve.main(["--results", str(tmp_path / "r.jsonl")])):
        assert command() == 2
        err = capsys.readouterr().err
        assert "LLMFLATION_RANDOM_WEIGHTS='bogus': use 1 (real size) or reduced" in err and "Traceback" not in err
    assert not (tmp_path / "r.jsonl").exists()


def test_ctrl_c_in_the_benchmark_keeps_the_records_and_says_so(tmp_path, monkeypatch, capsys):
    results = ResultsStore(tmp_path / "r.jsonl")

    def two_steps_then_ctrl_c(self, steps):
        add(results, "target", 100.0)
        add(results, "+ 4-bit", 200.0)
        raise KeyboardInterrupt
    monkeypatch.setattr(benchmark.Bench, "run", two_steps_then_ctrl_c)
    assert benchmark.main(["--profile", "offline", "--results", str(results.path)]) == 130
    err = capsys.readouterr().err
    assert "2 record(s) of this run kept in" in err and str(results.path) in err and "Traceback" not in err
    assert [r["step"] for r in results.records()] == ["target", "+ 4-bit"]


def test_every_shipped_profile_passes_the_checks():
    from utils.models.profiles import _read_tables, problems
    assert {name: problems(table) for name, table in _read_tables().items()} == \
        {name: [] for name in _read_tables()}


# --- 2. impossible measurements are refused, and the benchmark goes on --------------------
def test_a_step_that_cannot_be_measured_stops_alone_with_its_reason(tmp_path, monkeypatch, cpu_hw):
    from utils.measure import ImpossibleTimingError
    profile_file(tmp_path, monkeypatch)
    from utils.models.profiles import get_profile
    bench = benchmark.Bench(get_profile("mine"), cpu_hw, ResultsStore(tmp_path / "r.jsonl"), log=print)
    ran = []

    def impossible():
        raise ImpossibleTimingError("impossible timing in repeat 1: ... Nothing was recorded.")
    bench.guarded("+ batching", impossible)
    bench.guarded("+ attention", lambda: ran.append("next"))
    assert bench.stopped == ["+ batching: impossible timing in repeat 1: ... Nothing was recorded."]
    assert ran == ["next"] and not (tmp_path / "r.jsonl").exists()


def test_an_unexpected_error_in_one_step_stops_that_step_keeps_its_traceback_and_the_curve_is_drawn(
        tmp_path, monkeypatch, capsys):
    """transformers 5.24 broke continuous batching for GPT-NeoX with a TypeError inside a step: that step
    alone stops, its traceback goes to a log beside the results, the others run and make lab draws the curve."""
    from utils import lab
    results = ResultsStore(tmp_path / "r.jsonl")

    def measured(self):
        add(results, "target", 100.0)
        add(results, "+ batching", 300.0)

    def broken(self):
        raise RuntimeError("request s00 failed: PagedAttentionCache.update() missing 1 required positional "
                           "argument: 'kwargs'")
    monkeypatch.setattr(benchmark.Bench, "model_at", lambda self, step, role, precision: None)
    monkeypatch.setattr(benchmark.Bench, "batching", measured)
    monkeypatch.setattr(benchmark.Bench, "continuous", broken)
    for name in ("attention", "speculative", "static_cache"):
        monkeypatch.setattr(benchmark.Bench, name, lambda self: None)
    assert lab.main(["--profile", "offline", "--results", str(results.path)]) == 1
    out, err = capsys.readouterr()
    log = tmp_path / "r_errors.log"
    assert "[+ continuous batching] FAILED with an unexpected error, RuntimeError: request s00 failed" in out
    assert "Traceback (most recent call last)" in log.read_text() and "PagedAttentionCache" in log.read_text()
    assert "Traceback" not in out + err and (tmp_path / "cost_curve.csv").exists()
    assert "the curve shows what it did" in err


def test_a_run_whose_prefill_outlasts_the_whole_generation_is_refused_not_clamped(tiny_checkpoint, cpu_hw,
                                                                                  monkeypatch):
    import utils.measure as measure
    from utils.models.loading import load_model
    loaded = load_model(str(tiny_checkpoint), "float32", hw=cpu_hw, attn_implementation="eager")
    # warmup=0 stored 7e9 tok/s once: the cold 1-token run took longer than the warm full run.
    # A repeat like that is measured again (a busy moment); one that stays impossible is refused.
    times = iter([0.50, 0.10, 0.01, 0.05, 0.01, 0.05])       # (prefill, total) x 3: bad, then good twice
    monkeypatch.setattr(measure, "_generate", lambda *a, **k: next(times))
    m = measure.measure_generation(loaded.model, loaded.tokenizer, "a b c " * 30, prompt_tokens=8,
                                   new_tokens=4, warmup=0, repeats=2, batch=2)
    assert m.prefill_s.high == 0.01 and m.total_s.n == 2        # the inverted pair was not kept
    monkeypatch.setattr(measure, "_generate", lambda *a, **k: 0.5)
    with pytest.raises(measure.ImpossibleTimingError, match="impossible timing in repeat 1 \\(3 tries\\).*warmup=0"):
        measure.measure_generation(loaded.model, loaded.tokenizer, "a b c " * 30, prompt_tokens=8,
                                   new_tokens=4, warmup=0, repeats=2, batch=2)


# --- 3. `make lab` after a crash: a torn last line ----------------------------------------
def test_lab_after_a_torn_last_line_appends_draws_the_curve_and_reports_the_line_once(tmp_path, monkeypatch,
                                                                                    capsys, recwarn):
    results = tmp_path / "r.jsonl"
    add(ResultsStore(results), "larger baseline", 50.0)
    with open(results, "a") as f:
        f.write('{"schema": 1, "kind": "bench')            # the crash, mid-write

    def fake_benchmark(argv):                               # what the benchmark does first: read, append
        store = ResultsStore(argv[argv.index("--results") + 1])
        store.records(skip_corrupt=True)
        add(store, "target", 100.0)
        return 0
    monkeypatch.setattr(benchmark, "main", fake_benchmark)
    before = results.read_text()
    assert lab.main(["--profile", "offline", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert results.read_text().startswith(before)           # nothing rewritten, the torn line kept
    assert (tmp_path / "cost_curve.csv").read_text().count("\n") == 3     # header, baseline, target
    told = [w for w in recwarn if "line 2" in str(w.message)] + \
           [line for line in out.splitlines() if "line 2" in line and "[!!] results" not in line]
    assert len(told) == 1 and "torn write" in str(told[0].message)
    assert "[!!] results" in out and "1 unreadable line" in out              # preflight said so too


# --- 4. class merge -----------------------------------------------------------------------
def test_two_learners_whose_files_share_a_name_stay_two(tmp_path):
    for folder, rate in (("a", 100.0), ("b", 300.0)):
        (tmp_path / folder).mkdir()
        add(ResultsStore(tmp_path / folder / "me.jsonl"), "target", rate)
    rows = classroom.merge([tmp_path / "a" / "me.jsonl", tmp_path / "b" / "me.jsonl"], log=print)
    assert sorted((r["learner"], r["tokens_per_s"]) for r in rows) == [("a/me", 100.0), ("b/me", 300.0)]


def test_the_learner_id_is_stored_and_a_copied_file_is_one_learner_said_so(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFLATION_LEARNER", "Ada")
    store = ResultsStore(tmp_path / "ada.jsonl")
    first = add(store, "target", 100.0)
    assert add(ResultsStore(store.path), "+ 4-bit", 200.0)["learner"] == first["learner"]   # after a restart
    assert first["learner"]["name"] == "Ada" and len(first["learner"]["id"]) == 12
    (tmp_path / "copy.jsonl").write_text(store.path.read_text())
    messages = []
    rows = classroom.merge([store.path, tmp_path / "copy.jsonl"], log=messages.append)
    assert {r["learner"] for r in rows} == {"Ada"}
    assert any("same learner id" in m and "merged as one learner" in m for m in messages)


def test_a_file_named_twice_is_merged_once_and_said_so(tmp_path):
    store = ResultsStore(tmp_path / "ada.jsonl")
    add(store, "target", 100.0)
    messages = []
    (tmp_path / "sub").mkdir()
    twice = classroom.merge([store.path, tmp_path / "sub" / ".." / "ada.jsonl", store.path], log=messages.append)
    once = classroom.merge([store.path], log=print)
    assert twice == once and not any("same learner id" in m for m in messages)
    assert sum("given again: read once" in m for m in messages) == 2


def test_a_binary_file_is_left_out_in_one_line(tmp_path):
    store = ResultsStore(tmp_path / "bob.jsonl")
    add(store, "target", 100.0)
    (tmp_path / "photo.jsonl").write_bytes(bytes(range(256)) * 40)
    messages = []
    rows = classroom.merge([store.path, tmp_path / "photo.jsonl"], log=messages.append)
    about = [m for m in messages if "photo.jsonl" in m]
    assert [r["learner"] for r in rows] == ["bob"]
    assert len(about) == 1 and "not a JSON Lines results file (binary data)" in about[0]


def test_a_byte_order_mark_before_the_first_record_is_read_past(tmp_path):
    """Windows editors save UTF-8 with a BOM: the first record is sound, not 'a torn write'."""
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    add(store, "+ 4-bit", 200.0)
    store.path.write_bytes(b"\xef\xbb\xbf" + store.path.read_bytes())
    records, problems = store.read()
    assert [r["step"] for r in records] == ["target", "+ 4-bit"] and problems == []


def test_every_file_or_line_left_out_is_named_with_its_reason(tmp_path):
    good = ResultsStore(tmp_path / "bob.jsonl")
    add(good, "target", 100.0, profile="cpu")
    add(good, "target", 120.0)                              # the newest profile wins: offline
    with open(good.path, "a") as f:                         # one bad line does not lose bob
        f.write(json.dumps(dict(kind="benchmark", step="target", settings={}, metrics=[1, 2])) + "\n")
    messages = []
    rows = classroom.merge([good.path, tmp_path / "gone.jsonl", tmp_path], log=messages.append)
    assert [r["learner"] for r in rows] == ["bob"]
    text = "\n".join(messages)
    assert "bob.jsonl, line 3: metrics must be an object, not list" in text
    assert "gone.jsonl: no such file" in text and f"left out {tmp_path}: not a file" in text
    assert "bob: left out: 1 record from another profile" in text


# --- 5. record schema -----------------------------------------------------------------------
@pytest.mark.parametrize("metrics, fault", [
    ({"e2e_tok_s": {"median": "12.3"}}, "metrics.e2e_tok_s.median is '12.3', not a number"),
    ({"e2e_tok_s": 12.3}, "metrics.e2e_tok_s must be an object with a median"),
    ({"e2e_tok_s": {"median": 1.0}, "batch": "8"}, "metrics.batch is '8', not a number"),
    ({"e2e_tok_s": {"median": float("nan")}}, "metrics.e2e_tok_s.median is nan, not a finite number"),
    ({"e2e_tok_s": {"median": 1.0}, "raw": {"total_s": [1.0, float("inf")]}}, "metrics.raw.total_s[1] is inf"),
])
def test_a_record_of_the_wrong_shape_is_named_by_line_never_dropped_silently(tmp_path, metrics, fault):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    record = dict(schema=1, kind="benchmark", step="+ 4-bit", settings={}, metrics=metrics)
    with open(store.path, "a") as f:
        f.write(json.dumps(record) + "\n")                  # json writes NaN and Infinity as such
    before = store.path.read_bytes()
    with pytest.raises(CorruptResultsError) as err:
        store.records()
    assert "r.jsonl, line 2: " in str(err.value) and fault in str(err.value)
    with pytest.warns(UserWarning, match="line 2"):
        assert [r["step"] for r in store.records(skip_corrupt=True)] == ["target"]
    assert store.path.read_bytes() == before


def test_a_step_without_a_timing_stat_is_sound(tmp_path):
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "+ batching", 100.0, ttft_s=None, itl_s=None)   # per-token times exist at batch 1 only
    assert len(store.records()) == 1


# --- 6. price ------------------------------------------------------------------------------
def test_negative_price_is_refused_before_anything_is_written(tmp_path, capsys):
    from utils.curve import main
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    assert main(["--results", str(store.path), "--price", "-1"]) == 1
    assert "price" in capsys.readouterr().err and not (tmp_path / "cost_curve.csv").exists()


def test_an_absurd_price_overwrites_nothing_and_a_free_run_is_priced_at_the_rental_price(tmp_path, capsys):
    from utils.curve import main
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "larger baseline", 25.0)
    add(store, "target", 100.0)
    assert main(["--results", str(store.path), "--price", "1.0"]) == 0
    written = (tmp_path / "cost_curve.csv").read_text()
    assert main(["--results", str(store.path), "--price", "1e308"]) == 1     # $/1M would be inf
    assert "not a finite" in capsys.readouterr().err
    assert (tmp_path / "cost_curve.csv").read_text() == written              # the old curve stays
    assert main(["--results", str(store.path), "--price", "0"]) == 0         # free Colab, Binder
    out = capsys.readouterr().out
    assert "free to you, not free to run" in out and "inf" not in (tmp_path / "cost_curve.csv").read_text()


def test_a_price_outside_the_known_rental_range_is_warned_about_with_the_range(tmp_path, capsys):
    from utils.curve import main, plausible_prices
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    low, high = plausible_prices()
    assert main(["--results", str(store.path), "--price", "2500"]) == 0        # $/month typed as $/h
    assert f"outside the rental prices the kit knows, ${low:g} to ${high:g} per GPU-hour" in capsys.readouterr().err
    assert main(["--results", str(store.path), "--price", "1.5"]) == 0
    assert "outside" not in capsys.readouterr().err


def test_a_skipped_corrupt_line_is_one_warning_without_a_line_of_the_kits_source(tmp_path):
    import subprocess
    import sys
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    with open(store.path, "a") as f:
        f.write("{torn line\n")
    done = subprocess.run([sys.executable, "-m", "utils.curve", "--results", str(store.path), "--price", "1.0",
                           "--skip-corrupt"], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "<r.jsonl>:0: UserWarning: left out:" in done.stderr and "warnings.warn" not in done.stderr
    assert "records.append" not in done.stderr and done.stderr.count("\n") <= 2


# --- 7. paths -------------------------------------------------------------------------------
def test_a_results_path_that_cannot_take_records_stops_the_benchmark_before_measuring(tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.setattr(benchmark, "Bench", None)           # measuring would fail the test
    assert benchmark.main(["--profile", "offline", "--results", str(tmp_path)]) == 2
    assert f"results path {tmp_path} is a folder" in capsys.readouterr().err
    (tmp_path / "file.txt").write_text("")
    assert benchmark.main(["--profile", "offline", "--results", str(tmp_path / "file.txt" / "r.jsonl")]) == 2
    assert "is not a writable folder" in capsys.readouterr().err


def test_a_read_only_results_file_is_refused_and_left_alone(tmp_path, monkeypatch):
    import utils.results as results
    from utils.results import ResultsPathError, check_writable
    path = tmp_path / "r.jsonl"
    add(ResultsStore(path), "target", 100.0)
    monkeypatch.setattr(results.os, "access", lambda p, mode: False)   # root may write anything
    with pytest.raises(ResultsPathError, match="read-only"):
        check_writable(path)
    assert len(ResultsStore(path).records()) == 1


def test_a_model_folder_with_only_a_pickle_checkpoint_is_refused_saying_why(tmp_path, cpu_hw, tiny_checkpoint):
    import shutil

    from utils.models.loading import ModelLoadError, load_model
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint, folder)
    for weights in folder.glob("*.safetensors"):
        weights.rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="only a pickle checkpoint .*pytorch_model.bin.*run any code"):
        load_model(str(folder), "float32", hw=cpu_hw)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(ModelLoadError, match="no \\*.safetensors weights"):
        load_model(str(folder), "float32", hw=cpu_hw)


def test_preflight_blocks_a_missing_local_model_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    profile_file(tmp_path, monkeypatch, **{'"offline:draft",    revision = "local"': '"./no/such/model"'})
    assert preflight.main(["--profile", "mine", "--results", str(tmp_path / "r.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "[!!] draft ./no/such/model: model directory no/such/model is missing" in out
    assert "(this blocks the run)" in out and "huggingface" not in out.split("draft")[1].split("\n")[0]


# --- 8. draft and target tokenizers ---------------------------------------------------------
def tokenizer(vocab, eos=0):
    return types.SimpleNamespace(get_vocab=lambda: dict(vocab), bos_token_id=None, eos_token_id=eos,
                                 pad_token_id=eos)


def test_a_draft_with_another_tokenizer_of_the_same_size_is_refused():
    from utils.speculative import PairError, check_pair
    config = {"vocab_size": 3}
    ours = tokenizer({"a": 0, "b": 1, "c": 2})
    check_pair(config, config, ours, tokenizer({"a": 0, "b": 1, "c": 2}))
    with pytest.raises(PairError, match="2 tokens map to other ids .*'b' is id 1 for the target and 2"):
        check_pair(config, config, ours, tokenizer({"a": 0, "c": 1, "b": 2}))
    with pytest.raises(PairError, match="special tokens differ: eos_token_id"):
        check_pair(config, config, ours, tokenizer({"a": 0, "b": 1, "c": 2}, eos=2))


def test_the_offline_pair_shares_a_tokenizer_and_the_benchmark_checks_it(tmp_path, monkeypatch, cpu_hw):
    from utils.models.loading import load_model
    from utils.models.profiles import get_profile
    from utils.speculative import check_pair
    target, draft = load_model("offline:target", hw=cpu_hw), load_model("offline:draft", hw=cpu_hw)
    check_pair(target.model.config, draft.model.config, target.tokenizer, draft.tokenizer)

    profile_file(tmp_path, monkeypatch)
    bench = benchmark.Bench(get_profile("mine"), cpu_hw, ResultsStore(tmp_path / "r.jsonl"), log=print)
    swapped = dict(target.tokenizer.get_vocab())
    first, second = sorted(swapped)[:2]
    swapped[first], swapped[second] = swapped[second], swapped[first]
    draft.tokenizer = types.SimpleNamespace(get_vocab=lambda: swapped, bos_token_id=target.tokenizer.bos_token_id,
                                            eos_token_id=target.tokenizer.eos_token_id,
                                            pad_token_id=target.tokenizer.pad_token_id)
    monkeypatch.setattr(bench, "load", lambda role, *a: target if role == "target" else draft)
    bench.guarded("+ speculative", bench.speculative)
    assert len(bench.stopped) == 1 and "different tokenizers: 2 tokens" in bench.stopped[0]
    assert not (tmp_path / "r.jsonl").exists() or not ResultsStore(tmp_path / "r.jsonl").records()


# --- 9. architectures -----------------------------------------------------------------------
SMALL = dict(hidden_size=128, intermediate_size=320, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=1000)


@pytest.mark.parametrize("model_type, config", [
    ("llama", dict(SMALL, tie_word_embeddings=False)),
    ("llama", dict(SMALL, attention_bias=True)),
    ("mistral", SMALL),
    ("qwen2", dict(SMALL, tie_word_embeddings=True)),
    ("qwen3", dict(SMALL, head_dim=48)),
    ("gpt2", dict(n_embd=128, n_layer=2, n_head=4, vocab_size=1000, n_positions=64)),   # its own key names
    ("gpt_neox", dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      vocab_size=1000)),                                                # a plain MLP
    ("mixtral", dict(SMALL, num_local_experts=5, num_experts_per_tok=2)),             # mixtures of experts
    ("qwen3_moe", dict(SMALL, num_experts=6, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=32)),
    ("qwen3_moe", dict(SMALL, num_experts=6, num_experts_per_tok=2, moe_intermediate_size=64,
                       mlp_only_layers=[0])),                                           # a dense layer among them
    ("olmoe", dict(SMALL, num_experts=6, num_experts_per_tok=2)),                     # q/k norms over all heads
    ("granitemoe", dict(SMALL, num_local_experts=6, num_experts_per_tok=2, tie_word_embeddings=True)),
])
def test_the_memory_model_counts_what_transformers_builds(model_type, config):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from utils.memory import ModelShape
    predicted = ModelShape.from_config(dict(config, model_type=model_type)).params
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **config))
    assert predicted == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def test_an_unsupported_architecture_is_refused_before_loading(tmp_path, cpu_hw):
    from utils.models.loading import load_model
    from utils.memory import UnsupportedArchitecture
    folder = tmp_path / "moe"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(dict(SMALL, model_type="phimoe", num_local_experts=4)))
    with pytest.raises(UnsupportedArchitecture, match="'phimoe' is not one whose memory the kit can predict"):
        load_model(str(folder), "float32", hw=cpu_hw)


# --- 10. time budget --------------------------------------------------------------------------
def test_a_step_past_its_budget_stops_and_says_so(tmp_path, monkeypatch, cpu_hw):
    from utils.models.profiles import get_profile
    profile_file(tmp_path, monkeypatch, **{"gpu_price_key": "step_budget_s  = 0\ngpu_price_key"})
    bench = benchmark.Bench(get_profile("mine"), cpu_hw, ResultsStore(tmp_path / "r.jsonl"), log=print)
    bench.guarded("+ batching", bench.batching)
    assert len(bench.stopped) == 1 and "past its budget of 0 s" in bench.stopped[0]
    assert "step_budget_s" in bench.stopped[0]


def test_a_budget_that_is_not_a_number_is_a_profile_fault(tmp_path, monkeypatch):
    from utils.models.profiles import ProfileError, get_profile
    profile_file(tmp_path, monkeypatch, **{"gpu_price_key": 'step_budget_s  = "ten minutes"\ngpu_price_key'})
    with pytest.raises(ProfileError, match="step_budget_s = 'ten minutes': expected a number >= 0"):
        get_profile("mine")


def test_a_notebook_checks_its_results_file_at_start_and_never_loses_a_measurement(tmp_path, monkeypatch, capsys):
    from utils.results import ResultsPathError
    from utils.session import start
    with pytest.raises(ResultsPathError, match="is a folder"):           # checked before measuring
        start("01 measuring cost", profile="offline", results=str(tmp_path))
    path = tmp_path / "r.jsonl"
    lab = start("01 measuring cost", profile="offline", results=str(path))
    real_write = ResultsStore.write

    def disk_full(self, record):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ResultsStore, "write", disk_full)              # the disk fills mid-notebook
    record = lab.record("target", settings={"precision": "float32"}, metrics={"e2e_tok_s": {"median": 1.0}})
    assert record["step"] == "target" and lab.unsaved == [record]
    assert "NOT SAVED" in capsys.readouterr().out and not path.exists()
    with pytest.raises(OSError):
        lab.save_unsaved()                                             # still full: kept, not lost
    assert lab.unsaved == [record]
    monkeypatch.setattr(ResultsStore, "write", real_write)
    assert lab.save_unsaved() == 1 and lab.unsaved == []
    assert [r["step"] for r in ResultsStore(path).records()] == ["target"]


def test_preflight_refuses_a_draft_the_benchmark_would_refuse(tmp_path, monkeypatch):
    """Another vocabulary size, or the same size with another tokenizer: preflight says so before a download."""
    import shutil

    from utils.models.refs import OFFLINE_DIR
    for fault in ("vocab", "tokenizer"):
        draft = tmp_path / fault
        shutil.copytree(OFFLINE_DIR / "draft", draft)
        if fault == "vocab":
            config = json.loads((draft / "config.json").read_text())
            (draft / "config.json").write_text(json.dumps(dict(config, vocab_size=config["vocab_size"] + 64)))
        else:                                   # two tokens swap ids: same size, other tokenizer
            tok = json.loads((draft / "tokenizer.json").read_text())
            vocab = tok["model"]["vocab"]
            vocab["!"], vocab['"'] = vocab['"'], vocab["!"]
            (draft / "tokenizer.json").write_text(json.dumps(tok))
        profile_file(tmp_path, monkeypatch, **{'id = "offline:draft",    revision = "local"':
                                               f'id = "{draft}", revision = "local"'})
        checks = {c.name: c for c in preflight.preflight(get_profile_named("mine"))}
        pair = checks["draft pairs with target"]
        assert not pair.ok and "will refuse it" in pair.message
        assert ("!= target vocab" if fault == "vocab" else "different tokenizers") in pair.message
    profile_file(tmp_path, monkeypatch)
    pair = {c.name: c for c in preflight.preflight(get_profile_named("mine"))}["draft pairs with target"]
    assert pair.ok and "same tokenizer" in pair.message


def get_profile_named(name):
    from utils.models.profiles import get_profile
    return get_profile(name)


def test_a_gpu_profile_on_a_cpu_is_blocked_and_judged_against_the_gpu_it_describes(cpu_hw):
    from utils.models.profiles import get_profile
    checks = preflight.preflight(get_profile("t4"), cpu_hw)
    assert any(c.name == "GPU" and c.blocking for c in checks)
    memory = [c for c in checks if c.name.startswith("target Qwen/Qwen3-8B")]
    assert memory and not any("RAM" in c.message for c in memory)
    fp16 = next(c for c in memory if c.name.endswith("float16"))
    nf4 = next(c for c in memory if c.name.endswith(" nf4"))
    assert not fp16.ok and nf4.ok and "of the Tesla T4 this profile describes" in nf4.message


def test_a_measurement_taken_on_a_busy_machine_is_flagged_on_the_curve(tmp_path):
    """One nf4-dq record at 7.0 tok/s where the usual was ~365: its repeats disagreed; the curve says so."""
    from utils.curve import curve_rows, summary
    store = ResultsStore(tmp_path / "r.jsonl")
    store.append("benchmark", step="target", settings=dict(model="m", precision="float32", profile="offline"),
                 metrics={"e2e_tok_s": {"median": 360.0, "low": 355.0, "high": 365.0}, "batch": 1},
                 context={"timestamp": "2026-11-23T00:00:00+00:00", "hardware": {"gpu_name": None}})
    store.append("benchmark", step="+ 4-bit", settings=dict(model="m", precision="nf4-dq", profile="offline"),
                 metrics={"e2e_tok_s": {"median": 7.0, "low": 6.5, "high": 362.0}, "batch": 1},
                 context={"timestamp": "2026-11-23T00:01:00+00:00", "hardware": {"gpu_name": None}})
    store.append("benchmark", step="+ batching", settings=dict(model="m", precision="float32", profile="offline"),
                 metrics={"e2e_tok_s": {"median": 800.0, "low": 700.0, "high": 900.0}, "batch": 2},
                 context={"timestamp": "2026-11-23T00:02:00+00:00", "hardware": {"gpu_name": None}})
    rows = curve_rows(store.records(), 1.0)
    text = summary(rows)
    four = next(line for line in text.splitlines() if line.startswith("+ 4-bit"))
    assert "!unsteady: repeats 5079% apart" in four
    target = next(line for line in text.splitlines() if line.startswith("target"))
    assert "unsteady" not in target
    assert "!unsteady: + 4-bit, + batching: the repeats of that measurement disagree by more than 10%" in text
    # a kept step whose repeats disagree makes the techniques' total uncertain, and the line says so
    assert "(uncertain: + batching: its measurement or its base's is !unsteady)" in \
        next(line for line in text.splitlines() if line.startswith("techniques"))


def test_smaller_escapes_pickle_only_folder_local_profile_and_a_newer_schema(tmp_path, monkeypatch):
    """#29 item 14: a folder with only pytorch_model.bin says why the pickle is refused; a profile of local
    folders needs no internet; a record written by a newer kit is named, not read as if it were ours."""
    import shutil

    from utils.models.refs import ModelLoadError, local_path
    from utils.models.profiles import ModelRef
    from utils.models.refs import OFFLINE_DIR
    only_bin = tmp_path / "pickled"
    only_bin.mkdir()
    (only_bin / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelLoadError, match=r"no config.json.*only a pickle checkpoint \(pytorch_model.bin\).*safetensors only"):
        local_path(ModelRef(str(only_bin), "local"))
    folders = {}
    for role in ("target", "draft", "baseline"):
        folders[role] = tmp_path / role
        shutil.copytree(OFFLINE_DIR / role, folders[role])
    path = profile_file(tmp_path, monkeypatch, **{f'id = "offline:{role}",{" " * gap}revision = "local"':
                                                  f'id = "{folders[role]}", revision = "local"'
                                                  for role, gap in (("target", 3), ("draft", 4), ("baseline", 1))})
    assert "offline:" not in path.read_text()
    monkeypatch.setattr(preflight, "has_internet", lambda: False)
    (net,) = [c for c in preflight.network_checks(get_profile_named("mine")) if c.name == "internet"]
    assert net.ok and "every model of this profile is a folder on this machine" in net.message
    store = ResultsStore(tmp_path / "r.jsonl")
    add(store, "target", 100.0)
    with open(store.path, "a") as f:
        f.write(json.dumps(dict(store.records()[0], schema=2)) + "\n")
    records, problems = store.read()
    assert len(records) == 1 and "schema 2: written by a newer version of the kit" in problems[0]


def test_a_headless_notebook_run_prints_no_kernel_transport_warning(tmp_path):
    """make rehearse and utils.lab --notebooks once printed "Kernel is running over TCP without encryption"
    per notebook; kernels now talk over IPC (the kernel's own stderr still reaches the console)."""
    import subprocess
    import sys

    import nbformat
    path = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "print(6 * 7)")]), path)
    code = ("import json, sys; from pathlib import Path; from utils.tools.rehearse import run_notebook; "
            f"print(json.dumps(run_notebook(Path({str(path)!r}), {{}}, timeout=120, gpu=False, save=None)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert json.loads(done.stdout.splitlines()[-1])["ok"], done.stderr
    assert "without encryption" not in done.stderr and "TCP" not in done.stderr
