"""Several adapters over one base, chosen by model name (``lmforge serve BASE --adapter NAME=PATH``): each name
answers as that adapter served alone merged, also when requests for every name arrive at once; adapters of
another base are refused (exit 2) by name."""
import threading

import openai
import pytest

from serve.conftest import ThreadServer, random_adapter

PROMPTS = ["Is Paris the capital?", "Answer with a single letter: A or B.", "Hello there"]
TOKENS = 12


@pytest.fixture(scope="module")
def adapters(chatty_model_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {"alpha": random_adapter(chatty_model_path, root / "alpha", seed=1),
            "beta.v2": random_adapter(chatty_model_path, root / "beta", seed=2)}


def greedy(client, model: str, prompt: str) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                       temperature=0, max_tokens=TOKENS)
    assert r.model == model and r.choices[0].finish_reason == "length"  # the chatty model never ends early
    return r.choices[0].message.content


def answers_alone(path, name: str) -> list[str]:
    """The greedy answers of ``path`` (a model, or an adapter merged over its base) served by itself."""
    from lmforge.serve.engine import ChatEngine
    from lmforge.serve.openai_server import create_app

    engine = ChatEngine.load(str(path), device="cpu", served_name=name)
    try:
        with ThreadServer(create_app(engine)) as live, \
                openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            return [greedy(c, name, p) for p in PROMPTS]
    finally:
        engine.close()


def test_each_name_answers_as_its_adapter_merged_alone(chatty_model_path, adapters):
    from peft import PeftModel

    from lmforge.serve.adapters import load_with_adapters
    from lmforge.serve.openai_server import create_app

    want = {"chatty": answers_alone(chatty_model_path, "chatty")}
    want.update({name: answers_alone(path, name) for name, path in adapters.items()})
    assert len({tuple(v) for v in want.values()}) == 3  # the adapters change the answers, each its own way

    engines = load_with_adapters(str(chatty_model_path), list(adapters.items()), device="cpu",
                                 served_name="chatty", max_queue=64)
    try:
        assert [e.name for e in engines] == ["chatty", "alpha", "beta.v2"]
        assert len({id(e.model) for e in engines}) == 1 and isinstance(engines[0].model, PeftModel)  # one base
        assert len({id(e.admission) for e in engines}) == 1
        with ThreadServer(create_app(engines)) as live, \
                openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            assert [m.id for m in c.models.list().data] == ["chatty", "alpha", "beta.v2"]
            assert c.models.retrieve("beta.v2").id == "beta.v2"
            with pytest.raises(openai.NotFoundError, match="alpha"):  # the 404 names what is served
                greedy(c, "gamma", PROMPTS[0])
            got = {name: [greedy(c, name, p) for p in PROMPTS] for name in want}
            assert got == want

            # every name at once: each worker batches only its own requests, and switches the adapter inside
            # the shared lock, so concurrent requests still get their own adapter's answers
            results, errors = {}, []

            def ask(name: str, k: int) -> None:
                try:
                    results[name, k] = greedy(c, name, PROMPTS[k])
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))

            threads = [threading.Thread(target=ask, args=(name, k)) for _ in range(3) for name in want
                       for k in range(len(PROMPTS))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert errors == [] and results == {(n, k): want[n][k] for n in want for k in range(len(PROMPTS))}
    finally:
        for e in engines:
            e.close()


def test_sft_adapters_with_token_rows_and_their_tokenizer(chatty_model_path, tmp_path):
    """As SFT saves them: special-token embedding rows trained beside the LoRA weights (peft's trainable
    tokens, switched with the adapter) and the tokenizer in the folder (no config.json)."""
    from lmforge.serve.adapters import load_with_adapters
    from lmforge.serve.openai_server import create_app

    folders = {"sft1": random_adapter(chatty_model_path, tmp_path / "sft1", seed=3, sft=True),
               "sft2": random_adapter(chatty_model_path, tmp_path / "sft2", seed=4, sft=True)}
    assert all((f / "tokenizer_config.json").exists() and not (f / "config.json").exists()
               for f in folders.values())
    want = {name: answers_alone(path, name) for name, path in folders.items()}  # each folder served as it is
    assert want["sft1"] != want["sft2"]
    engines = load_with_adapters(str(chatty_model_path), list(folders.items()), device="cpu")
    try:
        with ThreadServer(create_app(engines)) as live, \
                openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            got = {name: [greedy(c, name, p) for p in PROMPTS] for name in want}
            base = [greedy(c, "chatty-lm", p) for p in PROMPTS]  # the base under its folder's name
    finally:
        for e in engines:
            e.close()
    assert got == want and base not in want.values()


@pytest.fixture
def serve_cli(monkeypatch, capsys):
    """``lmforge serve ARGS`` as the ``lmforge`` script runs it, uvicorn replaced by a recorder: (exit code,
    stderr, app or None)."""
    import uvicorn

    from lmforge.cli.main import main

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))

    def run(*args: str):
        try:
            main(["serve", *args])
            code = 0
        except SystemExit as e:
            code = e.code
        return code, capsys.readouterr().err, apps[-1] if apps else None
    return run


def test_the_cli_serves_named_adapters(serve_cli, chatty_model_path, adapters):
    from fastapi.testclient import TestClient

    code, output, app = serve_cli(str(chatty_model_path), "--name", "base", "--adapter",
                                  f"a1={adapters['alpha']}", "--adapter", str(adapters["beta.v2"]))
    assert code == 0, output
    assert "serving base, a1, beta" in output  # a bare PATH is served under its folder's name
    with TestClient(app) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["base", "a1", "beta"]


def test_an_adapter_of_another_base_is_refused_by_name(serve_cli, chatty_model_path, chat_model_path, tmp_path,
                                                       adapters):
    other = random_adapter(chat_model_path, tmp_path / "other", seed=3)  # trained on the tiny chat model
    code, output, app = serve_cli(str(chatty_model_path), "--adapter", f"alpha={adapters['alpha']}",
                                  "--adapter", f"judge={other}")
    assert code == 2 and app is None
    assert "adapter 'judge'" in output and "was trained on" in output and str(chat_model_path) in output


@pytest.mark.parametrize("spec, why", [("=x", "use NAME=PATH"), ("alpha={alpha}", "already served"),
                                       ("x={base}", "not an adapter folder")])
def test_bad_adapter_specs_exit_2(serve_cli, chatty_model_path, adapters, spec, why):
    args = [str(chatty_model_path), "--name", "alpha" if "already" in why else "base", "--adapter",
            spec.format(alpha=adapters["alpha"], base=chatty_model_path)]
    code, output, app = serve_cli(*args)
    assert code == 2 and why in output and app is None
