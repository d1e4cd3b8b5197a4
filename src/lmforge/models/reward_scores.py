"""Reward-model forwards: ``[N, heads]`` scores of a padded batch or of a prefix-shared packed batch, for either
head — callers never ask which: a scalar head's outputs, or a generative verifier's verdict log-odds
(:mod:`lmforge.models.verdict`: one column, or with per-criterion verdicts ``[reward, *criteria]`` like a scalar
model's criterion heads) read off the LM's next-token logits at the verdict's last token. A pairwise verifier
(:mod:`lmforge.models.verdict_pairwise`) scores two responses together: :meth:`RewardScorer.compare` /
:meth:`RewardScorer.rank`.

The padded path is the model's own forward (``transformers`` reads each sequence's score at its rightmost
non-pad token). The packed path (:mod:`lmforge.data.reward_pack` builds the rows and the mask) forwards each
prompt once for all of its responses and reads every sequence's score where the padded path reads it. Both run
length-sorted in chunks of at most ``chunk_tokens`` padded tokens (:func:`lmforge.models.chunked.length_chunks`).
"""
from __future__ import annotations

import torch

from ..data.reward_encode import Encoded, collate, encode
from ..data.reward_pack import additive, pack, prefix_mask
from ..errors import InputError
from .chunked import length_chunks, unsort
from .verdict import combine_criteria, output_head, readout, verdict_of, verdict_reward


def head_names(model) -> list[str]:
    """The name of each score column, in order: ``reward``, then each criterion's (a scalar model's
    ``config.id2label``; a generative verifier's verdict names)."""
    verdict = verdict_of(model)
    if verdict is not None:
        return verdict.names
    return [model.config.id2label[i] for i in range(int(model.config.num_labels))]


def forward_scores(model, batch: dict[str, torch.Tensor], chunk_tokens: int | None = None) -> torch.Tensor:
    """``[N, 1 + criteria]`` head outputs (column 0 is the reward): those of one padded forward pass, run in
    length-sorted chunks (the same scores and gradients, no work on short rows' padding). A packed batch
    (:func:`lmforge.data.reward_pack.pack`: it has ``score_row``) goes through :func:`packed_scores`."""
    if verdict_of(model) is not None:
        return generative_scores(model, batch, chunk_tokens)[0]
    if "score_row" in batch:
        return packed_scores(model, batch, chunk_tokens)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch]
    order, chunks = length_chunks(batch["attention_mask"].sum(-1), batch["input_ids"].shape[1], chunk_tokens)
    if order is None:
        return model(**{k: batch[k] for k in keys}).logits.float()
    parts = [model(**{k: batch[k][idx.to(batch[k].device), :width] for k in keys}).logits.float()
             for idx, width in chunks]
    return unsort(torch.cat(parts), order)


