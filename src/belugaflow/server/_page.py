"""``GET /runs/{id}``: a run's page for a person — the graph drawn with each node's live
status, the timeline, buttons for the run's signals and cancel.

The server sends one HTML file (``run_page.html``: markup, CSS and a small script; no build,
nothing fetched from elsewhere) with the run's graph drawn as SVG (:mod:`._drawing`) and what
the script needs: the run's id, its type and the signals it takes. The script does the rest
through the API, as any client would: ``GET /api/v1/workflows/{id}`` for the status and the
timeline, the event stream for live progress, ``POST .../signals/{name}`` and
``POST .../cancel``.
"""

from __future__ import annotations

import functools
import json
import re
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from ._drawing import graph_svg, status_css
from ._problems import Problem
from ._runs import find_run, run_schema

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator

__all__ = ["page_routes", "render_page"]

_API = "../api/v1/"
"""The API's base as seen from ``/runs/{id}``: relative, so a proxy's path prefix carries
over."""

_MARKER = re.compile(r"\{\{(title|css|svg|data)\}\}")

_NO_DRAWING = (
    '<p class="muted">No drawing: this run is not of a graph this server knows (a hand-written'
    " workflow's steps are its activities, in the timeline).</p>"
)


def page_routes(orch: Orchestrator) -> APIRouter:
    """The run page's route (not in the OpenAPI schema: it serves HTML to people)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/runs/{id}", response_class=HTMLResponse)
    async def run_page(id: Annotated[str, Path(description="The workflow id.")]) -> HTMLResponse:
        try:
            run = await find_run(orch, id)
        except Problem as problem:  # the page shows it, with the problem's status
            page = render_page({"id": id, "api": _API, "problem": problem.body()})
            return HTMLResponse(page, status_code=problem.status_code)
        schema = run_schema(orch, run)
        signals = schema["signals"] if schema is not None else {}
        waits: dict[str, list[str]] = {}
        if run.spec is not None:
            for node in run.spec.nodes:
                if node.wait is not None:
                    waits.setdefault(node.wait.signal, []).append(node.name)
        data = {
            "id": run.id,
            "api": _API,
            "type": run.type,
            "signals": [
                {"name": name, "schema": value, "waits": waits.get(name, [])}
                for name, value in signals.items()
            ],
        }
        svg = graph_svg(run.spec) if run.spec is not None else _NO_DRAWING
        return HTMLResponse(render_page(data, svg))

    return router


def render_page(data: dict[str, Any], svg: str = "") -> str:
    """The page for ``data`` (``id``, ``api``, and ``type`` and ``signals``, or ``problem``)
    with the drawing ``svg``."""
    # In a <script> element only "</" can end it early: escape "<" (and & >, for old parsers).
    blob = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    filled = {
        "title": escape(f"run {data['id']}"),
        "css": status_css("svg.graph .node"),
        "svg": svg,
        "data": blob,
    }
    # One pass, so that nothing filled in (an id, say) is read as a marker.
    return _MARKER.sub(lambda found: filled[found[1]], _template())


@functools.cache
def _template() -> str:
    page = resources.files("belugaflow.server").joinpath("run_page.html")
    return page.read_text(encoding="utf-8")
