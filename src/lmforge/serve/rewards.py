"""``POST /v1/rewards``: a trained ``lmforge rm`` reward model served beside the chat models
(``lmforge serve MODEL --reward-model [NAME=]RM_FOLDER``), an lmforge extension to the OpenAI API.

The model is read through :class:`lmforge.models.reward_scores.RewardScorer`, the path of ``lmforge rm score``,
RL rewards and ``lmforge judge --model``: a generative verifier asks the verdict question saved with it
(``reward.json``) and a scalar model reads its head, so a client gets the numbers those commands would.

Request: ``{"model": NAME, "messages": [... ending with a user turn], "responses": ["...", ...]}`` (1 to
:data:`MAX_RESPONSES` responses to that conversation). Answer::

    {"object": "list", "model": NAME, "head": "scalar" | "generative", "verdict": "single" | "criteria" |
     "pairwise" | null, "data": [{"object": "reward", "index": i, "reward": r, "normalized": z,
     "criteria": {name: score, ...}}, ...], "truncated": n}

- pointwise models (a scalar head, a verifier in ``single`` / ``criteria`` mode): ``reward`` is column 0 of
  :meth:`RewardScorer.score` (a verifier's log P(yes) - log P(no), combined over criteria when it has several),
  ``normalized`` is ``(r - reward_mean) / reward_std`` of the training responses (what RL's reward term reads),
  ``criteria`` the per-criterion columns;
- a pairwise verifier (two or more responses): ``reward`` is each response's Bradley–Terry strength fitted to
  both orders of every pair (:meth:`RewardScorer.rank`), ``normalized`` null, and the answer also carries
  ``preferences``, the ``[K, K]`` both-orders log-odds that i beats j.

Scoring holds one of the server's admission slots (429 when all are taken, as for completions) and runs in a
worker thread, one request at a time per reward model; errors use OpenAI's error shape.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from .protocol import APIError

MAX_RESPONSES = 64


class RewardMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str


class RewardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[RewardMessage] = Field(min_length=1)
    responses: list[str] = Field(min_length=1, max_length=MAX_RESPONSES)


class RewardService:
    """One loaded reward model under a served name; :meth:`score` is blocking (called in a worker thread)."""

    def __init__(self, name: str, scorer, batch_size: int = 16):
        self.name, self.scorer, self.batch_size = name, scorer, batch_size
        self.lock = threading.Lock()  # one scoring pass at a time: the model is not shared across threads
        verdict = scorer.verdict
        self.head = "generative" if verdict is not None else "scalar"
        self.mode = verdict.mode if verdict is not None else None

    @classmethod
    def load(cls, name: str, path: str | Path, *, dtype: str = "float32", device: str = "auto") -> RewardService:
        from ..rewards.model_reward import load_scorer

        return cls(name, load_scorer(path, dtype=dtype, device=device))

    def score(self, messages: list[dict[str, str]], responses: list[str]) -> dict[str, Any]:
        import torch

        from ..algos.pairwise import bradley_terry_fit

        with self.lock, torch.inference_mode():
            before = self.scorer.truncated
            out: dict[str, Any] = {"object": "list", "model": self.name, "head": self.head, "verdict": self.mode}
            if self.scorer.pairwise:
                if len(responses) < 2:
                    raise APIError(400, "a pairwise reward model compares responses: send two or more",
                                   "responses")
                M = self.scorer.preferences(messages, responses, self.batch_size)
                strengths = bradley_terry_fit(M)
                out["data"] = [{"object": "reward", "index": i, "reward": float(s), "normalized": None,
                                "criteria": {}} for i, s in enumerate(strengths.tolist())]
                out["preferences"] = [[round(float(x), 6) for x in row] for row in M.tolist()]
            else:
                s = self.scorer.score([messages] * len(responses), responses, self.batch_size).float()
                z = self.scorer.normalize(s[:, 0])
                names = self.scorer.names[1:]  # column 0 is the reward; the rest its criteria, if any
                out["data"] = [{"object": "reward", "index": i, "reward": float(s[i, 0]),
                                "normalized": float(z[i]),
                                "criteria": {n: float(s[i, c + 1]) for c, n in enumerate(names)}}
                               for i in range(len(responses))]
            out["truncated"] = self.scorer.truncated - before
        return out


def add_reward_routes(app: FastAPI, services: list[RewardService], slot) -> None:
    """``POST /v1/rewards`` over ``services`` (distinct names); ``slot()`` is the server's admission slot."""
    from .engine import Busy

    by_name = {s.name: s for s in services}

    @app.post("/v1/rewards")
    async def rewards(req: RewardRequest) -> dict[str, Any]:
        if req.model not in by_name:
            names = ", ".join(repr(n) for n in by_name) or "none"
            raise APIError(404, f"the reward model {req.model!r} is not served (reward models: {names}; add one "
                                "with lmforge serve --reward-model)", "model", "model_not_found")
        messages = [m.model_dump() for m in req.messages]
        if messages[-1]["role"] != "user":
            raise APIError(400, "messages must end with a user turn: the responses answer it", "messages")
        held = slot()
        try:
            held.__enter__()
        except Busy as e:
            raise APIError(429, str(e), code="queue_full", type="rate_limit_error") from None
        try:
            return await asyncio.to_thread(by_name[req.model].score, messages, req.responses)
        finally:
            held.__exit__(None, None, None)
