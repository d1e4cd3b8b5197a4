"""The judge's logic with fake scorers: both-order combination, ranking, scores, verdict parsing, rubrics,
storage as an ``ai:<name>`` labeler and agreement with simulated labelers. No model, fast."""
import math
import re
from collections import Counter

import pytest

from lmforge.data.preference import CRITERIA, Ranking
from lmforge.errors import InputError
from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.export import build_records
from lmforge.feedback.judge import (
    combine,
    decide,
    default_rubric,
    item_queries,
    judge_agreement,
    judge_batch,
    load_rubric,
    parse_verdict,
    rank,
)
from lmforge.feedback.judge.core import choice_probs, expected_score
from lmforge.feedback.judge.prompts import PAIR_CHOICES, pair_query
from lmforge.feedback.simulate import simulate

from .conftest import FakeLabeler, make_items


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def shown(query, slot: str) -> str:
    """The response text the prompt shows in ``slot`` (A, B, or '' for a single-response prompt)."""
    tag = f"Response {slot}".strip()
    return re.search(rf"\[{tag}\]\n(.*?)\n\[End of {tag}\]", query.messages[0]["content"], re.DOTALL).group(1)


class FakeJudge:
    """Scores by reading the responses out of the rendered prompt (so the prompt must hold them in place).

    ``quality(text)`` is the judge's true opinion; ``bias`` is added to the log-odds of whatever is shown as A.
    A pair query gets log P(A) = log sigmoid(qA - qB + bias); a score query puts half its mass on q + 2 and half
    on q + 3 (expected q + 2.5).
    """

    def __init__(self, quality=lambda text: 0.0, bias: float = 0.0, score_offset: float = 2.0):
        self.quality, self.bias, self.score_offset = quality, bias, score_offset
        self.name = "fake"
        self.stats: Counter = Counter()
        self.seen = []

    def answer(self, queries):
        self.stats["queries"] += len(queries)
        self.seen += queries
        out = []
        for q in queries:
            if q.choices == PAIR_CHOICES:
                d = self.quality(shown(q, "A")) - self.quality(shown(q, "B")) + self.bias
                out.append({"A": math.log(sigmoid(d)), "B": math.log(sigmoid(-d))})
            else:
                base = int(self.quality(shown(q, "")) + self.score_offset)
                out.append({str(base): math.log(0.5), str(base + 1): math.log(0.5)})
        return out


def quality_of_digit(text: str) -> float:
    return float(re.search(r"\d+", text).group())


# --------------------------------------------------------------------------- combination and ranking

@pytest.mark.parametrize("s, b", [(0.0, 3.0), (1.2, -0.7), (-2.0, 5.0), (0.4, 0.0)])
def test_an_additive_position_bias_cancels_exactly(s, b):
    # i shown as A: log-odds s + b; i shown as B: the judge's log-odds for A (=j) are -s + b, so P(i) = sigmoid(s - b)
    assert combine(sigmoid(s + b), sigmoid(s - b)) == pytest.approx(sigmoid(s), abs=1e-9)


def test_combine_edge_cases():
    assert combine(0.9, 0.1) == pytest.approx(0.5)  # says A both times: no preference left
    assert combine(1.0, 1.0) > 0.999 and combine(0.0, 0.0) < 0.001  # consistent written verdicts
    assert combine(None, None) == 0.5 and 0.5 < combine(1.0, None) < 1


def test_a_judge_that_always_prefers_position_a_ties_everything():
    judge = FakeJudge(bias=2.5)  # no opinion of its own, strong preference for A
    responses = ["one", "two", "three"]
    queries = item_queries(default_rubric(), [{"role": "user", "content": "q"}], responses, criteria=False)
    assert len(queries) == 6 and [q.info["shown"] for q in queries[:2]] == [[0, 1], [1, 0]]
    judged = decide(3, judge.answer(queries), criteria=False)
    assert all(p == pytest.approx(0.5) for p in judged.wins.values())
    assert judged.label.ties == [[0, 1, 2]] and judged.counts["tied pairs"] == 3
    assert judged.counts["order-consistent pairs"] == 0 and judged.label.scores is None


