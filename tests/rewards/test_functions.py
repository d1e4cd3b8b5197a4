"""Function rewards: the signature, kwargs, per-sample functions, and the errors that name the function."""
from __future__ import annotations

import pytest
import torch

from lmforge.errors import InputError
from lmforge.rewards import FunctionReward, RewardError, WeightedSum, check_scores, load_function

P = [[{"role": "user", "content": "hi"}]]


def call(spec, responses, meta=None, **kw):
    r = FunctionReward(spec, **kw)
    return r(P * len(responses), responses, meta or [None] * len(responses))


def test_batch_function_scores_are_float32_in_order():
    got = call("rewards.sample_rewards:n_words", ["a b c", "", "one two"])
    assert got.dtype == torch.float32 and got.tolist() == [3.0, 0.0, 2.0]


def test_kwargs_are_passed_and_clip_bounds_both_sides():
    got = call("rewards.sample_rewards:scaled", ["abcd", "ab"], kwargs={"factor": -2.0}, clip=5.0)
    assert got.tolist() == [-5.0, -4.0]  # -8 clipped to -5, -4 kept


def test_per_sample_function_is_called_once_per_response():
    r = FunctionReward("rewards.sample_rewards:one_at_a_time")
    prompts = [[{"role": "user", "content": "q"}], [{"role": "user", "content": "q"}, {"role": "assistant",
                                                                                   "content": "a"}]]
    assert r(prompts, ["x", "y"], [{"bonus": 1}, {"bonus": 0.5}]).tolist() == [2.0, 2.5]
    with pytest.raises(RewardError, match=r"rewards.sample_rewards:one_at_a_time raised at response 1: KeyError"):
        r(prompts, ["x", "y"], [{"bonus": 1}, None])


def test_nan_names_the_function_and_the_first_index():
    with pytest.raises(RewardError, match=r"function rewards.sample_rewards:nan_on_empty: score of response 1 is "
                                          r"nan \(2 of 3 non-finite\)"):
        call("rewards.sample_rewards:nan_on_empty", ["ok", "", ""])


def test_an_exception_names_the_function_and_the_first_response_it_fails_on():
    with pytest.raises(RewardError) as exc:
        call("rewards.sample_rewards:raises_on_boom", ["fine", "fine", "boom", "boom"])
    assert str(exc.value) == ("reward function rewards.sample_rewards:raises_on_boom raised at response 2: "
                              "ValueError: cannot score a boom")
    assert isinstance(exc.value, InputError)  # one line, exit 2 in the CLI


@pytest.mark.parametrize("spec, message", [
    ("rewards.sample_rewards:too_few", "returned 1 scores for 2 responses"),
    ("rewards.sample_rewards:text_score", "score of response 0 is 'high', not a number"),
])
def test_wrong_count_or_type_is_named(spec, message):
    with pytest.raises(RewardError, match=message):
        call(spec, ["a", "b"])


@pytest.mark.parametrize("spec, message", [
    ("rewards.no_such_module:f", r"rewards.no_such_module:f: cannot import rewards.no_such_module \(module "
                                 r"'rewards.no_such_module' not found\)"),
    ("rewards.sample_rewards:n_word", r"has no 'n_word' \(did you mean n_words"),
    ("rewards.sample_rewards:NOT_A_FUNCTION", r"'NOT_A_FUNCTION' is a int, not a function"),
    ("rewards.sample_rewards:two_args", r"cannot be called as two_args\(prompts, responses, meta\)"),
    ("no_colon_here", r"not of the form 'module:function'"),
])
def test_a_bad_spec_is_an_input_error_naming_it(spec, message):
    with pytest.raises(InputError, match=message):
        load_function(spec)


def test_unknown_kwarg_fails_at_load_not_mid_training():
    with pytest.raises(InputError, match=r"scaled\(prompts, responses, meta, facter=...\)"):
        load_function("rewards.sample_rewards:scaled", {"facter": 2})


def test_a_function_in_a_file(tmp_path):
    f = tmp_path / "my_reward.py"
    f.write_text("def shout(prompts, responses, meta):\n    return [float(r.isupper()) for r in responses]\n")
    assert call(f"{f}:shout", ["YES", "no"]).tolist() == [1.0, 0.0]
    with pytest.raises(InputError, match="file .*missing.py not found"):
        load_function(f"{tmp_path / 'missing.py'}:shout")


def test_check_scores_accepts_tensors_and_arrays_and_rejects_inf():
    import numpy as np

    assert check_scores("x", np.array([1, 2]), 2).tolist() == [1.0, 2.0]
    assert check_scores("x", [np.float32(0.5), torch.tensor(2.0), 3], 3).tolist() == [0.5, 2.0, 3.0]
    with pytest.raises(RewardError, match="score of response 1 is True, not a number"):
        check_scores("x", [1.0, True], 2)
    assert check_scores("x", torch.tensor([0.5], dtype=torch.float64), 1).dtype == torch.float32
    with pytest.raises(RewardError, match="reward x: score of response 0 is inf"):
        check_scores("x", [float("inf"), 0.0], 2)
    with pytest.raises(RewardError, match=r"shape \[2, 2\]"):
        check_scores("x", torch.zeros(2, 2), 2)


def test_weighted_sum_by_hand_and_per_term_scores():
    a = FunctionReward("rewards.sample_rewards:n_words")  # [2, 1]
    b = FunctionReward("rewards.sample_rewards:scaled", kwargs={"factor": 1.0})  # len: [3, 5]
    s = WeightedSum([a, b], [0.5, -2.0])
    got = s(P * 2, ["a b", "abcde"], [None, None])
    assert got.tolist() == [0.5 * 2 - 2.0 * 3, 0.5 * 1 - 2.0 * 5]
    assert s.last_terms["n_words"].tolist() == [2.0, 1.0] and s.last_terms["scaled"].tolist() == [3.0, 5.0]
    with pytest.raises(RewardError, match="got 2 prompts, 1 responses"):
        s(P * 2, ["a"], [None])
