"""Win rate against a reference model: outcomes by hand, the join on the same prompts, and the CLI."""
from __future__ import annotations

import json

import pytest

from lmforge.eval.versus import outcomes, paired, win_rate


def test_outcomes_and_ties_count_half():
    assert outcomes([3.0, 1.0, 2.0], [1.0, 3.0, 2.0 + 1e-9]) == [1.0, 0.0, 0.5]


def test_paired_joins_on_suite_and_id_and_win_rate_by_hand():
    mine = [{"suite": "a", "id": "1", "completion": "good"}, {"suite": "a", "id": "2", "completion": "bad"},
            {"suite": "b", "id": "1", "completion": "good"}, {"suite": "c", "id": "9", "completion": "good"}]
    ref = [{"suite": "b", "id": "1", "completion": "good"}, {"suite": "a", "id": "1", "completion": "bad"},
           {"suite": "a", "id": "2", "completion": "bad"}]
    m, r = paired(mine, ref)
    assert [(x["suite"], x["id"]) for x in m] == [(x["suite"], x["id"]) for x in r] == [("a", "1"), ("a", "2"),
                                                                                        ("b", "1")]
    fig = win_rate(mine, ref, lambda rows: [1.0 if x["completion"] == "good" else 0.0 for x in rows], "ref")
    # a/1 win, a/2 tie, b/1 tie: (1 + 0.5 + 0.5) / 3
    assert fig.name == "win_rate_vs_ref" and fig.n == 3 and fig.value == pytest.approx(2 / 3)
    assert win_rate(mine[3:], ref, lambda rows: [0.0] * len(rows), "ref") is None


def test_cli_reference_with_the_world_judge(tmp_path, model_dir):
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["eval", f"a={model_dir}", f"b={model_dir}", "--suite", "world",
                                   "--n-per-suite", "2", "--reference", "a", "--out", str(out)])
    assert res.exit_code == 0, res.output
    a, b = json.loads((out / "results.json").read_text())["models"]
    win = next(f for f in b["figures"] if f["name"] == "win_rate_vs_a")
    assert win["value"] == 0.5 and win["n"] == 10  # the same model: every prompt a tie
    assert not any(f["name"].startswith("win_rate_vs") for f in a["figures"])


def test_cli_reference_must_be_a_listed_model(model_dir, capsys):
    from lmforge.cli.main import main

    with pytest.raises(SystemExit) as stop:
        main(["eval", f"a={model_dir}", "--reference", "zzz"])
    assert stop.value.code == 2 and "is not one of the models" in capsys.readouterr().err
