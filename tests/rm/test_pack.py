"""Prefix-shared packing: each prompt once, its responses behind a block mask — the same scores and gradients
as the padded batch (pairs and K=4 rankings, unequal lengths, truncation, length chunks, LoRA, 2 processes)."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmforge.data.reward_data import DataReport, Group, collate_groups, tokenize_groups
from lmforge.data.reward_encode import Encoded
from lmforge.data.reward_pack import pack, prefix_mask, segments
from lmforge.models.reward import (
    RewardModelSection,
    create_reward_model,
    prepare_trainable,
    prompt_rows,
)
from lmforge.models.reward_scores import check_sharing, forward_scores

from .conftest import bad, good, prompt, write_jsonl

RESPONSES = ["sure sure sure sure sure sure sure sure sure sure sure.", "here is the answer clearly correct helpful.", "no wrong bad nonsense rude broken no.",
             "clearly correct " * 9]


def groups_of(tok, fmt: str, k: int, max_length: int = 128, prompts: int = 3) -> list[Group]:
    out = []
    for i in range(prompts):
        prompt = [{"role": "user", "content": f"Tell me about cats number {i}." + " more" * (3 * i)}]
        out.append(Group(prompt=prompt, responses=[r + " sure" * i for r in RESPONSES[:k]]))
    tokenize_groups(out, tok, fmt, max_length, DataReport())
    return out


@pytest.fixture(scope="module")
def rm(tiny_lm: Path):
    torch.manual_seed(0)
    model, tok, _ = create_reward_model(RewardModelSection(path=str(tiny_lm)), ["accuracy"])
    return model, tok


def scores_and_grads(model, batch, chunk_tokens=None, weights=None):
    model.zero_grad(set_to_none=True)
    s = forward_scores(model, batch, chunk_tokens)
    w = weights if weights is not None else torch.linspace(-1, 1, s.numel()).reshape(s.shape)
    (s * w).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return s.detach(), grads


def assert_same(model, groups, pad_id, row_tokens, chunk_tokens=None) -> dict:
    padded = collate_groups(groups, pad_id, 2)
    packed = collate_groups(groups, pad_id, 2, row_tokens)
    s0, g0 = scores_and_grads(model, padded)
    s1, g1 = scores_and_grads(model, packed, chunk_tokens)
    assert s0.shape == s1.shape and s0.shape[0] == sum(len(g.encoded) for g in groups)
    torch.testing.assert_close(s0, s1, rtol=1e-4, atol=1e-5)
    assert g0.keys() == g1.keys() and g0
    for n in g0:
        assert torch.allclose(g0[n], g1[n], atol=1e-5, rtol=1e-4), (n, (g0[n] - g1[n]).abs().max())
    assert packed["sequence_tokens"] == padded["tokens"]
    return packed


@pytest.mark.parametrize("fmt", ["chat", "transcript"])
@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("row_tokens", [16, 1000])  # a segment per row / every prompt in one row
def test_packed_scores_and_gradients_equal_padded(rm, fmt: str, k: int, row_tokens: int) -> None:
    model, tok = rm
    model.train()  # dropout is 0: train mode, as in training
    groups = groups_of(tok, fmt, k)
    assert len({len(e.input_ids) for e in groups[0].encoded}) >= min(k, 3)  # responses of different lengths
    packed = assert_same(model, groups, tok.pad_token_id, row_tokens)
    prompts = sum(g.encoded[0].prompt_len for g in groups)
    assert packed["tokens"] == packed["sequence_tokens"] - (k - 1) * prompts  # each prompt forwarded once
    rows = packed["input_ids"].shape[0]
    assert rows == 1 if row_tokens == 1000 else rows > 1


def test_packing_mixes_with_length_chunks(rm) -> None:
    model, tok = rm
    groups = groups_of(tok, "chat", 4, prompts=4)
    # rows of ~one segment, run longest first in chunks of at most 120 padded tokens (one or two rows each)
    packed = assert_same(model, groups, tok.pad_token_id, row_tokens=60, chunk_tokens=120)
    assert packed["input_ids"].shape[0] == 4


def test_truncated_prompts_share_only_when_identical(rm) -> None:
    """assemble() keeps the prompt's end with a budget that depends on the response length: responses that keep
    the same prompt tokens share it, the others get their own segment (scores stay exact either way)."""
    model, tok = rm
    prompt = [{"role": "user", "content": "cats " * 60 + "END"}]
    long_a, long_b, short = "sure " * 40, "no " * 45, "ok."
    g = Group(prompt=prompt, responses=[long_a, long_b, short])
    report = DataReport()
    tokenize_groups([g], tok, "chat", 48, report)
    assert report.counts["sequences truncated to max_length"] == 3
    kept = [tuple(e.input_ids[:e.prompt_len]) for e in g.encoded]
    assert kept[0] == kept[1] != kept[2]  # both long responses leave the prompt a quarter of the budget
    assert [seqs for _, seqs in segments([g.encoded])] == [[0, 1], [2]]
    assert_same(model, [g], tok.pad_token_id, row_tokens=48)


def test_the_mask_and_positions() -> None:
    """One row: prompt (2 tokens), responses of 2 and 1 tokens, then a second prompt's segment and padding."""
    enc = [Encoded([5, 6, 7, 8], None, False, 2), Encoded([5, 6, 9], None, False, 2)]
    other = [Encoded([3, 4], None, False, 1)]
    b = pack([enc, other], pad_id=0, row_tokens=16)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9, 3, 4]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 2, 0, 1]]
    assert b["score_col"].tolist() == [3, 4, 6] and b["tokens"] == 7 and b["sequence_tokens"] == 9
    m = prefix_mask(b["pack_seg"], b["pack_part"])[0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0, 0, 0],
                 [1, 1, 0, 0, 0, 0, 0],
                 [1, 1, 1, 0, 0, 0, 0],
                 [1, 1, 1, 1, 0, 0, 0],
                 [1, 1, 0, 0, 1, 0, 0],  # the second response sees the prompt and itself, not the first response
                 [0, 0, 0, 0, 0, 1, 0],
                 [0, 0, 0, 0, 0, 1, 1]]
    rows = pack([enc, other], pad_id=0, row_tokens=4)  # rows of max(4, longest segment) = 5 tokens
    assert rows["input_ids"].shape == (2, 5) and rows["pack_len"].tolist() == [5, 2]
    assert rows["pack_seg"][1].tolist() == [0, 0, 1, 1, 1]  # padding: a block of its own