def test_the_better_text_wins_in_both_orders_despite_a_position_bias():
    judge = FakeJudge(quality_of_digit, bias=0.8)
    responses = ["answer worth 2", "answer worth 5", "answer worth 1", "answer worth 3"]
    queries = item_queries(default_rubric(), [{"role": "user", "content": "q"}], responses, criteria=False)
    judged = decide(4, judge.answer(queries), criteria=False)
    assert judged.label.ranking == [1, 3, 0, 2] and judged.label.ties == []
    for (i, j), p in judged.wins.items():  # the bias is gone: exactly the judge's own opinion
        assert p == pytest.approx(sigmoid(quality_of_digit(responses[i]) - quality_of_digit(responses[j])))
    p1, p2 = judged.order_probs[(0, 1)]  # the raw verdicts do show the bias
    assert p1 == pytest.approx(sigmoid(-3 + 0.8)) and p2 == pytest.approx(sigmoid(-3 - 0.8))
    assert judged.counts["order-consistent pairs"] == 6


def test_rank_copeland_ties_and_cycles():
    order, ties, copeland = rank(3, {(0, 1): 0.9, (0, 2): 0.8, (1, 2): 0.5})
    assert order == [0, 2, 1] and ties == [[2, 1]] and copeland == [2.0, 0.5, 0.5]  # 2 has more expected wins
    order, ties, copeland = rank(3, {(0, 1): 0.9, (1, 2): 0.9, (0, 2): 0.3})  # a cycle: no ties, by expected wins
    assert copeland == [1.0, 1.0, 1.0] and ties == [] and order == [0, 1, 2]  # expected wins 1.2, 1.0, 0.8
    order, ties, _ = rank(2, {(0, 1): 0.46}, margin=0.05)
    assert order == [1, 0] and ties == [[1, 0]]  # within the margin: a tie (order by expected wins)
    assert rank(2, {(0, 1): 0.46}, margin=0.01)[1] == []


def test_expected_scores_round_to_whole_numbers():
    judge = FakeJudge(quality_of_digit)
    responses = ["worth 1", "worth 4"]
    queries = item_queries(default_rubric(), [{"role": "user", "content": "q"}], responses, criteria=True)
    assert len(queries) == 2 + 2 * len(CRITERIA)
    judged = decide(2, judge.answer(queries), criteria=True)
    assert judged.scores[0]["accuracy"] == pytest.approx(3.5) and judged.scores[1]["honesty"] == pytest.approx(6.5)
    assert judged.label.scores == [{c: 4 for c in CRITERIA}, {c: 7 for c in CRITERIA}]
    assert expected_score({str(d): (1.0 if d == 7 else 0.0) for d in range(1, 8)}) == 7


def test_choice_probs():
    assert choice_probs({"A": math.log(0.2), "B": math.log(0.6), "C": 0.0}, "AB") == pytest.approx({"A": 0.25,
                                                                                                     "B": 0.75})
    assert choice_probs({"A": -3.0}, "AB") == {"A": 1.0, "B": 0.0}
    assert choice_probs({}, "AB") is None and choice_probs({"A": -math.inf}, "AB") is None


# --------------------------------------------------------------------------- verdicts, prompts, rubrics

