"""``Orchestrator``: the facade that holds defaults, the registry, breakers and hooks."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Unpack

from ._chain import Chain, Step
from ._events import Hook
from ._runnable import RunnableBase
from .graph import Graph, Registry
from .resilience import BreakerRegistry, CircuitBreaker, RetryPolicy
from .resilience._breaker import BreakerOptions

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Orchestrator"]


def _seconds(value: float | timedelta | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET
"""Marks an option as not given, so ``None`` can mean "no limit"."""


class Orchestrator:
    """Builds chains and graphs with shared defaults, and runs them.

    Everything built by one orchestrator shares its registry (names → callables, so a spec can
    travel to another process), its circuit breakers (one per dependency, by name) and its
    event hooks. Defaults follow ``config.yaml``; ``max_retries=n`` means ``n + 1`` attempts.

    Args:
        chain_timeout: Seconds a whole chain may take (``orchestration.chain.timeout``).
        chain_max_retries: Retries per chain step after the first attempt.
        graph_max_workers: Most nodes of one graph run at once.
        graph_parallel: False runs a graph's ready nodes one at a time.
        graph_timeout: Seconds a whole graph run may take.
        graph_max_retries: Retries per graph node after the first attempt.
        graph_max_steps: Most node runs in one graph run (bounds loops).
        workflow_task_queue: Temporal task queue of durable runs.
        metrics_prefix: Prefix of metric names.
        hooks: Event hooks attached to everything this orchestrator builds.
    """

    def __init__(
        self,
        *,
        chain_timeout: float | timedelta | None = 300.0,
        chain_max_retries: int = 3,
        graph_max_workers: int = 10,
        graph_parallel: bool = True,
        graph_timeout: float | timedelta | None = 600.0,
        graph_max_retries: int = 3,
        graph_max_steps: int = 1000,
        workflow_task_queue: str = "beluga-workflows",
        metrics_prefix: str = "workflow",
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.chain_timeout = _seconds(chain_timeout)
        self.chain_retry = RetryPolicy.from_max_retries(chain_max_retries)
        self.graph_max_workers = graph_max_workers
        self.graph_parallel = graph_parallel
        self.graph_timeout = _seconds(graph_timeout)
        self.graph_retry = RetryPolicy.from_max_retries(graph_max_retries)
        self.graph_max_steps = graph_max_steps
        self.workflow_task_queue = workflow_task_queue
        self.metrics_prefix = metrics_prefix
        self.hooks: list[Hook] = list(hooks)
        self.registry = Registry()
        self.breakers = BreakerRegistry()

    @classmethod
    def from_config(cls, config: Config, *, hooks: Sequence[Hook] = ()) -> Orchestrator:
        """An orchestrator with the defaults of a loaded ``config.yaml``."""
        orchestration = config.orchestration
        return cls(
            chain_timeout=orchestration.chain.timeout,
            chain_max_retries=orchestration.chain.max_retries,
            graph_max_workers=orchestration.graph.max_workers,
            graph_parallel=orchestration.graph.parallel_execution,
            graph_timeout=orchestration.graph.timeout,
            graph_max_retries=orchestration.graph.max_retries,
            graph_max_steps=orchestration.graph.max_steps,
            workflow_task_queue=orchestration.workflow.task_queue,
            metrics_prefix=config.monitoring.metrics.prefix,
            hooks=hooks,
        )

    def __repr__(self) -> str:
        return (
            f"<Orchestrator task_queue={self.workflow_task_queue!r}"
            f" registered={len(self.registry)} breakers={len(self.breakers)}>"
        )

    def create_graph(
        self,
        name: str,
        *,
        max_workers: int | None = None,
        parallel: bool | None = None,
        timeout: float | timedelta | _Unset | None = UNSET,
        retry: RetryPolicy | None = None,
        max_steps: int | None = None,
        version: int = 1,
    ) -> Graph:
        """A new graph builder; options not given take this orchestrator's defaults.

        ``timeout=None`` runs without a whole-run time limit.
        """
        return Graph(
            name,
            max_workers=self.graph_max_workers if max_workers is None else max_workers,
            parallel=self.graph_parallel if parallel is None else parallel,
            timeout=self.graph_timeout if timeout is UNSET else timeout,
            retry=retry or self.graph_retry,
            max_steps=self.graph_max_steps if max_steps is None else max_steps,
            version=version,
            registry=self.registry,
            breakers=self.breakers,
            hooks=self.hooks,
        )

    def create_chain(
        self,
        steps: Sequence[Callable[[Any], Any] | RunnableBase | Step],
        *,
        name: str = "chain",
        timeout: float | timedelta | _Unset | None = UNSET,
        retry: RetryPolicy | None = None,
    ) -> Chain:
        """A chain of ``steps``; options not given take this orchestrator's defaults.

        ``timeout=None`` runs without a whole-chain time limit.
        """
        return Chain(
            steps,
            name=name,
            timeout=self.chain_timeout if timeout is UNSET else timeout,
            retry=retry or self.chain_retry,
            breakers=self.breakers,
            hooks=self.hooks,
        )

    def breaker(self, name: str, **options: Unpack[BreakerOptions]) -> CircuitBreaker:
        """The circuit breaker called ``name``, created with ``options`` on first use."""
        return self.breakers.get_or_create(name, **options)

    def register(self, name: str, fn: object) -> str:
        """Make ``fn`` resolvable as ``name`` in specs (nodes, routers, reducers)."""
        return self.registry.register(name, fn)

    async def run(self, runnable: RunnableBase, input: Any) -> Any:
        """Run a chain or graph in process and return its result."""
        return await runnable.ainvoke(input)