def test_score_is_read_at_the_rightmost_non_pad_token(rm) -> None:
    """As transformers reads it unpacked: a trailing pad id inside a sequence (pad = EOS) is skipped."""
    model, tok = rm
    pad = tok.pad_token_id
    g = groups_of(tok, "chat", 2, prompts=1)[0]
    g.encoded = [Encoded(e.input_ids + [pad], None, False, e.prompt_len) for e in g.encoded]
    b = pack([g.encoded], pad, 1000)
    assert b["score_col"].tolist() == [len(g.encoded[0].input_ids) - 2, len(b["input_ids"][0]) - 2]
    assert_same(model, [g], pad, 1000)


def test_lora_model_packs_exactly(tiny_lm: Path) -> None:
    torch.manual_seed(0)
    cfg = RewardModelSection(path=str(tiny_lm), lora={"enabled": True, "r": 4})
    model, tok, _ = create_reward_model(cfg, [])
    model = prepare_trainable(model, cfg, tok)
    for n, p in model.named_parameters():  # LoRA B starts at 0: make the adapters matter
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    groups = groups_of(tok, "chat", 3)
    assert_same(model, groups, tok.pad_token_id, 1000)
    assert prompt_rows(model, cfg, "chat", groups, tok.pad_token_id)[0] == cfg.max_length


def test_sharing_is_checked_and_off_for_pairs_or_when_asked(rm) -> None:
    model, tok = rm
    groups = groups_of(tok, "chat", 2)
    ok, why = check_sharing(model, groups, tok.pad_token_id, 128)
    assert ok and why.startswith("on")
    cfg = RewardModelSection(path="x")
    assert prompt_rows(model, cfg, "chat", groups, tok.pad_token_id)[0] == cfg.max_length
    assert prompt_rows(model, cfg.model_copy(update={"share_prompt": False}), "chat", groups, 0)[0] is None
    assert prompt_rows(model, cfg, "pair", groups, 0)[0] is None
    with pytest.raises(ValueError, match="prompt length"):
        pack([[Encoded([1, 2], [0, 0], False)]], 0, 16)


@pytest.mark.slow
def test_two_processes_equal_one_process_with_shared_prompts(tiny_lm: Path, tmp_path: Path) -> None:
    """The packed forward runs through the DDP wrapper, so gradients are synchronised as usual."""
    rng = random.Random(0)  # mixed kinds, so the two processes' micro-batches hold different kinds of records
    rows = []
    for i in range(32):
        if i % 3 == 0:
            rows += [{"type": "pair", "prompt": prompt(i), "chosen": good(rng, 4 + i % 5),
                      "rejected": bad(rng, 2 + i % 3)} for _ in range(2)]
        elif i % 3 == 1:
            rows.append({"type": "ranking", "prompt": prompt(i), "ranking": [0, 1, 2],
                         "responses": [good(rng, 5), good(rng, 2) + " " + bad(rng, 2), bad(rng, 3)]})
        else:
            rows += [{"type": "binary", "prompt": prompt(i), "response": good(rng, 4), "label": True},
                     {"type": "binary", "prompt": prompt(i), "response": bad(rng, 4), "label": False}]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    common = ["rm", f"model.path={tiny_lm}", f"data.train=[{train}]", "data.eval_fraction=0", "epochs=null",
              "train.steps=4", "train.batch_size=8", "train.log_every=1", "train.lr=3e-3", "model.max_length=64",
              f"run.root={tmp_path}"]
    def run_cli(args, launcher=(sys.executable, "-m", "lmforge"), env=None):
        proc = subprocess.run([*launcher, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    run_cli(common + ["run.name=one"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                "-m", "lmforge"]
    proc = run_cli(common + ["run.name=two"], launcher=torchrun, env={"OMP_NUM_THREADS": "1"})

    def losses(name: str) -> list[float]:
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["split"] == "train"]

    one, two = losses("one"), losses("two")
    assert len(one) == len(two) == 4, proc.stderr[-2000:]
    assert one == pytest.approx(two, rel=1e-4, abs=1e-5)
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["prompt_sharing"].startswith("on")
