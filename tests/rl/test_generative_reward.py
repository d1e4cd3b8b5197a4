"""A generative verifier (`lmforge rm model.head=generative`) is an RL reward like a scalar reward model: the same
`kind: model` term, scores equal to `rm score` of the same text, a GRPO run trains on it."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from lmforge.rewards.model_reward import ModelReward
from lmforge.stages.rl import rl_train
from lmforge.stages.rm_score import score_file
from rm.conftest import mixed_records, write_jsonl
from rm.test_stage import cli, rm_args

from .conftest import rl_cfg

PROMPTS = [[{"role": "user", "content": "Tell me about cats number 1."}],
           [{"role": "user", "content": "Tell me about snow number 3."}]]
RESPONSES = ["sure here is the answer clearly correct.", "no wrong bad nonsense."]


def test_a_generative_verifier_is_an_rl_reward(tmp_path: Path, tiny_lm: Path, prompt_file: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", mixed_records(48, seed=0))
    ev = write_jsonl(tmp_path / "eval.jsonl", mixed_records(16, seed=1, first=1000))
    # the policy's own backbone as the verifier's (the rl tests' tiny chat LM)
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "gen", "epochs=1", "model.head=generative",
                       "model.verdict.question=Is this good?")) == 0
    folder = tmp_path / "gen" / "final"

    reward = ModelReward(folder, normalize=False, batch_size=2)
    got = reward(PROMPTS, RESPONSES, [None, None])
    rows = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    score_file(folder, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    want = [json.loads(x)["reward"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-4, atol=1e-5)  # rm score rounds to 6 places
    assert float(got[0]) != float(got[1])

    s = rl_train(rl_cfg(tmp_path, tiny_lm, prompt_file, reward__terms=[{"kind": "model", "path": str(folder),
                                                                        "clip": 5.0}]))
    assert s["steps"] == 4 and s["rollouts"] == 2
    metrics = [json.loads(x) for x in (tmp_path / "runs/rl/metrics.jsonl").read_text().splitlines()]
    means = [m["reward_mean"] for m in metrics if "reward_mean" in m]
    assert means and all(abs(v) <= 5.0 for v in means) and len(set(means)) > 1  # normalised, clipped, varying
