"""The default backend: the lean decode loop of :mod:`.decode` (KV cache, left padding) per batch of rows.

:class:`RowSampler` turns each step's logits into tokens: it applies transformers' own processors (repetition
penalty, temperature, top-k, top-p, in the order ``generate`` uses), draws each row's token with that row's own
``torch.Generator``, records the token and its log-probability into preallocated tensors, and tells the loop
which rows go on (a stop token, the row's length limit; per-row Python only for rows that stream, have stop
strings or can be cancelled). Why not ``generate(do_sample=True)``: transformers samples every row from the
global RNG, so rows could not have their own seeds, and the log-probabilities it can return are of the raw
logits; why not ``generate`` at all: see :mod:`.decode`.

**The draw** is inverse-CDF sampling, batched: one uniform ``u`` per row per step from the row's own generator,
then token ``v`` is the first whose cumulative probability (float64) exceeds ``u`` times the total, which is
token ``v`` with probability exactly ``p_v`` (tokens with ``p_v = 0``, the top-k / top-p tail, are never chosen).
The cumulative sums and the search run once for the whole batch; only the ``B`` one-number draws are per row,
so a row's samples never depend on its batch-mates. (``torch.multinomial`` per row, as before, cost ~90 us a
call; the exponential race ``argmax log p - log E`` needs ``V`` draws per row per step and was ~5x slower.)

**Which log-probabilities.** ``logprobs[i]`` is log p(token) under the distribution the token was drawn from:
``log_softmax`` of the logits after the repetition penalty, divided by the temperature, with the top-k / top-p
tail set to ``-inf`` (so it is renormalised over the kept tokens). With top-k and top-p off and no repetition
penalty this is exactly ``log_softmax(logits / T)`` of a teacher-forced forward, which is what PPO's ratio
needs. Greedy rows (temperature 0) report the model's own distribution, ``log_softmax(logits)``.
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessorList
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .decode import decode
from .outputs import CANCELLED, LENGTH, STOP, STOP_STRING, Row, RowResult, stop_string_hit
from .params import SamplingParams


def left_pad(prompts: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, P]`` ids padded on the left and their attention mask (the tokenizer is never touched)."""
    rows = [torch.tensor(p, dtype=torch.long) for p in prompts]
    ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad, padding_side="left")
    lengths = torch.tensor([len(p) for p in prompts])
    mask = (torch.arange(ids.shape[1])[None, :] >= (ids.shape[1] - lengths)[:, None]).long()
    return ids.to(device), mask.to(device)


def warpers(params: SamplingParams) -> LogitsProcessorList:
    """transformers' processors for these settings, in ``generate``'s order (penalty, then T, top-k, top-p)."""
    out = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        if params.temperature != 1.0:
            out.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            out.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            out.append(TopPLogitsWarper(params.top_p))
    return out


