"""JudgeReward: the judge's expected 1-7 score per response, on a scripted OpenAI-compatible server and on a
local tiny judge; endpoints that do not answer fail when the reward is built."""
from __future__ import annotations

import json
import math
import socket

import httpx
import pytest
import torch

from lmforge.errors import InputError
from lmforge.feedback.judge.endpoint import EndpointBackend
from lmforge.rewards import RewardError, RewardSection, build_reward
from lmforge.rewards.judge_reward import JudgeReward
from tiny_chat import session_model

P = [[{"role": "user", "content": "What is the capital of France?"}]] * 2


def server(replies):
    """A scripted endpoint: each chat request gets the next of ``replies`` (text, {digit: prob} or None)."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        reply = replies[len(seen) - 1]
        if isinstance(reply, dict):  # log-probabilities of the first token
            top = [{"token": d, "logprob": math.log(p)} for d, p in reply.items()]
            logprobs, text = {"content": [{**top[0], "top_logprobs": top}]}, top[0]["token"]
        else:
            logprobs, text = None, reply
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                      "logprobs": logprobs}]})
    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def test_expected_digit_averaged_over_criteria_then_mapped_to_minus_one_one():
    # response 0: accuracy P(5)=P(7)=1/2 -> 6, honesty P(3)=1 -> 3: mean 4.5; response 1: 7 and 1 -> 4
    client, seen = server([{"5": 0.5, "7": 0.5}, {"3": 1.0}, {"7": 1.0}, {"1": 1.0}])
    backend = EndpointBackend("http://judge", model="m", client=client, concurrency=1)
    raw = JudgeReward(backend, ["accuracy", "honesty"], normalize=False)
    assert raw(P, ["Paris.", "Berlin."], [None, None]).tolist() == pytest.approx([4.5, 4.0], abs=1e-6)
    asked = [s["messages"][0]["content"] for s in seen]
    assert "for accuracy" in asked[0] and "for honesty" in asked[1] and "[Response]\nBerlin." in asked[2]
    client, _ = server([{"5": 0.5, "7": 0.5}, {"3": 1.0}, {"7": 1.0}, {"1": 1.0}])
    norm = JudgeReward(EndpointBackend("http://judge", model="m", client=client, concurrency=1),
                       ["accuracy", "honesty"], clip=0.1)
    assert norm(P, ["Paris.", "Berlin."], [None, None]).tolist() == pytest.approx([0.1, 0.0], abs=1e-6)  # 0.5/3


def test_written_digits_and_unreadable_verdicts():
    client, _ = server(["Rating: 6", "I would not know."])  # a server without log-probabilities
    backend = EndpointBackend("http://judge", model="m", client=client, concurrency=1, logprobs=False)
    reward = JudgeReward(backend, ["accuracy"], normalize=False)
    assert reward(P, ["Paris.", "Hm."], [None, None]).tolist() == [6.0, 4.0]  # unreadable: the midpoint
    assert reward.stats["unscored"] == 1 and reward.last_terms["judge"].tolist() == [6.0, 4.0]
    client, _ = server(["no idea", "none"])
    blind = JudgeReward(EndpointBackend("http://judge", model="m", client=client, logprobs=False), ["accuracy"])
    with pytest.raises(RewardError, match="reward judge: the judge .* gave no readable 1-7 score for any of 2"):
        blind(P, ["a", "b"], [None, None])


def test_a_server_error_mid_training_names_the_reward():
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404, json={"error": "gone"})))
    reward = JudgeReward(EndpointBackend("http://judge", model="m", client=client), ["accuracy"], name="ai")
    with pytest.raises(RewardError, match="reward ai: judge endpoint .* answered HTTP 404: gone"):
        reward(P[:1], ["a"], [None])


def test_an_endpoint_that_does_not_answer_fails_when_built():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    section = RewardSection(terms=[{"kind": "judge", "judge": {"endpoint": f"http://127.0.0.1:{port}",
                                                               "retries": 0, "timeout": 2}}])
    with pytest.raises(InputError, match=r"field 'reward.terms.0.endpoint': judge endpoint .* failed after 1 "
                                         r"attempt\(s\): ConnectError"):
        build_reward(section)


def test_local_judge_from_config(tmp_path_factory):
    from lmforge.feedback.judge.core import choice_probs, expected_score
    from lmforge.feedback.judge.prompts import SCORE_CHOICES, score_query
    from lmforge.feedback.judge.rubric import default_rubric

    path = session_model(tmp_path_factory)
    reward = build_reward(RewardSection(terms=[{"kind": "judge", "judge": {"model": str(path),
                                                                           "criteria": ["accuracy"]}}]))
    got = reward(P, ["The capital is Paris.", "It is Nowhere."], [None, None])
    answers = reward.backend.answer([score_query(default_rubric(), P[0], r, "accuracy")
                                     for r in ("The capital is Paris.", "It is Nowhere.")])
    want = torch.tensor([expected_score(choice_probs(a, SCORE_CHOICES)) for a in answers])
    torch.testing.assert_close(got, (want - 4) / 3)
    assert ((got >= -1) & (got <= 1)).all() and reward.stats["unscored"] == 0
