"""Faults and odd inputs of issue #38, items 5-8: a damaged kept copy of the right size, records of
the wrong types, preflight's disk figure on a CPU for a GPU profile, and a request longer than the
model's context."""

import dataclasses
import hashlib
import json
import struct

import pytest

from utils.cli import UserError
from utils.models import kept
from utils.models.hardware import Hardware, sdpa_backends_for
from utils.models.loading import load_model
from utils.models.profiles import get_profile
from utils.results import CorruptResultsError, ResultsStore


def quiet(message):
    pass


# --- 5. a damaged kept copy of the right size ---------------------------------------------------
@pytest.fixture
def copy(tmp_path, monkeypatch, cpu_hw):
    """The offline target kept in nf4 in a temporary folder, by the kit's own save path (keep=<folder>,
    as ``class_copy share`` keeps it); verified copies remembered in a temporary folder too."""
    monkeypatch.setattr(kept, "STAGE_DIR", tmp_path / "local")
    base = tmp_path / "kept"
    loaded = load_model("offline:target", "nf4", hw=cpu_hw, keep=base, log=quiet)
    assert loaded.kept_copy is None
    return loaded.ref, kept.folder(base, loaded.ref, "nf4")


def _manifest(path):
    return json.loads((path / kept.MANIFEST).read_text())


def overwrite_header_length(weights):
    """The first 8 bytes (safetensors' header length) overwritten: same size, unreadable header."""
    data = bytearray(weights.read_bytes())
    data[:8] = b"\xff" * 8
    weights.write_bytes(bytes(data))


def zero_every_tensor(weights):
    """Every tensor's bytes zeroed, the header kept: same size, a readable file of zeros."""
    data = weights.read_bytes()
    (header,) = struct.unpack("<Q", data[:8])
    weights.write_bytes(data[:8 + header] + bytes(len(data) - 8 - header))


def test_a_saved_copy_records_each_files_sha256(copy):
    _, path = copy
    manifest = _manifest(path)
    assert set(manifest["sha256"]) == set(manifest["files"]) and "model.safetensors" in manifest["sha256"]
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("damage", [overwrite_header_length, zero_every_tensor])
def test_a_damaged_copy_of_the_right_size_is_refused_and_the_model_loads_as_before(copy, cpu_hw, damage):
    ref, path = copy
    weights = path / "model.safetensors"
    size = weights.stat().st_size
    damage(weights)
    assert weights.stat().st_size == size                       # the size check alone would pass it
    said = []
    loaded = load_model("offline:target", "nf4", hw=cpu_hw, keep=path.parent, log=said.append)
    assert loaded.kept_copy is None and loaded.model is not None    # loaded from its source, not the copy
    assert said[0] == (f"the kept copy at {path} is damaged: model.safetensors does not match its checksum; "
                       f"not used; it is replaced when this model is kept again")
    assert kept.find(path.parent, ref, "nf4", "float32", log=quiet) is not None     # and it was


def test_a_copy_is_hashed_once_per_runtime_and_again_when_a_file_is_written(copy, monkeypatch):
    ref, path = copy
    hashed = []
    real = kept.sha256_of
    monkeypatch.setattr(kept, "sha256_of", lambda file: hashed.append(file.name) or real(file))
    for _ in range(3):                                           # three lessons load the same copy
        assert kept.find(path.parent, ref, "nf4", "float32") is not None
    assert hashed.count("model.safetensors") == 1
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes())                    # written again (same bytes): checked again
    assert kept.find(path.parent, ref, "nf4", "float32") is not None
    assert hashed.count("model.safetensors") == 2
    hashed.clear()
    zero_every_tensor(weights)
    assert kept.find(path.parent, ref, "nf4", "float32", verify=False) is not None and hashed == []  # preflight
    assert kept.find(path.parent, ref, "nf4", "float32", log=quiet) is None


def test_a_copy_from_an_older_kit_without_checksums_is_used_with_a_note(copy):
    ref, path = copy
    manifest = _manifest(path)
    del manifest["sha256"]
    (path / kept.MANIFEST).write_text(json.dumps(manifest))
    said = []
    assert kept.find(path.parent, ref, "nf4", "float32", log=said.append).path == path
    assert len(said) == 1 and "made by an older kit and has no checksums: used unchecked" in said[0]


def test_checksums_that_do_not_list_the_copys_files_are_a_damaged_manifest(copy):
    ref, path = copy
    manifest = _manifest(path)
    manifest["sha256"].pop("model.safetensors")
    (path / kept.MANIFEST).write_text(json.dumps(manifest))
    said = []
    assert kept.find(path.parent, ref, "nf4", "float32", log=said.append) is None
    assert "incomplete or damaged" in said[0]


# --- 6. records of the wrong types -------------------------------------------------------------
def _record(store, step, rate, **changes):
    """A benchmark record as the kit writes it, with ``changes`` applied (settings_x: settings["x"])."""
    hw = {"gpu_name": "Tesla T4", "vram_gb": 15.0, "device": "cuda"}
    record = store.make_record("benchmark", step=step, settings=dict(model="m", precision="nf4"),
                               metrics={"e2e_tok_s": {"median": rate}, "batch": 1},
                               context={"timestamp": "2026-11-22T00:00:00+00:00", "hardware": hw})
    for key, value in changes.items():
        where, _, field = key.partition("_") if key.startswith(("settings_", "metrics_")) else ("", "", key)
        (record[where] if where else record)[field] = value
    return record