def _dtype(model) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _head(model) -> torch.nn.Module:
    """The model's scalar head (``score``), through DDP and PEFT wrappers."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner.score


def packed_scores(model, batch: dict[str, torch.Tensor], chunk_tokens: int | None = None) -> torch.Tensor:
    """``[N, heads]`` scores of a packed batch, sequence i's at row ``score_row[i]``, column ``score_col[i]``.

    The model's own forward runs (so DDP / FSDP hooks and LoRA apply as usual) with the 4-D mask and position
    ids; a forward hook on its head keeps the per-token head outputs (``score`` is applied to every position of
    the final hidden states), and its pooled output — read at each row's last non-pad token — is ignored.
    """
    ids, pos, seg, part = batch["input_ids"], batch["position_ids"], batch["pack_seg"], batch["pack_part"]
    width = ids.shape[1]
    order, chunks = length_chunks(batch["pack_len"], width, chunk_tokens)
    head, dtype = _head(model), _dtype(model)
    parts: list[torch.Tensor] = []
    for idx, longest in chunks:
        idx = idx.to(ids.device) if isinstance(idx, torch.Tensor) else idx
        kept: list[torch.Tensor] = []
        handle = head.register_forward_hook(lambda _m, _i, out, kept=kept: kept.append(out))
        try:
            model(input_ids=ids[idx, :longest], position_ids=pos[idx, :longest],
                  attention_mask=additive(prefix_mask(seg[idx, :longest], part[idx, :longest]), dtype))
        finally:
            handle.remove()
        parts.append(torch.nn.functional.pad(kept[-1], (0, 0, 0, width - longest)))
    logits = unsort(torch.cat(parts), order)  # rows back in batch order
    return logits[batch["score_row"], batch["score_col"]].float()


def check_sharing(model, groups, pad_id: int, row_tokens: int, chunk_tokens: int | None = None,
                  n_groups: int = 4) -> tuple[bool, str]:
    """(usable, why): the model has a per-token ``score`` head and an attention implementation that takes a
    4-D mask, and the packed scores of the first ``n_groups`` groups (eval mode, no gradients) equal the
    padded ones — the architecture honours ``position_ids`` and the mask, so sharing is exact for it."""
    if verdict_of(model) is None:
        try:
            _head(model)
        except AttributeError:
            return False, "off (the model has no per-token score head)"
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in ("sdpa", "eager", None):
        return False, f"off (attention implementation {impl!r} is not checked with a 4-D mask)"
    sample = [g.encoded for g in groups[:n_groups] if g.encoded]
    if not sample:
        return False, "off (no training sequences)"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            padded = forward_scores(model, collate([e for rows in sample for e in rows], pad_id))
            packed = forward_scores(model, pack(sample, pad_id, row_tokens), chunk_tokens)
    finally:
        model.train(was_training)
    tol = 1e-4 if _dtype(model) == torch.float32 else 3e-2
    err = float((padded - packed).abs().max())
    if err > tol * max(1.0, float(padded.abs().max())):
        return False, f"off (packed scores differ from padded ones by {err:.2g} on this model)"
    return True, f"on (checked on {len(sample)} groups: max score difference {err:.1g})"


# ----------------------------------------------------------------------------------------- generative head

def _final_hidden(model, head: torch.nn.Module, **inputs) -> torch.Tensor:
    """``[B, T, H]`` final hidden states from the model's own forward (DDP / LoRA apply as usual): a pre-hook
    on the output layer keeps its input and hands it one position, so the ``[B, T, V]`` logits are never
    computed — only the rows the verdict and the LM loss need are (:func:`lmforge.models.verdict.readout`)."""
    kept: list[torch.Tensor] = []

    def grab(_m, args):
        kept.append(args[0])
        return (args[0][:, :1],)

    handle = head.register_forward_pre_hook(grab)
    try:
        model(**inputs, use_cache=False)
    finally:
        handle.remove()
    return kept[-1]


def _token_logprobs(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
    """Log-probabilities of the positions with a target >= 0 (logits of those rows only)."""
    sel = targets >= 0
    logits = head(hidden[sel]).float()
    return -torch.nn.functional.cross_entropy(logits, targets[sel], reduction="none")


def generative_scores(model, batch: dict[str, torch.Tensor], chunk_tokens: int | None = None,
                      lm_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``([N, 1] rewards, summed response NLL, NLL tokens)`` of a padded or packed batch.

    The reward is :func:`lmforge.models.verdict.verdict_reward`: the verdict log-odds, read for padded rows at
    each row's last real token (``attention_mask`` sum - 1) and for packed rows at ``score_row`` /
    ``score_col`` (4-D block mask and position ids, as :func:`packed_scores`), plus β times each response's
    mean token log-probability when the verdict has a ``likelihood_weight``. Both layouts run in the same
    length-sorted chunks; the NLL (``lm_loss``; else 0) is over the same ``lm_targets`` response tokens."""
    verdict, head = verdict_of(model), output_head(model)
    ids = batch["input_ids"]
    packed = "score_row" in batch
    width = ids.shape[1]
    lengths = batch["pack_len"] if packed else batch["attention_mask"].sum(-1)
    order, chunks = length_chunks(lengths, width, chunk_tokens)
    beta = verdict.likelihood_weight
    targets = batch.get("lm_targets") if (lm_loss or beta) else None
    branch_of = batch.get("branch_of")  # several verdicts per sequence: one score per (sequence, branch)
    n_read = len(batch["score_row"]) if packed else ids.shape[0]
    n_seq = int(branch_of.max()) + 1 if branch_of is not None and len(branch_of) else n_read
    lp_sum = torch.zeros(n_seq, device=ids.device)
    lp_n = torch.zeros(n_seq, device=ids.device)
    parts: list[torch.Tensor] = []
    for idx, longest in chunks:
        idx = idx.to(ids.device) if isinstance(idx, torch.Tensor) else idx
        if packed:
            dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
            sub = batch["pack_sub"][idx, :longest] if "pack_sub" in batch else None
            mask = additive(prefix_mask(batch["pack_seg"][idx, :longest], batch["pack_part"][idx, :longest], sub),
                            dtype)
            h = _final_hidden(model, head, input_ids=ids[idx, :longest], attention_mask=mask,
                              position_ids=batch["position_ids"][idx, :longest])
            parts.append(torch.nn.functional.pad(h, (0, 0, 0, width - longest)))
        else:
            am = batch["attention_mask"][idx, :longest]
            h = _final_hidden(model, head, input_ids=ids[idx, :longest], attention_mask=am)
            last = (am.sum(-1) - 1).clamp(min=0)
            parts.append(h[torch.arange(h.shape[0], device=h.device), last])
        if targets is not None:
            tgt = targets[idx, :longest]
            lp = _token_logprobs(h, tgt, head)
            seq = batch["lm_seq"][idx, :longest][tgt >= 0]
            lp_sum = lp_sum.index_add(0, seq, lp)
            lp_n = lp_n.index_add(0, seq, torch.ones_like(lp))
    hidden = unsort(torch.cat(parts), order)
    if packed:
        hidden = hidden[batch["score_row"], batch["score_col"]]
    mean_lp = lp_sum / lp_n.clamp(min=1)
    if verdict.mode == "pairwise":  # [branches, 1]: ℓ(x; first, second) of every (trunk, branch) read
        return readout(hidden, head, verdict.yes_id, verdict.no_id).float().unsqueeze(-1), -lp_sum.sum(), 0
    if verdict.mode == "criteria":  # [N, C] criterion log-odds (+ β m each), their weighted mean in column 0
        c = len(verdict.criteria)
        per = hidden.view(n_seq, c, -1)
        odds = torch.stack([readout(per[:, k], head, v["yes_id"], v["no_id"]).float()
                            for k, v in enumerate(verdict.criteria)], -1)
        cols = verdict_reward(odds, mean_lp.unsqueeze(-1), beta)
        w = torch.tensor([v["weight"] for v in verdict.criteria], device=cols.device)
        return torch.cat([combine_criteria(cols, w).unsqueeze(-1), cols], -1), -lp_sum.sum(), int(lp_n.sum())
    odds = readout(hidden, head, verdict.yes_id, verdict.no_id).float()
    reward = verdict_reward(odds, mean_lp, beta)
    return reward.unsqueeze(-1), -lp_sum.sum(), int(lp_n.sum())


