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
    assert rows == [] and counts["dropped: response does not fit data.max_length"] == 1


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


def test_shared_prompt_rows_give_the_padded_log_probs(tiny_lm):
    import torch

    from lmforge.data.dpo_data import collate, collate_shared
    from lmforge.models.load import load_causal_lm
    from lmforge.stages.dpo import sequence_logprobs

    tok = _tok(tiny_lm)
    recs = [_rec({"prompt": "Tell me about cats number 3.", "chosen": "sure here is the answer.",
                  "rejected": "no wrong."}),
            _rec({"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no."},
                             {"role": "user", "content": "Tell me about snow."}], "chosen": "sure.",
                  "rejected": "bad bad rude nonsense wrong broken no."})]
    _, rows = encode_pairs(tok, to_pairs(recs, Counter()), 64, Counter())
    model = load_causal_lm(str(tiny_lm)).eval()
    with torch.no_grad():
        want, n_want = sequence_logprobs(model, collate(rows, [0, 1], [1.0, 1.0], 0))
        shared = collate_shared(rows, [0, 1], [1.0, 1.0], 0)
        got, n_got = sequence_logprobs(model, shared)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert n_got.tolist() == n_want.tolist()
    assert shared["tokens"] < shared["sequence_tokens"]  # each prompt forwarded once