@pytest.mark.parametrize("text, choices, expected", [
    ("A", "AB", "A"), ("B.", "AB", "B"), ("(B)", "AB", "B"), ("**A**", "AB", "A"), ("  B\n\nBecause", "AB", "B"),
    ("Response A is better than Response B", "AB", "A"), ("I think B is better.", "AB", "B"),
    ("Answer: B", "AB", "B"), ("[[A]]", "AB", "A"), ("The better one is Response B.", "AB", "B"),
    ("A good answer is B", "AB", "B"), ("A and B are equal", "AB", None), ("Both are fine", "AB", None),
    ("", "AB", None), (None, "AB", None), ("a", "AB", None),
    ("6", "1234567", "6"), ("6/7", "1234567", "6"), ("Rating: 5", "1234567", "5"),
    ("I would give it a 3.", "1234567", "3"), ("Score: 8", "1234567", None), ("10", "1234567", None),
])
def test_parse_verdict(text, choices, expected):
    assert parse_verdict(text, tuple(choices)) == expected


def test_the_pair_prompt_holds_the_principles_and_both_responses():
    rubric = default_rubric()
    q = pair_query(rubric, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
                   "first text", "second text")
    text = q.messages[0]["content"]
    assert [m["role"] for m in q.messages] == ["user"] and q.choices == ("A", "B")
    assert "System: Be brief.\n\nUser: Hi?" in text and shown(q, "A") == "first text" and shown(q, "B") == "second text"
    assert len(rubric.principles) == 5 and all(p.split(":")[0].lower() in CRITERIA for p in rubric.principles)
    assert all(p in text for p in rubric.principles) and text.rstrip().endswith("A or B.")


def test_rubric_files(tmp_path):
    txt = tmp_path / "constitution.txt"
    txt.write_text("# my constitution\n- Choose the kinder response.\n\n2. Choose the more honest response.\n")
    r = load_rubric(txt)
    assert r.name == "constitution" and r.principles == ("Choose the kinder response.",
                                                         "Choose the more honest response.")
    yml = tmp_path / "r.yaml"
    yml.write_text("name: strict\ninstructions: Judge replies of a tutor.\n"
                   "criteria:\n  accuracy: Every number right?\n")
    r = load_rubric(yml)
    assert r.name == "strict" and r.instructions == "Judge replies of a tutor."
    assert r.criteria["accuracy"] == "Every number right?"
    assert r.criteria["honesty"] == default_rubric().criteria["honesty"]
    assert r.principles[0] == "Accuracy: Every number right?"  # without principles the criteria decide
    (tmp_path / "l.yml").write_text("- Be safe.\n- Be right.\n")
    assert load_rubric(tmp_path / "l.yml").principles == ("Be safe.", "Be right.")
    q = pair_query(r, [{"role": "user", "content": "q"}], "x", "y")
    assert q.messages[0]["content"].startswith("Judge replies of a tutor.")


