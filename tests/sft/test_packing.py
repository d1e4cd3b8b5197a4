"""Packing: logits of a packed row equal those of its examples run one by one; labels never cross examples."""
from __future__ import annotations

import pytest
import torch

from lmforge.algos.lm import IGNORE
from lmforge.data.packing import (
    SFTBatches,
    block_causal_mask,
    collate,
    first_fit_decreasing,
    shifted_labels,
)
from lmforge.data.sft_tokenize import Tokenized


def tiny(arch: str):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

    torch.manual_seed(0)
    common = {"vocab_size": 60, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}
    cfg = {"llama": lambda: LlamaConfig(**common), "qwen2": lambda: Qwen2Config(**common),
           "gpt2": lambda: GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=4, n_positions=64)}[arch]()
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg).eval()


def examples(lengths=(5, 9, 3, 7)) -> list[Tokenized]:
    g = torch.Generator().manual_seed(1)
    return [Tokenized(torch.randint(1, 60, (n,), generator=g).tolist(), [i % 2 == 1 for i in range(n)], f"x:{k}")
            for k, n in enumerate(lengths)]


@pytest.mark.parametrize("arch, mask_4d", [("llama", False), ("llama", True), ("qwen2", False), ("gpt2", True)])
def test_packed_logits_equal_one_by_one(arch: str, mask_4d: bool) -> None:
    model, exs = tiny(arch), examples()
    rows = [exs[:2], exs[2:]]  # two packed rows of different lengths: padding as well
    batch = collate(rows, 0, packed=True, mask_4d=mask_4d)
    extra = {k: batch[k] for k in ("position_ids", "attention_mask") if k in batch}
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], use_cache=False, **extra).logits
        for r, row in enumerate(rows):
            at = 0
            for ex in row:
                alone = model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0]
                torch.testing.assert_close(packed[r, at:at + len(ex)], alone, atol=1e-5, rtol=1e-5)
                at += len(ex)
        naive = model(input_ids=batch["input_ids"], use_cache=False).logits  # no separation: must differ
    assert not torch.allclose(naive[0, 5:14], packed[0, 5:14], atol=1e-3)


def test_labels_are_shifted_within_each_example() -> None:
    exs = examples((4, 3))
    batch = collate([exs], 0, packed=True)
    labels = batch["labels"][0].tolist()
    assert labels == shifted_labels(exs[0].input_ids, exs[0].mask) + shifted_labels(exs[1].input_ids, exs[1].mask)
    assert labels[3] == IGNORE  # last token of example 0 does not predict example 1's first token
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 0, 1, 2]


def test_block_causal_mask() -> None:
    m = block_causal_mask(torch.tensor([[0, 0, 1, 1, 1]]))[0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 1]]


def test_first_fit_decreasing_respects_capacity_and_keeps_everything() -> None:
    lengths = [7, 3, 5, 2, 8, 1, 4, 6]
    bins = first_fit_decreasing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(8))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 4  # 36 tokens in bins of 10: the minimum


def unpadded(batch) -> list[list[int]]:
    return [[t for t in row if t != 0] for row in batch["input_ids"].tolist()]


def test_batches_resume_exactly_and_split_across_ranks() -> None:
    exs = examples(tuple(range(3, 23)))
    a = SFTBatches(exs, 32, micro=2, pad_id=0, seed=3)
    seen = [a.next_batch()["input_ids"] for _ in range(7)]
    b = SFTBatches(exs, 32, micro=2, pad_id=0, seed=3)
    for _ in range(3):
        b.next_batch()
    c = SFTBatches(exs, 32, micro=2, pad_id=0, seed=3)
    c.load_state_dict(b.state_dict())
    assert all(torch.equal(x, c.next_batch()["input_ids"]) for x in seen[3:])
    r0 = SFTBatches(exs, 32, micro=1, pad_id=0, seed=3, rank=0, world=2)
    r1 = SFTBatches(exs, 32, micro=1, pad_id=0, seed=3, rank=1, world=2)
    for step in range(3):  # two processes see exactly the rows one process sees with twice the micro-batch
        assert [unpadded(r0.next_batch())[0], unpadded(r1.next_batch())[0]] == unpadded({"input_ids": seen[step]})
    with pytest.raises(ValueError, match="cannot resume exactly"):
        SFTBatches(exs[:-3], 32, micro=2, pad_id=0).load_state_dict(b.state_dict())


def test_throughput_counts_real_tokens_not_padding() -> None:
    batch = collate([examples((4, 3)), examples((2,))], 0, packed=True)
    assert batch["input_ids"].numel() == 14 and batch["tokens"] == 9
    assert collate([examples((4,)), examples((2,))], 0, packed=False)["tokens"] == 6


@pytest.mark.parametrize("packed,mask_4d", [(True, False), (True, True), (False, False)])
def test_length_chunked_forward_gives_the_same_loss_and_gradients(packed, mask_4d) -> None:
    from lmforge.stages.sft import sft_loss

    torch.manual_seed(0)
    model = tiny("llama").train()
    rows = [examples((9, 5)), examples((3,)), examples((12,)), examples((4, 2))]
    if not packed:
        rows = [[r[0]] for r in rows]
    batch = collate(rows, 0, packed=packed, mask_4d=mask_4d)
    whole = sft_loss(model, batch)
    whole.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    chunked = sft_loss(model, batch, chunk_tokens=20)  # 12-token rows: one per chunk, then shorter ones
    chunked.loss.backward()
    assert chunked.count == whole.count and chunked.tokens == whole.tokens
    torch.testing.assert_close(chunked.loss, whole.loss, rtol=1e-5, atol=1e-5)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)
