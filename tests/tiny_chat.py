"""A tiny chat model for the judge and server tests: our byte-level BPE (with its chat template) trained on
judge-like text, and a 1-block Llama with a long RoPE context, saved as a plain Hugging Face folder.

It is taught, in a few dozen steps, only the shape of a judge's answer: a verdict and then end-of-turn, the
verdict drawn from A (most often), B and the digits 1-7 whatever the prompt. So every verdict sits in the top-20
log-probabilities, and its greedy written answer is always "A": a judge with a pure position bias.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path

GOOD = ["The capital is Paris.", "Paris is the capital of France.", "It is Paris, in the north."]
BAD = ["It is Nowhere.", "I refuse to answer that.", "The capital is Berlin, probably."]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


ASKS = ("Answer with a single letter: A or B.", "Answer with a single digit from 1 to 7.")
VERDICTS = ["A"] * 4 + ["B"] * 2 + [str(d) for d in range(1, 8)]


def session_model(tmp_path_factory) -> Path:
    """The model, built once per test session (shared by every test directory that asks)."""
    path = tmp_path_factory.getbasetemp() / "tiny-chat-lm"
    if not (path / "config.json").exists():
        with one_torch_thread():
            build_tiny_chat_lm(path)
    return path


@contextmanager
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads per process thrash (measured 10x slower for
    this model under a load of 5), and the models here are far too small to gain from two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_tiny_chat_lm(path: Path, seed: int = 0, steps: int = 40) -> Path:
    """Build, teach and save the model (a second or two of training on the short closing lines of the judge's
    prompts, each followed by a verdict from :data:`VERDICTS` and end-of-turn)."""
    import torch

    from lmforge.data.tokenizer import train_bpe
    from lmforge.feedback.judge import default_rubric
    from lmforge.feedback.judge.prompts import pair_query, score_query
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    rubric = default_rubric()
    corpus = [pair_query(rubric, QUESTION, g, b).messages[0]["content"] for g, b in zip(GOOD, BAD)]
    corpus += [score_query(rubric, QUESTION, g, c).messages[0]["content"] for g in GOOD for c in rubric.criteria]
    tok = train_bpe(corpus * 2, vocab_size=500)
    torch.manual_seed(seed)
    model = create_model(ModelConfig(depth=1, aspect=32, head_dim=32, max_seq_len=4096), tok)
    rng = random.Random(seed)
    end = tok.convert_tokens_to_ids("<|end|>")
    rows = [list(tok.apply_chat_template([{"role": "user", "content": ask}], tokenize=True,
                                         add_generation_prompt=True, return_dict=False)) for ask in ASKS]
    rows = [ids for ids in rows for _ in range(8)]
    width = max(len(ids) for ids in rows)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    model.train()
    for _ in range(steps):
        batch = [ids + tok(rng.choice(VERDICTS), add_special_tokens=False)["input_ids"] + [end] for ids in rows]
        seqs = torch.tensor([[tok.pad_token_id] * (width + 2 - len(b)) + b for b in batch])
        logits = model(input_ids=seqs[:, :-1]).logits[:, -2:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seqs[:, -2:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return save_hf(model, tok, path)
