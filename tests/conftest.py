"""Shared fixtures: fake hardware descriptions and a tiny random checkpoint."""

from pathlib import Path

import pytest

from utils.models.hardware import Hardware, sdpa_backends_for


def gpu(name, cc, vram, flash_attn=False):
    return Hardware(device="cuda", gpu_name=name, compute_capability=cc, vram_gb=vram,
                    ram_gb=12.7, free_disk_gb=80, cpu_count=2, bf16=cc >= (8, 0),
                    sdpa_backends=sdpa_backends_for(cc), flash_attn_installed=flash_attn,
                    flash_attn_usable=flash_attn and cc >= (8, 0))


HW = {
    "T4": gpu("Tesla T4", (7, 5), 14.7),
    "L4": gpu("NVIDIA L4", (8, 9), 22.0),
    "A100-40": gpu("NVIDIA A100-SXM4-40GB", (8, 0), 39.4),
    "A100-80": gpu("NVIDIA A100-SXM4-80GB", (8, 0), 79.2),
    "H100": gpu("NVIDIA H100 80GB HBM3", (9, 0), 79.1, flash_attn=True),
    "H200": gpu("NVIDIA H200", (9, 0), 139.8),
    "none": Hardware(device="cpu", ram_gb=2.0, free_disk_gb=10, cpu_count=2,
                     sdpa_backends=sdpa_backends_for(None)),
}


@pytest.fixture
def hw():
    return HW


@pytest.fixture(scope="session")
def cpu_hw():
    from utils.models.hardware import detect_hardware
    return detect_hardware()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer random Llama (sizes multiples of 64) with the offline tokenizer."""
    from utils.models.loading import OFFLINE_DIR, random_checkpoint
    from utils.quiet import quiet_transformers

    quiet_transformers()
    folder = tmp_path_factory.mktemp("tiny")
    cfg = dict(model_type="llama", hidden_size=128, intermediate_size=256, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=1, vocab_size=2048,
               tie_word_embeddings=True)
    return random_checkpoint(cfg, "float32", folder, tokenizer_from=OFFLINE_DIR / "tokenizer")


# A small offline profile for tests that run the benchmark: the trained trio, minimal settings.
QUICK = dict(description="offline models, minimal settings for tests", device="cpu",
             target={"id": "offline:target", "revision": "local"},
             draft={"id": "offline:draft", "revision": "local"},
             baseline={"id": "offline:baseline", "revision": "local"},
             precisions=["float32", "nf4"], attention=["sdpa"], prompt_tokens=[16], new_tokens=4,
             warmup=1,           # a cold first run can outlast a warm full one: refused
             repeats=1, batch_sizes=[1], draft_lengths=[2], gpu_price_key="cpu-laptop")


def toml_value(value) -> str:
    """``value`` as TOML: a string, a number, a list of them, or an inline table of strings."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.fixture
def quick_profile_file(tmp_path, monkeypatch):
    """Write profile ``name`` (:data:`QUICK` with ``changes``) to a file of its own and point
    $LLMFLATION_PROFILES_FILE at it; returns the name."""
    def write(name: str = "quick", **changes) -> str:
        table = dict(QUICK, **changes)
        path = tmp_path / f"{name}.toml"
        path.write_text(f"[{name}]\n" + "".join(f"{k:<15}= {toml_value(v)}\n" for k, v in table.items()))
        monkeypatch.setenv("LLMFLATION_PROFILES_FILE", str(path))
        return name
    return write
