"""The app the REST API tests serve: the order example (its graph ``order-processing`` and
``OrderProcessingWorkflow``, the rule deciding), plus a few text functions registered by name
for graphs defined through ``POST /graphs``.

Workers run it as ``belugaflow worker --app tests.server.app:build`` with the shop database
in ``$BELUGAFLOW_ORDERS_DB``; the tests' API process builds the same app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from belugaflow import Orchestrator
from examples.order_processing.activities import default_decide
from examples.order_processing.app import create_app, db_file
from examples.order_processing.db import Store

__all__ = ["TEXT_FUNCTIONS", "build", "exclaim", "flaky", "length", "upper"]


def upper(state: dict[str, Any]) -> dict[str, Any]:
    return {"text": state["text"].upper()}


def exclaim(state: dict[str, Any]) -> dict[str, Any]:
    return {"text": state["text"] + "!", "done": True}


def length(state: dict[str, Any]) -> str:
    return "long" if len(state["text"]) > 5 else "short"


_failed: set[str] = set()


def flaky(state: dict[str, Any]) -> dict[str, Any]:
    """Fails the first attempt for each text (in this process), then works."""
    if state["text"] not in _failed:
        _failed.add(state["text"])
        raise RuntimeError(f"first attempt for {state['text']!r}")
    return {"text": state["text"] + "?"}


TEXT_FUNCTIONS = {
    "text.upper": upper,
    "text.exclaim": exclaim,
    "text.length": length,
    "text.flaky": flaky,
}
"""What a graph document may name besides the order graph's nodes."""


def build(db: Path | None = None) -> Orchestrator:
    """The orchestrator: the order example on the shop at ``db`` (default: the example's
    ``$BELUGAFLOW_ORDERS_DB``), plus :data:`TEXT_FUNCTIONS`."""
    path = db if db is not None else db_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    orch = create_app(store=Store.create(path), decide=default_decide)
    for name, fn in TEXT_FUNCTIONS.items():
        orch.register(name, fn)
    return orch
