"""Rebuild the offline profile's models: a tokenizer, three small Llama models and a mixture of experts.

The offline profile lets every notebook run on a CPU with no internet. Its
models are *trained*, not random, so that the comparisons the notebooks make
mean something (a draft that agrees with its target, a baseline that is better
than the target, a measurable 4-bit quality loss).

Training text is the Python standard library's own source (PSF-2.0 licensed,
present on every machine that runs Python): the top-level ``Lib/*.py``
modules, minus the held-out modules shipped in ``datasets/heldout_code.txt``,
which are used for perplexity and acceptance-rate checks.

Run (about 50 minutes on 2 CPU cores)::

    python -m utils.tools.build_offline_models            # all: tokenizer, target, draft, baseline, moe
    python -m utils.tools.build_offline_models --only draft

The mixture of experts (``moe``, Mixtral architecture: 11 experts, 2 active per token) has
the target's *active* parameters (its attention, and two experts of half the target's MLP
width) and about the baseline's *total*; it is trained like the target, with the
load-balancing loss of Switch/Mixtral added at ``router_aux_loss_coef``.

Outputs go to ``models/offline/<name>/`` as ``config.json``,
``generation_config.json``, ``model.safetensors`` (bf16) and the tokenizer
files, loadable with ``AutoModelForCausalLM.from_pretrained(path)``.
The exact settings, seed, corpus digest and final losses are written to
``models/offline/MANIFEST.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
OUT_DIR = REPO / "models" / "offline"
HELDOUT_FILE = REPO / "datasets" / "heldout_code.txt"
HELDOUT_MODULES = ("textwrap.py", "shlex.py", "fractions.py")
VOCAB_SIZE = 2048
SEQ_LEN = 256
SEED = 1234

# All hidden and intermediate sizes are multiples of 64: bitsandbytes' CPU
# 4-bit kernels need in_features % 64 == 0 and out_features % 32 == 0.
ARCHS = {
    "draft": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                  num_attention_heads=1, num_key_value_heads=1),
    "target": dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                   num_attention_heads=3, num_key_value_heads=1),
    "baseline": dict(hidden_size=320, intermediate_size=896, num_hidden_layers=6,
                     num_attention_heads=5, num_key_value_heads=1),
    # the target's attention and active MLP width (2 x 256 = 512), 11 experts: ~the baseline's total
    "moe": dict(hidden_size=192, intermediate_size=256, num_hidden_layers=4, num_attention_heads=3,
                num_key_value_heads=1, num_local_experts=11, num_experts_per_tok=2,
                router_aux_loss_coef=0.01),
}
MOE = ("moe",)      # built as Mixtral (transformers' MixtralForCausalLM); the rest as Llama
# Steps of 16 x 256 tokens; chosen to fit the whole build in ~45 min on 2 cores.
TRAIN = {
    "target": dict(steps=1200, lr=2e-3, batch=16),
    # The baseline trains in two stages: after the first it was still *worse* than
    # the target (held-out perplexity 41 vs 27), so a second cosine cycle
    # continues from the first stage's weights.
    "baseline": dict(steps=1000, lr=1.5e-3, batch=16, then=dict(steps=1200, lr=1e-3)),
    "draft": dict(steps=1000, lr=3e-3, batch=16, distil_from="target"),
    "moe": dict(steps=1200, lr=2e-3, batch=16),           # the target's recipe
}


def stdlib_training_files() -> list[Path]:
    """Top-level stdlib modules, sorted, without the held-out ones."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    return [p for p in sorted(lib.glob("*.py")) if p.name not in HELDOUT_MODULES]


def read_corpus(files: list[Path]) -> str:
    return "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def write_heldout() -> str:
    """Copy the held-out modules into datasets/ (once) and return the text."""
    if HELDOUT_FILE.exists():
        return HELDOUT_FILE.read_text(encoding="utf-8")
    lib = Path(sysconfig.get_paths()["stdlib"])
    parts = [f"# ---- {name} (CPython {platform.python_version()} Lib/{name}) ----\n"
             + (lib / name).read_text(encoding="utf-8") for name in HELDOUT_MODULES]
    text = "\n".join(parts)
    HELDOUT_FILE.write_text(text, encoding="utf-8")
    return text


