"""`lmforge serve MODEL --reward-model RM`: POST /v1/rewards over real HTTP gives the numbers `lmforge rm score`
gives (the same scorer reads the saved verdict), for a scalar head, a five-criteria verifier and a pairwise
verifier, with errors in OpenAI's shape."""
from __future__ import annotations

import httpx
import pytest
import torch

from lmforge.models.reward_scores import RewardScorer
from web_helpers import LiveServer

from .conftest import bad, good, prompt
from .test_stage import cli, rm_args

FIVE = "[accuracy, relevance, coherence, harmlessness, honesty]"
MESSAGES = [{"role": "user", "content": prompt(4242)}]


def _answers() -> list[str]:
    import random

    rng = random.Random(3)
    return [bad(rng), good(rng, 8), good(rng) + " " + bad(rng, 3)]


@pytest.fixture(scope="module")
def models(tiny_lm, tmp_path_factory):
    from .conftest import mixed_records, write_jsonl

    root = tmp_path_factory.mktemp("served-rms")
    train = write_jsonl(root / "train.jsonl", mixed_records(48, seed=0))
    ev = write_jsonl(root / "eval.jsonl", mixed_records(16, seed=1, first=1000))
    recipes = {"scalar": ["epochs=2"],
               "crit": ["epochs=2", "model.head=generative", "model.verdict.mode=criteria",
                        f"model.verdict.criteria={FIVE}"],
               "pw": ["epochs=2", "model.head=generative", "model.verdict.mode=pairwise", "model.max_length=96"]}
    for name, extra in recipes.items():
        assert cli(rm_args(tiny_lm, train, ev, root, name, *extra)) == 0
    return {name: root / name / "final" for name in recipes}


@pytest.fixture(scope="module")
def server(tiny_lm, models):
    from lmforge.serve.engine import ChatEngine
    from lmforge.serve.openai_server import create_app
    from lmforge.serve.rewards import RewardService

    engine = ChatEngine.load(str(tiny_lm), device="cpu", served_name="policy")
    services = [RewardService.load(name, path, device="cpu") for name, path in models.items()]
    try:
        with LiveServer(create_app(engine, reward_models=services)) as live:
            yield live
    finally:
        engine.close()


def post(server, **body) -> httpx.Response:
    return httpx.post(server.url + "/v1/rewards", json=body, timeout=60)


def test_a_scalar_model_gives_rm_scores_and_their_normalised_values(server, models):
    r = post(server, model="scalar", messages=MESSAGES, responses=_answers())
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "list" and out["head"] == "scalar" and out["verdict"] is None
    scorer = RewardScorer(models["scalar"])
    want = scorer.score([MESSAGES] * 3, _answers())[:, 0]
    got = torch.tensor([d["reward"] for d in out["data"]])
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    assert torch.allclose(got, want, atol=1e-5)
    z = (want - scorer.meta.reward_mean) / scorer.meta.reward_std
    assert [d["normalized"] for d in out["data"]] == pytest.approx(z.tolist(), abs=1e-5)
    assert httpx.get(server.url + "/health").json()["reward_models"] == ["scalar", "crit", "pw"]


def test_a_criteria_verifier_reports_each_criterion(server, models):
    out = post(server, model="crit", messages=MESSAGES, responses=_answers()).json()
    assert out["head"] == "generative" and out["verdict"] == "criteria"
    scorer = RewardScorer(models["crit"])
    s = scorer.score([MESSAGES] * 3, _answers())
    for i, d in enumerate(out["data"]):
        assert set(d["criteria"]) == {"accuracy", "relevance", "coherence", "harmlessness", "honesty"}
        for c, name in enumerate(scorer.names[1:], 1):
            assert d["criteria"][name] == pytest.approx(float(s[i, c]), abs=1e-5)
        assert d["reward"] == pytest.approx(float(s[i, 0]), abs=1e-5)


def test_a_pairwise_verifier_ranks_from_both_orders(server, models):
    from lmforge.algos.pairwise import bradley_terry_fit

    out = post(server, model="pw", messages=MESSAGES, responses=_answers()).json()
    assert out["verdict"] == "pairwise" and all(d["normalized"] is None for d in out["data"])
    M = RewardScorer(models["pw"]).preferences(MESSAGES, _answers())
    assert torch.allclose(torch.tensor(out["preferences"]), M, atol=1e-5)
    assert [d["reward"] for d in out["data"]] == pytest.approx(bradley_terry_fit(M).tolist(), abs=1e-5)
    one = post(server, model="pw", messages=MESSAGES, responses=["only one"])
    assert one.status_code == 400 and one.json()["error"]["param"] == "responses"


