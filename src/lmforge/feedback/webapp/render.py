"""Server-rendered pages: Jinja templates with autoescaping on, so model text always renders as text."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ...data.preference import CRITERIA
from ..labels import response_letter

HERE = Path(__file__).parent
ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
ENV.globals.update(criteria=CRITERIA, letter=response_letter)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("auth", getattr(request.state, "auth", None))
    context.setdefault("message", None)
    context.setdefault("error", None)
    return HTMLResponse(ENV.get_template(template).render(request=request, **context), status_code=status)