def build_tokenizer(corpus: str, out: Path):
    """Byte-level BPE with VOCAB_SIZE entries, saved as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus.split("\n\n"), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=1024)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return fast


def make_config(name: str, tokenizer):
    from transformers import LlamaConfig, MixtralConfig

    config = MixtralConfig if name in MOE else LlamaConfig
    return config(
        vocab_size=VOCAB_SIZE, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rope_theta=10000.0, **ARCHS[name])


def router_loss(outputs, name: str):
    """The load-balancing loss of the Switch Transformer (Fedus et al., arXiv 2101.03961, eq. 4-6),
    computed for each layer's router and averaged, or None for a dense model. Per layer: given all
    layers' logits at once, transformers' ``load_balancing_loss_func`` balances their sum, and a
    first build with it left several experts of each layer without a token."""
    if name not in MOE:
        return None
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func
    arch = ARCHS[name]
    per_layer = [load_balancing_loss_func((logits,), arch["num_local_experts"], arch["num_experts_per_tok"])
                 for logits in outputs.router_logits]
    return sum(per_layer) / len(per_layer)


def batches(ids, batch: int, generator):
    """Endless random windows of SEQ_LEN + 1 tokens from a 1-D tensor."""
    import torch

    n = ids.numel() - SEQ_LEN - 1
    while True:
        starts = torch.randint(0, n, (batch,), generator=generator)
        yield torch.stack([ids[s:s + SEQ_LEN + 1] for s in starts.tolist()])


def lr_at(step: int, steps: int, peak: float) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def heldout_perplexity(model, ids) -> float:
    import torch

    model.eval()
    losses = []
    with torch.no_grad():
        for s in range(0, ids.numel() - SEQ_LEN - 1, SEQ_LEN):
            chunk = ids[s:s + SEQ_LEN + 1].unsqueeze(0)
            losses.append(model(chunk, labels=chunk).loss.item())
    model.train()
    return math.exp(sum(losses) / len(losses))


def train_model(name: str, tokenizer, train_ids, heldout_ids, log, stage: int = 1) -> dict:
    """Train ``name`` (stage 1 from scratch; stage 2 continues from the saved stage-1 weights)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, GenerationConfig

    cfg = TRAIN[name] if stage == 1 else dict(TRAIN[name]["then"], batch=TRAIN[name]["batch"])
    torch.manual_seed(SEED + stage - 1)
    if stage == 1:
        model = AutoModelForCausalLM.from_config(make_config(name, tokenizer))
    else:
        model = AutoModelForCausalLM.from_pretrained(OUT_DIR / name, dtype=torch.float32)
        model.train()
    teacher = None
    if cfg.get("distil_from"):
        teacher = AutoModelForCausalLM.from_pretrained(OUT_DIR / cfg["distil_from"],
                                                       dtype=torch.float32).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.95),
                            weight_decay=0.1)
    gen = torch.Generator().manual_seed(SEED + stage - 1)
    stream = batches(train_ids, cfg["batch"], gen)
    t0 = time.perf_counter()
    for step in range(cfg["steps"]):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg["steps"], cfg["lr"])
        x = next(stream)
        outputs = model(x[:, :-1], **({"output_router_logits": True} if name in MOE else {}))
        logits = outputs.logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), x[:, 1:].reshape(-1))
        balance = router_loss(outputs, name)
        if balance is not None:
            loss = loss + ARCHS[name]["router_aux_loss_coef"] * balance
        if teacher is not None:
            # Distillation: match the target's next-token distribution, which is
            # what speculative decoding rewards (the draft must agree with it).
            with torch.no_grad():
                t_logp = F.log_softmax(teacher(x[:, :-1]).logits, dim=-1)
            kl = F.kl_div(F.log_softmax(logits, dim=-1), t_logp, log_target=True,
                          reduction="batchmean") / SEQ_LEN
            loss = 0.3 * loss + 0.7 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == cfg["steps"] - 1:
            log(f"{name} (stage {stage}) step {step}/{cfg['steps']} loss {loss.item():.3f} "
                f"({time.perf_counter() - t0:.0f}s)")
    ppl = heldout_perplexity(model, heldout_ids)
    log(f"{name} (stage {stage}): held-out perplexity {ppl:.2f}, {time.perf_counter() - t0:.0f}s")

    out = OUT_DIR / name
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False,
        # Read by transformers when this model is used as an assistant.
        num_assistant_tokens=5, num_assistant_tokens_schedule="constant")
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return dict(params=sum(p.numel() for p in model.parameters()),
                heldout_perplexity_at_build=round(ppl, 3),
                seconds=round(time.perf_counter() - t0), **ARCHS[name], **cfg)


def build(name: str, tokenizer, train_ids, heldout_ids, log, stages: tuple[int, ...] = (1, 2)) -> dict:
    """All training stages of one model; returns what the manifest records."""
    info = {}
    for stage in stages:
        if stage == 2 and "then" not in TRAIN[name]:
            continue
        info[f"stage{stage}"] = train_model(name, tokenizer, train_ids, heldout_ids, log, stage)
    return info


def main(argv=None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(TRAIN), action="append",
                        help="rebuild only these models (repeatable)")
    parser.add_argument("--stage2-only", action="store_true",
                        help="run only the second stage, from the saved first-stage weights")
    args = parser.parse_args(argv)
    names = args.only or ["target", "baseline", "draft", "moe"]

    torch.manual_seed(SEED)
    files = stdlib_training_files()
    corpus = read_corpus(files)
    heldout = write_heldout()
    tok_dir = OUT_DIR / "tokenizer"
    if args.only and (tok_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    else:
        tokenizer = build_tokenizer(corpus, tok_dir)
    train_ids = torch.tensor(tokenizer(corpus)["input_ids"], dtype=torch.long)
    heldout_ids = torch.tensor(tokenizer(heldout)["input_ids"], dtype=torch.long)

    manifest_path = OUT_DIR / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update(
        python=platform.python_version(), torch=torch.__version__, seed=SEED,
        seq_len=SEQ_LEN, vocab_size=VOCAB_SIZE, corpus_files=len(files),
        corpus_sha256=hashlib.sha256(corpus.encode()).hexdigest(),
        train_tokens=train_ids.numel(), heldout_tokens=heldout_ids.numel(),
        heldout_modules=list(HELDOUT_MODULES))
    manifest.setdefault("models", {})

    log_file = (OUT_DIR / "build.log").open("a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    log(f"corpus: {len(files)} files, {train_ids.numel():,} tokens; "
        f"held-out {heldout_ids.numel():,} tokens")
    for name in names:
        stages = (2,) if args.stage2_only else (1, 2)
        manifest["models"].setdefault(name, {}).update(
            build(name, tokenizer, train_ids, heldout_ids, log, stages))
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
