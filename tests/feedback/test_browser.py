"""Headless Chromium (Debian's `chromium`, driven by Playwright) logs in as a labeler, ranks a batch with the
keyboard, by typing ranks and by dragging, and submits; the rankings are in the database and in the export."""

from lmforge.data.preference import CRITERIA, Ranking, read_feedback
from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.export import build_records, write_records
from lmforge.feedback.webapp import create_app
from web_helpers import ARGS, CHROMIUM, PASSWORD, LiveServer, needs_chromium
from web_helpers import browser_login as _login

pytestmark = needs_chromium


def _type_scores(page, k: int, base: int) -> None:
    """Click the first score and type one digit per score: each digit moves on to the next score field."""
    page.click("input[name=accuracy_0]")
    page.keyboard.type("".join(str((base + i + j) % 7 + 1) for i in range(k) for j in range(len(CRITERIA))))


def test_labeler_ranks_a_batch_in_the_browser(sqlite_store, tmp_path):
    from playwright.sync_api import sync_playwright

    store = sqlite_store
    store.create_user("ana", password=PASSWORD)
    items = [BatchItem(id="q1", prompt="What is the capital of France?",
                       responses=["Paris.", "<script>window.pwned = 1</script>Lyon?", "I don't know."]),
             BatchItem(id="q2", prompt="Name a primary color.", responses=["Green", "Red", "Purple"]),
             BatchItem(id="q3", prompt="2 + 2?", responses=["4", "5", "22"])]
    store.add_batch("web", items)
    store.assign("web", 1)
    dialogs: list[str] = []
    with LiveServer(create_app(store)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url + "/")
        assert "/login" in page.url
        page.fill("input[name=name]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        assert page.locator("td >> text=web").count() == 1
        page.click("text=start")

        # prompt 1: keyboard only. C, A -> B is placed last automatically; Ctrl+Enter submits.
        page.wait_for_selector("#label-form")
        assert page.locator("#response-B .text").inner_text() == "<script>window.pwned = 1</script>Lyon?"
        page.locator("h2").first.click()  # focus outside the inputs
        page.keyboard.press("c")
        page.keyboard.press("a")
        assert page.inner_text("#order") == "Order: C > A > B"
        _type_scores(page, 3, base=0)
        page.check("input[name=unsafe_1]")
        page.fill("textarea[name=comment]", "B mixes in markup")
        page.locator("textarea[name=comment]").press("Control+Enter")
        page.wait_for_selector("text=Saved prompt q1.")

        # prompt 2: typed ranks, one of them wrong first (the server refuses a non-permutation)
        page.fill("input[name=rank_0]", "2")
        page.fill("input[name=rank_1]", "1")
        page.fill("input[name=rank_2]", "2")
        _type_scores(page, 3, base=3)
        page.evaluate("document.getElementById('label-form').noValidate = true")
        page.click("#submit")
        assert "the ranks must use each of 1..3 exactly once" in page.inner_text("#error")
        page.fill("input[name=rank_2]", "3")
        page.click("#submit")
        page.wait_for_selector("text=Saved prompt q2.")

        # prompt 3: drag "5" (B) above "4" (A) by its handle, then C stays last
        page.locator("#response-B .handle").drag_to(page.locator("#response-A .letter"))
        assert page.inner_text("#order") == "Order: B > A > C"
        _type_scores(page, 3, base=5)
        page.click("#submit")
        page.wait_for_selector("text=all your prompts are labeled")
        assert page.evaluate("window.pwned") is None
        browser.close()
    assert dialogs == []

    got = {r.item_key: r for r in store.labels(["web"])}
    assert got["q1"].ranking == [2, 0, 1] and got["q1"].unsafe == [False, True, False]
    assert got["q1"].comment == "B mixes in markup"
    assert got["q1"].scores[0]["accuracy"] == 1 and got["q1"].scores[2]["honesty"] == 7  # (0 + 2 + 4) % 7 + 1
    assert got["q3"].scores[1]["coherence"] == 2  # (5 + 1 + 2) % 7 + 1
    assert got["q2"].ranking == [1, 0, 2] and got["q3"].ranking == [1, 0, 2]
    assert got["q1"].opened_at is not None
    records, _ = build_records(store.labels(["web"]))
    out = tmp_path / "web.jsonl"
    write_records(records, out)
    rankings = {r.id: r for r in read_feedback(out) if isinstance(r, Ranking)}
    assert rankings["web/q1/ana"].ranking == [2, 0, 1] and rankings["web/q1/ana"].source == "human:ana"
    assert rankings["web/q3/ana"].responses[rankings["web/q3/ana"].ranking[0]] == "5"


def test_rank_only_batch_in_the_browser(sqlite_store):
    """A rank-only batch: no score boxes, ranking alone submits (keyboard, then typed ranks); a cut-off
    response carries its badge; the export has rankings and pairs and nothing scored."""
    from playwright.sync_api import sync_playwright

    store = sqlite_store
    store.create_user("ana", password=PASSWORD)
    store.add_batch("ro", [
        BatchItem(id="r1", prompt="Name a fruit.", responses=[
            "Apple.", {"text": "Well, there are many fruits, for example", "finished": False}, "A car."]),
        BatchItem(id="r2", prompt="2 + 3?", responses=["5", "6", "23"])], mode="rank")
    store.assign("ro", 1)
    with LiveServer(create_app(store)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        _login(page, server.url)
        page.click("text=start")
        page.wait_for_selector("#label-form")
        assert page.locator("input.score").count() == 0
        assert page.locator("#response-B .badge.cut").is_visible()
        assert page.locator("#response-A .badge.cut").count() == 0
        page.locator("h2").first.click()
        page.keyboard.press("a")
        page.keyboard.press("b")
        assert page.inner_text("#order") == "Order: A > B > C"
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("text=Saved prompt r1.")
        for i, rank in enumerate(("1", "3", "2")):
            page.fill(f"input[name=rank_{i}]", rank)
        page.click("#submit")
        page.wait_for_selector("text=all your prompts are labeled")
        browser.close()
    got = {r.item_key: r for r in store.labels(["ro"])}
    assert got["r1"].ranking == [0, 1, 2] and got["r2"].ranking == [0, 2, 1]
    assert got["r1"].scores is None and got["r2"].scores is None
    records, _ = build_records(store.labels(["ro"]))
    assert {r.type for r in records} == {"ranking", "pair"}


def test_good_bad_batch_in_the_browser(sqlite_store):
    from playwright.sync_api import sync_playwright

    store = sqlite_store
    store.create_user("ana", password=PASSWORD)
    store.add_batch("gb", [BatchItem(id="g1", prompt="Capital of Italy?", responses=["Rome.", "Milan."])],
                    mode="good-bad")
    store.assign("gb", 1)
    errors: list[str] = []
    with LiveServer(create_app(store)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        _login(page, server.url)
        page.click("text=start")
        page.wait_for_selector("#label-form")
        assert page.locator("input.rank").count() == 0
        page.check("input[name=good_0][value=good]")
        page.check("input[name=good_1][value=bad]")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("text=all your prompts are labeled")
        browser.close()
    assert errors == []  # the script runs without rank fields
    (rec,) = store.labels(["gb"])
    assert rec.good == [True, False]


def test_login_inputs_line_up(sqlite_store):
    from playwright.sync_api import sync_playwright

    with LiveServer(create_app(sqlite_store)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(server.url + "/login")
        name = page.locator("input[name=name]").bounding_box()
        password = page.locator("input[name=password]").bounding_box()
        icon = page.request.get(server.url + "/favicon.ico")
        browser.close()
    assert abs(name["x"] - password["x"]) < 1 and abs(name["width"] - password["width"]) < 1
    assert password["y"] > name["y"] + name["height"] - 1  # one above the other
    assert icon.status == 200
