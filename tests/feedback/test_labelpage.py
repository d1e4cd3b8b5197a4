"""The labeling page's details: responses cut at the length limit are marked, the admin batch page says why an
agreement figure is missing (and counts in the singular), and /favicon.ico answers."""
import re
from datetime import datetime

from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.labels import LabelIn, LabelRecord
from lmforge.feedback.stats import agreement, alpha_rows

from .conftest import PASSWORD, make_items
from .test_webapp import client, login


def test_responses_cut_at_the_length_limit_are_marked(sqlite_store):
    store = sqlite_store
    store.create_user("ana", password=PASSWORD)
    store.add_batch("cut", [BatchItem(id="q", prompt="Tell me a story.", responses=[
        {"text": "Once upon a time there was", "tokens": 128, "finished": False},
        {"text": "The end.", "tokens": 3, "finished": True},
        "no metadata at all"])])
    store.assign("cut", 1)
    c = client(store)
    login(c, "ana")
    (aid,) = store.pending(store.get_user("ana").id)
    page = c.get(f"/a/{aid}").text
    cards = {m[0]: m[1] for m in re.findall(r'id="response-([A-Z])">(.*?)</article>', page, re.S)}
    assert set(cards) == {"A", "B", "C"}
    assert "cut off at" in cards["A"] and "the length limit" in cards["A"] and "[&hellip;]" in cards["A"]
    assert "cut off" not in cards["B"] and "cut off" not in cards["C"]


def _admin_batch_page(store, batch: str) -> str:
    store.create_user("root", password=PASSWORD, role="admin")
    c = client(store)
    login(c, "root")
    r = c.get(f"/admin/batches/{batch}")
    assert r.status_code == 200, r.text
    return re.sub(r"\s+", " ", r.text)


def test_admin_batch_page_says_why_there_is_no_agreement_yet(sqlite_store):
    store = sqlite_store
    store.add_batch("one", make_items(1, 3))
    judge = store.ensure_user("judge", kind="ai")
    store.assign("one", 1, users=["judge"])
    (aid,) = store.pending(judge.id)
    store.submit_label(judge.id, aid, LabelIn(ranking=[0, 1, 2]))
    page = _admin_batch_page(store, "one")
    assert "1 prompt, 3 responses" in page
    assert "Over 0 prompts labeled by two or more labelers" in page
    assert "mean over 0 labeler pairs" in page
    tau = re.search(r'<b id="tau">n/a</b> <span class="note" id="tau-note">\(([^)]*)\)', page)
    assert tau and "needs two labelers on the same prompt" in tau[1]
    assert 'id="alpha-note">no figure yet: agreement needs two labelers on the same prompt' in page


def test_admin_batch_page_singular_and_tied_rankings(sqlite_store):
    """One shared prompt where a labeler tied everything: tau is undefined, and the page says so."""
    store = sqlite_store
    store.add_batch("ties", make_items(1, 3), mode="rank")
    users = [store.ensure_user(n, kind="ai") for n in ("j1", "j2")]
    store.assign("ties", 2, users=["j1", "j2"])
    for u, label in zip(users, (LabelIn(ranking=[0, 1, 2]), LabelIn(ranking=[0, 1, 2], ties=[[0, 1, 2]]))):
        (aid,) = store.pending(u.id)
        store.submit_label(u.id, aid, label)
    page = _admin_batch_page(store, "ties")
    assert "Over 1 prompt labeled by two or more labelers" in page
    assert "mean over 0 labeler pairs" in page and "a labeler tied all the responses" in page
    # rank-only batch: the alpha table has the rank and unsafe rows, not five empty criteria
    assert re.findall(r"<tr><td>(\w+)</td>", page.split('id="alpha"')[1].split("</table>")[0]) == ["rank", "unsafe"]


def _record(labeler: str, ranking: list[int]) -> LabelRecord:
    now = datetime(2026, 1, 1)
    return LabelRecord(label_id=0, assignment_id=0, batch="b", item_id=1, item_key="p", prompt=[], item_meta={},
                       responses=["x", "y", "z"], labeler=labeler, labeler_kind="human", ranking=ranking, ties=[],
                       scores=None, unsafe=[False] * 3, comment=None, rewrite=None, revision=1, created_at=now,
                       updated_at=now, opened_at=None, mode="rank")


def test_agreement_over_one_pair_has_no_note():
    recs = [_record("a", [0, 1, 2]), _record("b", [1, 0, 2])]
    out = agreement(recs)
    assert out["prompts"] == 1 and out["tau_pairs"] == 1 and out["tau_note"] is None
    assert alpha_rows("good-bad", recs) == ["good", "unsafe"]
    assert alpha_rows("rank+overall", recs)[:2] == ["rank", "overall"]


def test_favicon_is_served(sqlite_store):
    c = client(sqlite_store)
    r = c.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.content.startswith(b"<svg")
    login_page = c.get("/login").text
    assert '<link rel="icon" href="/static/favicon.svg"' in login_page
    assert c.get("/static/favicon.svg").status_code == 200


def test_admin_chooses_the_mode_when_uploading_a_batch(sqlite_store):
    store = sqlite_store
    store.create_user("root", password=PASSWORD, role="admin")
    c = client(store)
    csrf = login(c, "root")
    page = c.get("/admin").text
    assert '<select name="mode">' in page and "<option selected>rank+criteria</option>" in page
    body = "".join(item.model_dump_json() + "\n" for item in make_items(2, 2, prefix="u")).encode()
    r = c.post("/admin/batches", data={"csrf_token": csrf, "name": "ro", "mode": "rank"},
               files={"file": ("batch.jsonl", body, "application/json")})
    assert r.status_code == 303, r.text
    assert store.get_batch("ro").mode == "rank"
    r = c.post("/admin/batches", data={"csrf_token": csrf, "name": "x", "mode": "scores"},
               files={"file": ("batch.jsonl", body, "application/json")})
    assert r.status_code == 400 and "unknown batch mode" in r.text
    assert "<td>rank</td>" in c.get("/admin").text
