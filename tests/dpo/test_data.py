"""DPO data: response-only targets, ranking expansion weights, truncation that keeps the response."""
from __future__ import annotations

from collections import Counter

import pytest

from lmforge.algos.lm import IGNORE
from lmforge.data.dpo_data import PairBatches, encode_pairs, encode_response, to_pairs
from lmforge.data.preference import parse_feedback
from lmforge.data.readers import Record


def _tok(path):
    from lmforge.models.load import load_tokenizer

    return load_tokenizer(str(path))


def _rec(data: dict):
    return parse_feedback(Record(data, "mem.jsonl", 1))


@pytest.mark.parametrize("template", [None, "chatml"])
def test_targets_are_the_response_turn_only(tiny_lm, template):
    from lmforge.data.sft_tokenize import set_chat_template

    tok = _tok(tiny_lm)
    set_chat_template(tok, template)
    # ChatML's <|im_end|> is not a token of this tokenizer, so (as in SFT) its EOS is inserted after it
    end = tok.eos_token if template is None else "<|im_end|>" + tok.eos_token
    msgs = [{"role": "user", "content": "Tell me about cats."}, {"role": "assistant", "content": "no no."},
            {"role": "user", "content": "Again?"}]
    row = encode_response(tok, msgs, "sure here is the answer.", 256)
    targets = [t for t in row.labels if t != IGNORE]
    # the response and its end-of-turn token; neither the prompt nor the earlier assistant turn
    assert tok.decode(targets) == "sure here is the answer." + end


def test_rankings_become_all_pairs_weighted_one_over_c_k_2():
    counts = Counter()
    recs = [_rec({"type": "ranking", "prompt": "p", "responses": ["a", "b", "c", "d"], "ranking": [3, 1, 0, 2]}),
            _rec({"type": "pair", "prompt": "q", "chosen": "x", "rejected": "y"}),
            _rec({"type": "binary", "prompt": "r", "response": "z", "label": True})]
    pairs = to_pairs(recs, counts)
    ranked = [p for p in pairs if p.messages[0]["content"] == "p"]
    assert len(ranked) == 6
    assert sum(p.weight for p in ranked) == pytest.approx(1.0)
    assert ("d", "b") in {(p.chosen, p.rejected) for p in ranked} and ("b", "d") not in \
        {(p.chosen, p.rejected) for p in ranked}
    assert counts["skipped kind not used by this loss: binary"] == 1


def test_truncation_drops_prompt_from_the_left_and_keeps_the_response(tiny_lm):
    tok = _tok(tiny_lm)
    long_prompt = [{"role": "user", "content": "cats " * 80}]
    full = encode_response(tok, long_prompt, "sure here.", 1000)
    n_resp = sum(t != IGNORE for t in full.labels)
    row = encode_response(tok, long_prompt, "sure here.", n_resp + 5)
    assert row is not None and row.truncated and len(row.input_ids) == n_resp + 5
    assert [t for t in row.labels if t != IGNORE] == [t for t in full.labels if t != IGNORE]
    assert encode_response(tok, long_prompt, "sure here.", n_resp) is None  # no prompt token left
    counts = Counter()
    kept, rows = encode_pairs(tok, to_pairs([_rec({"prompt": "cats " * 80, "chosen": "sure here.",
                                                   "rejected": "no."})], counts), n_resp, counts)
    assert rows == [] and counts["dropped: response empty or longer than data.max_length"] == 1


def test_batches_resume_at_the_same_position(tiny_lm):
    tok = _tok(tiny_lm)
    pairs = to_pairs([_rec({"prompt": f"p{i}", "chosen": "sure.", "rejected": "no."}) for i in range(7)], Counter())
    _, rows = encode_pairs(tok, pairs, 64, Counter())
    a = PairBatches(rows, [1.0] * 7, 3, 0, seed=1)
    for _ in range(3):
        a.next_batch()
    b = PairBatches(rows, [1.0] * 7, 3, 0, seed=1)
    b.load_state_dict(a.state_dict())
    assert a.next_batch()["index"].tolist() == b.next_batch()["index"].tolist()
    assert a.next_batch()["input_ids"].shape[0] == 6  # chosen then rejected rows
