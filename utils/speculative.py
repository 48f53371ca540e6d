"""Speculative (assisted) decoding: the draft's settings and its acceptance per step.

transformers reads the assistant's settings (``num_assistant_tokens`` and its
schedule) from ``assistant_model.generation_config``, not from ``generate()``
keyword arguments, so :func:`set_draft_length` writes them there.

transformers keeps no acceptance counter. :class:`AcceptanceRecorder` wraps the
candidate generator that ``generate`` builds for one call and records, at each
verification step, how many tokens the draft proposed and how many the target
accepted (the ``num_matches`` that transformers passes to
``update_candidate_strategy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cli import UserError


def set_draft_length(draft_model, n: int, schedule: str = "constant",
                     confidence_threshold: float | None = 0.0) -> None:
    """Make the draft propose ``n`` tokens per step.

    With ``schedule="constant"`` and ``confidence_threshold=0`` the draft always
    proposes exactly ``n`` tokens, the fixed draft length of Leviathan et al.'s
    formula. What transformers 5.x does when nothing is set
    (``GenerationConfig._get_default_generation_params``): 20 assistant tokens,
    the constant schedule, and a confidence threshold of 0.4 that stops
    drafting early when the draft is unsure; a draft model's own
    generation config may set others. ``schedule="heuristic"`` is an option that
    grows ``n`` by 2 after a fully accepted step and shrinks it by 1 otherwise;
    pass ``confidence_threshold=None`` to leave the draft's threshold as it is.
    """
    if n < 1:
        raise ValueError("the draft length must be at least 1")
    config = draft_model.generation_config
    config.num_assistant_tokens = n
    config.num_assistant_tokens_schedule = schedule
    if confidence_threshold is not None:
        config.assistant_confidence_threshold = confidence_threshold


class PairError(UserError, ValueError):
    """A draft that cannot speak for the target: another vocabulary size or another tokenizer."""


def check_pair(target_config, draft_config, target_tokenizer=None, draft_tokenizer=None) -> None:
    """Refuse a draft whose vocabulary (and, given both, tokenizer) differs from the target's.

    Plain assisted generation compares token ids, so both models need the same
    embedding size. Qwen2.5-0.5B (151,936) and Qwen2.5-7B (152,064) share a
    tokenizer but not a vocabulary size; transformers then falls back to the
    slower universal assisted decoding, or fails. The same size is not enough:
    two tokenizers of one size map text to different ids, the target then
    rejects the draft's proposals for reasons that have nothing to do with
    speculative decoding, and the acceptance rate measured means nothing. With
    the tokenizers given, every token-to-id entry and the special tokens must match.
    """
    def vocab(cfg):
        return cfg["vocab_size"] if isinstance(cfg, dict) else cfg.vocab_size
    if vocab(target_config) != vocab(draft_config):
        raise PairError(f"draft vocab {vocab(draft_config):,} != target vocab {vocab(target_config):,}: "
                        f"choose a draft with the same embedding size (e.g. Qwen3-0.6B for Qwen3-8B), "
                        f"or pass tokenizer= and assistant_tokenizer= for universal assisted decoding")
    if target_tokenizer is None or draft_tokenizer is None:
        return
    ours, theirs = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
    differ = sorted(t for t in ours.keys() | theirs.keys() if ours.get(t) != theirs.get(t))
    special = [name for name in ("bos_token_id", "eos_token_id", "pad_token_id")
               if getattr(target_tokenizer, name, None) != getattr(draft_tokenizer, name, None)]
    if differ or special:
        example = (f"e.g. {differ[0]!r} is id {ours.get(differ[0])} for the target and "
                   f"{theirs.get(differ[0])} for the draft" if differ else
                   f"the special tokens differ: {', '.join(special)}")
        raise PairError(f"same vocabulary size, different tokenizers: {len(differ):,} tokens map to other "
                        f"ids ({example}). The target would reject the draft's tokens for that reason "
                        f"alone and the acceptance rate would mean nothing: choose a draft trained with "
                        f"the target's tokenizer")


@dataclass
class AcceptanceStats:
    drafted: list[int] = field(default_factory=list)   # tokens proposed at each step
    accepted: list[int] = field(default_factory=list)  # of which the target kept

    @property
    def steps(self) -> int:
        return len(self.drafted)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted tokens."""
        total = sum(self.drafted)
        return sum(self.accepted) / total if total else 0.0

    @property
    def alpha(self) -> float:
        """Per-token acceptance probability (Leviathan et al.'s alpha), estimated by
        maximum likelihood: accepted / (accepted + steps that ended in a rejection)."""
        rejections = sum(1 for d, a in zip(self.drafted, self.accepted) if a < d)
        accepted = sum(self.accepted)
        return accepted / (accepted + rejections) if accepted + rejections else 0.0

    @property
    def tokens_per_step(self) -> float:
        """Tokens added per target forward pass (accepted + the target's own token)."""
        return (sum(self.accepted) + self.steps) / self.steps if self.steps else 0.0

    def as_dict(self) -> dict:
        return dict(steps=self.steps, drafted=sum(self.drafted), accepted=sum(self.accepted),
                    acceptance_rate=self.acceptance_rate, alpha=self.alpha,
                    tokens_per_step=self.tokens_per_step, per_step_accepted=self.accepted,
                    per_step_drafted=self.drafted)


