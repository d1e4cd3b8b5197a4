"""The local judge: a Hugging Face causal LM scored by the log-probability of each verdict, no sampling.

Each query is rendered with the model's chat template (with the generation prompt), and the judge's answer is
read off the next-token distribution: log P("A") vs log P("B"), or log P("1") .. log P("7"). A choice also
counts in its space-prefixed spelling (" A") when that is a single token; its log-probability is the
log-sum-exp of its spellings. A choice that is several tokens long scores the sum of their log-probabilities
(one extra forward pass per spelling; single-token choices share one pass per prompt).
Prompts are batched with left padding (position ids from the attention mask, so padding changes nothing) and
left-truncated to the model's context when too long (counted in ``stats``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from ...errors import InputError
from ...models.logprobs import IGNORE, token_logprobs
from ...models.tokens import pad_id
from .core import logsumexp
from .prompts import Query


class LocalBackend:
    def __init__(self, model, tokenizer, *, name: str = "local", batch_size: int = 8,
                 max_length: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        ctx = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_length = max_length or min(ctx, 8192)
        self.device = next(model.parameters()).device
        self.pad_id = pad_id(tokenizer, fallback=0)  # left padding is masked: any id will do
        self.stats: Counter = Counter()
        self._spellings: dict[tuple[str, ...], dict[str, list[list[int]]]] = {}

    @classmethod
    def load(cls, name_or_path: str, *, dtype: str = "float32", device: str = "auto", batch_size: int = 8,
             max_length: int | None = None) -> LocalBackend:
        from ...models.load import load_causal_lm, load_tokenizer

        device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = load_tokenizer(name_or_path)
        model = load_causal_lm(name_or_path, dtype).to(device)
        return cls(model, tokenizer, name=str(name_or_path), batch_size=batch_size, max_length=max_length)

    # ------------------------------------------------------------------ prompts

    def render(self, query: Query) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(query.messages, tokenize=False, add_generation_prompt=True)
        else:  # a base model: the plain question, then the answer slot
            self.stats["prompts without a chat template"] += 1
            text = "\n\n".join(m["content"] for m in query.messages) + "\n\nAnswer:"
        return tok(text, add_special_tokens=False)["input_ids"]

    def spellings(self, choices: tuple[str, ...]) -> dict[str, list[list[int]]]:
        """Token sequences per choice: the choice itself, and its space-prefixed form when that is one token of
        its own (a bare space token followed by the choice is not how a model answers)."""
        if choices not in self._spellings:
            out = {}
            for c in choices:
                seqs: list[list[int]] = []
                for form in (c, " " + c):
                    ids = self.tokenizer(form, add_special_tokens=False)["input_ids"]
                    if ids and ids not in seqs and (form == c or len(ids) == 1):
                        seqs.append(ids)
                if not seqs:
                    raise InputError(f"the judge's tokenizer cannot spell the verdict {c!r}")
                out[c] = seqs
            taken = [tuple(s) for seqs in out.values() for s in seqs]
            if len(set(taken)) != len(taken):
                raise InputError(f"the judge's tokenizer spells two verdicts of {', '.join(choices)} the same")
            self._spellings[choices] = out
        return self._spellings[choices]

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def _end_logprobs(self, seqs: list[list[int]], ends: list[list[list[int]]]) -> torch.Tensor:
        """``[len(seqs), n_last, K]``: ``[r, j, k]`` is log P(``ends[r][j][k]``) at the j-th of the last
        ``len(ends[r])`` positions of sequence r (n_last, K: the most of any row; unused slots are 0)."""
        width = max(len(s) for s in seqs)
        n_last = max(len(e) for e in ends)
        k = max(len(c) for e in ends for c in e)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        targets = torch.full((len(seqs), width, k), IGNORE, dtype=torch.long)
        for r, (s, e) in enumerate(zip(seqs, ends, strict=True)):
            ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
            for j, cands in enumerate(e):
                targets[r, width - len(e) + j, :len(cands)] = torch.tensor(cands, dtype=torch.long)
        ids, mask = ids.to(self.device), mask.to(self.device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        lp = token_logprobs(self.model, ids, targets.to(self.device), attention_mask=mask,
                            position_ids=position_ids)
        return lp[:, -n_last:].cpu()

    def _fit(self, ids: list[int], extra: int) -> list[int]:
        room = self.max_length - extra
        if len(ids) > room:
            self.stats["truncated prompts"] += 1
            return ids[len(ids) - room:]
        return ids

    def answer(self, queries: Sequence[Query]) -> list[dict[str, float]]:
        """log P(choice | rendered prompt) for every choice of every query."""
        out: list[dict[str, float]] = [{} for _ in queries]
        # jobs: (query index, choice, token sequence scored at its end, target tokens)
        jobs: list[tuple[int, str, list[int], list[int]]] = []
        single: list[tuple[int, list[int], dict[str, list[int]]]] = []
        for qi, q in enumerate(queries):
            spell = self.spellings(tuple(q.choices))
            prompt = self.render(q)
            if all(len(s) == 1 for seqs in spell.values() for s in seqs):
                single.append((qi, self._fit(prompt, 0), {c: [s[0] for s in seqs] for c, seqs in spell.items()}))
            else:
                for c, seqs in spell.items():
                    for s in seqs:
                        jobs.append((qi, c, self._fit(prompt, len(s) - 1) + s[:-1], s))
        self.stats["queries"] += len(queries)
        parts: dict[int, dict[str, list[float]]] = {qi: {} for qi in range(len(queries))}
        single.sort(key=lambda j: len(j[1]))
        for start in range(0, len(single), self.batch_size):
            chunk = single[start:start + self.batch_size]
            cands = [[t for toks in ids.values() for t in toks] for _, _, ids in chunk]
            lp = self._end_logprobs([seq for _, seq, _ in chunk], [[c] for c in cands])[:, -1, :]
            for row, (qi, _, ids) in enumerate(chunk):
                at = 0
                for c, toks in ids.items():
                    parts[qi][c] = lp[row, at:at + len(toks)].tolist()
                    at += len(toks)
        jobs.sort(key=lambda j: (len(j[3]), len(j[2])))
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start:start + self.batch_size]
            n = max(len(t) for *_, t in chunk)
            lp = self._end_logprobs([seq for _, _, seq, _ in chunk], [[[t] for t in target] for *_, target in chunk])
            for row, (qi, c, _, target) in enumerate(chunk):
                pos = lp[row, n - len(target):, 0]
                parts[qi].setdefault(c, []).append(float(sum(pos[t] for t in range(len(target)))))
        for qi, per_choice in parts.items():
            out[qi] = {c: logsumexp(v) for c, v in per_choice.items()}
        self.stats["verdicts from log-probabilities"] += len(queries)
        return out