@pytest.mark.parametrize("body, status, message", [
    ({"model": "nope", "messages": MESSAGES, "responses": ["a"]}, 404, "is not served"),
    ({"model": "scalar", "messages": MESSAGES + [{"role": "assistant", "content": "x"}], "responses": ["a"]},
     400, "must end with a user turn"),
    ({"model": "scalar", "messages": MESSAGES, "responses": []}, 400, "responses"),
    ({"model": "scalar", "messages": MESSAGES, "responses": ["a"] * 65}, 400, "responses"),
    ({"model": "scalar", "messages": MESSAGES, "responses": ["a"], "temperature": 1}, 400, "temperature"),
])
def test_bad_requests_get_openai_shaped_errors(server, body, status, message):
    r = post(server, **body)
    assert r.status_code == status and message in r.json()["error"]["message"] + str(r.json()["error"]["param"])


def test_a_folder_that_is_no_reward_model_stops_serve_with_exit_2(tiny_lm, tmp_path, capsys):
    code = cli(["serve", str(tiny_lm), "--reward-model", f"judge={tmp_path}"])
    assert code == 2 and "not an lmforge reward model folder" in capsys.readouterr().err


def test_the_official_openai_client_reaches_the_route_and_raises_its_errors(server):
    """An OpenAI client's generic ``post`` (its base URL, key and retries) calls the extension; a 404 comes back as
    the client's own NotFoundError, as for the standard routes."""
    import openai

    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60) as client:
        out = client.post("/rewards", cast_to=object, body={"model": "scalar", "messages": MESSAGES,
                                                             "responses": _answers()})
        assert [d["index"] for d in out["data"]] == [0, 1, 2] and out["head"] == "scalar"
        with pytest.raises(openai.NotFoundError, match="is not served"):
            client.post("/rewards", cast_to=object, body={"model": "gpt-5", "messages": MESSAGES, "responses": ["a"]})


def test_a_reward_model_folder_alone_is_served_for_rewards_only(models):
    """``lmforge serve RM_FOLDER``: no chat engine (its backbone would answer chat with a head it never trained);
    /v1/rewards answers, chat completions get a 404 that says where the reward model is."""
    from lmforge.serve.openai_server import create_app
    from lmforge.serve.rewards import RewardService

    with LiveServer(create_app([], reward_models=[RewardService.load("rm", models["scalar"], device="cpu")])) as live:
        assert post(live, model="rm", messages=MESSAGES, responses=_answers()).status_code == 200
        chat = httpx.post(live.url + "/v1/chat/completions", timeout=30,
                          json={"model": "rm", "messages": MESSAGES})
        assert chat.status_code == 404 and "only reward models at POST /v1/rewards: 'rm'" in chat.text
        assert httpx.get(live.url + "/health").json() == {"status": "ok", "model": None, "models": [],
                                                         "reward_models": ["rm"]}
    with pytest.raises(ValueError, match="nothing to serve"):
        create_app([])


def test_serve_cli_on_a_reward_model_folder_loads_no_chat_model(models, monkeypatch):
    """``lmforge serve RM_FOLDER --reward-model other=RM2`` (uvicorn replaced by a recorder): both reward models at
    /v1/rewards, no chat engine loaded."""
    import uvicorn
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from lmforge.cli.main import app as cli_app
    from lmforge.serve.engine import ChatEngine

    apps = []
    monkeypatch.setattr(ChatEngine, "load", classmethod(lambda cls, *a, **kw: pytest.fail("a chat model loaded")))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    result = CliRunner().invoke(cli_app, ["serve", str(models["scalar"]), "--name", "judge",
                                          "--reward-model", f"other={models['crit']}", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with TestClient(apps[-1]) as client:
        assert client.get("/health").json()["reward_models"] == ["judge", "other"]
        r = client.post("/v1/rewards", json={"model": "other", "messages": MESSAGES, "responses": _answers()})
        assert r.status_code == 200 and r.json()["verdict"] == "criteria"
