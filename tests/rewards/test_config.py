"""The reward config section: kinds and their fields, typos with suggestions, building validates first."""
from __future__ import annotations

import pytest

from lmforge.config import Section, load_config
from lmforge.errors import InputError
from lmforge.rewards import FunctionReward, RewardSection, WeightedSum, build_reward


class Cfg(Section):
    reward: RewardSection


def load(tmp_path, text: str) -> Cfg:
    f = tmp_path / "cfg.yaml"
    f.write_text(text)
    return load_config(Cfg, f)


def test_a_weighted_sum_from_yaml(tmp_path):
    cfg = load(tmp_path, """
reward:
  terms:
    - {kind: function, function: "rewards.sample_rewards:n_words", weight: 2.0}
    - kind: function
      function: lmforge.rewards.builtin:length_penalty
      kwargs: {target: 1, per_token: 1.0}
      clip: 1.5
""")
    reward = build_reward(cfg.reward)
    assert isinstance(reward, WeightedSum) and [t.name for t in reward.terms] == ["n_words", "length_penalty"]
    got = reward([[], []], ["a b c", "a"], [None, None])
    assert got.tolist() == [2.0 * 3 - 1.5, 2.0 * 1 - 0.0]
    assert reward.last_terms["length_penalty"].tolist() == [-1.5, 0.0]


def test_one_term_of_weight_one_is_the_term_itself_else_weighted():
    one = build_reward(RewardSection(terms=[{"kind": "function", "function": "rewards.sample_rewards:n_words"}]))
    assert isinstance(one, FunctionReward)
    half = build_reward(RewardSection(terms=[{"kind": "function", "function": "rewards.sample_rewards:n_words",
                                              "weight": 0.5}]))
    assert half([[]], ["a b"], [None]).tolist() == [1.0] and half.last_terms["n_words"].tolist() == [2.0]


@pytest.mark.parametrize("term, message", [
    ("{kind: function, functon: x:y}", r"unknown key 'functon' \(did you mean 'function'\?\)"),
    ("{kind: model}", "a reward term of kind=model needs 'path'"),
    ("{kind: function, function: 'a:b', path: runs/rm}", "'path' is for kind=model, not kind=function"),
    ("{kind: function, function: 'a:b', head: harmless}", "'head' is for kind=model, not kind=function"),
    ("{kind: function, function: 'a:b', normalize: true}", "normalize is for kind=model and kind=judge"),
    ("{kind: judge, judge: {}}", "give exactly one judge"),
    ("{kind: judge, judge: {model: m, criteria: [wit]}}", "unknown criteria wit"),
    ("{kind: reward_model, path: x}", "Input should be 'model', 'function' or 'judge'"),
])
def test_bad_terms_are_one_line_errors_naming_the_field(tmp_path, term, message):
    with pytest.raises(InputError, match=message) as exc:
        load(tmp_path, f"reward:\n  terms:\n    - {term}\n")
    assert "reward.terms.0" in str(exc.value) and "\n" not in str(exc.value)


def test_a_dumped_config_loads_back(tmp_path):
    from lmforge.config import dump_config

    cfg = load(tmp_path, "reward:\n  terms:\n    - {kind: function, function: 'rewards.sample_rewards:n_words'}\n"
                         "    - {kind: model, path: runs/rm/final, clip: 3}\n"
                         "    - {kind: judge, judge: {endpoint: 'http://x'}, normalize: false}\n")
    assert [t.normalized for t in cfg.reward.terms] == [False, True, False]
    again = load(tmp_path, dump_config(cfg))  # every field written, those of other kinds at their defaults
    assert again == cfg


def test_empty_terms_and_duplicate_names(tmp_path):
    with pytest.raises(InputError, match="reward.terms': no reward: add at least one term"):
        load(tmp_path, "reward:\n  terms: []\n")
    class Stage(Section):  # a stage may hold the section as its default
        reward: RewardSection = RewardSection()

    (tmp_path / "stage.yaml").write_text("reward:\n  batch_size: 4\n")
    with pytest.raises(InputError, match="field 'reward.terms': no reward"):  # the loader fills in the default
        load_config(Stage, tmp_path / "stage.yaml")
    with pytest.raises(InputError, match="field 'reward.terms': no reward"):
        build_reward(Stage().reward)
    with pytest.raises(InputError, match="two reward terms are named 'n_words'"):
        load(tmp_path, "reward:\n  terms:\n    - {kind: function, function: 'rewards.sample_rewards:n_words'}\n"
                       "    - {kind: function, function: 'rewards.sample_rewards:n_words', weight: 2}\n")


def test_build_names_the_term_index_of_a_missing_function():
    section = RewardSection(terms=[{"kind": "function", "function": "rewards.sample_rewards:n_words"},
                                   {"kind": "function", "function": "rewards.sample_rewards:nope"}])
    with pytest.raises(InputError, match=r"field 'reward.terms.1.function': reward function "
                                         r"rewards.sample_rewards:nope: .* has no 'nope'"):
        build_reward(section)
