"""Experiment: can a short "plausibility" warm-up make the world model's facts readable at the last token?

    python bench/rm_plausibility.py --base runs/demo/pretrain/final --out /tmp/plaus --steps 1200 --slot last
    python bench/rm_demo.py --base /tmp/plaus --train runs/demo/feedback/preferences.jsonl --n-eval 200

ELECTRA-style replaced-token data at the *sequence* level, from the pre-training corpus only (no labels, no world
truth): each corpus sentence (half of them with the sentence before it) is paired with a copy in which one token
is replaced by a sample from the base model's own top-20 next-token guesses, the original token excluded. The
position is uniform (``--slot any``) or the first token of the last word (``--slot last``: where this corpus
states a fact's value). A scalar head at the last token (EOS appended) is trained with Bradley-Terry on
(original > corrupted), the reward models' own read-out. Reported: how often it orders a canonical reference
answer above the same answer with a wrong value, for train-split and held-out facts
(:func:`rm_knowledge.fact_pairs`). ``--out`` gets the warmed backbone as a causal-LM folder, so the reward-model
stage can start from it. Throwaway research code for BENCHMARKS.md, not part of the product.
"""
from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def sentences(world, rng: random.Random) -> list[str]:
    from lmforge.world.corpus import pretrain_corpus

    out = []
    for doc in pretrain_corpus(world, 0):
        for para in doc.split("\n\n"):
            ss = [s for s in re.split(r"(?<=[.!?])\s+", para) if s]
            out += [(ss[i - 1] + " " if i and rng.random() < 0.5 else "") + s for i, s in enumerate(ss)]
    rng.shuffle(out)
    return out


@torch.no_grad()
def corrupt(lm, tok, texts: list[str], slot: str, rng: random.Random, eos: int, pad: int):
    gen = torch.Generator().manual_seed(0)  # the seed the BENCHMARKS figures ran with
    pairs = []
    for b in range(0, len(texts), 128):
        enc = [e for e in (tok(t, add_special_tokens=False)["input_ids"][:96] for t in texts[b:b + 128]) if len(e) >= 4]
        ids = torch.full((len(enc), max(map(len, enc))), pad)
        for i, e in enumerate(enc):
            ids[i, :len(e)] = torch.tensor(e)
        logits = lm(ids).logits
        for i, e in enumerate(enc):
            p = rng.randint(1, len(e) - 1)
            if slot == "last":
                starts = [j for j in range(1, len(e)) if tok.convert_ids_to_tokens(e[j]).startswith("\u0120")]
                p = starts[-1] if starts else p
            guess = logits[i, p - 1].clone()
            guess[e[p]] = -1e9
            top = torch.topk(guess, 20)
            new = int(top.indices[int(torch.multinomial(F.softmax(top.values, -1), 1, generator=gen))])
            pairs.append((e + [eos], e[:p] + [new] + e[p + 1:] + [eos]))
    return pairs



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=32, help="pairs per step")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--slot", choices=["any", "last"], default="last")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from transformers import AutoModelForSequenceClassification

    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.world import World
    from rm_knowledge import fact_pairs

    torch.manual_seed(0)
    rng, world, t0 = random.Random(0), World(0), time.time()
    tok, lm = load_tokenizer(args.base), load_causal_lm(args.base).eval()
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    pairs = corrupt(lm, tok, sentences(world, rng)[:args.steps * args.batch], args.slot, rng, eos, pad)
    print(f"{len(pairs)} pairs in {time.time() - t0:.0f} s", flush=True)
    model = AutoModelForSequenceClassification.from_pretrained(args.base, num_labels=1)
    model.config.pad_token_id = pad
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    def score(seqs: list[list[int]]) -> torch.Tensor:
        ids = torch.full((len(seqs), max(map(len, seqs))), pad)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), 1
        h = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return model.score(h[torch.arange(len(seqs)), mask.sum(1) - 1])[:, 0]

    model.train()
    for step in range(args.steps):
        batch = pairs[step * args.batch:(step + 1) * args.batch]
        s = score([a for a, _ in batch] + [b for _, b in batch])
        k = len(batch)
        loss = -F.logsigmoid(s[:k] - s[k:]).mean()
        scale = min(1.0, (step + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = args.lr * scale
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            right = float((s[:k] > s[k:]).float().mean())
            print(f"step {step} loss {loss.item():.3f} ordered {right:.3f} {time.time() - t0:.0f} s", flush=True)
    model.eval()
    with torch.no_grad():
        for split in ("train", "heldout"):
            fp = fact_pairs(world, split)
            good = score([tok(g, add_special_tokens=False)["input_ids"] + [eos] for _, g, _ in fp])
            bad = score([tok(b, add_special_tokens=False)["input_ids"] + [eos] for _, _, b in fp])
            print(f"{split} facts: reference > wrong value {float((good > bad).float().mean()):.3f} of {len(fp)}")
    clm = load_causal_lm(args.base)
    clm.model.load_state_dict(model.model.state_dict())
    clm.save_pretrained(args.out)
    tok.save_pretrained(args.out)
    print(f"saved {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
