"""utils.quantize: what bitsandbytes stores for a tensor and LLM.int8's split product, on tensors
whose answer is known; and the real-layer pair on a tiny random checkpoint."""

import pytest
import torch

from utils.quantize import (checkpoint_tensor, four_bit_error, int8_decomposition, layer_input,
                            middle_down_projection, stored_bits)


def normal(n=256 * 64, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 0.02


def test_nf4_stores_four_and_a_half_bits_and_double_quantization_counts_its_second_level():
    import bitsandbytes.functional as bnbf
    packed, state = bnbf.quantize_4bit(normal(), blocksize=64, quant_type="nf4")
    assert stored_bits(packed, state) == pytest.approx(4 + 32 / 64)       # codes + one fp32 absmax per 64
    packed, state = bnbf.quantize_4bit(normal(), blocksize=64, quant_type="nf4", compress_statistics=True)
    # 8-bit absmax per 64 weights, one fp32 scale per 256 absmax values, one fp32 offset
    expected = 4 + 8 / 64 + 32 / (64 * 256) + 32 / normal().numel()
    assert stored_bits(packed, state) == pytest.approx(expected, rel=1e-6)


def test_nf4_fits_normal_weights_better_than_fp4():
    assert four_bit_error(normal(), "nf4") < four_bit_error(normal(), "fp4") < 0.2


def activation(outlier: float | None, col=5):
    x = torch.randn(64, 128, generator=torch.Generator().manual_seed(1))
    x = x / x.abs().max() * 3                       # every value within 3
    if outlier is not None:
        x[:, col] = outlier * torch.sign(x[:, col])
    return x


def weight():
    return torch.randn(32, 128, generator=torch.Generator().manual_seed(2)) * 0.05


def test_a_large_outlier_column_is_split_off_and_the_decomposition_is_far_closer_to_full_precision():
    d = int8_decomposition(activation(60.0), weight(), threshold=6.0)
    assert d.outlier_columns == (5,)
    assert d.largest_outlier == pytest.approx(60.0, rel=1e-3)
    assert d.largest_other <= 3.0 + 1e-3
    assert d.sixteen_bit_share == pytest.approx(1 / 128)
    assert d.error_decomposed < d.error_int8 / 5
    assert d.error_decomposed < 0.02


def test_without_outliers_both_products_are_the_same_int8_product():
    d = int8_decomposition(activation(None), weight(), threshold=6.0)
    assert d.outlier_columns == () and d.largest_outlier == 0.0
    assert d.error_decomposed == pytest.approx(d.error_int8)


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_a_threshold_that_is_not_positive_is_refused(threshold):
    with pytest.raises(ValueError, match="positive"):
        int8_decomposition(activation(60.0), weight(), threshold)


def test_mismatched_shapes_are_refused_saying_both():
    with pytest.raises(ValueError, match="128 features.*expects 64"):
        int8_decomposition(activation(None), torch.zeros(8, 64), 6.0)


def test_the_real_pair_comes_from_the_middle_layer_and_the_checkpoint_file(tiny_checkpoint, cpu_hw):
    from utils.models.loading import free, load_model
    from utils.quality import heldout_text
    loaded = load_model(str(tiny_checkpoint), "nf4", hw=cpu_hw)
    try:
        name = middle_down_projection(loaded.model)
        assert name == "model.layers.1.mlp.down_proj"              # 2 layers: the second is the middle
        x = layer_input(loaded.model, loaded.tokenizer, heldout_text(), name, tokens=40)
        assert tuple(x.shape) == (40, 256) and x.dtype == torch.float32
        w = checkpoint_tensor(loaded.model, f"{name}.weight")
        import json

        from safetensors.torch import load_file
        shard = json.loads((tiny_checkpoint / "model.safetensors.index.json").read_text())["weight_map"][f"{name}.weight"]
        stored = load_file(str(tiny_checkpoint / shard))[f"{name}.weight"]
        assert torch.equal(w, stored) and tuple(w.shape) == (128, 256)   # the 16/32-bit weight, not the NF4 copy
        with pytest.raises(FileNotFoundError, match="not in the checkpoint"):
            checkpoint_tensor(loaded.model, "model.layers.9.mlp.down_proj.weight")
        with pytest.raises(ValueError, match="no module named"):
            layer_input(loaded.model, loaded.tokenizer, "text", "model.layers.9.mlp.down_proj")
    finally:
        free(loaded)


def test_a_model_without_mlp_down_projections_is_named():
    with pytest.raises(ValueError, match="no mlp.down_proj"):
        middle_down_projection(torch.nn.Sequential(torch.nn.Linear(4, 4)))
