
import pytest

from utils.cost import (annual_decline, blended_cost_per_million, cost_per_million,
                        expected_tokens_per_step, leviathan_speedup, roofline_fraction,
                        roofline_tokens_per_s)
from utils.data import gpu, historical_prices, model_configs
from utils.memory import ModelShape, ModelTooLargeError, check_fits, predict_memory

# Parameter counts published with the models (shared/reference/FACTS.md).
PUBLISHED_B = {"Qwen/Qwen2.5-0.5B-Instruct": 0.494, "Qwen/Qwen2.5-7B-Instruct": 7.616,
               "Qwen/Qwen2.5-14B-Instruct": 14.77, "Qwen/Qwen3-0.6B": 0.60, "Qwen/Qwen3-8B": 8.19,
               "Qwen/Qwen3-14B": 14.77, "Qwen/Qwen3-32B": 32.76, "HuggingFaceTB/SmolLM2-135M": 0.135}


def shape(name):
    return ModelShape.from_config(model_configs()[name])


@pytest.mark.parametrize("name, billions", PUBLISHED_B.items())
def test_parameter_count_matches_published(name, billions):
    assert shape(name).params / 1e9 == pytest.approx(billions, rel=0.01)


def test_qwen25_7b_memory_by_precision():
    s = shape("Qwen/Qwen2.5-7B-Instruct")
    assert predict_memory(s, "bfloat16").weights_gb == pytest.approx(15.23, abs=0.01)
    nf4 = predict_memory(s, "nf4").weights_gb
    dq = predict_memory(s, "nf4-dq").weights_gb
    assert nf4 == pytest.approx(5.85, abs=0.01)       # linear 4.5 bits, embeddings + head in fp16
    # double quantization saves ~0.37 bit per quantized weight
    assert (nf4 - dq) * 1e9 * 8 / s.linear_params == pytest.approx(0.373, abs=0.005)


def test_kv_cache_grows_with_context_and_batch():
    s = shape("Qwen/Qwen3-8B")
    one = predict_memory(s, "bfloat16", context=4096).kv_cache_gb
    # 2 (K,V) * 36 layers * 8 heads * 128 dims * 2 bytes = 147,456 bytes/token
    assert one == pytest.approx(147456 * 4096 / 1e9)
    assert predict_memory(s, "bfloat16", context=4096, batch=8).kv_cache_gb == pytest.approx(8 * one)


def test_fp16_8b_refused_on_a_t4_with_both_numbers():
    est = predict_memory(shape("Qwen/Qwen3-8B"), "float16", context=2048)
    with pytest.raises(ModelTooLargeError) as err:
        check_fits(est, 14.7, name="Qwen/Qwen3-8B")
    assert "16." in str(err.value) and "14.7 GB" in str(err.value)
    assert "4-bit precision (nf4)" in str(err.value)
    check_fits(predict_memory(shape("Qwen/Qwen3-8B"), "nf4", context=2048), 14.7)


def test_a_4bit_model_that_does_not_fit_is_not_told_to_try_4bit():
    with pytest.raises(ModelTooLargeError) as err:
        check_fits(predict_memory(shape("Qwen/Qwen3-8B"), "nf4-dq", context=2048), 4.0)
    assert "already 4-bit" in str(err.value) and "Try a 4-bit" not in str(err.value)


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="unknown precision"):
        predict_memory(shape("Qwen/Qwen3-8B"), "int3")


def test_cost_per_million_hand_computed():
    # $2.99/h at 237 tok/s: 2.99 / (237 * 3600) * 1e6 = 3.5044
    assert cost_per_million(2.99, 237) == pytest.approx(3.5044, abs=1e-4)
    assert cost_per_million(0, 100) == 0.0


@pytest.mark.parametrize("price", [-1, "abc", float("nan"), None])
def test_bad_price_is_rejected(price):
    with pytest.raises(ValueError, match="price per hour"):
        cost_per_million(price, 100)


def test_zero_throughput_is_rejected():
    with pytest.raises(ValueError, match="tokens per second must be > 0"):
        cost_per_million(1.0, 0)


def test_blended_cost_states_its_ratio():
    # 3 input tokens at 3000/s and 1 output at 100/s: 0.011 s per 4 tokens at $3.6/h
    expected = 3.6 * (3 / 3000 + 1 / 100) / 3600 / 4 * 1e6
    assert blended_cost_per_million(3.6, 3000, 100) == pytest.approx(expected)


