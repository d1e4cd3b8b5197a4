"""`lmforge generate`: K responses per prompt from a model or the built-in world, written as batch.jsonl."""
import json

import pytest

from lmforge.config import load_config
from lmforge.errors import InputError
from lmforge.feedback.batchfile import read_batch
from lmforge.stages.generate import GenerateConfig, generate_batch

from .conftest import FakeWorld

CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
                 "{{ m['content'] }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 1-layer Llama with a small byte-level BPE tokenizer and a chat template (random weights)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["what is the capital of france? paris is the capital."] * 20, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|pad|>")
    hf_tok.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-chat")
    LlamaForCausalLM(config).save_pretrained(path)
    hf_tok.save_pretrained(path)
    return path


def _cfg(tmp_path, **kw):
    overrides = [f"run.root={tmp_path}", "run.name=gen"] + [f"{k}={v}" for k, v in kw.items()]
    return load_config(GenerateConfig, None, overrides)


def test_from_a_model(tmp_path, tiny_model):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "what is the capital of france?"}) + "\n"
                       + json.dumps({"id": "chat", "messages": [{"role": "user", "content": "paris?"},
                                                                {"role": "assistant", "content": "yes."}]}) + "\n")
    cfg = _cfg(tmp_path, model=tiny_model, prompts=prompts, k=3, **{"sampling.max_new_tokens": 6})
    summary = generate_batch(cfg)
    items = list(read_batch(tmp_path / "gen"))
    assert [it.id for it in items] == ["prompts-1", "chat"]  # the prompt reader's default id: stem-line
    assert all(len(it.responses) == 3 for it in items)
    assert all(r.tokens <= 6 for it in items for r in it.responses)
    assert items[1].prompt[-1].content == "paris?" and items[1].meta["reference"] == "yes."
    assert items[0].model == str(tiny_model) and items[0].sampling["temperature"] == 1.0
    assert items[0].sampling["max_new_tokens"] == 6
    assert summary["prompts"] == 2 and summary["responses"] == 6
    assert json.loads((tmp_path / "gen" / "summary.json").read_text())["k"] == 3
    assert (tmp_path / "gen" / "config.yaml").exists()


def test_from_the_world_without_a_model(tmp_path):
    cfg = _cfg(tmp_path, model="world", prompts="world", k=4, **{"world.n": 5})
    summary = generate_batch(cfg, world=FakeWorld())
    items = list(read_batch(tmp_path / "gen" / "batch.jsonl"))
    assert len(items) == 5 and summary["distinct_per_prompt"] == 4
    assert items[0].meta["reference"] == "City0" and items[0].meta["kind"] == "qa"
    assert items[0].model == "world"


def test_the_real_world_writes_labelable_prompts(tmp_path):
    summary = generate_batch(_cfg(tmp_path, model="world", prompts="world", k=3, **{"world.n": 4}))
    items = list(read_batch(tmp_path / "gen"))
    assert summary["prompts"] == 4 and all(it.meta.get("reference") for it in items)


@pytest.mark.parametrize("overrides, message", [
    ({"model": "world", "prompts": "p.jsonl"}, "prompts must be 'world'"),
    ({"model": "m", "sampling.temperature": 0}, "identical responses"),
    ({"prompts": "world"}, "field 'model'"),
    ({"model": "m", "k": 1}, "greater than or equal to 2"),
])
def test_config_errors(tmp_path, overrides, message):
    with pytest.raises(InputError, match=message):
        _cfg(tmp_path, **overrides)


def test_bad_prompt_file_names_the_line(tmp_path, tiny_model):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "fine"}\n{"text": "no prompt"}\n')
    with pytest.raises(InputError, match=r"prompts.jsonl:2: field 'prompt'"):
        generate_batch(_cfg(tmp_path, model=tiny_model, prompts=prompts))
    assert not (tmp_path / "gen").exists()  # nothing written for bad input
