"""One set of defaults: every layer that can leave a setting unset means the same by it."""

from __future__ import annotations

from belugaflow import Chain, Config, Graph, GraphSpec, Orchestrator
from belugaflow._defaults import DEFAULTS


def _spec(graph: Graph) -> GraphSpec:
    graph.add_node("a", lambda s: None).set_entry_point("a").set_finish_point("a")
    return graph.to_spec()


def test_graphs_get_the_same_defaults_however_they_are_built() -> None:
    """Graph(), orch.create_graph() and a spec read from minimal JSON agree on every default:
    4 attempts per node (3 retries), 10 workers, 1000 loop steps, 600 s."""
    built = _spec(Graph("g"))
    created = _spec(Orchestrator().create_graph("g"))
    parsed = GraphSpec.from_dict({"name": "g", "nodes": [{"name": "a", "ref": "x"}],
                                  "entry": ["a"], "finish": ["a"]})  # fmt: skip
    for spec in (built, created, parsed):
        assert spec.retry == DEFAULTS.retry and spec.retry.max_attempts == 4
        assert (spec.max_workers, spec.parallel, spec.max_steps, spec.timeout) == (
            10, True, 1000, 600.0
        )  # fmt: skip


def test_chains_get_the_same_defaults_however_they_are_built() -> None:
    """Chain() and orch.create_chain() both give each step 4 attempts and the chain 300 s."""
    for chain in (Chain([lambda x: x]), Orchestrator().create_chain([lambda x: x])):
        assert chain.steps[0].retry.max_attempts == 4 and chain.timeout == 300.0


def test_config_and_orchestrator_defaults_are_the_shared_ones() -> None:
    """An empty config.yaml, Orchestrator() and Orchestrator.from_config agree with DEFAULTS."""
    config = Config()
    plain, from_config = Orchestrator(), Orchestrator.from_config(config)
    for orch in (plain, from_config):
        assert orch.graph_retry == orch.chain_retry == DEFAULTS.retry
        assert orch.workflow_task_queue == config.orchestration.workflow.task_queue
        assert orch.heartbeat_timeout == DEFAULTS.heartbeat_timeout == 10.0
        assert (orch.graph_timeout, orch.chain_timeout, orch.workflow_timeout) == (
            600.0, 300.0, 3600.0
        )  # fmt: skip
        assert orch.graph_max_steps == config.orchestration.graph.max_steps == DEFAULTS.max_steps
    graph = config.orchestration.graph
    assert graph.heartbeat_timeout.total_seconds() == DEFAULTS.heartbeat_timeout
