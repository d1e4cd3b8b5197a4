"""A loop round with a person's labels entered through the web app in headless Chromium: ``lmforge loop`` assigns
the round to people and stops (``waiting:``); the admin page shows the round waiting for them; a labeler ranks
every prompt on the labeling pages; ``lmforge loop`` again goes on through rm, PPO, eval and red team, and the
exported labels are the person's, each prompt once. Then the admin page shows the round done, with its report."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from lmforge.cli.main import main
from lmforge.config import dump_config
from lmforge.feedback.store import Store
from lmforge.feedback.webapp import create_app
from lmforge.loop.status import LoopView
from web_helpers import ARGS, CHROMIUM, FAST_HASHER, PASSWORD, LiveServer, browser_login, needs_chromium

from .conftest import loop_cfg

pytestmark = needs_chromium


def _loop(cfg_path, capsys) -> str:
    """``lmforge loop cfg.yaml`` in this process; its standard output."""
    with pytest.raises(SystemExit) as exc:
        main(["loop", str(cfg_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    return out


def _log_out(page) -> None:
    page.click("button:has-text('log out')")
    page.wait_for_selector("input[name=name]")


@pytest.mark.slow
def test_a_person_labels_a_loop_round_in_the_browser(tmp_path, world_lm, capsys):
    from playwright.sync_api import sync_playwright

    out = tmp_path / "loop"
    cfg = loop_cfg(out, world_lm, rounds=1, feedback={
        "sources": [{"kind": "human", "labelers": ["ana"], "wait": False}], "mode": "rank"})
    cfg_path = tmp_path / "loop.yaml"
    cfg_path.write_text(dump_config(cfg))
    store = Store.open(str(out / "feedback.db"), hasher=FAST_HASHER)
    store.create_user("ana", password=PASSWORD)
    store.create_user("root", password=PASSWORD, role="admin")

    said = " ".join(_loop(cfg_path, capsys).split())
    assert "waiting: loop-round-001 waits for labels: 0/6 done" in said
    assert [(p.labeler, p.assigned, p.done) for p in store.progress(batch="loop-round-001")] == [("ana", 6, 0)]

    errors: list[str] = []
    with LiveServer(create_app(store, loops=[LoopView(out)])) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        browser_login(page, server.url, "root")
        page.wait_for_selector("text=log out")
        page.goto(server.url + "/admin")
        row = page.locator("#round-0-1")
        assert "feedback (people labelled 0/6" in row.locator(".waits").inner_text()
        assert row.locator(".step.done").all_inner_texts() == ["prompts ✓", "generate ✓"]
        assert "No report yet" in page.inner_text("section.loop")
        _log_out(page)

        # ana ranks the round's six prompts: by key (B first, A follows) or by typed ranks, alternately
        browser_login(page, server.url, "ana")
        page.wait_for_selector("text=log out")
        assert page.locator("td >> text=loop-round-001").count() == 1
        page.click("text=start")
        for i in range(6):
            page.wait_for_selector("#label-form")
            assert page.locator("input.score").count() == 0  # a rank-only batch
            if i % 2 == 0:
                page.locator("h2").first.click()
                page.keyboard.press("b")
                assert page.inner_text("#order") == "Order: B > A"
                page.keyboard.press("Control+Enter")
            else:
                page.fill("input[name=rank_0]", "1")
                page.fill("input[name=rank_1]", "2")
                page.click("#submit")
            page.wait_for_selector("text=all your prompts are labeled" if i == 5 else "text=Saved prompt")
        _log_out(page)

        browser_login(page, server.url, "root")
        page.wait_for_selector("text=log out")
        page.goto(server.url + "/admin")
        assert "feedback (people labelled 6/6" in page.inner_text("#round-0-1 .waits")

        said = _loop(cfg_path, capsys)  # the round goes on past feedback
        assert "waiting:" not in said
        page.goto(server.url + "/admin")
        row = page.locator("#round-0-1")
        assert row.locator(".waits").inner_text() == "done"
        assert row.locator(".step.todo").count() == 0
        assert "win rate vs start" in row.inner_text() and "attack success" in row.inner_text()
        page.click("section.loop >> text=report")
        assert "Helpful / honest / harmless" in page.inner_text("h1")
        assert "round-001" in page.content()
        browser.close()
    assert errors == []

    r1 = json.loads((out / "round-001/round.json").read_text())
    assert all(r1["steps"].values()) and r1["labels"]["labels_by_source"] == {"human:ana": 6}
    labels = store.labels(["loop-round-001"])
    assert len(labels) == 6 and {(lab.labeler_kind, lab.labeler) for lab in labels} == {("human", "ana")}
    ranked = {lab.item_key: lab.ranking for lab in labels}
    assert sorted(ranked.values()) == [[0, 1]] * 3 + [[1, 0]] * 3  # what the pages were given, stored as given
    records = [json.loads(x) for f in ("train", "heldout") for x in
               (out / f"round-001/feedback/{f}.jsonl").read_text().splitlines()]
    assert {r["source"] for r in records} == {"human:ana"}
    prompts = Counter(json.dumps(r["prompt"]) for r in records)
    assert len(prompts) == 6 and set(prompts.values()) == {1}  # each prompt labelled once
    assert r1["rm_check"]["heldout_pairs"] >= 1 and (out / "round-001/ppo/final").is_dir()
    store.close()
