"""Orchestrator: defaults from arguments or config.yaml flow into what it builds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from belugaflow import (
    Event,
    EventKind,
    NodeFailedError,
    Orchestrator,
    RetryPolicy,
    RunTimeoutError,
    load_config,
)

pytestmark = pytest.mark.usefixtures("no_backoff")

CONFIG = """\
orchestration:
  chain: {timeout: 45s, max_retries: 2}
  graph: {max_workers: 3, parallel_execution: false, timeout: 2m, max_retries: 1, max_steps: 7}
  workflow: {task_queue: "orders-queue", timeout: 1h, max_retries: 5}
monitoring:
  metrics: {enabled: true, prefix: "beluga"}
"""


@pytest.fixture
def orchestrator(tmp_path: Path) -> Orchestrator:
    """An orchestrator built from a config file written to tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return Orchestrator.from_config(load_config(path, env={}))


class AlwaysFails:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        raise ConnectionError("down")


def test_settings_come_from_the_config_file(orchestrator: Orchestrator) -> None:
    """from_config copies the chain, graph, workflow and metrics settings."""
    assert orchestrator.chain_timeout == 45.0
    assert orchestrator.chain_retry.max_attempts == 3
    assert orchestrator.graph_max_workers == 3 and orchestrator.graph_parallel is False
    assert orchestrator.graph_timeout == 120.0
    assert orchestrator.graph_retry.max_attempts == 2
    assert orchestrator.graph_max_steps == 7
    assert orchestrator.workflow_task_queue == "orders-queue"
    assert orchestrator.metrics_prefix == "beluga"


def test_created_graph_takes_the_defaults(orchestrator: Orchestrator) -> None:
    """create_graph() without options uses the config's graph settings."""
    spec = orchestrator.create_graph("g").add_node("a", lambda s: None)
    spec = spec.set_entry_point("a").set_finish_point("a").to_spec()
    assert (spec.max_workers, spec.parallel, spec.timeout, spec.max_steps) == (3, False, 120.0, 7)
    assert spec.retry.max_attempts == 2


def test_explicit_graph_options_win(orchestrator: Orchestrator) -> None:
    """Options given to create_graph() override the defaults."""
    g = orchestrator.create_graph(
        "g", max_workers=8, parallel=True, timeout=5, max_steps=99, retry=RetryPolicy.none()
    )
    spec = g.add_node("a", lambda s: None).set_entry_point("a").set_finish_point("a").to_spec()
    assert (spec.max_workers, spec.parallel, spec.timeout, spec.max_steps) == (8, True, 5.0, 99)
    assert spec.retry.max_attempts == 1


def test_graph_max_retries_means_one_more_attempt(orchestrator: Orchestrator) -> None:
    """graph.max_retries=1 gives a failing node 2 attempts."""
    node = AlwaysFails()
    g = orchestrator.create_graph("g").add_node("a", node)
    with pytest.raises(NodeFailedError) as info:
        g.set_entry_point("a").set_finish_point("a").invoke({})
    assert node.calls == 2 and str(info.value).startswith("'g': node 'a' failed on attempt 2/2")


def test_graph_max_steps_from_config_bounds_loops(orchestrator: Orchestrator) -> None:
    """graph.max_steps from the config stops a runaway loop."""
    from belugaflow import MaxStepsExceededError

    g = orchestrator.create_graph("loop")
    g.add_node("spin", lambda s: None).add_node("out", lambda s: None)
    g.add_conditional_edges("spin", lambda s: "again", {"again": "spin", "out": "out"})
    with pytest.raises(MaxStepsExceededError, match="max_steps=7"):
        g.set_entry_point("spin").set_finish_point("out").invoke({})


async def test_graph_parallel_false_from_config_runs_one_at_a_time(
    orchestrator: Orchestrator,
) -> None:
    """parallel_execution: false makes created graphs run their nodes one at a time."""
    active = 0
    peak = 0

    async def node(state: Any) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.005)
        active -= 1

    g = orchestrator.create_graph("g").add_node("start", lambda s: None)
    for k in range(4):
        g.add_node(f"n{k}", node).add_edge("start", f"n{k}")
    await g.set_entry_point("start").set_finish_point([f"n{k}" for k in range(4)]).ainvoke({})
    assert peak == 1


def test_chain_max_retries_means_one_more_attempt(orchestrator: Orchestrator) -> None:
    """chain.max_retries=2 gives a failing step 3 attempts; an explicit retry wins."""
    step = AlwaysFails()
    with pytest.raises(NodeFailedError):
        orchestrator.create_chain([step]).invoke(1)
    assert step.calls == 3
    step = AlwaysFails()
    with pytest.raises(NodeFailedError):
        orchestrator.create_chain([step], retry=RetryPolicy(max_attempts=1)).invoke(1)
    assert step.calls == 1