# ----------------------------------------------------------------------------------------- scoring texts

@torch.no_grad()
def score_encoded(model, rows: list[Encoded], pad_id: int, batch_size: int = 32,
                  chunk_tokens: int | None = None) -> torch.Tensor:
    """``[N, heads]`` scores for encoded sequences, batched by length (longest first) to pad little."""
    device = next(model.parameters()).device
    lengths = torch.tensor([len(r.input_ids) for r in rows], dtype=torch.long)
    _, chunks = length_chunks(lengths, int(lengths.max()) if rows else 0, chunk_tokens, max_rows=batch_size)
    out: torch.Tensor | None = None
    was_training = model.training
    model.eval()
    try:
        for idx, _ in chunks:  # each chunk collated to its own longest row
            batch = {k: v.to(device) for k, v in collate([rows[j] for j in idx.tolist()], pad_id).items()}
            scores = forward_scores(model, batch).cpu()
            if out is None:
                out = torch.zeros(len(rows), scores.shape[1])
            out[idx] = scores
    finally:
        model.train(was_training)
    return out if out is not None else torch.zeros(0, 1)


@torch.no_grad()
def branch_scores(model, rows: list[Encoded], pad_id: int, batch_size: int = 32,
                  chunk_tokens: int | None = None) -> torch.Tensor:
    """Pairwise verdicts: ``[Σ branches]`` log-odds of every branch of every row (row-major), padded rows in
    chunks of about ``batch_size`` branches (each (trunk, branch) a row of its own: the padded path)."""
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        start = 0
        while start < len(rows):
            end, n = start, 0
            while end < len(rows) and (n == 0 or n + len(rows[end].branches) <= batch_size):
                n += len(rows[end].branches)
                end += 1
            batch = {k: v.to(device) for k, v in collate(rows[start:end], pad_id).items()}
            out.append(generative_scores(model, batch, chunk_tokens)[0][:, 0].cpu())
            start = end
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


