"""The remote judge: any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, llama.cpp, TGI, OpenAI,
``lmforge serve``), called with ``httpx``.

Each query is one greedy request (``temperature`` 0). It asks for ``logprobs`` with ``top_logprobs``; when the
answer carries them, the verdict distribution is read at the first generated token whose alternatives include
a choice (``" A"`` counts as ``A``). A server that rejects or ignores ``logprobs`` is asked without them from
then on, and its written verdict is parsed (:func:`~.prompts.parse_verdict`; a verdict naming no choice is
undecided). Connection errors, timeouts, 429 and 5xx are retried with exponential backoff (``Retry-After`` is
honoured); other errors, and running out of retries, raise :class:`~lmforge.errors.InputError` with one line.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ...errors import InputError
from .core import logsumexp
from .prompts import Query, parse_verdict

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def endpoint_urls(url: str) -> tuple[str, str]:
    """(chat completions URL, models URL) from a server root, a ``.../v1`` base or the full completions URL."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"the endpoint must be an http(s) URL, got {url!r}", field="endpoint")
    if base.endswith("/chat/completions"):
        base = base[: -len("/chat/completions")]
    elif not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions", base + "/models"


class EndpointBackend:
    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5, concurrency: int = 4, max_tokens: int = 8,
                 top_logprobs: int = 20, logprobs: bool | None = None, client: httpx.Client | None = None,
                 role: str = "judge", flags: tuple[str, str] = ("--api-model", "--api-key or LMFORGE_JUDGE_API_KEY")):
        """``logprobs``: None asks for them and keeps asking while the server gives them; False never asks.
        ``role`` names the endpoint in error messages, ``flags`` the options that set the model and the key
        (the red-team page's target is a "model" endpoint set by --redteam-model / --redteam-api-key)."""
        self.url = url
        self.role, self.flags = role, flags
        self.chat_url, self.models_url = endpoint_urls(url)
        self.model = model
        self.retries, self.backoff = retries, backoff
        self.concurrency = max(1, concurrency)
        self.max_tokens, self.top_logprobs = max_tokens, top_logprobs
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                             headers=headers)
        self.logprobs = logprobs  # None: unknown until the server answers
        self.stats: Counter = Counter()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.model} at {self.url}"

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._count("retries")
            try:
                resp = self.client.request(method, url, **kw)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {_one_line(str(e)) or 'no detail'}"
                wait = self.backoff * 2 ** attempt
            else:
                if resp.status_code not in RETRY_STATUS:
                    return resp
                last = f"HTTP {resp.status_code}: {_error_text(resp)}"
                wait = _retry_after(resp) or self.backoff * 2 ** attempt
            if attempt < self.retries:
                time.sleep(min(wait, 30.0))
        raise InputError(f"{self.role} endpoint {url} failed after {self.retries + 1} attempt(s): {last}",
                         field="endpoint")

    def check(self) -> str:
        """Reach the server and settle the model name (the only served model when none was given)."""
        resp = self._request("GET", self.models_url)
        ids: list[str] = []
        if resp.status_code == 200:
            try:
                ids = [m["id"] for m in resp.json().get("data", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                ids = []
        elif resp.status_code in (401, 403):
            raise InputError(f"{self.role} endpoint refused the API key (HTTP {resp.status_code}: "
                             f"{_error_text(resp)}); set {self.flags[1]}", field="endpoint")
        if self.model is None:
            if len(ids) != 1:
                listed = ", ".join(ids[:10]) or "none listed"
                raise InputError(f"name the {self.role} model with {self.flags[0]} (the endpoint serves: {listed})",
                                 field="api_model")
            self.model = ids[0]
        elif ids and self.model not in ids:
            raise InputError(f"the endpoint does not serve {self.model!r} (it serves: {', '.join(ids[:10])})",
                             field="api_model")
        return self.model

    def _complete(self, query: Query) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": query.messages, "max_tokens": self.max_tokens,
                                "temperature": 0.0}
        if self.logprobs is not False:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        resp = self._request("POST", self.chat_url, json=body)
        self._count("requests")
        if resp.status_code in (400, 422) and self.logprobs is None and "logprob" in resp.text.lower():
            self.logprobs = False  # this server does not do logprobs: ask for text from now on
            return self._complete(query)
        if resp.status_code != 200:
            raise InputError(f"{self.role} endpoint {self.chat_url} answered HTTP {resp.status_code}: "
                             f"{_error_text(resp)}", field="endpoint")
        try:
            choice = resp.json()["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise InputError(f"{self.role} endpoint {self.chat_url} sent no completion: {resp.text[:200]!r}",
                             field="endpoint") from None
        return choice

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        """The model's greedy answer to ``messages`` as text (no log-probabilities): one chat turn."""
        if self.model is None:
            self.check()
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0}
        resp = self._request("POST", self.chat_url, json=body)
        self._count("requests")
        if resp.status_code != 200:
            raise InputError(f"{self.role} endpoint {self.chat_url} answered HTTP {resp.status_code}: "
                             f"{_error_text(resp)}", field="endpoint")
        try:
            text = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise InputError(f"{self.role} endpoint {self.chat_url} sent no answer: {resp.text[:200]!r}",
                             field="endpoint")
        return text

    # ------------------------------------------------------------------ verdicts

    def _one(self, query: Query) -> dict[str, float]:
        choice = self._complete(query)
        given = choice.get("logprobs")
        if self.logprobs is None:
            self.logprobs = isinstance(given, dict)  # a server that ignores the request sends null
        tokens = (given.get("content") or []) if self.logprobs and isinstance(given, dict) else []
        for tok in tokens:
            alts = {str(alt.get("token", "")): alt.get("logprob") for alt in [tok, *(tok.get("top_logprobs") or [])]}
            found: dict[str, list[float]] = {}
            for text, logprob in alts.items():  # each distinct token once (the chosen one is also listed)
                if text.strip() in query.choices and logprob is not None:
                    found.setdefault(text.strip(), []).append(float(logprob))
            if found:
                self._count("verdicts from log-probabilities")
                return {c: logsumexp(v) for c, v in found.items()}
        text = (choice.get("message") or {}).get("content")
        verdict = parse_verdict(text, query.choices)
        self._count("verdicts from text" if verdict else "unreadable verdicts")
        return {verdict: 0.0} if verdict else {}

    def answer(self, queries: Sequence[Query]) -> list[dict[str, float]]:
        if self.model is None:
            self.check()
        queries = list(queries)
        if not queries:
            return []
        head = [self._one(queries[0])] if self.logprobs is None else []  # learn once whether logprobs work
        rest = queries[len(head):]
        if self.concurrency == 1 or len(rest) <= 1:
            return head + [self._one(q) for q in rest]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return head + list(pool.map(self._one, rest))

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _error_text(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err or resp.json().get("detail")
    except (ValueError, AttributeError):
        msg = None
    return _one_line(str(msg) if msg else resp.text) or resp.reason_phrase


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["retry-after"])
    except (KeyError, ValueError):
        return None