@pytest.mark.parametrize("changes, said", [
    (dict(timestamp=1732233600), "timestamp is 1732233600, not an ISO date string"),
    (dict(timestamp="yesterday"), "timestamp 'yesterday' is not an ISO date"),
    (dict(settings_precision=4), "settings.precision is 4, not a string"),
    (dict(settings_notebook=1), "settings.notebook is 1, not a string"),
    (dict(settings_profile=4), "settings.profile is 4, not a string"),
    (dict(metrics_total_params="8B"), "metrics.total_params is '8B', not a number"),
])
def test_a_record_of_the_wrong_type_is_reported_like_a_torn_line(tmp_path, changes, said):
    from utils.classroom import merge
    from utils.curve import curve_rows
    path = tmp_path / "alice.jsonl"
    store = ResultsStore(path)
    store.write(_record(store, "+ 4-bit", 200.0))
    store.write(_record(store, "target", 100.0, **changes))
    with pytest.raises(CorruptResultsError, match=rf"alice.jsonl, line 2: .*{said}"):
        store.records()
    with pytest.warns(UserWarning, match="line 2"):
        records = store.records(skip_corrupt=True)
    assert [r["step"] for r in records] == ["+ 4-bit"]
    assert curve_rows(records, 0.35)                              # what is left draws
    messages = []
    merge([path], log=messages.append)                            # the class chart skips it, said so
    assert any("alice.jsonl, line 2" in m and said in m for m in messages)


def test_the_records_the_kit_writes_still_read(tmp_path):
    """A control: the new type checks refuse none of the fields as the kit writes them."""
    store = ResultsStore(tmp_path / "r.jsonl")
    store.append("benchmark", step="target", settings=dict(model="m", precision="nf4", profile="t4",
                                                           notebook="01", builds_on=None),
                 metrics={"e2e_tok_s": {"median": 10.0}, "total_params": 8_000_000})
    assert len(store.records()) == 1


# --- 7. preflight's disk figure ----------------------------------------------------------------
def test_preflight_states_the_free_disk_of_its_own_hardware_line_for_a_gpu_profile_on_a_cpu(monkeypatch):
    from utils.models.preflight import preflight
    monkeypatch.setenv(kept.ENV_KEEP, "off")
    monkeypatch.setenv(kept.ENV_CLASS, "off")
    here = Hardware(device="cpu", ram_gb=25.0, free_disk_gb=81.9, cpu_count=2, sdpa_backends=sdpa_backends_for(None))
    checks = {c.name: c for c in preflight(get_profile("t4"), here)}
    assert "free disk 81.9 GB" in checks["hardware"].message
    downloads = [c for name, c in checks.items() if name.endswith(" download")]
    assert len(downloads) == 5
    assert all(c.ok and "; 81.9 GB free disk" in c.message for c in downloads), [str(c) for c in downloads]


# --- 8. a prompt longer than the model's context -------------------------------------------------
def test_preflight_says_when_the_profiles_prompt_is_longer_than_a_models_context(cpu_hw):
    from utils.models.preflight import preflight
    profile = dataclasses.replace(get_profile("offline"), prompt_tokens=[4096])
    checks = [c for c in preflight(profile, cpu_hw) if c.name.endswith("context")]
    assert checks and all(not c.ok for c in checks)
    target = next(c for c in checks if c.name == "target context")
    assert str(target).startswith("[!!] target context:")
    assert "4096 tokens + 32 new" in target.message and "offline:target reads at most 1024" in target.message
    assert "prompt_tokens to at most 992" in target.message
    fine = [c for c in preflight(get_profile("offline"), cpu_hw) if c.name.endswith("context")]
    assert [c.ok for c in fine] == [True] and "1024 tokens" in fine[0].message


@pytest.fixture(scope="module")
def tiny_gpt2():
    """A GPT-2-shaped model (learned positions, ``n_positions``) of 64 positions, random weights, with
    the offline tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    from utils.models.refs import OFFLINE_DIR
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=2048, n_positions=64)).eval()
    return model, AutoTokenizer.from_pretrained(OFFLINE_DIR / "tokenizer")


TEXT = "The cost of a token fell by a factor of ten every year. " * 20


def test_a_request_past_a_gpt2_shaped_models_positions_is_refused_before_it_runs(tiny_gpt2):
    from utils.measure import measure_generation, measure_prefill
    model, tokenizer = tiny_gpt2
    with pytest.raises(UserError) as err:
        measure_generation(model, tokenizer, TEXT, prompt_tokens=60, new_tokens=8, warmup=0, repeats=1)
    assert isinstance(err.value, ValueError)
    assert "reads at most 64 tokens" in str(err.value) and "60 prompt + 8 new = 68" in str(err.value)
    assert "Lower the profile's prompt_tokens to at most 56" in str(err.value)
    with pytest.raises(UserError, match="65 prompt"):
        measure_prefill(model, tokenizer, TEXT, prompt_tokens=65, warmup=0, repeats=1)
    m = measure_generation(model, tokenizer, TEXT, prompt_tokens=56, new_tokens=8, warmup=0, repeats=1)
    assert m.prompt_tokens == 56                                  # exactly the context: measured


def test_a_request_past_a_llama_models_context_is_refused_not_measured(cpu_hw):
    """A model with rotary positions would run past its context and be timed on a length it was never
    trained for; the record would carry it with no word."""
    from utils.measure import measure_generation
    loaded = load_model("offline:target", "float32", hw=cpu_hw)
    with pytest.raises(UserError, match=r"reads at most 1024 tokens.*1024 prompt \+ 2 new"):
        measure_generation(loaded.model, loaded.tokenizer, TEXT, prompt_tokens=1024, new_tokens=2,
                           warmup=0, repeats=1)
