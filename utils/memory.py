"""Predict a model's memory before loading it, and refuse a load that cannot fit.

Formulas (stated so a learner can check them by hand):

* parameters, Llama/Qwen family: embeddings ``V*h`` (+ ``V*h`` for an untied
  LM head); per layer attention ``h*(n_q*d) + 2*h*(n_kv*d) + (n_q*d)*h``
  (+ q/k/v biases for Qwen2), MLP ``3*h*i``, RMSNorms ``2*h`` (+ ``2*d`` q/k
  norms for Qwen3). GPT-2 and GPT-NeoX (Pythia) have a plain MLP ``2*h*i``,
  biases on every linear layer, LayerNorms with a bias (``2*h`` each) and,
  GPT-2, learned positions ``P*h``. The config is read through transformers'
  config class, so other key names (GPT-2's ``n_head``) mean the same; an
  architecture outside :data:`ARCHITECTURES` is refused before loading.
* weight bytes: fp32 4, fp16/bf16 2 per parameter. bitsandbytes quantizes only
  the linear layers inside the blocks; embeddings, LM head and norms stay in the
  compute dtype. int8 (LLM.int8) stores 1 byte per weight plus one fp32 scale
  per output row; NF4/FP4 store 0.5 byte per weight plus one fp32 absmax per
  64-weight block (+0.0625 byte); double quantization stores that absmax in
  8 bits with one fp32 per 256 blocks (+0.0159 byte), saving ~0.37 bit/weight.
  Each 4-bit layer also keeps a 64-byte code table (+1,028 bytes with double
  quantization): negligible at 7B, visible in the offline models.
* mixture of experts (Mixtral, Qwen3-MoE, OLMoE, GraniteMoE): a MoE layer's MLP is ``E``
  experts of ``3*h*i_e`` and a router ``E*h``; a token uses ``k`` of them. Memory counts every
  expert (the *total* parameters), compute the ``k`` a token uses (the *active* ones).
  transformers stores each layer's experts as fused 3-D tensors, and bitsandbytes converts only
  ``nn.Linear`` modules, so under 8 or 4 bits the experts and the router stay in the compute
  dtype: only attention (and any dense MLP) shrinks.
* KV cache: ``2 * layers * n_kv * d * context * batch * bytes_per_value``.
* bytes a decode step reads (the roofline's): all weights once, but of the input
  embedding table only one row per sequence (the LM head is read whole, and with
  tied embeddings it is the same table), plus every sequence's KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cli import UserError

GB = 1e9  # decimal gigabytes, as GPU vendors and the hub quote sizes

BYTES_16 = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}
# bytes per quantized linear weight, including its quantization constants
QUANT_LINEAR_BYTES = {
    "int8": 1.0,
    "nf4": 0.5 + 4 / 64,
    "fp4": 0.5 + 4 / 64,
    "nf4-dq": 0.5 + 1 / 64 + 4 / (64 * 256),
    "fp4-dq": 0.5 + 1 / 64 + 4 / (64 * 256),
}
PRECISIONS = tuple(BYTES_16) + tuple(QUANT_LINEAR_BYTES)
FOUR_BIT = tuple(p for p in QUANT_LINEAR_BYTES if p != "int8")


class ModelTooLargeError(UserError, MemoryError):
    """Raised before loading when the predicted memory exceeds what is available."""


class UnsupportedArchitecture(ValueError):
    """A model whose memory the kit cannot predict (said before anything is loaded)."""


# model_type -> (MLP gated, plain-transformer layout: biases everywhere, LayerNorm, fused qkv).
# Each one's parameter count is checked against transformers' own in tests/test_bad_input.py.
ARCHITECTURES = {"llama": (True, False), "mistral": (True, False), "qwen2": (True, False),
                 "qwen3": (True, False), "gpt2": (False, True), "gpt_neox": (False, True),
                 "mixtral": (True, False), "qwen3_moe": (True, False), "olmoe": (True, False),
                 "granitemoe": (True, False)}
MOE = ("mixtral", "qwen3_moe", "olmoe", "granitemoe")      # mixtures of experts among them


def experts_touched(experts: int, active: int, batch: int) -> float:
    """Expected distinct experts a batch of ``batch`` tokens uses in one MoE layer when each token
    picks ``active`` of ``experts`` evenly at random: ``E * (1 - (1 - k/E)^B)``."""
    if experts <= 0:
        return 0.0
    return experts * (1 - (1 - active / experts) ** batch)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True)
class ModelShape:
    """The handful of config.json numbers that decide size and speed."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    head_dim: int
    qkv_bias: bool = False
    qk_norm: bool = False
    gated_mlp: bool = True       # gate, up, down (Llama); False: up, down (GPT-2, GPT-NeoX)
    plain: bool = False          # GPT-2/NeoX layout: fused qkv, biases everywhere, LayerNorm
    positions: int = 0           # learned position embeddings (GPT-2)
    o_bias: bool = False         # Llama's attention_bias also biases the output projection
    experts: int = 0             # routed experts per MoE layer (0: a dense model)
    active_experts: int = 0      # experts each token uses (top-k)
    expert_intermediate: int = 0 # an expert's MLP width
    moe_layers: int = 0          # layers whose MLP is a mixture of experts (the rest are dense)
    qk_norm_full: bool = False   # OLMoE: q/k norms over all heads' dimensions (Qwen3: one head's)

    @classmethod
    def from_config(cls, cfg) -> "ModelShape":
        """From a config.json dict or a transformers ``PretrainedConfig`` of a supported
        architecture; raises :class:`UnsupportedArchitecture` for any other."""
        model_type = cfg.get("model_type") if isinstance(cfg, dict) else getattr(cfg, "model_type", None)
        if model_type not in ARCHITECTURES:
            raise UnsupportedArchitecture(
                f"architecture {model_type!r} is not one whose memory the kit can predict "
                f"({', '.join(ARCHITECTURES)}); nothing was loaded. Use a model of a supported "
                f"architecture, or add its layout to utils/memory.py with a test")
        if isinstance(cfg, dict):
            cfg = _config_object(cfg)
        gated, plain = ARCHITECTURES[model_type]
        hidden, heads = cfg.hidden_size, cfg.num_attention_heads
        intermediate = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * hidden
        attention_bias = bool(getattr(cfg, "attention_bias", False)) and not plain
        moe = {}
        if model_type in MOE:
            experts = getattr(cfg, "num_local_experts", None) or getattr(cfg, "num_experts", 0)
            step = getattr(cfg, "decoder_sparse_step", 1) or 1
            dense = set(getattr(cfg, "mlp_only_layers", None) or [])
            moe = dict(experts=experts, active_experts=cfg.num_experts_per_tok,
                       expert_intermediate=getattr(cfg, "moe_intermediate_size", None) or intermediate,
                       moe_layers=sum(1 for i in range(cfg.num_hidden_layers)
                                      if i not in dense and (i + 1) % step == 0),
                       qk_norm_full=model_type == "olmoe")
        return cls(
            hidden=hidden, intermediate=intermediate, layers=cfg.num_hidden_layers, heads=heads,
            kv_heads=getattr(cfg, "num_key_value_heads", None) or heads, vocab=cfg.vocab_size,
            tied=bool(getattr(cfg, "tie_word_embeddings", False)),
            head_dim=getattr(cfg, "head_dim", None) or hidden // heads,
            qkv_bias=model_type == "qwen2" or attention_bias or plain, o_bias=attention_bias,
            qk_norm=model_type in ("qwen3", "qwen3_moe"), gated_mlp=gated, plain=plain,
            positions=getattr(cfg, "n_positions", 0) if model_type == "gpt2" else 0, **moe)

    @property
    def attention_params_per_layer(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attn = self.hidden * q + 2 * self.hidden * kv + q * self.hidden
        return attn + ((q + 2 * kv) if self.qkv_bias else 0) + (self.hidden if self.o_bias or self.plain else 0)

    @property
    def mlp_params_per_layer(self) -> int:
        """A dense layer's MLP (linear modules)."""
        mlp = (3 if self.gated_mlp else 2) * self.hidden * self.intermediate
        return mlp + (self.intermediate + self.hidden if self.plain else 0)

    @property
    def linear_params_per_layer(self) -> int:
        """A dense layer's linear modules: attention and MLP."""
        return self.attention_params_per_layer + self.mlp_params_per_layer

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    @property
    def linear_layers_per_layer(self) -> int:
        """Linear modules per dense block: q, k, v, o, gate, up, down (7); fused qkv, o, up, down (4)."""
        return 4 if self.plain else 7 if self.gated_mlp else 6

    @property
    def linear_modules(self) -> int:
        """Linear modules in all blocks: a MoE block keeps q, k, v, o as linear modules."""
        return self.dense_layers * self.linear_layers_per_layer + self.moe_layers * 4

    @property
    def linear_out_features(self) -> int:
        """Output rows of all blocks' linear modules: int8 keeps one fp32 scale per row."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = q + 2 * kv + self.hidden
        mlp = (2 if self.gated_mlp else 1) * self.intermediate + self.hidden
        return self.layers * attention + self.dense_layers * mlp

    @property
    def linear_params(self) -> int:
        """Parameters in linear modules (what bitsandbytes quantizes)."""
        return self.layers * self.attention_params_per_layer + self.dense_layers * self.mlp_params_per_layer

    @property
    def expert_params_each(self) -> int:
        """One expert's MLP (gate, up, down)."""
        return 3 * self.hidden * self.expert_intermediate

    @property
    def expert_params(self) -> int:
        """Every expert of every MoE layer, and the routers: stored as fused tensors, never quantized."""
        return self.moe_layers * self.experts * (self.expert_params_each + self.hidden)

    @property
    def other_params(self) -> int:
        """Embeddings, LM head, norms, and a MoE's experts and routers: never quantized by
        bitsandbytes."""
        embed = self.vocab * self.hidden * (1 if self.tied else 2) + self.positions * self.hidden
        per_norm = 2 * self.hidden if self.plain else self.hidden      # LayerNorm has a bias
        qk = ((self.heads + self.kv_heads) * self.head_dim if self.qk_norm_full else
              2 * self.head_dim if self.qk_norm else 0)
        norms = self.layers * (2 * per_norm + qk)
        return embed + norms + per_norm + self.expert_params

    @property
    def params(self) -> int:
        """Total parameters: what memory holds."""
        return self.linear_params + self.other_params

    @property
    def inactive_expert_params(self) -> int:
        """The experts a token does not use: in memory, not in its compute."""
        return self.moe_layers * (self.experts - self.active_experts) * self.expert_params_each

    @property
    def active_params(self) -> int:
        """Parameters one token uses (all of a dense model's; a MoE's chosen experts only)."""
        return self.params - self.inactive_expert_params

    @property
    def matmul_params(self) -> int:
        """Parameters a token multiplies by (2 FLOPs each): the active ones but the looked-up input
        embedding (untied) and learned positions; a tied table still serves as the LM head."""
        lookup = (0 if self.tied else self.vocab * self.hidden) + self.positions * self.hidden
        return self.active_params - lookup

    def kv_bytes_per_token(self, kv_dtype: str = "float16") -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * BYTES_16[kv_dtype]


def _config_object(cfg: dict):
    """A config.json dict as transformers' config class reads it (attribute names normalised)."""
    from transformers import AutoConfig
    return AutoConfig.for_model(cfg["model_type"], **{k: v for k, v in cfg.items() if k != "model_type"})


@dataclass(frozen=True)
class MemoryEstimate:
    precision: str
    weights_gb: float
    kv_cache_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb


def count(n: float) -> str:
    """A parameter count as people say it: 7.28M, 30.5B."""
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


def weight_bytes(shape: ModelShape, precision: str, compute_dtype: str = "float16") -> float:
    """Bytes of the weights at ``precision`` (unquantized parts in ``compute_dtype``)."""
    check_precision(precision)
    if precision in BYTES_16:
        return shape.params * BYTES_16[precision]
    scales = 4 * shape.linear_out_features if precision == "int8" else 0
    # each 4-bit layer also keeps its 16-entry code table (fp32), and with double
    # quantization a 256-entry table and an offset for the absmax values
    tables = shape.linear_modules * ((64 if precision != "int8" else 0) + (1028 if precision.endswith("-dq") else 0))
    return (shape.linear_params * QUANT_LINEAR_BYTES[precision] + scales + tables
            + shape.other_params * BYTES_16[compute_dtype])


def expert_bytes(shape: ModelShape, precision: str, compute_dtype: str = "float16") -> float:
    """Bytes of one expert of one layer: in ``precision`` if 16/32-bit, else in the compute dtype
    (bitsandbytes leaves the fused experts unquantized)."""
    return shape.expert_params_each * BYTES_16[precision if precision in BYTES_16 else compute_dtype]


def decode_read_bytes(shape: ModelShape, precision: str, *, batch: int = 1,
                      compute_dtype: str = "float16") -> float:
    """Bytes of weights one decode step reads: every weight once, except the input embedding
    table (and GPT-2's learned positions), of which a step reads one row per sequence, and a
    MoE's experts, of which a step reads only those its tokens use: ``k`` per layer at batch 1,
    :func:`experts_touched` of them for a batch (even routing). The LM head is read whole; with
    tied embeddings it *is* the embedding table, read whole anyway."""
    row = shape.hidden * BYTES_16[compute_dtype]
    total = weight_bytes(shape, precision, compute_dtype)
    if shape.experts:
        untouched = shape.experts - experts_touched(shape.experts, shape.active_experts, batch)
        total -= shape.moe_layers * untouched * expert_bytes(shape, precision, compute_dtype)
    if not shape.tied:
        total -= shape.vocab * row - batch * row
    if shape.positions:
        total -= shape.positions * row - batch * row
    return total


def predict_memory(shape: ModelShape, precision: str, *, batch: int = 1, context: int = 0,
                   compute_dtype: str = "float16") -> MemoryEstimate:
    """Predicted weights and KV-cache memory in GB (1e9 bytes)."""
    kv_dtype = "float32" if compute_dtype == "float32" else compute_dtype
    return MemoryEstimate(
        precision=precision,
        weights_gb=weight_bytes(shape, precision, compute_dtype) / GB,
        kv_cache_gb=shape.kv_bytes_per_token(kv_dtype) * context * batch / GB)


HEADROOM_GB = 0.8      # the CUDA context, activations and allocator slack, beside a model's estimate


def check_fits(estimate: MemoryEstimate, available_gb: float, *, where: str = "GPU",
               headroom_gb: float = HEADROOM_GB, name: str = "the model") -> None:
    """Raise :class:`ModelTooLargeError` if ``estimate`` plus headroom exceeds ``available_gb``.

    The headroom covers the CUDA context, activations and allocator slack.
    """
    need = estimate.total_gb + headroom_gb
    if need > available_gb:
        raise ModelTooLargeError(
            f"{name} at {estimate.precision} needs about {need:.1f} GB "
            f"({estimate.weights_gb:.1f} GB weights + {estimate.kv_cache_gb:.1f} GB KV cache "
            f"+ {headroom_gb:.1f} GB headroom) but this {where} has {available_gb:.1f} GB free. "
            + ("Try a shorter context or a smaller model (it is already 4-bit)."
               if estimate.precision in FOUR_BIT else
               "Try a 4-bit precision (nf4), a shorter context, or a smaller model."))


def measured_weight_bytes(model) -> int:
    """Bytes the model's weights really occupy, quantization constants included.

    ``model.get_memory_footprint()`` counts parameters and buffers but not the
    constants bitsandbytes keeps beside them (4-bit absmax, double-quantization
    state, int8 row scales), so it would hide what double quantization saves.
    """
    def nbytes(t) -> int:
        return t.numel() * t.element_size() if t is not None and hasattr(t, "numel") else 0

    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) in seen:   # tied embeddings are counted once
            continue
        seen.add(id(tensor))
        total += nbytes(tensor)
        state = getattr(tensor, "quant_state", None)
        while state is not None:
            total += nbytes(state.absmax) + nbytes(state.code) + nbytes(getattr(state, "offset", None))
            state = getattr(state, "state2", None)
        total += nbytes(getattr(tensor, "SCB", None))
    for module in model.modules():     # int8: after the first forward the row scales move to module.state
        scb = getattr(getattr(module, "state", None), "SCB", None)
        if scb is not None and getattr(getattr(module, "weight", None), "SCB", None) is None \
                and id(scb) not in seen:
            seen.add(id(scb))
            total += nbytes(scb)
    return total
