"""A traced app for the tracing tests: a two-node graph whose second node asks a model.

``belugaflow worker --app tests.monitoring.tracing_app:orch`` serves it, with the environment
giving the OTLP endpoint (:data:`OTEL_ENV`) and the base URL of the fake OpenAI server
(:data:`OPENAI_ENV`); its spans say ``service.name`` :data:`WORKER_SERVICE`. A client builds
the same graph with :func:`create_app` to start it by name.
"""

from __future__ import annotations

import os

from belugaflow import Orchestrator
from belugaflow.graph import CompiledGraph
from belugaflow.llms import HumanMessage
from belugaflow.llms._openai import OpenAIChatModel
from belugaflow.resilience import BreakerRegistry, RetryPolicy

__all__ = ["GRAPH", "MODEL", "OPENAI_ENV", "OTEL_ENV", "WORKER_SERVICE", "create_app"]

OTEL_ENV = "BELUGAFLOW_TEST_OTEL_ENDPOINT"
OPENAI_ENV = "BELUGAFLOW_TEST_OPENAI_URL"
WORKER_SERVICE = "traced-worker"
GRAPH = "traced-order"
MODEL = "gpt-test"


def validate(state: dict[str, object]) -> dict[str, object]:
    return {"valid": True}


def create_app(endpoint: str, openai_url: str, service: str) -> tuple[Orchestrator, CompiledGraph]:
    """An orchestrator tracing to ``endpoint`` as ``service``, and its graph :data:`GRAPH`:
    ``validate`` then ``decide``, which asks :data:`MODEL` at ``openai_url``."""
    orch = Orchestrator(otel_endpoint=endpoint, otel_service_name=service, metrics=False)
    model = OpenAIChatModel(
        model=MODEL,
        api_key="sk-test",
        base_url=f"{openai_url}/v1",
        retry=RetryPolicy(max_attempts=1),
        breakers=BreakerRegistry(),
        hooks=orch.llm_hooks,
    )

    async def decide(state: dict[str, object]) -> dict[str, object]:
        answer = await model.agenerate([HumanMessage(f"approve order {state['order_id']}?")])
        return {"decision": answer.content}

    graph = orch.create_graph(GRAPH)
    graph.add_node("validate", validate)
    graph.add_node("decide", decide)
    graph.add_edge("validate", "decide")
    graph.set_entry_point("validate").set_finish_point("decide")
    return orch, graph.compile()  # served by name


_orch: Orchestrator | None = None


def __getattr__(name: str) -> Orchestrator:
    # Built on first access, from the environment of the worker process.
    global _orch
    if name != "orch":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _orch is None:
        _orch = create_app(os.environ[OTEL_ENV], os.environ[OPENAI_ENV], WORKER_SERVICE)[0]
    return _orch
