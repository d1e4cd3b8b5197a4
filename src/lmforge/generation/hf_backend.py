"""The default backend: one ``transformers`` ``generate`` call (KV cache, left padding) per batch of rows.

``generate`` runs greedy search while :class:`SampleAndRecord`, its last logits processor, does the sampling:
it applies transformers' own processors (repetition penalty, temperature, top-k, top-p, in the order
``generate`` itself uses), draws each row's token from that row's own ``torch.Generator``, records the token's
log-probability, and returns scores that are ``-inf`` everywhere but the chosen token, so greedy search
appends exactly it. Why not ``do_sample=True``: transformers samples every row from the global RNG, so rows
could not have their own seeds, and the log-probabilities it can return are of the raw logits.

**Which log-probabilities.** ``logprobs[i]`` is log p(token) under the distribution the token was drawn from:
``log_softmax`` of the logits after the repetition penalty, divided by the temperature, with the top-k / top-p
tail set to ``-inf`` (so it is renormalised over the kept tokens). With top-k and top-p off and no repetition
penalty this is exactly ``log_softmax(logits / T)`` of a teacher-forced forward, which is what PPO's ratio
needs. Greedy rows (temperature 0) report the model's own distribution, ``log_softmax(logits)``.
"""
from __future__ import annotations

import math

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.stopping_criteria import StoppingCriteriaList

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


class BatchState:
    """Per-row results and done flags, shared by the sampler (which appends) and the stopper (which ends)."""

    def __init__(self, rows: list[Row], tokenizer):
        self.rows, self.tokenizer = rows, tokenizer
        self.results = [RowResult() for _ in rows]
        self.done = [r.cancelled is not None and r.cancelled.is_set() for r in rows]
        for res, d in zip(self.results, self.done):
            if d:
                res.finish_reason = CANCELLED

    def end(self, i: int, reason: str) -> None:
        self.done[i] = True
        self.results[i].finish_reason = reason


class SampleAndRecord(LogitsProcessor):
    """Draw each live row's next token with its own generator and record its log-probability (module doc)."""

    def __init__(self, state: BatchState, params: SamplingParams, device):
        self.state, self.params = state, params
        self.warp = warpers(params)
        self.gens = [torch.Generator(device=device).manual_seed(r.seed) for r in state.rows]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = self.warp(input_ids, scores.float())
        logp = torch.log_softmax(scores, dim=-1)
        live = [i for i, d in enumerate(self.state.done) if not d]
        if self.params.greedy:
            chosen = logp.argmax(dim=-1)
        else:
            probs = logp.exp()
            chosen = torch.zeros(len(logp), dtype=torch.long, device=logp.device)
            for i in live:  # one draw per row from its own stream, so a row's samples ignore its batch-mates
                chosen[i] = torch.multinomial(probs[i], 1, generator=self.gens[i])[0]
        picked = logp.gather(1, chosen[:, None])[:, 0].tolist()
        top = logp.topk(self.params.top_logprobs, dim=-1) if self.params.top_logprobs else None
        ids = chosen.tolist()
        for i in live:
            res = self.state.results[i]
            res.token_ids.append(ids[i])
            res.logprobs.append(picked[i])
            if top is not None:
                res.top.append(list(zip(top.indices[i].tolist(), top.values[i].tolist())))
        out = torch.full_like(scores, -math.inf)
        out.scatter_(1, chosen[:, None], 0.0)
        return out


class RowStops(StoppingCriteria):
    """Ends each row at a stop token, a stop string, a cancel or its own length limit."""

    def __init__(self, state: BatchState):
        self.state = state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        st = self.state
        for i, row in enumerate(st.rows):
            if st.done[i]:
                continue
            res = st.results[i]
            last = res.token_ids[-1]
            if last in row.stop_ids:
                st.end(i, STOP)
                continue
            if row.on_token is not None:
                row.on_token(last, res.logprobs[-1])
            if row.stop and stop_string_hit(st.tokenizer, res.token_ids, row.stop):
                st.end(i, STOP_STRING)
            elif row.cancelled is not None and row.cancelled.is_set():
                st.end(i, CANCELLED)
            elif len(res.token_ids) >= row.max_new_tokens:
                st.end(i, LENGTH)
        return torch.tensor(st.done, dtype=torch.bool, device=input_ids.device)


class HFBackend:
    """Runs rows through ``model.generate``; the model stays the caller's (an RL trainer updates it in place)."""

    name = "hf"

    def __init__(self, model, tokenizer, stops: list[int], pad: int):
        self.model, self.tokenizer, self.stops, self.pad = model, tokenizer, stops, pad
        self.device = next(model.parameters()).device

    @property
    def context(self) -> int:
        return getattr(self.model.config, "max_position_embeddings", None) or 2048

    @torch.no_grad()
    def run(self, rows: list[Row], params: SamplingParams) -> list[RowResult]:
        state = BatchState(rows, self.tokenizer)
        if all(state.done):
            return state.results
        ids, mask = left_pad([r.prompt_ids for r in rows], self.pad, self.device)
        config = GenerationConfig(max_new_tokens=max(r.max_new_tokens for r in rows), do_sample=False,
                                  num_beams=1, repetition_penalty=1.0, eos_token_id=self.stops or None,
                                  pad_token_id=self.pad)
        was_training = self.model.training
        self.model.eval()
        try:
            self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                logits_processor=LogitsProcessorList([SampleAndRecord(state, params, self.device)]),
                                stopping_criteria=StoppingCriteriaList([RowStops(state)]))
        finally:
            if was_training:
                self.model.train()
        return state.results

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy updated policy weights in (a no-op for a trainer that shares this very model)."""
        self.model.load_state_dict(state_dict, strict=False)