class RewardScorer:
    """A trained reward model of either head, loaded once: ``score(prompts, responses)`` gives ``[N, heads]``
    (column 0 the reward; a generative model has its verdict log-odds, or with per-criterion verdicts the
    combined reward then each criterion's), built exactly as the model was trained (input format, truncation, verdict suffix from the saved meta). ``normalize`` maps rewards to
    ``(r - reward_mean) / reward_std`` of the training responses."""

    def __init__(self, model_dir, dtype: str = "float32", device: str | torch.device | None = None):
        from .reward import load_reward_model

        self.model, self.tokenizer, self.meta = load_reward_model(model_dir, dtype)
        if device is not None:
            self.model.to(device)
        self.verdict = verdict_of(self.model)
        self.names = head_names(self.model)
        self.truncated = 0

    @property
    def n_heads(self) -> int:
        return int(self.model.config.num_labels) if self.verdict is None else len(self.verdict.names)

    def encode(self, prompt, response: str) -> Encoded:
        from ..data.preference import as_messages

        if self.pairwise:
            raise InputError("a pairwise reward model reads two responses together: use compare / rank",
                             field="model.verdict.mode")
        branches = self.verdict.branches if self.verdict is not None else None
        e = encode(self.tokenizer, self.meta.input_format, as_messages(prompt), response, self.meta.max_length,
                   self.meta.suffix_ids, branches)
        self.truncated += e.truncated
        return e

    def score(self, prompts, responses: list[str], batch_size: int = 32, chunk_tokens: int | None = None,
              references: list[str] | None = None) -> torch.Tensor:
        """``[N, heads]`` scores. A pairwise model has no score of one response alone: with ``references``
        (one per row) column 0 is :meth:`compare` of each response against its reference (> 0: better than
        it); without, an error says to use :meth:`compare` / :meth:`rank` or pass references."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
        if self.pairwise:
            if references is None:
                raise InputError("a pairwise reward model compares two responses: score against references "
                                 "(score(..., references=...)), or use compare(prompt, a, b) / rank(prompt, "
                                 "responses); a pointwise model (verdict.mode single or criteria) scores alone",
                                 field="model.verdict.mode")
            return self.compare(prompts, responses, references, batch_size, chunk_tokens).unsqueeze(-1)
        rows = [self.encode(p, r) for p, r in zip(prompts, responses)]
        return score_encoded(self.model, rows, self.tokenizer.pad_token_id, batch_size, chunk_tokens)

    # ------------------------------------------------------------------ pairwise verdicts

    @property
    def pairwise(self) -> bool:
        return self.verdict is not None and self.verdict.mode == "pairwise"

    def _orders(self, prompt, responses: list[str], ordered: dict[int, list[int]], batch_size: int,
                chunk_tokens: int | None) -> torch.Tensor:
        """``[K, K]`` ``ℓ(x; i, j)`` of the ordered pairs in ``ordered`` (NaN elsewhere)."""
        from ..data.preference import as_messages
        from .verdict_pairwise import log_odds_matrix, pair_encoded, pair_pieces

        if not self.pairwise:
            raise InputError("compare / rank need a pairwise reward model (model.verdict.mode=pairwise); a "
                             "pointwise model compares by score(...)[:, 0]", field="model.verdict.mode")
        p, resp, cut = pair_pieces(self.tokenizer, self.verdict, as_messages(prompt), responses,
                                   self.meta.max_length)
        self.truncated += int(cut)
        enc = pair_encoded(self.verdict, p, resp, ordered, cut)
        flat = branch_scores(self.model, [e for *_, e in enc], self.tokenizer.pad_token_id, batch_size,
                             chunk_tokens)
        return log_odds_matrix(flat, enc, len(responses))

    def compare(self, prompts, a, b, batch_size: int = 32, chunk_tokens: int | None = None):
        """The log-odds that ``a`` is better than ``b``, both orders averaged (:func:`lmforge.algos.pairwise.
        both_orders`): a float for one (prompt, a, b), a ``[N]`` tensor for lists."""
        from ..algos.pairwise import both_orders

        one = isinstance(a, str)
        prompts, a, b = ([prompts], [a], [b]) if one else (prompts, a, b)
        if not len(prompts) == len(a) == len(b):
            raise ValueError(f"{len(prompts)} prompts for {len(a)} and {len(b)} responses")
        out = torch.zeros(len(a))
        for n, (p, x, y) in enumerate(zip(prompts, a, b)):
            L = self._orders(p, [x, y], {0: [1], 1: [0]}, batch_size, chunk_tokens)
            out[n] = both_orders(L[0, 1], L[1, 0])
        return float(out[0]) if one else out

    def rank(self, prompt, responses: list[str], method: str = "bradley_terry", batch_size: int = 32,
             chunk_tokens: int | None = None) -> tuple[list[int], torch.Tensor]:
        """(indices best first, strengths) of K responses from all K(K-1) ordered verdicts:
        ``method="bradley_terry"`` fits strengths to the both-orders log-odds, ``"copeland"`` counts round-robin
        wins minus losses (:mod:`lmforge.algos.pairwise`). Ties in strength keep the input order."""
        from ..algos.pairwise import bradley_terry_fit, copeland

        if method not in ("bradley_terry", "copeland"):
            raise InputError(f"unknown ranking method {method!r} (bradley_terry or copeland)", field="method")
        if len(responses) < 2:
            return list(range(len(responses))), torch.zeros(len(responses))
        M = self.preferences(prompt, responses, batch_size, chunk_tokens)
        s = bradley_terry_fit(M) if method == "bradley_terry" else copeland(M)
        return sorted(range(len(responses)), key=lambda i: (-float(s[i]), i)), s

    def ordered_verdicts(self, prompt, responses: list[str], batch_size: int = 32,
                         chunk_tokens: int | None = None) -> torch.Tensor:
        """``[K, K]`` ``L_ij = ℓ(x; i, j)``: the verdict log-odds that the response shown first (i) is the better,
        for every ordered pair (diagonal NaN); both orders of a pair disagree when ``L_ij`` and ``L_ji`` have
        the same sign (position bias)."""
        from .verdict_pairwise import all_orders

        return self._orders(prompt, responses, all_orders(len(responses)), batch_size, chunk_tokens)

    def preferences(self, prompt, responses: list[str], batch_size: int = 32, chunk_tokens: int | None = None
                    ) -> torch.Tensor:
        """``[K, K]`` ``M_ij = r(i ≻ j)``, both orders averaged, from all K(K-1) ordered verdicts (what
        :meth:`rank` fits; the judge reads ``σ(M_ij)`` as the probability that i beats j)."""
        from ..algos.pairwise import preference_matrix

        return preference_matrix(self.ordered_verdicts(prompt, responses, batch_size, chunk_tokens))

    def normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        return (rewards - self.meta.reward_mean) / self.meta.reward_std


def score_texts(model_dir, prompts, responses: list[str], batch_size: int = 32) -> torch.Tensor:
    """``[N, heads]`` scores of (prompt, response) pairs by the reward model in ``model_dir`` (either head;
    a prompt is a string or a list of chat messages ending with a user turn)."""
    return RewardScorer(model_dir).score(prompts, responses, batch_size)
