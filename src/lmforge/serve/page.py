"""The chat page at ``GET /``: one static HTML file with its script inline (no build step, no CDN).

The page talks to the same OpenAI API as any client: it lists ``/v1/models`` for its model picker and sends
the whole conversation to ``/v1/chat/completions`` with ``stream: true``, reading the server-sent events with
``fetch()`` and appending each delta as it arrives; its API key field (kept in the browser's ``localStorage``)
is sent as ``Authorization: Bearer`` when the server runs with ``--api-key``. The page itself needs no key: it
holds nothing but the script. Answers are inserted as text, never as HTML.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).with_name("static") / "chat.html"


@cache
def page_html() -> str:
    return PAGE.read_text(encoding="utf-8")


def add_page(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def chat_page() -> HTMLResponse:
        # no-store: an upgraded server's page is never mixed with a cached older script
        return HTMLResponse(page_html(), headers={"Cache-Control": "no-store",
                                                  "Content-Security-Policy": "default-src 'self'; "
                                                  "script-src 'unsafe-inline'; style-src 'unsafe-inline'"})
