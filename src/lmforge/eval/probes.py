"""Knowledge probes for a base (not yet chat-tuned) model of the built-in world."""
from __future__ import annotations

from ..generation import SamplingParams
from ..rollout.generate import generate


def capital_recall(model, tokenizer, countries, batch_size: int = 32) -> float:
    """Fraction of ``countries`` whose capital the model completes greedily after "The capital of X is".

    The prose form is what pre-training saw, so this measures stored knowledge before any chat tuning.
    """
    if not countries:
        return float("nan")
    prompts = [f"{tokenizer.bos_token}The capital of {c.name} is" for c in countries]
    outs = generate(model, tokenizer, prompts, SamplingParams(max_new_tokens=8), batch_size=batch_size)
    hits = sum(group[0]["text"].strip().startswith(c.capital) for c, group in zip(countries, outs))
    return hits / len(countries)
