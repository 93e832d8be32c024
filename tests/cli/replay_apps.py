"""Apps for ``belugaflow replay --app tests.cli.replay_apps:NAME`` (tests/cli/test_replay.py).

- ``changed``: the recorded workflows changed without a guard — ``OrderProcessingWorkflow``
  with an audit step first (``tests/histories/changed.py``), and ``order-processing`` v1 with
  an ``audit`` node first and its version left as it was;
- ``newer``: only ``order-processing`` v2 (v1, which recorded runs started on, is gone) and no
  ``OrderProcessingWorkflow``;
- ``live``: the graph ``replay-greet``, which waits for a signal, for runs made by the test.
"""

from __future__ import annotations

from typing import Any

from tests.histories.changed import AuditedOrderWorkflow

from belugaflow import Graph, Orchestrator

__all__ = ["GREET", "GREET_GRAPH", "changed", "greet_graph", "live", "newer"]

GREET = "replay-greet"


def _audit(state: dict[str, Any]) -> dict[str, Any]:
    return {"audited": True}


def _order_graph(orch: Orchestrator, version: int) -> None:
    """An ``order-processing`` that begins with an audit and then waits for review."""
    graph = orch.create_graph("order-processing", version=version, timeout=None)
    graph.add_node("audit", _audit)
    graph.add_wait("await_review", signal="review")
    graph.add_edge("audit", "await_review").set_entry_point("audit")
    graph.set_finish_point("await_review").compile()


changed = Orchestrator()
changed.register_workflow(AuditedOrderWorkflow)
_order_graph(changed, version=1)

newer = Orchestrator()
_order_graph(newer, version=2)


def _hello(state: dict[str, Any]) -> dict[str, Any]:
    return {"greeting": f"hello {state.get('name', 'you')}"}


def _bye(state: dict[str, Any]) -> dict[str, Any]:
    return {"farewell": "bye"}


def greet_graph(orch: Orchestrator) -> Graph:
    """``hello``, then a wait for the signal ``go``, then ``bye``."""
    graph = orch.create_graph(GREET, timeout=None)
    graph.add_node("hello", _hello).add_node("bye", _bye)
    graph.add_wait("await_go", signal="go")
    graph.add_edge("hello", "await_go").add_edge("await_go", "bye")
    return graph.set_entry_point("hello").set_finish_point("bye")


live = Orchestrator()
GREET_GRAPH = greet_graph(live).compile()
