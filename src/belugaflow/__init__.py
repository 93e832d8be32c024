"""belugaflow: AI-assisted, fault-tolerant workflow orchestration.

Describe a process once — a :class:`Chain` of steps or a :class:`Graph` of nodes — and run it in
process. Everyday names live here; more in :mod:`belugaflow.graph`, :mod:`belugaflow.resilience`,
:mod:`belugaflow.config` and :mod:`belugaflow.testing`.
"""

from ._chain import Chain, Step
from ._errors import (
    BelugaflowError,
    BulkheadFullError,
    CallTimeoutError,
    CircuitOpenError,
    ConfigError,
    InputError,
    MaxStepsExceededError,
    MissingEnvVarError,
    NodeFailedError,
    NonRetryableError,
    RetryableError,
    RouteError,
    RunCancelledError,
    RunError,
    RunTimeoutError,
    SpecError,
    StateConflictError,
    WaitTimeoutError,
)
from ._events import Event, EventKind, Hook
from ._orchestrator import Orchestrator
from ._public import show_public_paths as _show_public_paths
from ._runnable import Runnable
from .config import Config, load_config
from .graph import CompiledGraph, Graph, GraphSpec, Registry, RunHandle
from .resilience import Bulkhead, CircuitBreaker, CircuitState, RetryPolicy

__version__ = "0.1.0"
"""The version of belugaflow: the one place it is written (pyproject.toml reads it here)."""

__all__ = [
    "BelugaflowError",
    "Bulkhead",
    "BulkheadFullError",
    "CallTimeoutError",
    "Chain",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CompiledGraph",
    "Config",
    "ConfigError",
    "Event",
    "EventKind",
    "Graph",
    "GraphSpec",
    "Hook",
    "InputError",
    "MaxStepsExceededError",
    "MissingEnvVarError",
    "NodeFailedError",
    "NonRetryableError",
    "Orchestrator",
    "Registry",
    "RetryPolicy",
    "RetryableError",
    "RouteError",
    "RunCancelledError",
    "RunError",
    "RunHandle",
    "RunTimeoutError",
    "Runnable",
    "SpecError",
    "StateConflictError",
    "Step",
    "WaitTimeoutError",
    "load_config",
]

_show_public_paths(globals())
