"""The recipe's data: world problems, GSM8K-style files (fields named, calculator notes stripped, held-out
tail), the files the stages read, and the config's rules."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.data.prompt_files import read_prompt_file
from lmforge.errors import InputError
from lmforge.rewards.builtin import exact_answer
from lmforge.stages.reft import ReftConfig
from lmforge.stages.reft_data import ReftDataSection, load_problems, write_data

# hand-written in GSM8K's shape (question, answer = worked solution with <<calculator>> notes, then "#### N")
ROWS = [{"question": f"Ann has {i} pens and buys {i + 1} more. How many pens?",
         "answer": f"She has {i} + {i + 1} = <<{i}+{i + 1}={2 * i + 1}>>{2 * i + 1} pens.\n#### {2 * i + 1}"}
        for i in range(10)]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_style_file_holds_out_the_tail_and_strips_calculator_notes(tmp_path):
    data = ReftDataSection(source=str(write(tmp_path / "p.jsonl", ROWS)), eval_size=3)
    train, ev = load_problems(data, 0, need_solution=True)
    assert len(train) == 7 and len(ev) == 3 and ev[0]["messages"][-1]["content"] == ROWS[7]["question"]
    assert train[2]["solution"] == "She has 2 + 3 = 5 pens.\n#### 5"
    assert train[2]["answer"] == ROWS[2]["answer"]  # the reward reads after '####'
    files = write_data(tmp_path / "data", train, ev)
    sft_rows = [json.loads(x) for x in files["sft"].read_text().splitlines()]
    assert sft_rows[0]["messages"][-1] == {"role": "assistant", "content": train[0]["solution"]}
    # the RL stage's reader gets the prompt and the meta the reward checks
    prompts = [it.as_prompt() for it in read_prompt_file(files["rl"])]
    assert len(prompts) == 7 and prompts[0]["messages"][-1]["role"] == "user"
    responses = ["She has 1 + 2 = 3 pens.\n#### 3", "#### 4"]
    assert exact_answer([], responses, [p["meta"] for p in prompts[1:3]]) == [1.0, 0.0]


def test_named_fields_eval_file_and_missing_solution(tmp_path):
    rows = [{"q": f"What is {i} plus 2?", "a": i + 2, "steps": f"{i} + 2 = {i + 2}.\n#### {i + 2}",
             "type": "add"} for i in range(5)]
    src, test = write(tmp_path / "train.jsonl", rows), write(tmp_path / "test.jsonl", rows[:2])
    data = ReftDataSection(source=str(src), eval_source=str(test), eval_size=1, question_field="q",
                           answer_field="a", solution_field="steps", kind_field="type", train_limit=4)
    train, ev = load_problems(data, 0, need_solution=True)
    assert (len(train), len(ev), ev[0]["answer"], ev[0]["kind"]) == (4, 1, "2", "add")
    no_solution = data.model_copy(update={"solution_field": None})
    with pytest.raises(InputError, match=r"train.jsonl:1.*no worked solution"):
        load_problems(no_solution, 0, need_solution=True)
    assert load_problems(no_solution, 0, need_solution=False)[0][0]["solution"] is None  # skip_sft: fine
    with pytest.raises(InputError, match="missing field"):
        load_problems(data.model_copy(update={"question_field": "question"}), 0, need_solution=True)
    with pytest.raises(InputError, match="cannot hold out data.eval_size=5"):
        load_problems(data.model_copy(update={"eval_source": None, "eval_size": 5}), 0, need_solution=True)


def test_world_problems_train_on_seen_and_evaluate_held_out_kinds():
    data = ReftDataSection(world={"train": 30, "eval": 8})
    train, ev = load_problems(data, 0, need_solution=True)
    assert {p["kind"] for p in train} == {"gather", "shop", "legs"}
    assert {p["kind"] for p in ev} == {"gather_long", "shop_two", "legs_three", "gather_large"}
    assert all(p["solution"].endswith(f"#### {p['answer']}") for p in train + ev)
    with pytest.raises(InputError, match="unknown word-problem kind 'legz'"):
        load_problems(ReftDataSection(world={"eval_kinds": ["legz"]}), 0, need_solution=True)


def test_config_defaults_and_what_the_recipe_owns():
    cfg = load_config(ReftConfig, None, ["model.path=m", "rl.rl.group_size=8", "sft.epochs=1"])
    assert cfg.rl.rl.algorithm == "grpo" and cfg.rl.rl.group_size == 8 and cfg.sft.epochs == 1
    assert cfg.rl.reward.terms[0].function == "lmforge.rewards.builtin:exact_answer"
    assert cfg.rl.rl.drop_equal_groups
    with pytest.raises(InputError, match="rl.model.path is set by the recipe"):
        load_config(ReftConfig, None, ["rl.model.path=x"])
    with pytest.raises(InputError, match="skip_sft and skip_rl"):
        load_config(ReftConfig, None, ["skip_sft=true", "skip_rl=true"])


def test_a_tokenizer_saved_beside_an_adapter_loads_without_a_model_config(tmp_path):
    # an RL or SFT adapter folder holds the tokenizer but no config.json; evaluation loads it from there
    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.load import load_tokenizer

    tok = train_bpe([r["question"] for r in ROWS], vocab_size=300)
    tok.save_pretrained(tmp_path / "adapter")
    assert not (tmp_path / "adapter" / "config.json").exists()
    assert load_tokenizer(str(tmp_path / "adapter")).get_vocab() == tok.get_vocab()
    with pytest.raises(InputError, match="no config.json"):
        load_tokenizer(str(tmp_path))  # a folder with neither is still refused
