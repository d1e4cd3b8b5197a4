"""The web app's admin page shows a loop (``lmforge label serve --loop OUT``) over HTTP: each round's batch and
steps, what it waits for (people's progress, read from the database), its figures from OUT/summary.json and the
loop's report; the same rows ``lmforge loop --status`` prints. No training: the round's batch is the world's
candidate responses."""
from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from lmforge.config import dump_config
from lmforge.feedback.webapp import create_app
from lmforge.loop.status import LoopView, loop_status, status_line
from web_helpers import FAST_HASHER, PASSWORD, login

from .conftest import loop_cfg


@pytest.fixture
def waiting_loop(tmp_path):
    """A loop whose round 1 waits for ana, who labelled 1 of its 4 prompts."""
    from lmforge.feedback.labels import LabelIn
    from lmforge.feedback.store import Store
    from lmforge.loop.feedback import WaitingForLabels, feedback_step
    from lmforge.runs import RunConfig
    from lmforge.stages.generate import GenerateConfig, WorldPromptsSection, generate_batch

    out = tmp_path / "loop"
    cfg = loop_cfg(out, tmp_path / "policy", feedback={"sources": [{"kind": "human", "labelers": ["ana"],
                                                                     "quorum": 0.75}]})
    out.mkdir()
    (out / "config.yaml").write_text(dump_config(cfg))  # as lmforge loop writes it before round 1
    rdir = out / "round-001"
    generate_batch(GenerateConfig(run=RunConfig(name="generate", root=str(rdir)), model="world", k=3,
                                  world=WorldPromptsSection(n=4)))
    (rdir / "prompts.jsonl").write_text("{}\n")
    store = Store.open(str(out / "feedback.db"), hasher=FAST_HASHER)
    store.create_user("ana", password=PASSWORD)
    store.create_user("root", password=PASSWORD, role="admin")
    with pytest.raises(WaitingForLabels):
        feedback_step(cfg, 1, rdir, say=lambda _: None)
    user = store.get_user("ana")
    store.submit_label(user.id, store.pending(user.id)[0], LabelIn(ranking=[2, 0, 1]))
    yield cfg, store
    store.close()


def _row(html: str, n: int) -> str:
    return re.search(rf'<tr class="round" id="round-0-{n}">(.*?)</tr>', html, re.S)[1]


def test_the_admin_page_shows_what_each_round_waits_for(waiting_loop):
    cfg, store = waiting_loop
    c = TestClient(create_app(store, loops=[LoopView(cfg.path)]), follow_redirects=False)
    login(c, "root")
    page = c.get("/admin").text
    row = _row(page, 1)
    assert '<a href="/admin/batches/loop-round-001">loop-round-001</a>' in row
    assert re.findall(r'step done" title="done">(\w+) ✓', row) == ["prompts", "generate"]
    assert re.findall(r'step todo" title="not yet">(\w+) –', row) == ["feedback", "rm", "rm_check", "ppo", "eval",
                                                                     "redteam"]
    assert "feedback (people labelled 1/4, " in row and "quorum 75 %" in row
    assert 'id="round-0-2"' not in page  # round 2 has not started
    assert "No report yet" in page
    assert c.get("/admin/loops/0/report").status_code == 404
    assert c.get("/admin/loops/7/report").status_code == 404
    # one computation of a round's status: the page shows what lmforge loop --status prints
    (status,) = loop_status(cfg)
    assert status_line(status).split("next: ")[1].split(",")[0] in row

    # a labeler may not see it
    ana = TestClient(create_app(store, loops=[LoopView(cfg.path)]), follow_redirects=False)
    login(ana, "ana")
    assert ana.get("/admin").status_code == 403 and ana.get("/admin/loops/0/report").status_code == 403


def test_a_finished_round_shows_its_figures_and_the_report(waiting_loop):
    cfg, store = waiting_loop
    out = cfg.path
    for step in ("feedback", "rm", "rm_check", "ppo", "eval", "redteam"):  # as if every step had finished
        (out / "round-001" / step).mkdir(exist_ok=True)
        (out / "round-001" / step / "summary.json").write_text("{}")
    (out / "summary.json").write_text(json.dumps({"loop": {"round_1": {
        "win_rate_vs_start": 0.625, "win_rate_vs_start_ci95": [0.5, 0.75], "attack_success_rate": 0.25,
        "reward_model_accuracy_newest": None}}}))
    (out / "report").mkdir()
    (out / "report/report.html").write_text("<h1>Helpful / honest / harmless</h1><p>round-001</p>")
    c = TestClient(create_app(store, loops=[LoopView(out)]), follow_redirects=False)
    login(c, "root")
    page = c.get("/admin").text
    row = _row(page, 1)
    assert "step todo" not in row and '<td class="waits">done</td>' in row
    assert "win rate vs start: 0.625 [0.500, 0.750]" in row and "attack success: 0.250" in row
    assert "RM accuracy" not in row  # not measured: not shown as a number
    assert '<a href="/admin/loops/0/report">report</a>' in page
    report = c.get("/admin/loops/0/report")
    assert report.status_code == 200 and "round-001" in report.text
    assert "script-src 'self'" in report.headers["content-security-policy"]


def test_serve_refuses_a_loop_on_another_database(waiting_loop, tmp_path, capsys):
    from lmforge.cli.main import main

    cfg, _ = waiting_loop
    with pytest.raises(SystemExit) as exc:
        main(["label", "serve", "--db", str(tmp_path / "other.db"), "--loop", str(cfg.path)])
    err = " ".join(capsys.readouterr().err.split())
    assert exc.value.code == 2 and f"the loop in {cfg.path} uses the database sqlite:///" in err
    assert "serve that one with --db" in err
    with pytest.raises(SystemExit) as exc:
        main(["label", "serve", "--db", str(tmp_path / "other.db"), "--loop", str(tmp_path)])
    assert exc.value.code == 2 and "is not a loop's folder" in capsys.readouterr().err
