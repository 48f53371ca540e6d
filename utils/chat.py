"""Ask a chat model one question, the way its chat template says to: greedy, so the answer repeats."""

from __future__ import annotations


def ask(loaded, question: str, max_new_tokens: int = 24) -> str:
    """``loaded``'s answer to ``question`` (a :class:`utils.models.loading.Loaded` whose tokenizer
    has a chat template), decoded without its special tokens."""
    import torch
    tokenizer = loaded.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{loaded.ref.id} has no chat template: it is not a chat model")
    asked = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True).to(loaded.device)
    with torch.inference_mode():
        out = loaded.model.generate(**asked, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, asked["input_ids"].shape[1]:], skip_special_tokens=True).strip()
