"""The use case's worker app: everything a worker needs, in one :class:`~belugaflow.Orchestrator`.

Run a worker (as many as you like, on any machine that sees the shop database)::

    belugaflow server start-dev --no-ui            # in one terminal
    belugaflow worker --app examples.order_processing.app:orch

``orch`` is built from the example's ``config.yaml`` (task queue, Temporal address, retries
and timeouts come from there) and holds :class:`~.workflow.OrderProcessingWorkflow`, its
activities bound to the shop's SQLite :class:`~.db.Store`, and the node functions of the order
graph (:func:`~.graph.build_order_graph`), so the worker serves the hand-written workflow and the
graph run durably (``orch.run(graph, order, engine="temporal")``). Orders are decided by the
LLM that ``llm.provider`` names when its API key is set (``OPENAI_API_KEY`` for the example's
config), with the deterministic rule as fallback; else by the rule alone
(:func:`~.decision.decider_from_config`).

The shop database is ``$BELUGAFLOW_ORDERS_DB``, default ``.belugaflow/orders.db`` in the
current directory (next to the dev server's ``.belugaflow/temporal.db``); the order memory
(:mod:`~.memory`: past orders and how they ended, recalled by the graph's decision) is
``memory.db`` beside it, unless the config has a ``memory:`` section, which then names the
store, embedder and retention. Start orders with
:func:`start_order`, which fills the workflow's retries and timeouts from the same config.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter

from belugaflow import Config, Orchestrator, load_config
from belugaflow.memory import VectorMemory

from .activities import Decider, Order, OrderActivities
from .db import Store
from .decision import decider_from_config
from .graph import build_order_graph
from .memory import memory_file, memory_from_config, order_memory
from .workflow import OrderProcessingWorkflow, OrderRequest, StepOptions

__all__ = ["CONFIG", "DB_ENV", "DEFAULT_DB", "create_app", "db_file", "start_order"]

CONFIG = Path(__file__).with_name("config.yaml")
"""The example's configuration file."""
DB_ENV = "BELUGAFLOW_ORDERS_DB"
"""The environment variable that names the shop database."""
DEFAULT_DB = Path(".belugaflow") / "orders.db"
"""The shop database when :data:`DB_ENV` is unset, relative to the current directory."""


def db_file() -> Path:
    """The shop database: ``$BELUGAFLOW_ORDERS_DB``, else :data:`DEFAULT_DB`."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def create_app(
    config: Config | None = None,
    *,
    store: Store | None = None,
    activities_class: type[OrderActivities] = OrderActivities,
    decide: Decider | None = None,
    memory: VectorMemory | None = None,
    data_converter: DataConverter | None = None,
) -> Orchestrator:
    """The orchestrator a worker serves, with the workflow, its activities and the graph's nodes.

    Args:
        config: Default: the example's ``config.yaml`` (``${VAR}`` and ``BELUGAFLOW__...``
            overrides from the environment applied).
        store: Default: the database of :func:`db_file`, created (tables and seed products)
            if missing.
        activities_class: An :class:`~.activities.OrderActivities` subclass to change a step.
        decide: The decision function; default: the one ``config``'s ``llm:`` section asks
            for (:func:`~.decision.decider_from_config`).
        memory: The order memory the graph's ``decide`` recalls from and ``notify`` saves
            to; default: the one ``config``'s ``memory:`` section describes
            (:func:`~.memory.memory_from_config`), else :func:`~.memory.order_memory` on
            ``memory.db`` beside the shop database. Its model loads on the first decision,
            not here.
        data_converter: See :class:`~belugaflow.Orchestrator`; default: the size guard.
    """
    config = config if config is not None else load_config(CONFIG)
    if store is None:
        path = db_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        store = Store.create(path)
    orch = Orchestrator.from_config(config, data_converter=data_converter)
    orch.register_workflow(OrderProcessingWorkflow)
    if decide is None:
        # The models' calls and breakers show in the orchestrator's metrics.
        decide = decider_from_config(config, breakers=orch.breakers, hooks=orch.llm_hooks)
    orch.register_activities(*activities_class(store, decide=decide).activities)
    if memory is None and config.memory is not None:
        memory = memory_from_config(config)
    if memory is None:
        memory = order_memory(memory_file(store.path))
    build_order_graph(orch, store, decide=decide, memory=memory)  # served by name
    return orch


async def start_order(
    orch: Orchestrator,
    order: Order,
    *,
    id: str | None = None,
    steps: StepOptions | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start :class:`~.workflow.OrderProcessingWorkflow` for ``order`` on ``orch``'s task queue.

    The workflow id (default ``order-<order_id>``) is the idempotency key: starting it again
    returns the running (or finished) run. ``steps`` default to ``orch``'s config
    (:meth:`~.workflow.StepOptions.from_orchestrator`); the execution timeout is
    ``orchestration.workflow.timeout`` plus the order's ``review_timeout``, so an order that
    waits for its reviewer never times out as a whole first.
    """
    request = OrderRequest.of(order, steps or StepOptions.from_orchestrator(orch))
    options: dict[str, Any] = {}
    if orch.workflow_timeout is not None:
        budget = orch.workflow_timeout + order.review_timeout
        options["execution_timeout"] = timedelta(seconds=budget)
    return await orch.start_workflow(
        OrderProcessingWorkflow.run, request, id=id or f"order-{order.order_id}", **options
    )


_orch: Orchestrator | None = None


def __getattr__(name: str) -> Orchestrator:
    # ``orch`` is built on first access (PEP 562), not at import: importing this module (tests,
    # tools, start_order in a client) opens no database.
    global _orch
    if name != "orch":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _orch is None:
        _orch = create_app()
    return _orch
