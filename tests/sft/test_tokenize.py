"""Assistant-only loss masks from the chat template: every assistant turn plus its EOS, nothing else."""
from __future__ import annotations

import pytest

from lmforge.data.sft_tokenize import (
    CHATML,
    assistant_spans,
    close_spans,
    mask_from_offsets,
    set_chat_template,
    tokenize_examples,
)
from lmforge.errors import InputError

from .conftest import MULTI_TURN, example


def target_text(tokenizer, tok) -> list[str]:
    """The loss-bearing runs of a tokenized example, decoded."""
    runs, cur = [], []
    for tid, on in zip(tok.input_ids, tok.mask):
        if on:
            cur.append(tid)
        elif cur:
            runs.append(tokenizer.decode(cur))
            cur = []
    if cur:
        runs.append(tokenizer.decode(cur))
    return runs


@pytest.mark.parametrize("method", ["generation", "prefix"])
def test_every_assistant_turn_and_its_eos_carry_loss(tokenizer, method: str) -> None:
    [tok], stats = tokenize_examples(tokenizer, [example(MULTI_TURN)], 256, method=method)
    assert target_text(tokenizer, tok) == ["2 plus 3 is 5.<|end|>", "4 plus 4 is 8.<|end|>"]
    assert stats.boundary_mismatch == 0 and stats.eos_inserted == 0
    assert sum(tok.mask) == len(tokenizer("2 plus 3 is 5.<|end|>4 plus 4 is 8.<|end|>")["input_ids"])


def test_generation_blocks_and_prefix_rendering_agree(tokenizer, world) -> None:
    examples = [example(it["messages"], i) for i, it in enumerate(world.sft_examples("train", n=60), 1)]
    a, _ = tokenize_examples(tokenizer, examples, 512, method="generation")
    b, _ = tokenize_examples(tokenizer, examples, 512, method="prefix")
    assert [(t.input_ids, t.mask) for t in a] == [(t.input_ids, t.mask) for t in b]
    assert all(t.input_ids[i] == tokenizer.eos_token_id for t in a for i, on in enumerate(t.mask)
               if on and (i + 1 == len(t) or not t.mask[i + 1]))  # every target run ends with EOS


def test_chatml_with_pad_equal_to_eos_still_learns_eos(tokenizer) -> None:
    """SmolLM2-style: ChatML, <|im_end|> is both EOS and pad; the mask and labels must still keep EOS."""
    from transformers import AutoTokenizer

    from lmforge.data.packing import collate

    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    tokenizer.chat_template = CHATML.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    short = example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes."}])
    toks, _ = tokenize_examples(tokenizer, [example(MULTI_TURN), short], 256)
    assert target_text(tokenizer, toks[0]) == ["2 plus 3 is 5.<|im_end|>", "4 plus 4 is 8.<|im_end|>"]
    batch = collate([[toks[0]], [toks[1]]], tokenizer.pad_token_id, packed=False)
    eos_targets = (batch["labels"] == tokenizer.eos_token_id).sum(dim=1).tolist()
    assert eos_targets == [2, 1]  # padding (same id) is not a target, the real EOS are
    assert batch["attention_mask"][1].sum() == len(toks[1])
    assert isinstance(AutoTokenizer, type)


def test_template_without_end_token_gets_eos_inserted(tokenizer) -> None:
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                               "{% if add_generation_prompt %}assistant: {% endif %}")
    [tok], stats = tokenize_examples(tokenizer, [example(MULTI_TURN)], 256)
    assert stats.eos_inserted == 2 and stats.boundary_mismatch == 2  # "assistant: " + "2" tokenizes as " 2"
    assert target_text(tokenizer, tok) == [" 2 plus 3 is 5.<|end|>", " 4 plus 4 is 8.<|end|>"]


def test_close_spans_extends_to_an_end_token_just_outside() -> None:
    text = "A: hi<e>\nB: yo<e>\n"
    assert close_spans(text, [(3, 5), (12, 14)], ["<e>"], "<e>") == (text, [(3, 8), (12, 17)], 0)
    assert close_spans("A: hi\n", [(3, 6)], ["<e>"], "<e>") == ("A: hi<e>\n", [(3, 8)], 1)


def test_mask_from_offsets_takes_tokens_overlapping_a_span() -> None:
    assert mask_from_offsets([(0, 2), (2, 4), (4, 6), (6, 8)], [(3, 6)]) == [False, True, True, False]
    assert mask_from_offsets([(0, 2), (2, 2), (2, 4), (4, 6)], [(0, 2), (4, 6)]) == [True, False, False, True]


def test_no_chat_template_is_a_clear_error(tokenizer) -> None:
    tokenizer.chat_template = None
    with pytest.raises(InputError, match="no chat template"):
        set_chat_template(tokenizer, None)
    set_chat_template(tokenizer, "chatml")
    assert "<|im_start|>" in tokenizer.chat_template


def test_template_that_cannot_render_names_the_example(tokenizer) -> None:
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                               "{{ raise_exception('system messages are not supported') }}{% endif %}"
                               "{{ m['content'] }}{% endfor %}")
    with pytest.raises(InputError, match=r"mem.jsonl:7.*system messages are not supported"):
        tokenize_examples(tokenizer, [example(MULTI_TURN, 7)], 256)


def test_too_long_examples_are_dropped_or_truncated_and_counted(tokenizer) -> None:
    long = example([{"role": "user", "content": "Tell me. " * 5}, {"role": "assistant", "content": "Yes. " * 60}])
    short = example(MULTI_TURN[1:3])
    kept, stats = tokenize_examples(tokenizer, [long, short], 64, truncation="drop")
    assert len(kept) == 1 and stats.dropped_too_long == 1 and stats.truncated == 0
    kept, stats = tokenize_examples(tokenizer, [long, short], 64, truncation="truncate")
    assert len(kept) == 2 and stats.truncated == 1 and len(kept[0]) == 64 and kept[0].truncated
    prompt_only = example([{"role": "user", "content": "Tell me. " * 40}, {"role": "assistant", "content": "Ok."}])
    kept, stats = tokenize_examples(tokenizer, [prompt_only], 32, truncation="truncate")
    assert kept == [] and stats.dropped_no_target == 1


def test_assistant_spans_prefix_fallback_on_unstable_template(tokenizer) -> None:
    """A template that renders earlier assistant turns differently from the last is still masked right."""
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
                               "[old] {% endif %}{{ m['role'] }}: {{ m['content'] }}<|end|>\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant: {% endif %}")
    text, spans, _ = assistant_spans(tokenizer, MULTI_TURN, "prefix")
    assert [text[a:b] for a, b in spans] == ["2 plus 3 is 5.<|end|>", "4 plus 4 is 8.<|end|>"]
