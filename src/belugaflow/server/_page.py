"""``GET /runs/{id}``: a run's page for a person — the graph drawn with each node's live
status, the timeline, buttons for the run's signals and cancel.

The server sends one HTML file (``run_page.html``: markup, CSS and a small script; no build,
nothing fetched from elsewhere) holding only the run's id. The script does the rest through
the API, as any client would, with the API key the person gives it (when the API needs
one): ``GET /api/v1/workflows/{id}/graph`` for the drawing and the signals,
``GET /api/v1/workflows/{id}`` for the status and the timeline, the event stream for live
progress, ``POST .../signals/{name}`` and ``POST .../cancel``. So the page itself shows
nothing that the key would not.
"""

from __future__ import annotations

import functools
import json
import re
from html import escape
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from ._drawing import status_css

__all__ = ["page_routes", "render_page"]

_API = "../api/v1/"
"""The API's base as seen from ``/runs/{id}``: relative, so a proxy's path prefix carries
over."""

_MARKER = re.compile(r"\{\{(title|css|data)\}\}")


def page_routes() -> APIRouter:
    """The run page's route (not in the OpenAPI schema: it serves HTML to people)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/runs/{id}", response_class=HTMLResponse)
    async def run_page(id: Annotated[str, Path(description="The workflow id.")]) -> HTMLResponse:
        return HTMLResponse(render_page({"id": id, "api": _API}))

    return router


def render_page(data: dict[str, Any]) -> str:
    """The page for ``data``: the run's ``id`` and the ``api``'s base URL."""
    # In a <script> element only "</" can end it early: escape "<" (and & >, for old parsers).
    blob = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    filled = {
        "title": escape(f"run {data['id']}"),
        "css": status_css("svg.graph .node"),
        "data": blob,
    }
    # One pass, so that nothing filled in (an id, say) is read as a marker.
    return _MARKER.sub(lambda found: filled[found[1]], _template())


@functools.cache
def _template() -> str:
    page = resources.files("belugaflow.server").joinpath("run_page.html")
    return page.read_text(encoding="utf-8")
