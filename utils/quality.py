"""Quality measures that make cost comparisons fair: perplexity and exact-match accuracy.

* **perplexity**: ``exp(mean token cross-entropy)`` over non-overlapping windows
  of a fixed text. Only comparable between models with the same tokenizer.
* **bits per byte**: total cross-entropy in bits divided by the text's UTF-8
  bytes; comparable across tokenizers.
* **exact match**: the share of code-completion prompts whose greedy
  continuation is exactly the expected next identifier.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELDOUT_TEXT = REPO / "datasets" / "heldout_code.txt"


def heldout_text() -> str:
    """The shipped held-out text (CPython stdlib modules, PSF-2.0; see datasets/README.md)."""
    return HELDOUT_TEXT.read_text(encoding="utf-8")


def english_text() -> str:
    """Real English prose for a real model's perplexity (the Python documentation's, PSF-2.0; see
    datasets/README.md)."""
    return HELDOUT_TEXT.with_name("heldout_english.txt").read_text(encoding="utf-8")


def paired_answers(these: list[bool], those: list[bool]) -> dict:
    """How many more questions ``these`` answered correctly than ``those`` (the same questions, in the
    same order), with the standard error of that count from the per-question differences
    (sd x sqrt(n): n times the standard error of their mean), as :func:`paired_gap` does for perplexity."""
    import math
    if len(these) != len(those) or not these:
        raise ValueError("paired answers need the same questions, at least one")
    diffs = [int(a) - int(b) for a, b in zip(these, those)]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    return dict(diff=sum(diffs), se=sd / math.sqrt(n) * n, questions=n)


def answers_correctly(answer: str, expected: str) -> bool:
    """Whether a chat model's ``answer`` contains the ``expected`` word, as a word (case ignored):
    "The capital of France is Paris." answers "Paris"; "7" is not found in "17"."""
    import re
    return re.search(rf"(?<![\w]){re.escape(expected)}(?![\w])", answer, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    bits_per_byte: float
    tokens: int
    # each scored token's cross-entropy (nats), in text order: for paired comparisons, not stored
    token_nll: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict:
        return dict(perplexity=self.perplexity, bits_per_byte=self.bits_per_byte, tokens=self.tokens)


def paired_gap(target: Perplexity, baseline: Perplexity) -> dict | None:
    """How much worse ``target`` predicts the same tokens than ``baseline``, with its noise.

    ``nll``: mean over the scored tokens of (target's cross-entropy - baseline's), in nats per
    token, so ``exp(nll)`` is the perplexity ratio; ``se``: its standard error from the
    per-token differences (sd / sqrt(n); tokens are treated as independent, which understates
    the noise somewhat). None when the two did not score the same tokens (another tokenizer):
    then only bits per byte compare, without a noise estimate."""
    a, b = target.token_nll, baseline.token_nll
    if not a or len(a) != len(b):
        return None
    diffs = [x - y for x, y in zip(a, b)]
    mean = sum(diffs) / len(diffs)
    var = sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1)
    return dict(nll=mean, se=math.sqrt(var / len(diffs)), tokens=len(diffs))


class NonFiniteError(RuntimeError):
    """A model produced NaN or infinite logits: its figures would be meaningless."""


def non_finite_message(label: str) -> str:
    return (f"{label} produced NaN or infinite logits, so no figure from it means anything. "
            f"The usual cause is fp16: its largest value is 65,504, and models trained in bf16 "
            f"(Qwen3, Llama 3) can have activations beyond it. On an sm80+ GPU use bfloat16; on a "
            f"T4 (no bf16) try int8 or another 4-bit variant, or a model trained in fp16. It was "
            f"stopped here rather than passed on to a perplexity or a verdict.")


def check_finite_logits(model, tokenizer, device: str, label: str,
                        text: str = "The price of a million tokens fell") -> None:
    """One short forward pass; raise :class:`NonFiniteError` if any logit is NaN or infinite.

    Run after every load (utils.models.loading): a T4 computes in fp16, and a bf16-trained model can
    overflow there. Checked once, on load, it stops a bad configuration before it is timed."""
    import torch
    ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
    with torch.inference_mode():
        logits = model(ids).logits
    if not torch.isfinite(logits).all():
        raise NonFiniteError(non_finite_message(label))


# Every perplexity the kit reports (notebooks 02 and 06, the benchmark) scores the same first
# SCORED_TOKENS tokens of the held-out text, so figures from different notebooks compare.
SCORED_TOKENS = 4096


def perplexity(model, tokenizer, text: str, *, window: int = 256, max_tokens: int | None = SCORED_TOKENS,
               device: str = "cpu") -> Perplexity:
    """Perplexity and bits per byte of the first ``max_tokens`` tokens of ``text`` (all if None), in
    windows of ``window`` tokens."""
    import torch

    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if ids.numel() < 2:
        raise ValueError("text too short for perplexity")
    per_token: list[float] = []
    with torch.inference_mode():
        for start in range(0, ids.numel() - 1, window):
            chunk = ids[start:start + window + 1].unsqueeze(0).to(device)
            if chunk.shape[1] < 2:
                break
            logits = model(chunk[:, :-1]).logits.float()
            if not torch.isfinite(logits).all():
                raise NonFiniteError(non_finite_message(f"the model (window at token {start})"))
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1), reduction="none")
            per_token += loss.double().tolist()
    nll, count = math.fsum(per_token), len(per_token)
    scored_bytes = len(tokenizer.decode(ids[1:count + 1]).encode("utf-8"))
    return Perplexity(perplexity=math.exp(nll / count),
                      bits_per_byte=nll / math.log(2) / max(scored_bytes, 1), tokens=count,
                      token_nll=tuple(per_token))


# Where a code completion question stops: right after one of these keywords,
# the answer being the identifier that follows.
CUES = re.compile(r"(?:\b(?:return|import|raise|def|class|self\.|isinstance\(|for \w+ in))\s*(?=([A-Za-z_]\w*))")


def completion_items(text: str, n: int = 40, context_chars: int = 600) -> list[dict]:
    """Next-identifier questions drawn deterministically from code ``text``.

    Each prompt is the ``context_chars`` of code before a cue such as ``return``,
    ``import``, ``raise``, ``def`` or ``self.``, ending just after the cue; the
    answer is the identifier the code continues with. Only answers that already
    occur in the prompt are used (a completion model can find them in context,
    as an editor's completion would), and every k-th such cue is taken.
    """
    candidates = []
    for m in CUES.finditer(text):
        prompt, answer = text[max(0, m.end() - context_chars):m.end()], m.group(1)
        if m.end() >= context_chars and re.search(rf"\b{re.escape(answer)}\b", prompt):
            candidates.append(dict(prompt=prompt, answer=answer))
    if not candidates:
        raise ValueError("no completion candidates in the text")
    step = max(1, len(candidates) // n)
    return candidates[::step][:n]


def exact_match(model, tokenizer, items: list[dict], *, max_new_tokens: int = 8,
                device: str = "cpu") -> float:
    """Share of ``items`` (dicts with prompt, answer) whose greedy continuation starts with
    exactly the answer identifier (leading spaces ignored)."""
    import torch

    if not items:
        raise ValueError("no items to score")
    correct = 0
    for item in items:
        enc = tokenizer(item["prompt"], add_special_tokens=False, return_tensors="pt").to(device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        completion = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        word = re.match(r"\s*(\w*)", completion).group(1)
        correct += word == item["answer"]
    return correct / len(items)