class AcceptanceRecorder:
    """Context manager recording per-step acceptance of assisted generation on ``model``.

    >>> with AcceptanceRecorder(target) as rec:
    ...     target.generate(**inputs, assistant_model=draft, max_new_tokens=64)
    >>> rec.stats.acceptance_rate
    """

    def __init__(self, model):
        self.model = model
        self.stats = AcceptanceStats()

    def __enter__(self):
        if not hasattr(self.model, "_get_candidate_generator"):
            raise RuntimeError("this transformers version has no _get_candidate_generator; "
                               "acceptance cannot be recorded")
        original = self.model._get_candidate_generator
        stats = self.stats

        def wrapped(*args, **kwargs):
            generator = original(*args, **kwargs)
            update = generator.update_candidate_strategy

            def record(input_ids, scores, num_matches):
                stats.drafted.append(int(scores.shape[1]) - 1)
                stats.accepted.append(int(num_matches))
                return update(input_ids, scores, num_matches)
            generator.update_candidate_strategy = record
            return generator

        self.model._get_candidate_generator = wrapped
        return self

    def __exit__(self, *exc):
        del self.model._get_candidate_generator  # back to the class's method
        self.model = None       # the stats outlive the block, the model must not: free() could not free it
        return False


@dataclass
class Agreement:
    """How far two generations of the same prompt agree, token by token."""

    matching: int                 # generated positions where both chose the same token
    compared: int                 # generated positions compared (the shorter of the two)
    first_divergence: int | None  # index of the first generated token that differs, or None

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def __str__(self) -> str:
        if self.identical:
            return f"identical: all {self.compared} generated tokens agree"
        return (f"{self.matching} of {self.compared} generated tokens agree; the first difference is "
                f"at generated token {self.first_divergence} (the two continue from different text "
                f"after it, so later mismatches follow from that one)")


def agreement(reference, candidate, prompt_length: int) -> Agreement:
    """Compare the generated part of two ``generate()`` outputs (batch 1, same prompt).

    With greedy decoding speculative decoding should reproduce the target's text exactly, and
    on a CPU in fp32 it does. On a GPU the verification pass runs the target on several
    tokens at once, with other kernels and another summation order than one-token decoding;
    in fp16/bf16 two near-tied logits can then swap places and argmax flips. A first
    divergence late in the text with agreement before it is that; one at the first token is a bug."""
    ref = [int(t) for t in reference[0, prompt_length:]]
    cand = [int(t) for t in candidate[0, prompt_length:]]
    n = min(len(ref), len(cand))
    same = [a == b for a, b in zip(ref, cand)]
    first = next((i for i, ok in enumerate(same) if not ok), None)
    if first is None and len(ref) != len(cand):
        first = n
    return Agreement(matching=sum(same), compared=n, first_divergence=first)