@pytest.mark.parametrize("name, text, message", [
    ("empty.txt", "# nothing\n\n", "no principles"),
    ("bad.yaml", "principles: [ok]\nrules: [x]\n", "unknown rubric key"),
    ("crit.yaml", "criteria:\n  kindness: be kind\n", "unknown criteria kindness"),
    ("broken.yaml", "principles: [unclosed\n", "invalid YAML"),
    ("none.yaml", "name: x\n", "needs principles or criteria"),
])
def test_bad_rubrics(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=message):
        load_rubric(tmp_path / name)
    with pytest.raises(InputError, match="not found"):
        load_rubric(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------- through the store

def world_like_items(n: int = 4) -> list[BatchItem]:
    """Three responses of known quality per prompt (City: +2, no 'probably': +1), in a different order each."""
    items = []
    for i in range(n):
        texts = [f"City{i}, probably.", "Nowhere.", f"City{i}."]
        texts = texts[i % 3:] + texts[:i % 3]
        items.append(BatchItem(id=f"w{i}", prompt=[{"role": "user", "content": f"Capital of C{i}?"}],
                               responses=texts, meta={"kind": "qa", "reference": f"City{i}"}))
    return items


def city_quality(text: str) -> float:
    return (2.0 if "City" in text else 0.0) + (1.0 if "probably" not in text else 0.0)


def test_judge_batch_stores_labels_as_an_ai_labeler(sqlite_store):
    sqlite_store.add_batch("b", make_items(n=3, k=3))
    judge = FakeJudge(lambda t: -float(t.split(".")[-1]), bias=1.0)  # "answer i.0" best
    summary = judge_batch(sqlite_store, "b", judge, rubric=default_rubric(), name="fake-judge", limit=2)
    assert summary["prompts judged"] == 2 and summary["created"] == 2 and summary["pairs"] == 6
    # a bias as large as the quality gap between neighbours: only the pair two apart looks the same both ways ...
    assert summary["order-consistent share"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["decided pairs"] == 6  # ... yet every pair is decided the right way
    assert summary["mean P(A)"] > 0.5 and summary["backend: queries"] == 2 * (6 + 15)
    summary = judge_batch(sqlite_store, "b", judge, rubric=default_rubric(), name="fake-judge")
    assert summary["prompts judged"] == 1  # only what is still pending
    labels = sqlite_store.labels(["b"])
    assert len(labels) == 3 and {r.source for r in labels} == {"ai:fake-judge"}
    assert all(r.ranking == [0, 1, 2] and r.ties == [] and r.scores is not None for r in labels)
    assert labels[0].comment.startswith("judge fake, rubric default. P(win, both orders combined): A>B 0.73")
    records, _ = build_records(labels)
    assert {r.source for r in records if isinstance(r, Ranking)} == {"ai:fake-judge"}
    assert judge_batch(sqlite_store, "b", judge, rubric=default_rubric(), name="fake-judge")["created"] == 0


def test_judge_batch_refuses_bad_input_before_writing(sqlite_store):
    with pytest.raises(InputError, match="no batch 'nope'"):
        judge_batch(sqlite_store, "nope", FakeJudge(), rubric=default_rubric())
    assert sqlite_store.get_user("judge") is None
    sqlite_store.add_batch("b", make_items(n=1))
    sqlite_store.ensure_user("judge", kind="simulated")
    with pytest.raises(InputError, match="kind 'simulated'"):
        judge_batch(sqlite_store, "b", FakeJudge(), rubric=default_rubric())


def test_agreement_with_simulated_labelers(sqlite_store):
    sqlite_store.add_batch("w", world_like_items())
    simulate(sqlite_store, "w", labelers=2, make_labeler=lambda i: FakeLabeler(None, seed=i))
    # the fake labeler ranks by the same quality and scores 2 + quality on every criterion
    judge_batch(sqlite_store, "w", FakeJudge(city_quality, bias=-1.5, score_offset=1.5), rubric=default_rubric(),
                name="good-judge")
    judge_batch(sqlite_store, "w", FakeJudge(lambda t: -city_quality(t), bias=0.7), rubric=default_rubric(),
                name="contrarian", criteria=False)
    labels = sqlite_store.labels(["w"])
    rows = {r["with"]: r for r in judge_agreement(labels, "good-judge")}
    assert set(rows) == {"sim-1", "sim-2", "contrarian", "all simulated (2)"}
    sim = rows["sim-1"]
    assert sim["kind"] == "simulated" and sim["prompts"] == 4 and sim["kendall_tau"] == 1.0
    assert sim["rank_alpha"] == 1.0 and all(sim["alpha"][c] == 1.0 for c in CRITERIA)
    assert rows["all simulated (2)"]["tau_pairs"] == 8 and rows["all simulated (2)"]["kendall_tau"] == 1.0
    assert rows["contrarian"]["kendall_tau"] == -1.0 and rows["contrarian"]["alpha"]["accuracy"] is None
    contra = {r["with"]: r for r in judge_agreement(labels, "contrarian")}
    assert contra["sim-2"]["kendall_tau"] == -1.0 and contra["sim-2"]["scored_prompts"] == 0
    assert judge_agreement([r for r in labels if r.labeler == "good-judge"], "good-judge") == []
