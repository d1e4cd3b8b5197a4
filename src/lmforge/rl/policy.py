"""The RL model: the policy (a causal LM, optionally with a LoRA adapter) and, for PPO, its critic, in one
``nn.Module`` so the trainer, DDP and checkpoints see one model.

Critics (``critic``):

- ``shared``: a linear value head on the policy's last hidden state (one backbone; the value loss also moves
  the policy's weights, which is why ``vf_coef`` is small).
- ``reward_model``: a separate trainable copy of the reward model's backbone and head, read per token (the
  choice of the N+ paper and OpenRLHF: the reward model already knows what a good answer looks like), dropout
  off. It must share the policy's tokenizer (values are read at the policy's token positions).

The reference policy: with an adapter, the same model with the adapter switched off (no second copy); for full
fine-tuning a frozen copy made at the start (one more model of the policy's size, held outside this module
so it is neither trained nor checkpointed: it is rebuilt from ``model.path`` on resume).
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from ..errors import InputError


class PolicyWithValue(nn.Module):
    def __init__(self, policy: nn.Module, critic: str = "none", critic_model: nn.Module | None = None,
                 value_lr: float | None = None):
        super().__init__()
        self.policy = policy
        self.critic_kind = critic
        self.value_lr = value_lr
        if critic == "shared":
            hidden = policy.config.get_text_config().hidden_size if hasattr(policy.config, "get_text_config") \
                else policy.config.hidden_size
            self.value_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.value_head.weight)  # V = 0 at the start: the first advantages are the rewards
            nn.init.zeros_(self.value_head.bias)
        elif critic == "reward_model":
            if critic_model is None:
                raise ValueError("critic 'reward_model' needs the reward model")
            self.critic = critic_model
        elif critic != "none":
            raise InputError(f"unknown critic '{critic}' (shared, reward_model or none)", field="rl.critic")

    def lr_overrides(self) -> dict[str, float]:
        """The critic trains at its own learning rate (see :mod:`lmforge.engine.optim`)."""
        if self.value_lr is None or self.critic_kind == "none":
            return {}
        return {"value_head.": self.value_lr} if self.critic_kind == "shared" else {"critic.": self.value_lr}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, values: bool = True,
                scored: torch.Tensor | None = None, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits ``[B, L, V]``, values ``[B, L]`` or None): the value at position t is V(s_t), the state
        from which the token at t+1 is chosen, aligned with the logits that score it. ``scored`` ``[B, L]``
        bool: the output head runs on those positions only and the logits are ``[M, V]`` in their row-major
        order (the shared head-on-scored-rows hook of :mod:`lmforge.models.logprobs`: prompt and padding cost
        no ``H x V`` matmul, forward or backward, and ``[B, L, V]`` logits never exist); a model the hook
        cannot serve still returns ``[B, L, V]``. With ``targets`` (the buffer's, which say where each row's
        response starts) and no values wanted, rows that share a prompt run it once
        (:mod:`lmforge.models.shared_prompt`)."""
        from ..models.logprobs import _right_padded, head_on_rows
        from ..models.shared_prompt import shared_prefix_logits

        use_values = values and self.critic_kind != "none"
        if scored is not None and targets is not None and not use_values:
            logits = shared_prefix_logits(self.policy, input_ids, attention_mask, targets, scored)
            if logits is not None:
                return logits, None
        want_hidden = values and self.critic_kind == "shared"
        # right-padded rows (the rollout buffer's layout): under the causal mask no real token attends to the
        # padding after it, and the positions are 0.. either way, so without the mask every real position's
        # output is the same (tests/rl/test_policy.py), while the model skips building a [B, 1, L, L] mask and
        # attention runs its causal kernel
        policy_mask = None if _right_padded(attention_mask) else attention_mask
        with head_on_rows(self.policy, scored, scored is not None):
            out = self.policy(input_ids=input_ids, attention_mask=policy_mask, use_cache=False,
                              output_hidden_states=want_hidden)
        v = None
        if values and self.critic_kind == "shared":
            v = self.value_head(out.hidden_states[-1].float()).squeeze(-1)
        elif values and self.critic_kind == "reward_model":
            v = critic_values(self.critic, input_ids, attention_mask)
        return out.logits, v


def critic_values(rm: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-token ``score(h_t)`` of a sequence-classification model: its backbone's hidden states through its
    head (the reward model reads the same head at the last token only)."""
    inner = rm.get_base_model() if hasattr(rm, "get_base_model") else rm
    backbone = getattr(inner, inner.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    return inner.score(hidden).float()[..., 0]


def reward_model_critic(path: str, policy_tokenizer, dtype: str = "float32") -> nn.Module:
    """A trainable critic initialised from the reward model at ``path`` (dropout off); an error when its
    tokenizer differs from the policy's or it is not a causal backbone."""
    from ..models.reward import _set_dropout, load_reward_model

    rm, tok, meta = load_reward_model(path, dtype)
    if meta.kind != "causal" or not hasattr(rm, "score"):
        raise InputError("critic 'reward_model' needs a causal-LM reward model (an encoder reads a sentence "
                         "pair, not the policy's tokens); use critic: shared", file=path)
    if tok.get_vocab() != policy_tokenizer.get_vocab():
        raise InputError("critic 'reward_model' needs the policy's tokenizer (values are read at the policy's "
                         "tokens); use critic: shared", file=path)
    _set_dropout(rm.config, 0.0)
    for m in rm.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    rm.train()
    for p in rm.parameters():
        p.requires_grad_(True)
    return rm


class Reference:
    """``log π_ref`` forwards: the policy with its adapter off, or a frozen copy of the starting policy; none at
    all when no KL term reads it (``needed`` False: ``rl.uses_reference``)."""

    def __init__(self, policy: nn.Module, adapter: bool, needed: bool = True):
        self.adapter, self.needed = adapter, needed
        self.copy = None
        if needed and not adapter:
            self.copy = copy.deepcopy(policy).eval()
            for p in self.copy.parameters():
                p.requires_grad_(False)

    @contextlib.contextmanager
    def model(self, policy: nn.Module):
        if not self.needed:
            raise RuntimeError("no reference policy was built (rl.uses_reference is false)")
        if self.adapter:
            with policy.disable_adapter():
                yield policy
        else:
            yield self.copy


def end_of_turn_id(tokenizer) -> int:
    """The token the chat template puts after an assistant answer (the one a response must end with to have
    stopped): found by rendering a one-turn chat, falling back to EOS."""
    from ..generation import stop_token_ids

    stops = stop_token_ids(tokenizer)
    try:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant",
                                                                                 "content": "y"}], tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        after = [t for t in ids if t in stops]
        if after:
            return int(after[-1])
    except Exception:  # a template that cannot render this: EOS below
        pass
    if tokenizer.eos_token_id is None:
        raise InputError("the tokenizer has no EOS token; a response could never stop", field="model.path")
    return int(tokenizer.eos_token_id)
