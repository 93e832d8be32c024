"""The defaults, written once.

``config.yaml``'s models, :class:`~belugaflow.Orchestrator`, :class:`~belugaflow.Graph`,
:class:`~belugaflow.Chain`, :class:`~belugaflow.GraphSpec` and the durable engine all read
:data:`DEFAULTS`, so a value left unset means the same wherever it is left unset. Precedence,
highest first: a node's (or step's) own policy, the graph's (or chain's) setting, the
orchestrator's (from ``config.yaml``), these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .resilience import RetryPolicy

__all__ = ["DEFAULTS", "Defaults"]


@dataclass(frozen=True, slots=True)
class Defaults:
    """Every default that more than one layer needs."""

    max_retries: int = 3
    """Retries of a node or chain step after its first attempt (4 attempts)."""
    chain_timeout: float = 300.0
    """Seconds a whole chain run may take."""
    graph_timeout: float = 600.0
    """Seconds a whole graph run may take (in process, and the durable run's execution
    timeout)."""
    max_workers: int = 10
    """Most nodes of one graph run running at once."""
    parallel: bool = True
    """Run a graph's independent nodes concurrently."""
    max_steps: int = 1000
    """Most runs of nodes that sit in a loop, in one graph run (loop-free graphs are unbounded)."""
    heartbeat_timeout: float = 10.0
    """Durable runs: seconds a node's worker may stay silent before the node is retried on
    another worker. Nodes heartbeat at a third of it."""
    task_queue: str = "beluga-workflows"
    """The Temporal task queue of durable runs."""
    workflow_timeout: float = 3600.0
    """Seconds a hand-written durable workflow may run (its execution timeout)."""
    workflow_max_retries: int = 5
    """Retries of a hand-written workflow's activities after their first attempt."""
    temporal_address: str = "localhost:7233"
    """The Temporal frontend."""
    temporal_namespace: str = "default"
    """The Temporal namespace."""
    metrics_prefix: str = "workflow"
    """Prefix of metric names."""
    metrics: bool = True
    """Record Prometheus metrics."""
    metrics_port: int | None = 9464
    """Port of a worker's ``/metrics``, ``/healthz`` and ``/readyz`` (None: not served)."""
    otel_service_name: str = "belugaflow"
    """``service.name`` of the OpenTelemetry spans."""

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of a node or step that sets none: :attr:`max_retries` retries,
        otherwise ``RetryPolicy()``'s defaults."""
        from .resilience import RetryPolicy  # resilience reads these defaults too

        return RetryPolicy.from_max_retries(self.max_retries)


DEFAULTS = Defaults()
"""The one instance every layer reads."""