def test_roofline_qwen25_7b_matches_reference_figures():
    """The project's reference notes: Qwen2.5-7B reads ~14.1 GB per token in bf16 and ~4.8 GB in
    NF4 (weights, one embedding row), so T4 23 / 67, A100-80GB 144 / 428, H100 SXM 237 / 704 tok/s."""
    s = shape("Qwen/Qwen2.5-7B-Instruct")
    published = {"T4": (23, 67), "A100-80GB": (144, 428), "H100-SXM": (237, 704)}
    for key, (bf16, nf4) in published.items():
        bw = gpu(key)["bandwidth_gbs"]
        assert roofline_tokens_per_s(s, "bfloat16", bw) == pytest.approx(bf16, abs=1)
        assert roofline_tokens_per_s(s, "nf4", bw) == pytest.approx(nf4, abs=1.5)
    t4 = roofline_tokens_per_s(s, "bfloat16", 320)
    assert roofline_fraction(10, t4) == pytest.approx(10 / t4)


def test_a_decode_step_reads_one_embedding_row_not_the_whole_table():
    """Qwen3-8B (untied): the 1.245 GB input-embedding table is not read per step, one row is;
    tied embeddings (Qwen3-0.6B) are read whole as the LM head."""
    from utils.memory import decode_read_bytes, weight_bytes
    s = shape("Qwen/Qwen3-8B")
    table = 151936 * 4096 * 2
    assert weight_bytes(s, "bfloat16") - decode_read_bytes(s, "bfloat16") == table - 4096 * 2
    assert decode_read_bytes(s, "bfloat16", batch=8) - decode_read_bytes(s, "bfloat16") == 7 * 4096 * 2
    tied = shape("Qwen/Qwen3-0.6B")
    assert decode_read_bytes(tied, "nf4") == weight_bytes(tied, "nf4")
    # the roofline rises by the table's share: ~8% in bf16 and ~24% in NF4 for Qwen3-8B
    old_bf16, old_nf4 = weight_bytes(s, "bfloat16"), weight_bytes(s, "nf4")
    assert old_bf16 / decode_read_bytes(s, "bfloat16") == pytest.approx(1.08, abs=0.01)
    assert old_nf4 / decode_read_bytes(s, "nf4") == pytest.approx(1.24, abs=0.01)


def test_leviathan_formulas():
    assert expected_tokens_per_step(0.0, 4) == 1.0
    assert expected_tokens_per_step(1.0, 4) == 5.0
    assert expected_tokens_per_step(0.8, 4) == pytest.approx((1 - 0.8 ** 5) / 0.2)
    assert leviathan_speedup(0.8, 4, 0.05) == pytest.approx((1 - 0.8 ** 5) / 0.2 / 1.2)
    with pytest.raises(ValueError):
        expected_tokens_per_step(1.2, 4)


def test_annual_decline_recovers_ten_x_from_seed_points():
    seed = [(p["date"], p["usd_per_million_tokens"]) for p in historical_prices()
            if p["series"].startswith("10x")]
    assert annual_decline(seed) == pytest.approx(10, rel=0.01)
    a16z = [(p["date"], p["usd_per_million_tokens"]) for p in historical_prices()
            if p["series"].startswith("a16z")]
    assert annual_decline(a16z) == pytest.approx(10, rel=0.02)   # 1000x in 3 years
    with pytest.raises(ValueError):
        annual_decline([("2024-01-01", 1.0)])


def test_the_notebooks_roofline_is_the_formula_with_this_machines_bandwidth(tmp_path, capsys):
    from utils.cost import roofline_tokens_per_s
    from utils.data import gpu
    from utils.models.loading import model_config
    from utils.memory import ModelShape
    from utils.session import start

    lab = start("test", profile="offline", results=str(tmp_path / "r.jsonl"))
    shape = ModelShape.from_config(model_config(lab.profile.target))
    assert lab.gpu_key == "cpu-laptop"
    assert lab.roofline("float32", context=96) == pytest.approx(
        roofline_tokens_per_s(shape, "float32", gpu("cpu-laptop")["bandwidth_gbs"], context=96,
                              compute_dtype="float32"))   # a CPU computes (and caches) in fp32
    h100 = lab.roofline("nf4", gpu_key="H100-SXM")
    assert h100 == pytest.approx(roofline_tokens_per_s(shape, "nf4", gpu("H100-SXM")["bandwidth_gbs"]))


