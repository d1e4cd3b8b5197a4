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
    from lmforge.stages.dpo_loss import sequence_logprobs

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


def test_best_vs_rest_makes_k_minus_1_pairs_weighted_one_over_k_minus_1():
    rank = _rec({"type": "ranking", "prompt": "p", "responses": ["a", "b", "c", "d"], "ranking": [3, 1, 0, 2],
                 "weight": 2.0})
    pairs = to_pairs([rank], Counter(), "best_vs_rest")
    assert [(p.chosen, p.rejected) for p in pairs] == [("d", "b"), ("d", "a"), ("d", "c")]
    assert [p.weight for p in pairs] == pytest.approx([2 / 3] * 3)
    # a response tied with the best, or with the same text, makes no pair and its weight is not handed on
    tied = _rec({"type": "ranking", "prompt": "p", "responses": ["a", "b", "a", "d"], "ranking": [0, 1, 2, 3],
                 "ties": [[0, 1]]})
    counts = Counter()
    assert [(p.chosen, p.rejected, p.weight) for p in to_pairs([tied], counts, "best_vs_rest")] == \
        [("a", "d", pytest.approx(1 / 3))]
    assert counts["ranking pairs not made: tied or identical responses"] == 2
    counts = Counter()
    assert len(to_pairs([tied], counts, "all")) == 4  # 6 minus (a,b) tied and (a,a) identical
    assert counts["ranking pairs not made: tied or identical responses"] == 2


def test_kto_examples_from_binary_labels_pairs_and_rankings():
    from lmforge.data.dpo_data import to_kto_examples

    recs = [_rec({"type": "binary", "prompt": "p", "response": "yes.", "label": True}),
            _rec({"type": "binary", "prompt": "p", "response": "meh.", "label": False, "weight": 0.5}),
            _rec({"type": "pair", "prompt": "q", "chosen": "good.", "rejected": "bad."}),
            _rec({"type": "pair", "prompt": "q", "chosen": "good.", "rejected": "worse."}),
            _rec({"type": "ranking", "prompt": "r", "responses": ["x", "y", "z"], "ranking": [2, 0, 1]}),
            _rec({"type": "likert", "prompt": "s", "response": "a", "scores": {"honesty": 3}})]
    counts = Counter()
    got = {(e.messages[0]["content"], e.response, e.desirable): e.weight
           for e in to_kto_examples(recs, counts, "best_vs_rest")}
    assert got == {("p", "yes.", True): 1.0, ("p", "meh.", False): 0.5,
                   ("q", "good.", True): 2.0, ("q", "bad.", False): 1.0, ("q", "worse.", False): 1.0,
                   ("r", "z", True): 1.0, ("r", "x", False): 0.5, ("r", "y", False): 0.5}
    assert counts["kto examples merged (same prompt, response and label)"] == 2
    assert counts["skipped kind not used by this loss: likert"] == 1


def test_kto_rows_pair_each_example_with_another_prompts_response(tiny_lm):
    from lmforge.data.dpo_data import KTOExample, encode_kto

    tok = _tok(tiny_lm)
    ex = [KTOExample([{"role": "user", "content": f"Tell me about {t}."}], f"sure {t}.", i % 2 == 0, 1.0)
          for i, t in enumerate(["cats", "snow", "trees", "boats", "bread"])]
    ex.append(KTOExample(ex[0].messages, "no.", False, 1.0))  # same prompt as the first: not its mismatch
    ex.append(KTOExample(ex[1].messages, "  ", False, 1.0))  # empty: dropped
    counts = Counter()
    kept, rows = encode_kto(tok, ex, 64, counts, seed=0)
    assert len(kept) == 6 and counts["dropped: empty response"] == 1
    for e, (own, mis) in zip(kept, rows, strict=True):
        own_resp = tok.decode([t for t in own.labels if t != IGNORE])
        mis_resp = tok.decode([t for t in mis.labels if t != IGNORE])
        assert own_resp.startswith(e.response)
        others = [o.response for o in kept if o.messages != e.messages]
        assert any(mis_resp.startswith(r) for r in others)  # another prompt's response ...
        n = own.labels.index(next(t for t in own.labels if t != IGNORE))  # the last prompt position
        assert mis.input_ids[:n] == own.input_ids[:n]  # ... after this example's own prompt


def test_planned_indices_are_the_ones_drawn(tiny_lm):
    tok = _tok(tiny_lm)
    pairs = to_pairs([_rec({"prompt": f"p{i}", "chosen": "sure.", "rejected": "no."}) for i in range(10)], Counter())
    _, rows = encode_pairs(tok, pairs, 64, Counter())
    for rank in (0, 1):
        a = PairBatches(rows, [1.0] * 10, 3, 0, rank=rank, world_size=2, seed=4)
        plan = a.planned(5)  # crosses an epoch boundary (5 rows per rank)
        assert [i for _ in range(5) for i in a.next_batch()["index"].tolist()] == plan
        assert a.planned(2) == plan[:6]  # planning does not move the sampler


def test_empty_responses_are_dropped_and_counted(tiny_lm):
    tok = _tok(tiny_lm)
    recs = [_rec({"prompt": "p", "chosen": " ", "rejected": "no."}),
            _rec({"prompt": "p", "chosen": "sure.", "rejected": ""}),
            _rec({"prompt": "p", "chosen": "sure.", "rejected": "no."})]
    counts = Counter()
    kept, rows = encode_pairs(tok, to_pairs(recs, counts), 64, counts)
    assert len(rows) == 1 and counts["dropped: empty response"] == 2 and counts["pairs"] == 1
