"""What a URL can make the labeling app do: ids past 64 bits are 404/400 (not 500), success messages are fixed
texts (never text from the query), and a labeler's error pages do not list the batches."""
import pytest

from .conftest import make_items
from .test_webapp import client, good_form, login

HUGE = [2**63, 2**64 + 5, 10**30]
INJECTED = "Your account is suspended, call +1 555 0100"


@pytest.fixture
def site(sqlite_store):
    s = sqlite_store
    for name in ("ana", "bob"):
        s.create_user(name, password="correct horse")
    s.create_user("root", password="correct horse", role="admin")
    s.add_batch("everyday-work", make_items(2, 3))
    s.add_batch("secret-launch", make_items(1, 3, prefix="s"))
    s.assign("everyday-work", 1, users=["ana"])
    s.assign("secret-launch", 1, users=["bob"])
    return s


@pytest.mark.parametrize("aid", HUGE + [-1])
def test_huge_path_ids_are_404(site, aid):
    c = client(site)
    csrf = login(c, "ana")
    r = c.get(f"/a/{aid}")
    assert r.status_code == 404 and "no such page" in r.text
    r = c.post(f"/a/{aid}", data=good_form(csrf))
    assert r.status_code == 404


@pytest.mark.parametrize("query", [f"/next?after={HUGE[0]}", f"/next?after={HUGE[2]}", "/a/1?saved=99999999999999999999",
                                   "/next?after=x"])
def test_huge_query_ids_are_400(site, query):
    c = client(site)
    login(c, "ana")
    r = c.get(query)
    assert r.status_code == 400 and ("after" in r.text or "saved" in r.text)


def test_the_largest_id_is_just_not_found(site):
    c = client(site)
    login(c, "ana")
    assert c.get(f"/a/{2**63 - 1}").status_code == 404


def test_success_messages_do_not_echo_the_query(site):
    c = client(site)
    login(c, "ana")
    mine = site.pending(site.get_user("ana").id)
    page = c.get("/?done=" + INJECTED)
    assert page.status_code == 200 and "suspended" not in page.text
    assert "Batch everyday-work: all your prompts are labeled" in c.get("/?done=everyday-work").text
    assert "secret-launch" not in c.get("/?done=secret-launch").text  # not ana's batch
    assert c.get(f"/a/{mine[0]}?saved={INJECTED}").status_code == 400
    bobs = site.pending(site.get_user("bob").id)[0]
    assert "Saved prompt" not in c.get(f"/a/{mine[0]}?saved={bobs}").text  # not ana's assignment
    assert "Saved prompt p0." in c.get(f"/a/{mine[1]}?saved={mine[0]}").text


def test_submitting_shows_the_saved_prompt_from_the_database(site):
    c = client(site)
    csrf = login(c, "ana")
    first, second = site.pending(site.get_user("ana").id)
    r = c.post(f"/a/{first}", data=good_form(csrf))
    assert r.status_code == 303
    r = c.get(r.headers["location"])
    assert r.status_code == 303 and r.headers["location"] == f"/a/{second}?saved={first}"
    assert "Saved prompt p0." in c.get(r.headers["location"]).text


@pytest.mark.parametrize("query, shown", [
    (f"ok=user&arg={INJECTED}", "Created the user"),
    (f"ok=batch&arg={INJECTED}", "Created the batch"),
    (f"ok=assign&arg={INJECTED}", None),
    ("ok=assign&arg=3", "Made 3 new assignment(s)."),
    (f"ok={INJECTED}&arg=x", None),
])
def test_admin_messages_are_fixed_texts(site, query, shown):
    c = client(site)
    login(c, "root")
    page = c.get("/admin?" + query)
    assert page.status_code == 200 and "suspended" not in page.text
    if shown:
        assert shown in page.text
    else:
        assert "Created" not in page.text and "new assignment" not in page.text


@pytest.mark.parametrize("path", ["/batches/secret-launch", "/batches/nope", "/next?batch=nope",
                                  "/next?batch=secret-launch"])
def test_a_labeler_error_does_not_list_the_batches(site, path):
    c = client(site)
    login(c, "ana")
    r = c.get(path)
    assert r.status_code == 404
    assert "secret-launch" not in r.text.replace(path, "") and "everyday-work" not in r.text
    assert "you have no prompts in a batch of that name" in r.text


def test_a_labeler_still_reaches_their_own_batch(site):
    c = client(site)
    login(c, "ana")
    assert c.get("/batches/everyday-work").status_code == 200
    assert c.get("/next?batch=everyday-work").status_code == 303