def test_the_ridge_batch_is_where_the_bandwidth_roofline_meets_the_compute_roof():
    import math

    from utils.cost import compute_roof_tokens_per_s, ridge_batch
    from utils.memory import weight_bytes
    shape = ModelShape.from_config(model_configs()["Qwen/Qwen3-8B"])
    t4 = gpu("T4")
    # weights only: B * bandwidth / (weights but the embedding table + B rows) >= peak FLOP/s /
    # (2 FLOPs x multiplied parameters), so B >= roof x W0 / (bandwidth - roof x row)
    roof = t4["fp16_tflops"] * 1e12 / (2 * (shape.params - shape.vocab * shape.hidden))
    row = shape.hidden * 2
    w0 = weight_bytes(shape, "float16") - shape.vocab * row
    by_hand = math.ceil(roof * w0 / (t4["bandwidth_gbs"] * 1e9 - roof * row))
    assert ridge_batch(shape, "float16", t4["bandwidth_gbs"], t4["fp16_tflops"]) == by_hand
    assert compute_roof_tokens_per_s(shape, 65) == pytest.approx(roof)
    # 4-bit weights are fewer bytes: the ridge comes at a smaller batch; a KV cache moves it later
    nf4 = ridge_batch(shape, "nf4", t4["bandwidth_gbs"], t4["fp16_tflops"])
    assert nf4 < by_hand < ridge_batch(shape, "float16", t4["bandwidth_gbs"], t4["fp16_tflops"], context=256)
    # long contexts: the KV cache keeps decode bandwidth-bound at any batch
    assert ridge_batch(shape, "float16", t4["bandwidth_gbs"], t4["fp16_tflops"], context=2048) is None
    with pytest.raises(ValueError):
        compute_roof_tokens_per_s(shape, 0)


# --- mixtures of experts ------------------------------------------------------------------------
def published_params() -> list[dict]:
    import csv

    from utils.data import DATASETS
    with open(DATASETS / "published_params.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("row", published_params(), ids=lambda r: r["model"])
def test_moe_total_and_active_parameters_match_the_published_counts(row):
    """Experts counted once in memory, the k a token uses in compute; within one unit of the last
    digit the source gives (Qwen's 3.3B truncates 3.35B; granite's active counts leave out the
    embedding table, as its card does). Counting every expert as active would miss by far more."""
    s = shape(row["model"])
    assert s.experts and s.active_experts
    assert abs(s.params / 1e9 - float(row["total_billion"])) <= 0.1 + 1e-9
    active = s.active_params - (0 if row["active_counts_embeddings"] == "yes" else s.vocab * s.hidden)
    assert abs(active / 1e9 - float(row["active_billion"])) <= 0.1 + 1e-9
    assert row["source"] and row["address"].startswith("https://")


def test_bitsandbytes_leaves_a_moes_experts_in_16_bits():
    """OLMoE-1B-7B: 4-bit shrinks only attention (the fused experts are not nn.Linear), from about
    13.8 GB to about 13.4 GB; a dense model of the same size shrinks about 3.5x."""
    from utils.memory import predict_memory
    olmoe = shape("allenai/OLMoE-1B-7B-0924")
    bf16, nf4 = (predict_memory(olmoe, p).weights_gb for p in ("bfloat16", "nf4"))
    assert bf16 == pytest.approx(13.84, abs=0.01) and 13.3 < nf4 < 13.6
    dense = shape("Qwen/Qwen3-8B")
    assert predict_memory(dense, "bfloat16").weights_gb / predict_memory(dense, "nf4").weights_gb > 2.5


def test_moe_decode_reads_the_active_experts_at_batch_1_and_nearly_all_at_large_batches():
    from utils.memory import decode_read_bytes, experts_touched, weight_bytes
    assert experts_touched(64, 8, 1) == 8 and round(experts_touched(64, 8, 8)) == 42
    assert round(experts_touched(64, 8, 32)) == 63 and experts_touched(8, 2, 1) == 2
    q = shape("Qwen/Qwen3-30B-A3B")
    one, many = (decode_read_bytes(q, "bfloat16", batch=b) for b in (1, 256))
    # batch 1 reads about the active parameters (embedding row aside), a large batch nearly all
    assert one / 2 == pytest.approx(q.active_params - q.vocab * q.hidden, rel=0.01)
    assert many / weight_bytes(q, "bfloat16") > 0.97
    h100 = gpu("H100-SXM")
    assert roofline_tokens_per_s(q, "bfloat16", h100["bandwidth_gbs"]) == pytest.approx(
        h100["bandwidth_gbs"] * 1e9 / one)


def test_a_moes_ridge_batch_grows_by_at_most_experts_over_active():
    """Compute follows the active parameters, but at a large batch the bytes read approach the
    total: decode turns compute-bound at a larger batch than for a dense model of the active size
    (whose step reads the batch-1 bytes at any batch), by more than 1x and at most E / k."""
    from utils.cost import compute_roof_tokens_per_s, ridge_batch, roofline_tokens_per_s
    h100 = gpu("H100-SXM")
    for name in ("Qwen/Qwen3-30B-A3B", "allenai/OLMoE-1B-7B-0924", "mistralai/Mixtral-8x7B-v0.1"):
        q = shape(name)
        moe = ridge_batch(q, "bfloat16", h100["bandwidth_gbs"], h100["fp16_tflops"])
        dense = compute_roof_tokens_per_s(q, h100["fp16_tflops"]) / roofline_tokens_per_s(
            q, "bfloat16", h100["bandwidth_gbs"])
        assert 1.5 < moe / dense <= q.experts / q.active_experts, name
