"""New models from one size knob, as ``transformers`` configs so every checkpoint is a plain HF model.

As in nanochat, ``depth`` (the number of blocks) sets everything else: width = depth x ``aspect``, heads of
``head_dim`` (64) channels, a SwiGLU hidden size of ~8/3 width, and a peak learning rate that shrinks with
width (lr ∝ 1/sqrt(width), the muP-style rule nanochat uses for AdamW parameters).
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ..config import Section

Arch = Literal["llama", "qwen2", "gpt2", "bert"]


class ModelConfig(Section):
    arch: Arch = "llama"
    depth: int = Field(4, ge=1, le=128, description="number of blocks; sets width, heads and lr")
    aspect: int = Field(48, ge=8, description="width = depth x aspect (rounded to head_dim)")
    head_dim: int = Field(64, ge=8)
    kv_heads: int | None = Field(None, ge=1, description="grouped-query attention; default = heads")
    tie_embeddings: bool = True
    max_seq_len: int = Field(1024, ge=8)
    dropout: float = Field(0.0, ge=0, lt=1)
    init_from: str | None = Field(None, description="continue from a HF folder, hub id or .gguf instead")

    def width(self) -> int:
        return max(self.head_dim, round(self.depth * self.aspect / self.head_dim) * self.head_dim)

    def heads(self) -> int:
        return self.width() // self.head_dim

    def ffn(self) -> int:
        return int(math.ceil(8 * self.width() / 3 / 32) * 32)

    def default_lr(self) -> float:
        return lr_for_width(self.width())


def lr_for_width(width: int) -> float:
    """Peak AdamW lr for pre-training: 3e-3 at width 256, scaled by 1/sqrt(width) (nanochat's dmodel_lr_scale)."""
    return 3e-3 * (256 / width) ** 0.5


def build_config(cfg: ModelConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
    from transformers import BertConfig, GPT2Config, LlamaConfig, Qwen2Config

    width, heads = cfg.width(), cfg.heads()
    kv = cfg.kv_heads or heads
    common = dict(vocab_size=vocab_size, pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
                  tie_word_embeddings=cfg.tie_embeddings)
    if cfg.arch in ("llama", "qwen2"):
        cls = LlamaConfig if cfg.arch == "llama" else Qwen2Config
        extra = {"attention_bias": False} if cfg.arch == "llama" else {}
        return cls(hidden_size=width, intermediate_size=cfg.ffn(), num_hidden_layers=cfg.depth,
                   num_attention_heads=heads, num_key_value_heads=kv, head_dim=cfg.head_dim,
                   max_position_embeddings=cfg.max_seq_len, rms_norm_eps=1e-6, rope_theta=10000.0,
                   attention_dropout=cfg.dropout, initializer_range=0.02, **extra, **common)
    if cfg.arch == "gpt2":
        return GPT2Config(n_embd=width, n_layer=cfg.depth, n_head=heads, n_positions=cfg.max_seq_len,
                          resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, **common)
    return BertConfig(hidden_size=width, num_hidden_layers=cfg.depth, num_attention_heads=heads,
                      intermediate_size=4 * width, max_position_embeddings=cfg.max_seq_len,
                      hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                      type_vocab_size=1, **common)


def create_model(cfg: ModelConfig, tokenizer):
    """A freshly initialised model (causal LM, or masked LM for ``arch: bert``) sized by ``cfg``."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    hf_cfg = build_config(cfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                          tokenizer.eos_token_id)
    hf_cfg._attn_implementation = "sdpa"
    if cfg.arch == "bert":
        return AutoModelForMaskedLM.from_config(hf_cfg)
    return AutoModelForCausalLM.from_config(hf_cfg)


def count_params(model, trainable_only: bool = False) -> int:
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
