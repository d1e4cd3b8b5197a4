"""The chat page at ``/``: served as one self-contained file, and used in headless Chromium (Debian's
``chromium``, driven by Playwright): the API key typed in, a model picked from ``/v1/models``, a message sent,
the answer seen growing as it streams, the same text the API gives greedily, and a second turn that carries
the first."""
import functools
import shutil
import time

import openai
import pytest

from serve.conftest import ThreadServer, random_adapter

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
KEY, TOKENS, STEP_S = "k3y", 12, 0.03


def test_the_page_is_one_file_with_no_outside_resources(engine):
    from fastapi.testclient import TestClient

    from lmforge.serve.openai_server import create_app

    with TestClient(create_app(engine, api_key=KEY)) as client:
        r = client.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")  # no key for the page
        assert client.get("/v1/models").status_code == 401  # the API still needs it
    html = r.text
    assert 'id="model"' in html and 'id="message"' in html and "/v1/chat/completions" in html
    assert "://" not in html and "<link" not in html and "src=" not in html  # no CDN, no other file
    assert "default-src 'self'" in r.headers["content-security-policy"]


@pytest.fixture(scope="module")
def served(chatty_model_path, tmp_path_factory):
    """The chatty base and one adapter behind a key; each decode step slowed to ``STEP_S`` so that the page
    receives the answer token by token, as a real model's would arrive."""
    from lmforge.serve.adapters import load_with_adapters
    from lmforge.serve.openai_server import create_app

    adapter = random_adapter(chatty_model_path, tmp_path_factory.mktemp("page") / "alpha", seed=3)
    engines = load_with_adapters(str(chatty_model_path), [("alpha", str(adapter))], device="cpu",
                                 served_name="chatty")
    hf = engines[0].model.get_base_model()
    forward = hf.forward

    @functools.wraps(forward)  # generate reads the signature of forward
    def slow(*args, **kwargs):
        time.sleep(STEP_S)
        return forward(*args, **kwargs)
    hf.forward = slow
    try:
        with ThreadServer(create_app(engines, api_key=KEY)) as live:
            live.engines = engines
            yield live
    finally:
        for e in engines:
            e.close()


def answer(page, n: int) -> str:
    """Wait for the n-th answer to end; its text."""
    # functions, not strings: a string would be eval()ed in the page, which the page's CSP forbids
    page.wait_for_function(f"() => document.querySelectorAll('.assistant').length === {n} "
                           "&& document.body.dataset.busy === '0'", timeout=60_000)
    return page.evaluate(f"document.querySelectorAll('.assistant')[{n - 1}].textContent")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
def test_chat_in_the_browser(served):
    from playwright.sync_api import sync_playwright

    with openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0, timeout=60) as c:
        def greedy(messages):
            r = c.chat.completions.create(model="alpha", messages=messages, temperature=0, max_tokens=TOKENS)
            return r.choices[0].message.content
        first = [{"role": "user", "content": "Hello there"}]
        want1 = greedy(first)
        want2 = greedy(first + [{"role": "assistant", "content": want1}, {"role": "user", "content": "And then?"}])
        base = c.chat.completions.create(model="chatty", messages=first, temperature=0, max_tokens=TOKENS)
    assert want1 != base.choices[0].message.content  # the picked model matters

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(served.url + "/")
        page.wait_for_function("() => document.getElementById('error').textContent.includes('API key')")
        assert page.locator("#model option").count() == 0  # without the key, no models
        page.fill("#key", KEY)
        page.locator("#key").dispatch_event("change")
        page.wait_for_function("() => document.querySelectorAll('#model option').length === 2")
        assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == ["chatty", "alpha"]
        page.select_option("#model", "alpha")
        page.fill("#temperature", "0")
        page.fill("#max-tokens", str(TOKENS))
        # every length the answer's text takes on screen, as the page changes it
        page.evaluate("""() => { window.seen = [];
            new MutationObserver(() => { const a = document.querySelector('.assistant');
                if (a) window.seen.push(a.textContent.length); })
              .observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true}); }""")
        page.fill("#message", "Hello there")
        page.press("#message", "Enter")
        got1 = answer(page, 1)
        seen = page.evaluate("window.seen")
        assert got1 == want1  # what the API answers greedily, streamed into the page
        grew = [n for k, n in enumerate(seen) if k == 0 or n != seen[k - 1]]
        assert grew == sorted(grew) and len(set(grew)) >= 3 and grew[-1] == len(want1), seen  # token by token

        page.fill("#message", "And then?")
        page.click("#send")
        assert answer(page, 2) == want2  # the second turn was sent with the first
        assert page.inner_text("#error") == ""
        page.click("#reset")
        assert page.locator(".msg").count() == 0

        # "stop" mid-answer: the stream is aborted, the server frees its slot, the page takes a new message
        page.fill("#max-tokens", "2000")  # a minute of decoding at STEP_S a step
        page.fill("#message", "Hello there")
        page.press("#message", "Enter")
        page.wait_for_function("() => (document.querySelector('.assistant') || {}).textContent?.length > 0")
        page.click("#stop")
        page.wait_for_function("() => document.body.dataset.busy === '0'", timeout=10_000)
        deadline = time.monotonic() + 10
        while served.engines[0].in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served.engines[0].in_flight == 0
        assert 0 < len(page.evaluate("document.querySelector('.assistant').textContent")) < 2000
        assert page.inner_text("#error") == ""  # an abort the user asked for is no error
        browser.close()
