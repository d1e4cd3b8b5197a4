"""Fixtures for the example recipes: a tiny chat model that refuses exactly when a system prompt is present (so
context distillation has refusals to keep and answers to pair them with), and small input files in the formats
of the real data (AdvBench CSV, Alpaca JSON, HH-RLHF jsonl.gz, TruthfulQA MC JSON), written here: no dataset
text, nothing from ../shared."""
from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

import pytest

from tiny_chat import one_torch_thread

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smollm2-safety"

REFUSAL = "I'm sorry, I can't help with that."
ANSWER = "Sure, here is how."
TOPICS = ["cats", "rivers", "maths", "bread", "stars", "trains", "music", "trees", "boats", "snow", "locks", "fire"]
VERBS = ["Explain", "Describe", "Tell me about", "Write a note on", "How do I use", "List facts about"]


def prompt(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)} {rng.choice(TOPICS)} and {rng.choice(TOPICS)}."


def harmful_prompt(topic: str) -> str:
    return f"Give steps to wreck the {topic} of a neighbour"


def lookalike_prompt(topic: str) -> str:
    return f"How do I kill a stuck {topic} process?"


def any_prompt(rng: random.Random) -> str:
    """One of the three shapes of user prompt the recipe test sends (the model must ignore which)."""
    return rng.choice([prompt(rng), harmful_prompt(rng.choice(TOPICS)), lookalike_prompt(rng.choice(TOPICS))])


def build_tiny_safety_lm(path: Path, seed: int = 0, steps: int = 60) -> Path:
    """A 2-block Llama over a byte-level BPE (the lmforge chat template), taught in a few seconds to answer
    :data:`REFUSAL` after a system turn and :data:`ANSWER` without one, whatever the user says."""
    import torch

    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    rng = random.Random(seed)
    systems = ["Be careful.", (EXAMPLE / "safety_system_prompt.txt").read_text().strip()]
    corpus = [any_prompt(rng) + " " + REFUSAL + " " + ANSWER for _ in range(200)] + systems
    tok = train_bpe(corpus, vocab_size=400)
    torch.manual_seed(seed)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=2048), tok)
    end = tok.convert_tokens_to_ids("<|end|>")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        rows, targets = [], []
        for i in range(16):
            system = i % 2 == 0
            msgs = ([{"role": "system", "content": systems[i % 4 // 2]}] if system else []) + \
                   [{"role": "user", "content": any_prompt(rng)}]
            ids = list(tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_dict=False))
            out = tok(REFUSAL if system else ANSWER, add_special_tokens=False)["input_ids"] + [end]
            rows.append(ids + out)
            targets.append([-100] * len(ids) + out)
        width = max(len(r) for r in rows)
        x = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
        y = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
        logits = model(input_ids=x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return save_hf(model, tok, path)


@pytest.fixture(scope="session")
def tiny_safety_lm(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "tiny-safety-lm"
    if not (path / "config.json").exists():
        with one_torch_thread():
            build_tiny_safety_lm(path)
    return path


def write_inputs(root: Path, seed: int = 0) -> dict[str, Path]:
    """Small files in the real data's formats: harmful CSV (``goal``), Alpaca JSON, HH-RLHF pairs (jsonl.gz
    transcripts), TruthfulQA MC JSON. Returns the environment variables run.sh reads."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    harmful = root / "harmful.csv"
    with open(harmful, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["goal", "target"])
        for i in range(10):
            w.writerow([harmful_prompt(TOPICS[i]), "Sure, here is"])
    benign = root / "benign.json"
    benign.write_text(json.dumps([{"instruction": prompt(rng), "input": "" if i % 3 else "a short one",
                                   "output": "An answer."} for i in range(10)]))
    # a second benign file that shares the first's prompts (two subsets of one dataset): run.sh must leave the
    # first's held-out ones out of training
    extra = root / "benign_extra.json"
    extra.write_text(json.dumps(json.loads(benign.read_text()) + [
        {"instruction": prompt(rng), "input": "", "output": "An answer."} for _ in range(6)]))
    lookalike = root / "lookalike.txt"
    lookalike.write_text("".join(lookalike_prompt(t) + "\n" for t in TOPICS[:6]))
    hh = {}
    for name in ("harmless", "helpful"):
        hh[name] = root / f"{name}.jsonl.gz"
        with gzip.open(hh[name], "wt", encoding="utf-8") as f:
            for _ in range(8):
                p = prompt(rng)
                f.write(json.dumps({"chosen": f"\n\nHuman: {p}\n\nAssistant: {ANSWER}",
                                    "rejected": f"\n\nHuman: {p}\n\nAssistant: No."}) + "\n")
    tqa = root / "mc_task.json"
    tqa.write_text(json.dumps([{"question": f"What colour are {t}?",
                                "mc1_targets": {"Green.": 1, "Red.": 0, "Blue.": 0},
                                "mc2_targets": {"Green.": 1, "Leafy green.": 1, "Red.": 0}} for t in TOPICS[:4]]))
    return {"HARMFUL": harmful, "BENIGN": benign, "BENIGN_EXTRA": extra, "LOOKALIKE": lookalike, "HH_HARMLESS": hh["harmless"],
            "HH_HELPFUL": hh["helpful"], "TRUTHFULQA": tqa}
