import pytest

from utils.models.hardware import Hardware
from utils.models.loading import ModelLoadError, load_model, quantization_config
from utils.measure import Stat, measure_generation
from utils.memory import ModelTooLargeError, measured_weight_bytes
from utils.speculative import AcceptanceRecorder, check_pair, set_draft_length


def test_missing_model_directory_says_how_to_rebuild(tmp_path):
    with pytest.raises(ModelLoadError, match="missing"):
        load_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="build_offline_models"):
        load_model("offline:nope")


def test_model_too_large_for_memory_is_refused_before_loading(tiny_checkpoint):
    small = Hardware(device="cpu", ram_gb=0.0001, free_disk_gb=1)
    with pytest.raises(ModelTooLargeError, match="GB"):
        load_model(str(tiny_checkpoint), hw=small)


def test_gpu_only_kernel_refused_without_gpu(tiny_checkpoint, cpu_hw):
    with pytest.raises(ModelLoadError, match="flash"):
        load_model(str(tiny_checkpoint), attn_implementation="flash_attention_2", hw=cpu_hw)


def test_hub_model_without_internet_is_a_clear_error(cpu_hw):
    with pytest.raises(ModelLoadError, match="offline|internet"):
        load_model("someone/not-cached-model-xyz", hw=cpu_hw)


def test_quantization_configs():
    assert quantization_config("float16", "float16") is None
    q = quantization_config("nf4-dq", "bfloat16")
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert quantization_config("int8", "float16").load_in_8bit


@pytest.mark.parametrize("precision, layer", [("float32", "Linear"), ("int8", "Linear8bitLt"),
                                              ("nf4", "Linear4bit"), ("fp4-dq", "Linear4bit")])
def test_real_bitsandbytes_quantization_on_cpu(tiny_checkpoint, cpu_hw, precision, layer):
    loaded = load_model(str(tiny_checkpoint), precision, hw=cpu_hw, attn_implementation="eager")
    assert type(loaded.model.model.layers[0].mlp.down_proj).__name__ == layer
    measured = measured_weight_bytes(loaded.model) / 1e9
    # the prediction counts every quantization constant, so it is close to exact
    assert measured == pytest.approx(loaded.predicted.weights_gb, rel=0.002)
    assert loaded.settings()["precision"] == precision