class RowSampler:
    """One batch's sampling state: each row's generator, what it has produced, and whether it goes on.

    Called by :func:`.decode.decode` with the active rows' sequences and last logits; returns their next
    tokens and which of them continue (module doc)."""

    def __init__(self, rows: list[Row], params: SamplingParams, tokenizer, prompt_width: int, device):
        b, width = len(rows), max(r.max_new_tokens for r in rows)
        self.rows, self.params, self.tokenizer, self.prompt_width = rows, params, tokenizer, prompt_width
        self.warp = warpers(params)
        self.gens = None if params.greedy else [torch.Generator(device=device).manual_seed(r.seed) for r in rows]
        self.cdf_dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        self.tokens = torch.zeros((b, width), dtype=torch.long, device=device)
        self.logprobs = torch.zeros((b, width), dtype=torch.float32, device=device)
        k = params.top_logprobs
        self.top_ids = torch.zeros((b, width, k), dtype=torch.long, device=device) if k else None
        self.top_lps = torch.zeros((b, width, k), dtype=torch.float32, device=device) if k else None
        self.count = torch.zeros(b, dtype=torch.long, device=device)  # tokens recorded per row
        self.limit = torch.tensor([r.max_new_tokens for r in rows], device=device)
        most = max(1, max(len(r.stop_ids) for r in rows))
        self.stop_ids = torch.tensor([sorted(r.stop_ids) + [-1] * (most - len(r.stop_ids)) for r in rows],
                                     dtype=torch.long, device=device).view(b, most)
        self.stopped = torch.zeros(b, dtype=torch.bool, device=device)
        self.reason: list[str | None] = [None] * b
        for i, r in enumerate(rows):
            if r.cancelled is not None and r.cancelled.is_set():
                self.reason[i] = CANCELLED
        self.live = torch.tensor([x is None for x in self.reason], dtype=torch.bool, device=device)
        # rows that need Python each step: streaming, stop strings (decoded text), cancellation
        self.watched = {i for i, r in enumerate(rows) if r.on_token is not None or r.stop or r.cancelled is not None}
        self.so_far: dict[int, list[int]] = {i: [] for i in self.watched}  # their tokens, for stop strings
        self._active: tuple[torch.Tensor, list[int]] | None = None

    @property
    def done(self) -> bool:
        return not bool(self.live.any())

    def _row_list(self, rows: torch.Tensor) -> list[int]:
        if self._active is None or self._active[0] is not rows:  # rows change only when the loop compacts
            self._active = (rows, rows.tolist())
        return self._active[1]

    def _draw(self, logp: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.gens is None:
            return logp.argmax(dim=-1)
        u = torch.empty((logp.shape[0], 1), dtype=self.cdf_dtype, device=logp.device)
        for k, i in enumerate(self._row_list(rows)):  # each row's own stream: batch-mates never matter
            u[k].uniform_(generator=self.gens[i])
        cdf = torch.exp(logp.to(self.cdf_dtype)).cumsum_(-1)
        total = cdf[:, -1:]
        # u < 1, but u x total may round up to total: keep the target strictly below it, so the token found
        # always has p > 0
        target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
        return torch.searchsorted(cdf, target, right=True)[:, 0]

    def __call__(self, seq: torch.Tensor, logits: torch.Tensor, rows: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        t = seq.shape[1] - self.prompt_width
        logp = torch.log_softmax(self.warp(seq, logits.float()), dim=-1)
        chosen = self._draw(logp, rows)
        picked = logp.gather(1, chosen[:, None])[:, 0]
        self.tokens[rows, t] = chosen
        self.logprobs[rows, t] = picked
        if self.top_ids is not None:
            top = logp.topk(self.params.top_logprobs, dim=-1)
            self.top_ids[rows, t], self.top_lps[rows, t] = top.indices, top.values
        live = self.live[rows]
        self.count[rows] += live
        hit = live & (chosen[:, None] == self.stop_ids[rows]).any(-1)
        self.stopped[rows] |= hit
        going = live & ~hit
        if self.watched:
            going = self._watch(rows, chosen, picked, going)
        going &= self.count[rows] < self.limit[rows]
        self.live[rows] = going
        return chosen, going

    def _watch(self, rows: torch.Tensor, chosen: torch.Tensor, picked: torch.Tensor, going: torch.Tensor
               ) -> torch.Tensor:
        """Streaming, stop strings and cancels, for the rows that have them (in that order, per row)."""
        ids, lps, go = chosen.tolist(), picked.tolist(), going.tolist()
        for k, i in enumerate(self._row_list(rows)):
            if i not in self.watched or not go[k]:
                continue
            row = self.rows[i]
            if row.on_token is not None:
                row.on_token(ids[k], lps[k])
            self.so_far[i].append(ids[k])
            if row.stop and stop_string_hit(self.tokenizer, self.so_far[i], row.stop):
                self.reason[i], go[k] = STOP_STRING, False
            elif row.cancelled is not None and row.cancelled.is_set():
                self.reason[i], go[k] = CANCELLED, False
        return torch.tensor(go, dtype=torch.bool, device=going.device)

    def results(self) -> list[RowResult]:
        counts, stopped = self.count.tolist(), self.stopped.tolist()
        tokens, lps = self.tokens.tolist(), self.logprobs.tolist()
        top_ids = self.top_ids.tolist() if self.top_ids is not None else None
        top_lps = self.top_lps.tolist() if self.top_lps is not None else None
        out = []
        for i, n in enumerate(counts):
            reason = self.reason[i] or (STOP if stopped[i] else LENGTH)
            top = [list(zip(top_ids[i][j], top_lps[i][j])) for j in range(n)] if top_ids is not None else []
            out.append(RowResult(tokens[i][:n], lps[i][:n], top, reason))
        return out


class HFBackend:
    """Runs rows through :func:`.decode.decode`; the model stays the caller's (an RL trainer updates it in
    place)."""

    name = "hf"

    def __init__(self, model, tokenizer, stops: list[int], pad: int):
        self.model, self.tokenizer, self.stops, self.pad = model, tokenizer, stops, pad
        self.device = next(model.parameters()).device

    @property
    def context(self) -> int:
        return getattr(self.model.config, "max_position_embeddings", None) or 2048

    @torch.no_grad()
    def run(self, rows: list[Row], params: SamplingParams) -> list[RowResult]:
        ids, mask = left_pad([r.prompt_ids for r in rows], self.pad, self.device)
        sampler = RowSampler(rows, params, self.tokenizer, ids.shape[1], self.device)
        if sampler.done:
            return sampler.results()
        was_training = self.model.training
        self.model.eval()
        try:
            decode(self.model, ids, mask, max(r.max_new_tokens for r in rows), sampler)
        finally:
            if was_training:
                self.model.train()
        return sampler.results()

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy updated policy weights in (a no-op for a trainer that shares this very model)."""
        self.model.load_state_dict(state_dict, strict=False)