def test_chain_timeout_comes_from_the_config(orchestrator: Orchestrator) -> None:
    """create_chain() uses chain.timeout as the whole chain's timeout; timeout= overrides."""
    assert orchestrator.create_chain([abs]).timeout == 45.0
    assert orchestrator.create_chain([abs], timeout=1.5).timeout == 1.5


async def test_short_chain_timeout_from_arguments_applies() -> None:
    """Orchestrator(chain_timeout=...) bounds each chain it creates."""

    async def slow(x: int) -> int:
        await asyncio.sleep(5)
        return x

    orchestrator = Orchestrator(chain_timeout=0.05)
    with pytest.raises(RunTimeoutError):
        await orchestrator.create_chain([slow]).ainvoke(1)


def test_plain_orchestrator_defaults_match_the_config_defaults() -> None:
    """Orchestrator() and Orchestrator.from_config(load_config()) have the same defaults."""
    plain = Orchestrator()
    configured = Orchestrator.from_config(load_config(env={}))
    for attribute in (
        "chain_timeout",
        "chain_retry",
        "graph_max_workers",
        "graph_parallel",
        "graph_timeout",
        "graph_retry",
        "graph_max_steps",
        "workflow_task_queue",
        "metrics_prefix",
    ):
        assert getattr(plain, attribute) == getattr(configured, attribute), attribute


async def test_hooks_and_breakers_are_shared_by_what_it_builds() -> None:
    """Everything an orchestrator builds reports to its hooks and shares its breakers by
    name."""
    events: list[Event] = []
    orchestrator = Orchestrator(hooks=[events.append])
    breaker = orchestrator.breaker("api", failure_threshold=2)
    assert orchestrator.breaker("api") is breaker
    g = orchestrator.create_graph("g", retry=RetryPolicy.none())
    g.add_node("a", lambda s: {"a": 1}, breaker="api").set_entry_point("a").set_finish_point("a")
    chain = orchestrator.create_chain([abs], name="c")
    assert await orchestrator.run(g, {}) == {"a": 1}
    assert await orchestrator.run(chain, -3) == 3
    finished = [e.graph for e in events if e.kind is EventKind.RUN_COMPLETED]
    assert finished == ["g", "c"]


def test_registered_names_resolve_in_graphs(orchestrator: Orchestrator) -> None:
    """orchestrator.register() makes a callable usable by name in its graphs."""
    orchestrator.register("nodes.hello", lambda s: {"text": f"hello {s['name']}"})
    g = orchestrator.create_graph("greet").add_node("hello", "nodes.hello")
    state = g.set_entry_point("hello").set_finish_point("hello").invoke({"name": "ada"})
    assert state["text"] == "hello ada"


def _upper(state: dict[str, Any]) -> dict[str, Any]:
    return {"text": state["text"].upper()}


def test_graphs_added_as_data_are_checked_versioned_and_named() -> None:
    """``add_graph`` checks a spec as a build does, refuses another definition of a version,
    and the graph then runs by name (``graph``) and counts among ``types``."""
    from belugaflow import GraphSpec, SpecError

    orch = Orchestrator()
    orch.register("text.upper", _upper)
    data = {"name": "shout", "nodes": [{"name": "up", "ref": "text.upper"}], "entry": ["up"]}
    spec = GraphSpec.from_dict({**data, "finish": ["up"]})
    assert orch.add_graph(spec).invoke({"text": "a"}) == {"text": "A"}
    orch.add_graph(spec)  # the same again: nothing changes
    assert orch.added("shout", 1) and orch.types() == {"shout": "graph"}
    assert orch.graph("shout").invoke({"text": "b"}) == {"text": "B"}

    changed = GraphSpec.from_dict({**data, "finish": ["up"], "max_workers": 2})
    with pytest.raises(ValueError, match="already defined differently"):
        orch.add_graph(changed)
    orch.add_graph(GraphSpec.from_dict({**data, "finish": ["up"], "version": 2}))
    assert orch.graph("shout").spec.version == 2 and orch.graph("shout", 1).spec == spec

    unknown = GraphSpec.from_dict(
        {"name": "x", "nodes": [{"name": "a", "ref": "no.such"}], "entry": ["a"], "finish": ["a"]}
    )
    with pytest.raises(SpecError, match=r"no callable registered as 'no\.such'"):
        orch.add_graph(unknown)
    assert "x" not in orch.registry.graphs
    with pytest.raises(KeyError, match="no graph named 'x'"):
        orch.graph("x")
    with pytest.raises(KeyError, match="has no version 3"):
        orch.graph("shout", 3)


def test_a_graph_built_in_code_is_not_added_as_data(orchestrator: Orchestrator) -> None:
    """Graphs built with the orchestrator start by name; only ``add_graph`` ones carry their
    spec."""
    graph = orchestrator.create_graph("built")
    graph.add_node("up", _upper).set_entry_point("up").set_finish_point("up")
    spec = graph.compile().spec
    assert orchestrator.types()["built"] == "graph" and not orchestrator.added("built", 1)
    orchestrator.add_graph(spec)  # the same spec again: still built in code
    assert not orchestrator.added("built", 1)