def test_random_weights_path_builds_from_config_alone(tmp_path, cpu_hw):
    import json
    cfg = dict(model_type="qwen3", hidden_size=128, intermediate_size=256, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=1, head_dim=64, vocab_size=2048,
               tie_word_embeddings=True)
    (tmp_path / "config.json").write_text(json.dumps(cfg))       # no weights, no tokenizer
    loaded = load_model(str(tmp_path), "nf4", hw=cpu_hw, random_weights=True)
    assert loaded.random_weights and loaded.settings()["random_weights"] is True
    assert type(loaded.model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    out = loaded.model.generate(**loaded.tokenizer("x = 1", return_tensors="pt"), max_new_tokens=3,
                                min_new_tokens=3, do_sample=False)
    assert out.shape[1] > 3


def test_random_checkpoint_is_built_once_per_model(tmp_path, cpu_hw, monkeypatch):
    import json

    import utils.models.loading as loading
    cfg = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
               num_attention_heads=1, num_key_value_heads=1, vocab_size=2048, tie_word_embeddings=True)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    built = []
    real = loading.random_checkpoint
    monkeypatch.setattr(loading, "random_checkpoint", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    for precision, attn in [("float32", "sdpa"), ("float32", "eager"), ("nf4", "sdpa"), ("int8", "sdpa")]:
        load_model(str(tmp_path), precision, attn_implementation=attn, hw=cpu_hw, random_weights=True)
    # one checkpoint, in the dtype hub checkpoints are stored in: every precision loads from it,
    # as from a download (bitsandbytes quantizes on load, a CPU upcasts to float32)
    assert built == ["bfloat16"]


def test_measurement_separates_prefill_and_decode(tiny_checkpoint, cpu_hw):
    loaded = load_model(str(tiny_checkpoint), hw=cpu_hw)
    m = measure_generation(loaded.model, loaded.tokenizer, "def f(x):\n    return x\n",
                           prompt_tokens=16, new_tokens=6, warmup=1, repeats=2)
    assert m.prefill_s.n == 2 and m.total_s.median > m.prefill_s.median > 0
    assert m.ttft_s is not None and m.itl_s.n == 2 * 5          # 5 gaps between 6 tokens, twice
    assert m.decode_tok_s.median > 0 and m.peak_memory_gb > 0
    with pytest.raises(ValueError):
        measure_generation(loaded.model, loaded.tokenizer, "x", prompt_tokens=4, new_tokens=1)


def test_stat_median_and_spread():
    s = Stat.of([1.0, 3.0, 2.0])
    assert (s.median, s.low, s.high, s.n) == (2.0, 1.0, 3.0, 3)
    assert s.spread_pct == 100.0
    with pytest.raises(ValueError):
        Stat.of([])


def test_acceptance_recorder_counts_every_step(tiny_checkpoint, cpu_hw):
    import torch
    target = load_model(str(tiny_checkpoint), hw=cpu_hw)
    draft = load_model(str(tiny_checkpoint), hw=cpu_hw)   # identical draft: everything accepted
    set_draft_length(draft.model, 3)
    ids = target.tokenizer("import os\n", return_tensors="pt")
    with AcceptanceRecorder(target.model) as rec, torch.inference_mode():
        target.model.generate(**ids, assistant_model=draft.model, max_new_tokens=12,
                              min_new_tokens=12, do_sample=False)
    assert rec.stats.steps >= 1 and rec.stats.acceptance_rate == 1.0
    assert "_get_candidate_generator" not in vars(target.model)   # unpatched afterwards


def test_qwen25_pair_mismatch_is_caught_and_qwen3_pair_passes():
    from utils.data import model_configs
    cfg = model_configs()
    with pytest.raises(ValueError, match="152,064"):
        check_pair(cfg["Qwen/Qwen2.5-7B-Instruct"], cfg["Qwen/Qwen2.5-0.5B-Instruct"])
    check_pair(cfg["Qwen/Qwen3-8B"], cfg["Qwen/Qwen3-0.6B"])


def test_random_checkpoint_is_written_in_shards_from_shapes_alone(tmp_path):
    """Meta-device layout, one shard of RAM at a time: how an 8B checkpoint is written on a Colab."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    from utils.models.loading import random_checkpoint
    cfg = dict(model_type="qwen2", hidden_size=128, intermediate_size=256, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=1, vocab_size=2048, tie_word_embeddings=True)
    folder = random_checkpoint(cfg, "bfloat16", tmp_path / "ckpt", shard_gb=0.0006)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    files = set(index["weight_map"].values())
    assert len(files) > 1 and all((folder / f).is_file() for f in files)
    assert "lm_head.weight" not in index["weight_map"]                 # tied: stored once
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    layer = model.model.layers[0]
    assert torch.equal(layer.input_layernorm.weight, torch.ones(128, dtype=torch.bfloat16))
    assert torch.equal(layer.self_attn.q_proj.bias, torch.zeros(128, dtype=torch.bfloat16))  # Qwen2 biases
    std = layer.mlp.up_proj.weight.float().std().item()
    assert 0.015 < std < 0.025                                           # N(0, initializer_range)
    assert index["metadata"]["total_size"] == sum(p.numel() * 2 for p in model.parameters())


def test_random_checkpoint_refuses_when_the_disk_is_too_small(tmp_path, monkeypatch):
    from collections import namedtuple

    import utils.models.loading as loading
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(loading.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    cfg = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=1,
               num_attention_heads=1, num_key_value_heads=1, vocab_size=2048)
    with pytest.raises(loading.ModelLoadError, match="GB of disk"):
        loading.random_checkpoint(cfg, "float16", tmp_path)


def test_non_finite_logits_are_stopped_with_the_fp16_explanation(tiny_checkpoint, cpu_hw):
    from utils.quality import NonFiniteError, check_finite_logits, perplexity
    loaded = load_model(str(tiny_checkpoint), "float32", hw=cpu_hw, attn_implementation="eager")
    check_finite_logits(loaded.model, loaded.tokenizer, "cpu", "fine")          # passes
    loaded.model.model.norm.weight.data.fill_(float("inf"))                     # overflows
    with pytest.raises(NonFiniteError, match="NaN or infinite logits.*fp16"):
        check_finite_logits(loaded.model, loaded.tokenizer, "cpu", "tiny at float16")
    with pytest.raises(NonFiniteError, match="window at token 0"):
        perplexity(loaded.model, loaded.tokenizer, "a b c d e f g h " * 8)


def test_loading_checks_logits_exactly_when_computing_in_fp16():
    from utils.models.loading import needs_finite_check
    assert needs_finite_check("float16", random_weights=False)
    assert not needs_finite_check("bfloat16", random_weights=False)
    assert not needs_finite_check("float32", random_weights=False)
    assert not needs_finite_check("float16", random_weights=True)


def test_int8_footprint_is_the_same_before_and_after_a_forward_pass(tiny_checkpoint, cpu_hw):
    import torch
    loaded = load_model(str(tiny_checkpoint), "int8", hw=cpu_hw, attn_implementation="eager")
    before = measured_weight_bytes(loaded.model)
    with torch.inference_mode():
        loaded.model(torch.tensor([[1, 2, 3]]))
    assert measured_weight_bytes(loaded.model) == before      # the row scales moved, not vanished


def test_versus_marks_a_difference_inside_the_repeats_spread_as_noise():
    from utils.measure import Stat, versus
    fast, slow = Stat(150, 140, 160, 3), Stat(100, 90, 110, 3)
    assert versus(fast, slow) == "1.50x" and not fast.overlaps(slow)
    wobbly = Stat(120, 95, 145, 3)
    assert versus(wobbly, slow) == "1.20x (within noise)" and wobbly.overlaps(slow) and slow.overlaps(wobbly)
