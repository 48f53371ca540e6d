"""Random-weight rehearsal: run any profile's models with no download.

    LLMFLATION_RANDOM_WEIGHTS=1         real architectures at real size, random weights
    LLMFLATION_RANDOM_WEIGHTS=reduced   the same architectures shrunk to run on a CPU

Every model is then built from its ``config.json`` (the shipped table in
``datasets/model_configs.json`` or the offline models' folders) with weights
drawn at random, written as safetensors and loaded through the same
``from_pretrained`` call as a downloaded model, quantization included. Speed
and memory are real; quality is not, and every record, printout and plot says
so ("random weights: speed and memory real, quality not").

``reduced`` keeps what decides the code paths (model type, grouped-query ratio,
q/k norms, tied or untied embeddings, vocabulary sizes that match or differ)
and shrinks the sizes: 2 layers, about 4 heads of 64, 1/64 of the
vocabulary; every linear layer stays a multiple of 64 (bitsandbytes' CPU
4-bit path needs that). It also caps the profile's run sizes, so a whole
notebook sequence rehearses in minutes on two cores.
"""

from __future__ import annotations

import os
from dataclasses import replace

from ..cli import UserError

ENV = "LLMFLATION_RANDOM_WEIGHTS"
ENV_SHORT = "LLMFLATION_SHORT_RUNS"   # "1": fewer tokens and repeats, same models, prompts and batches
LABEL = "random weights: speed and memory real, quality not"
MODES = {"": None, "0": None, "false": None, "no": None,
         "1": "full", "true": "full", "yes": "full", "full": "full", "reduced": "reduced"}

# run-size caps for the reduced rehearsal (the architectures shrink, so must the runs)
REDUCED_RUN = dict(prompt_tokens=(64, 128, 256), new_tokens=12, warmup=1, repeats=2,
                   batch_sizes=(1, 2, 4), draft_lengths=(2, 4))


class RehearsalError(UserError, ValueError):
    """An unknown value of $LLMFLATION_RANDOM_WEIGHTS."""


def mode() -> str | None:
    """None (real weights), "full" or "reduced", from $LLMFLATION_RANDOM_WEIGHTS."""
    value = os.environ.get(ENV, "").strip().lower()
    if value not in MODES:
        raise RehearsalError(f"{ENV}={value!r}: use 1 (real size) or reduced (shrunk for a CPU), "
                             f"or unset it for real weights")
    return MODES[value]


def reduced_config(cfg: dict) -> dict:
    """``cfg`` (a config.json dict) with the same architecture at a size a CPU runs in a second."""
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    group = max(1, heads // kv)                       # grouped-query ratio, kept
    new_heads = group * max(1, 4 // group)            # about 4 query heads, whole KV groups
    hidden = 64 * new_heads                           # transformers wants hidden % heads == 0
    out = dict(cfg, num_hidden_layers=2, hidden_size=hidden, head_dim=64,
               num_attention_heads=new_heads, num_key_value_heads=max(1, new_heads // group),
               intermediate_size=2 * hidden, vocab_size=max(2048, cfg["vocab_size"] // 64),
               max_position_embeddings=min(cfg.get("max_position_embeddings", 4096), 4096))
    for key in ("moe_intermediate_size", "shared_expert_intermediate_size"):
        if key in cfg:
            out[key] = 128
    out["_reduced_from"] = {k: cfg[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")}
    return out


def reduced_profile(profile):
    """``profile`` with its run sizes capped for the reduced rehearsal (models unchanged)."""
    cap = REDUCED_RUN
    prompts = sorted({min(n, cap["prompt_tokens"][-1]) for n in profile.prompt_tokens})
    return replace(
        profile, prompt_tokens=prompts or list(cap["prompt_tokens"]),
        new_tokens=min(profile.new_tokens, cap["new_tokens"]),
        warmup=min(profile.warmup, cap["warmup"]), repeats=min(profile.repeats, cap["repeats"]),
        batch_sizes=[b for b in profile.batch_sizes if b <= cap["batch_sizes"][-1]] or [1],
        draft_lengths=[g for g in profile.draft_lengths if g <= cap["draft_lengths"][-1]] or [2])


def short_runs(profile):
    """``profile`` with fewer generated tokens, repeats and draft lengths, and nothing that decides
    memory changed (models, precisions, prompt lengths, batch sizes): a rehearsal that proves a
    sequence fits and runs in less time. Its timings are noisier; they are not reference figures."""
    return replace(profile, new_tokens=min(profile.new_tokens, 16), warmup=min(profile.warmup, 1),
                   repeats=min(profile.repeats, 2), draft_lengths=list(profile.draft_lengths[:2]))


def adjust(profile):
    """The profile as the rehearsal settings in the environment say it runs."""
    if mode() == "reduced":
        profile = reduced_profile(profile)
    if os.environ.get(ENV_SHORT, "") == "1":
        profile = short_runs(profile)
    return profile
