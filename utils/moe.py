"""Mixture of experts, measured: what the router chooses, and how many experts a step reads.

Every mixture-of-experts architecture the kit supports (Mixtral, Qwen3-MoE, OLMoE,
GraniteMoE; utils.memory.MOE) routes each token in each MoE layer through a top-k
router module whose forward returns ``(router_logits, weights, expert_indices)``.
Two measurements read those choices:

* :func:`tokens_per_expert`: a forward pass over a text with ``output_router_logits``,
  the top-k of each layer's logits counted per expert (``topk`` and ``bincount``);
  :func:`balance` summarises how evenly the load spreads;
* :func:`experts_per_step`: forward hooks on the routers during ``generate`` at a
  given batch, the distinct experts each decode step used in each layer, to set
  beside the even-routing expectation ``E * (1 - (1 - k/E)^B)``
  (utils.memory.experts_touched).
"""

from __future__ import annotations

from dataclasses import dataclass

from .memory import experts_touched


def routers(model) -> list:
    """The model's router modules, one per MoE layer, in layer order."""
    return [m for m in model.modules() if type(m).__name__.endswith("TopKRouter")]


def shape_of(model) -> tuple[int, int]:
    """(experts, experts per token) of a loaded mixture of experts."""
    cfg = model.config
    experts = getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", None)
    if not experts:
        raise ValueError(f"{type(model).__name__} is not a mixture of experts (no experts in its config)")
    return experts, cfg.num_experts_per_tok


def tokens_per_expert(model, tokenizer, text: str, *, tokens: int = 1024, device: str = "cpu") -> list[list[int]]:
    """Per MoE layer, how many of the first ``tokens`` tokens of ``text`` the router sent to each
    expert (each token counts once for each of its k experts)."""
    import torch

    experts, k = shape_of(model)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :tokens].to(device)
    with torch.inference_mode():
        out = model(ids, output_router_logits=True)
    counts = []
    for logits in out.router_logits:
        chosen = logits.reshape(-1, experts).topk(k, dim=-1).indices.reshape(-1)
        counts.append(torch.bincount(chosen.cpu(), minlength=experts).tolist())
    return counts


@dataclass(frozen=True)
class Balance:
    """How evenly one layer's router spreads its tokens: the busiest expert's share against an
    even share (1.0 is perfectly even), and the idlest's."""

    busiest: float
    idlest: float

    @classmethod
    def of(cls, counts: list[int]) -> "Balance":
        even = sum(counts) / len(counts)
        return cls(max(counts) / even, min(counts) / even)


def balance(counts: list[list[int]]) -> list[Balance]:
    """:class:`Balance` of each layer's counts (:func:`tokens_per_expert`)."""
    return [Balance.of(c) for c in counts]


@dataclass(frozen=True)
class Touched:
    """Distinct experts a decode step used, per layer, at one batch size."""

    batch: int
    per_step: list[float]            # mean over the MoE layers, one value per decode step
    expected: float                  # even routing: E * (1 - (1 - k/E)^B)
    experts: int
    active: int

    @property
    def mean(self) -> float:
        return sum(self.per_step) / len(self.per_step)


def experts_per_step(model, tokenizer, text: str, *, batch: int, prompt_tokens: int = 32,
                     new_tokens: int = 8, device: str = "cpu") -> Touched:
    """Generate ``new_tokens`` greedily for ``batch`` sequences (different windows of ``text``)
    and count, for every decode step and every MoE layer, the distinct experts its tokens used
    (forward hooks on the routers; the prefill call of each layer is left out)."""
    import torch

    experts, k = shape_of(model)
    found = routers(model)
    if not found:
        raise ValueError(f"{type(model).__name__} has no top-k router module this kit knows (transformers "
                         f"5 names them *TopKRouter): its experts cannot be counted")
    calls: dict[int, list[int]] = {}
    hooks = []
    for layer, router in enumerate(found):
        def hook(module, args, output, layer=layer):
            calls.setdefault(layer, []).append(int(torch.unique(output[2]).numel()))
        hooks.append(router.register_forward_hook(hook))
    try:
        inputs = windows(tokenizer, text, prompt_tokens, batch, device)
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)
    finally:
        for h in hooks:
            h.remove()
    steps = [sum(per_layer[step] for per_layer in calls.values()) / len(calls)
             for step in range(1, min(len(v) for v in calls.values()))]       # call 0 is the prefill
    return Touched(batch, steps, experts_touched(experts, k, batch), experts, k)


def windows(tokenizer, text: str, prompt_tokens: int, batch: int, device: str = "cpu") -> dict:
    """``batch`` different prompts of ``prompt_tokens`` tokens: windows spread across ``text``
    (identical prompts would route identically and hide how a batch spreads over experts)."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    stride = max(1, (len(ids) - prompt_tokens) // max(batch, 1))
    rows = [ids[i * stride:i * stride + prompt_tokens] for i in range(batch)]
    if any(len(r) < prompt_tokens for r in rows):
        raise ValueError(f"the text is too short for {batch} prompts of {prompt_tokens} tokens")
    input_ids = torch.tensor(rows, dtype=torch.long, device=device)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def published() -> dict[str, dict]:
    """Published total and active parameter counts of mixtures of experts, with their sources
    (``datasets/published_params.csv``), by model id."""
    import csv

    from .data import DATASETS
    with open(DATASETS / "published_params.csv", newline="", encoding="utf-8") as f:
        return {r["model"]: r for r in csv.DictReader(f)}


def sizes_table(models: dict[str, dict]) -> str:
    """For each model (name: config dict): experts, total and active parameters, and weights in
    16 bits and in NF4, where bitsandbytes leaves a MoE's experts in 16 bits; the published counts
    beside them where there are some."""
    from .memory import ModelShape, predict_memory
    cited = published()
    lines = [f"{'model':<30} {'experts':>8} {'total':>8} {'active':>8} {'16-bit GB':>10} {'NF4 GB':>8}  published"]
    for name, config in models.items():
        s = ModelShape.from_config(config)
        experts = f"{s.active_experts} of {s.experts}" if s.experts else "dense"
        gb16, gb4 = (predict_memory(s, p).weights_gb for p in ("bfloat16", "nf4"))
        row = cited.get(name)
        note = f"{row['total_billion']}B total, {row['active_billion']}B active" if row else ""
        scale, unit = (1e9, "B") if s.params > 1e8 else (1e6, "M")
        lines.append(f"{name.split('/')[-1]:<30} {experts:>8} {s.params / scale:>7.2f}{unit} "
                     f"{s.active_params / scale:>7.2f}{unit} {gb16:>10.3g} {gb4:>8.3g}  {note}")
    return "\n".join(lines)
