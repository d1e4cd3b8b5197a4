"""Reward functions the RL tests name as ``rl.rewards:NAME`` (tests/ is on the path)."""
from __future__ import annotations

from dpo.conftest import BAD, GOOD


def good_words(prompts, responses, meta):
    """Share of GOOD words minus share of BAD words: a signal a tiny model can climb."""
    out = []
    for r in responses:
        words = r.replace(".", " ").split()
        n = max(len(words), 1)
        out.append((sum(w in GOOD for w in words) - sum(w in BAD for w in words)) / n)
    return out


def one(prompts, responses, meta):
    """1.0 for every response: a term whose logged mean is known by hand."""
    return [1.0] * len(responses)


def raises(prompts, responses, meta):
    raise RuntimeError("the scorer is down")


def nan(prompts, responses, meta):
    return [float("nan")] * len(responses)


def vowels(prompts, responses, meta):
    """Share of the response's characters that are vowels: varies even for an untrained model's text."""
    return [sum(ch in "aeiou" for ch in r) / max(len(r), 1) for r in responses]


def by_rank(prompts, responses, meta):
    """The process's rank plus the vowel share, so ranks differ by 1; each call's rewards are appended to
    ``$RL_REWARD_LOG/rank<R>.jsonl`` where that is set (the distributed test reads every rank's back)."""
    import json
    import os
    from pathlib import Path

    rank = int(os.environ.get("RANK", "0"))
    out = [rank + v for v in vowels(prompts, responses, meta)]
    if os.environ.get("RL_REWARD_LOG"):
        with open(Path(os.environ["RL_REWARD_LOG"]) / f"rank{rank}.jsonl", "a") as f:
            f.write(json.dumps(out) + "\n")
    return out
